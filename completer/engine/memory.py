"""Plan memory from the model sizes and what an editor needs, instead of hand-tuned numbers.

On a CPU the KV cache is sized for the requests an editor makes, not for the memory that is free:
``max_num_seqs`` requests of at most ``max_model_len`` tokens, each cut to what a completion's
prompt and answer can hold (``context_tokens`` + ``max_tokens``), plus headroom for the prefix
cache to keep the current document's prompt in each plan's cache (speculating and bypassed requests
keep separate ones) while other requests run. vLLM gets it in bytes (``kv_cache_memory_bytes``),
not in whole GiB (``VLLM_CPU_KVCACHE_SPACE``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterable

GIB = 1 << 30
# activations, runtime buffers, the Python processes: measured headroom, not a guess per model
CPU_OVERHEAD_BYTES = int(2.0 * GIB)
GPU_OVERHEAD_BYTES = int(1.5 * GIB)
# GPU: vLLM needs room for several sequences of max_model_len; keep a margin for fragmentation
KV_MARGIN = 1.25
# CPU: prompts the prefix cache keeps while other requests run: the current document's, once in the
# speculating plan's cache and once in the bypassed plan's (policy/warm_cache.py)
PREFIX_CACHE_PROMPTS = 2
KV_ROUND_BYTES = 1 << 20


class DoesNotFit(RuntimeError):
    """The pair cannot fit; the message carries the numbers."""


@dataclass(frozen=True)
class MemoryPlan:
    backend: str
    weights_bytes: int
    kv_bytes: int
    required_bytes: int
    available_bytes: int
    kv_cache_gib: int = 0  # CPU: the KV cache in whole GiB, rounded up (for messages)
    gpu_memory_utilization: float | None = None  # GPU: share of the card vLLM may use


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def plan_memory(
    *,
    backend: str,
    target,
    draft,
    max_model_len: int,
    max_num_seqs: int,
    available_bytes: int,
    kv_cache_gib: float | None = None,
    gpu_memory_utilization: float | None = None,
    total_gpu_bytes: int | None = None,
    request_tokens: int | None = None,
) -> MemoryPlan:
    """How much KV cache (CPU, ``kv_bytes``) or which memory share (GPU) the pair gets.

    ``target``/``draft`` are ModelInfo-like (weight_bytes, kv_bytes_per_token) or None
    when unknown (a remote repo id); unknown sizes are not planned, only passed through.
    ``request_tokens``: the most tokens one editor request holds (prompt budget + answer); None:
    ``max_model_len``. ``kv_cache_gib`` (the user's setting) replaces the CPU plan. Raises
    DoesNotFit with the numbers.
    """
    if target is None:
        gib = kv_cache_gib or 2
        return MemoryPlan(backend, 0, int(gib * GIB), 0, available_bytes, kv_cache_gib=math.ceil(gib),
                          gpu_memory_utilization=gpu_memory_utilization)
    models = [m for m in (target, draft) if m is not None]
    weights = sum(m.weight_bytes for m in models)
    kv_per_token = sum(m.kv_bytes_per_token for m in models)
    if backend == "cpu":
        tokens = cpu_kv_tokens(max_model_len, max_num_seqs, request_tokens)
        kv = int(kv_cache_gib * GIB) if kv_cache_gib else -(-tokens * kv_per_token // KV_ROUND_BYTES) * KV_ROUND_BYTES
        required = weights + kv + CPU_OVERHEAD_BYTES
        if required > available_bytes:
            raise DoesNotFit(
                f"the models do not fit in memory: weights {_gib(weights)} + KV cache {_gib(kv)} "
                f"+ runtime {_gib(CPU_OVERHEAD_BYTES)} = {_gib(required)}, but only {_gib(available_bytes)} "
                "is available; use smaller models, a shorter max_model_len or fewer max_num_seqs"
            )
        return MemoryPlan(backend, weights, kv, required, available_bytes, kv_cache_gib=math.ceil(kv / GIB))
    kv_needed = int(max_num_seqs * max_model_len * kv_per_token * KV_MARGIN)
    total = total_gpu_bytes or available_bytes
    required = weights + kv_needed + GPU_OVERHEAD_BYTES
    if required > min(available_bytes, int(total * 0.95)):
        raise DoesNotFit(
            f"the models do not fit on the GPU: weights {_gib(weights)} + KV cache {_gib(kv_needed)} "
            f"+ runtime {_gib(GPU_OVERHEAD_BYTES)} = {_gib(required)}, free {_gib(available_bytes)} "
            f"of {_gib(total)}"
        )
    share = gpu_memory_utilization or min(0.9, max(required / total + 0.05, 0.2))
    return MemoryPlan(backend, weights, kv_needed, required, available_bytes, gpu_memory_utilization=round(share, 3))


def cpu_kv_tokens(max_model_len: int, max_num_seqs: int, request_tokens: int | None = None) -> int:
    """Tokens of KV cache an editor needs on a CPU: ``max_num_seqs`` requests of ``request_tokens``
    (at most ``max_model_len``; never less than one whole ``max_model_len``, which vLLM checks at
    start), plus PREFIX_CACHE_PROMPTS prompts kept in the prefix cache."""
    per_request = min(request_tokens or max_model_len, max_model_len)
    return max(max_model_len, max_num_seqs * per_request) + PREFIX_CACHE_PROMPTS * per_request


def resident_memory(engine_pids: Iterable[int]) -> dict:
    """Resident memory (RSS, bytes) of this process (the language server, or the benchmark that runs
    the engine in-process) and of the engine's processes with their children; processes that are
    gone are skipped. Returns {"server_rss_bytes", "engine_rss_bytes", "rss_bytes", "rss_gib"}."""
    import psutil

    def rss(process) -> int:
        try:
            return process.memory_info().rss
        except psutil.Error:
            return 0

    server = rss(psutil.Process())
    seen: dict[int, object] = {}
    for pid in engine_pids:
        try:
            process = psutil.Process(pid)
            for p in [process, *process.children(recursive=True)]:
                seen.setdefault(p.pid, p)
        except psutil.Error:
            continue
    seen.pop(os.getpid(), None)  # an engine that runs in this process is counted once
    engine = sum(rss(p) for p in seen.values())
    return {"server_rss_bytes": server, "engine_rss_bytes": engine, "rss_bytes": server + engine,
            "rss_gib": round((server + engine) / GIB, 2)}


def total_memory(backend: str) -> int | None:
    """The GPU's whole memory in bytes (None on the CPU, where available_memory is the limit)."""
    if backend != "cuda":
        return None
    import torch

    return int(torch.cuda.mem_get_info()[1])


def available_memory(backend: str) -> int:
    if backend == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)
