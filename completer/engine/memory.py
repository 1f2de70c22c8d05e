"""Plan memory from the model sizes and what the machine has, instead of hand-tuned numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass

GIB = 1 << 30
# activations, runtime buffers, the Python processes: measured headroom, not a guess per model
CPU_OVERHEAD_BYTES = int(2.0 * GIB)
GPU_OVERHEAD_BYTES = int(1.5 * GIB)
# vLLM needs room for several sequences of max_model_len; keep a margin for fragmentation
KV_MARGIN = 1.25


class DoesNotFit(RuntimeError):
    """The pair cannot fit; the message carries the numbers."""


@dataclass(frozen=True)
class MemoryPlan:
    backend: str
    weights_bytes: int
    kv_bytes: int
    required_bytes: int
    available_bytes: int
    kv_cache_gib: int = 0  # CPU: VLLM_CPU_KVCACHE_SPACE
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
) -> MemoryPlan:
    """How much KV cache (CPU) or which memory share (GPU) the pair gets.

    ``target``/``draft`` are ModelInfo-like (weight_bytes, kv_bytes_per_token) or None
    when unknown (a remote repo id); unknown sizes are not planned, only passed through.
    """
    if target is None:
        return MemoryPlan(backend, 0, 0, 0, available_bytes, kv_cache_gib=math.ceil(kv_cache_gib or 2),
                          gpu_memory_utilization=gpu_memory_utilization)
    models = [m for m in (target, draft) if m is not None]
    weights = sum(m.weight_bytes for m in models)
    kv_per_token = sum(m.kv_bytes_per_token for m in models)
    kv_needed = int(max_num_seqs * max_model_len * kv_per_token * KV_MARGIN)
    if backend == "cpu":
        kv_gib = math.ceil(kv_cache_gib) if kv_cache_gib else max(1, math.ceil(kv_needed / GIB))
        required = weights + kv_gib * GIB + CPU_OVERHEAD_BYTES
        if required > available_bytes:
            raise DoesNotFit(
                f"the models do not fit in memory: weights {_gib(weights)} + KV cache {kv_gib} GiB "
                f"+ runtime {_gib(CPU_OVERHEAD_BYTES)} = {_gib(required)}, but only {_gib(available_bytes)} "
                "is available; use smaller models, a shorter max_model_len or fewer max_num_seqs"
            )
        return MemoryPlan(backend, weights, kv_gib * GIB, required, available_bytes, kv_cache_gib=kv_gib)
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
