#!/usr/bin/env python3
"""GPU-machine side of the carry kit (stdlib only): ``receive BATCH_DIR`` and ``setup``.

Everything lives under $COMPLETER_GPU_ROOT (default /tmp/completer-gpu): chunks/ (as carried),
payloads/ (reassembled), site/ (the pip --target tree), cache/ (COMPLETER_CACHE), env.sh and
installed.json (payload sha256s already installed, so a second setup is quick).
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(os.environ.get("COMPLETER_GPU_ROOT", "/tmp/completer-gpu"))
REPO = Path(__file__).resolve().parents[2]
CHUNKS = ROOT / "chunks"
EXIT_USAGE, EXIT_MISSING, EXIT_SHA, EXIT_INSTALL = 2, 3, 4, 5


def fail(code: int, message: str) -> None:
    print(f"setup: {message}", file=sys.stderr)
    sys.exit(code)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def load_manifest() -> dict:
    for path in (ROOT / "MANIFEST.json", REPO / ".gpu" / "MANIFEST.json"):
        if path.exists():
            return json.loads(path.read_text())
    fail(EXIT_USAGE, f"no MANIFEST.json in {ROOT} (run receive.sh on a batch first)")


def have(chunk: dict) -> bool:
    path = CHUNKS / chunk["file"]
    return path.exists() and path.stat().st_size == chunk["size"]


def counts(manifest: dict) -> str:
    parts = []
    for group in ("base", "model"):
        chunks = [c for p in manifest["payloads"] if p["group"] == group for c in p["chunks"]]
        if chunks:
            parts.append(f"{group} {sum(map(have, chunks))}/{len(chunks)}")
    every = [c for p in manifest["payloads"] for c in p["chunks"]]
    return f"chunks {sum(map(have, every))}/{len(every)} ({', '.join(parts)})"


def receive(batch: Path) -> None:
    if not batch.is_dir():
        fail(EXIT_USAGE, f"{batch} is not a folder")
    CHUNKS.mkdir(parents=True, exist_ok=True)
    moved = 0
    for f in sorted(batch.iterdir()):
        if f.name == "MANIFEST.json":
            shutil.copyfile(f, ROOT / "MANIFEST.json")
            continue
        target = CHUNKS / f.name
        if target.exists() and target.stat().st_size == f.stat().st_size and sha256_file(target) == sha256_file(f):
            f.unlink()  # already here; the carried copy only costs disk
            continue
        shutil.move(str(f), target)
        moved += 1
    manifest = load_manifest()
    missing = [c["batch"] for p in manifest["payloads"] for c in p["chunks"] if not have(c)]
    todo = f"; still to carry: batches {sorted(set(missing))}" if missing else ""
    print(f"receive {batch}: {moved} new; {counts(manifest)}{todo}")


def missing_chunks(missing: list[dict], shown: int = 5) -> None:
    if missing:
        names = " ".join(c["file"] for c in missing[:shown]) + (f" (+{len(missing) - shown} more)" if len(missing) > shown else "")
        fail(EXIT_MISSING, f"missing chunks: {len(missing)} from batches {sorted({c['batch'] for c in missing})}: {names}")


def assemble(payload: dict) -> Path:
    """The payload's bytes in one file, chunks checked first; a single chunk is used where it lies."""
    missing_chunks([c for c in payload["chunks"] if not have(c)])
    for c in payload["chunks"]:
        if sha256_file(CHUNKS / c["file"]) != c["sha256"]:
            fail(EXIT_SHA, f"sha mismatch: chunk {c['file']}")
    if len(payload["chunks"]) == 1:
        return CHUNKS / payload["chunks"][0]["file"]
    out = ROOT / "payloads" / payload["file"]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as dst:
        for c in payload["chunks"]:
            with open(CHUNKS / c["file"], "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 24)
    if sha256_file(out) != payload["sha256"]:
        fail(EXIT_SHA, f"sha mismatch: reassembled {payload['file']}")
    return out


def place(source: Path, dest: Path, install: dict) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    with (lzma.open(source) if install.get("xz") else open(source, "rb")) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 24)
    if install.get("final_sha256") and sha256_file(tmp) != install["final_sha256"]:
        fail(EXIT_SHA, f"sha mismatch: {dest.name} after decompression")
    os.replace(tmp, dest)


def setup() -> None:
    manifest = load_manifest()
    done_path = ROOT / "installed.json"
    done = json.loads(done_path.read_text()) if done_path.exists() else {}
    base = [p for p in manifest["payloads"] if p["group"] == "base"]
    missing = [c for p in base for c in p["chunks"] if not have(c) and done.get(p["file"]) != p["sha256"]]
    missing_chunks(missing)
    todo = [p for p in base if done.get(p["file"]) != p["sha256"]]
    wheels = [(p, assemble(p)) for p in todo if p["install"]["kind"] == "wheel"]
    if wheels:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--upgrade", "--target", str(ROOT / "site")]
        cmd += os.environ.get("COMPLETER_GPU_PIP_ARGS", "").split()  # cross-install flags for a dry rehearsal
        env = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore"}  # the machines run as root, no venv
        if subprocess.run(cmd + [str(w) for _, w in wheels], env=env).returncode:
            fail(EXIT_INSTALL, f"install failed: pip install --target {ROOT / 'site'} of {len(wheels)} wheels")
        done.update({p["file"]: p["sha256"] for p, _ in wheels})
    for p in todo:
        kind = p["install"]["kind"]
        if kind == "tar":
            try:
                with tarfile.open(assemble(p)) as tar:
                    tar.extractall(ROOT / p["install"]["dest"], filter="data")
            except (tarfile.TarError, OSError) as e:
                fail(EXIT_INSTALL, f"install failed: {p['file']}: {e}")
        elif kind == "file":
            place(assemble(p), ROOT / p["install"]["dest"], p["install"])
        if kind != "wheel":
            done[p["file"]] = p["sha256"]
        done_path.write_text(json.dumps(done, indent=1, sort_keys=True))
    done_path.write_text(json.dumps(done, indent=1, sort_keys=True))
    print(f"vLLM+deps: {len(base) - len(todo)} payloads already installed, {len(todo)} installed now")

    for p in (p for p in manifest["payloads"] if p["group"] == "model"):
        dest = ROOT / p["install"]["dest"]
        n = sum(map(have, p["chunks"]))
        if done.get(p["file"]) == p["sha256"] and dest.exists() and (dest.is_dir() or dest.stat().st_size == p["size"]):
            print(f"model {p['file']}: in place")
        elif n < len(p["chunks"]):
            print(f"model {p['file']}: chunks {n}/{len(p['chunks'])}, not assembled yet")
        elif p["install"]["kind"] == "tar":  # a head folder
            try:
                with tarfile.open(assemble(p)) as tar:
                    tar.extractall(dest, filter="data")
            except (tarfile.TarError, OSError) as e:
                fail(EXIT_INSTALL, f"install failed: {p['file']}: {e}")
            done[p["file"]] = p["sha256"]
            done_path.write_text(json.dumps(done, indent=1, sort_keys=True))
            print(f"model {p['file']}: unpacked into {dest}")
        else:
            src = assemble(p)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest) if src.parent == ROOT / "payloads" else shutil.copyfile(src, dest)
            done[p["file"]] = p["sha256"]
            done_path.write_text(json.dumps(done, indent=1, sort_keys=True))
            print(f"model {p['file']}: reassembled into {dest}")

    env = {
        "PYTHONPATH": f"{ROOT / 'site'}:{REPO}",
        "VLLM_USE_FLASHINFER_SAMPLER": "0", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "COMPLETER_CACHE": str(ROOT / "cache"),
    }
    (ROOT / "env.sh").write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
    print(f"wrote {ROOT / 'env.sh'}; {counts(manifest)}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["receive"] and len(sys.argv) == 3:
        receive(Path(sys.argv[2]))
    elif sys.argv[1:] == ["setup"]:
        setup()
    else:
        fail(EXIT_USAGE, "usage: unpack.py receive BATCH_DIR | unpack.py setup")
