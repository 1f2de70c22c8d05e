from dataclasses import dataclass

import pytest

from completer.engine.memory import GIB, DoesNotFit, plan_memory


@dataclass
class Info:
    weight_bytes: int
    kv_bytes_per_token: int


TARGET = Info(int(3.3 * GIB), 28_672)  # Qwen2.5-Coder-1.5B bf16
DRAFT = Info(int(1.2 * GIB), 12_288)  # Qwen2.5-Coder-0.5B bf16


@pytest.mark.parametrize("max_len,seqs,available,kv_gib", [
    (4096, 4, 24 * GIB, 1),
    (32768, 8, 24 * GIB, 13),
])
def test_cpu_kv_cache_follows_the_models_and_the_context(max_len, seqs, available, kv_gib):
    plan = plan_memory(backend="cpu", target=TARGET, draft=DRAFT, max_model_len=max_len, max_num_seqs=seqs,
                       available_bytes=available)
    assert plan.kv_cache_gib == kv_gib
    assert plan.required_bytes <= available


def test_cpu_pair_that_cannot_fit_is_refused_with_numbers():
    with pytest.raises(DoesNotFit, match=r"weights 4\.50 GiB .* only 4\.00 GiB"):
        plan_memory(backend="cpu", target=TARGET, draft=DRAFT, max_model_len=4096, max_num_seqs=4,
                    available_bytes=4 * GIB)


def test_gpu_share_is_planned_from_the_sizes():
    plan = plan_memory(backend="cuda", target=TARGET, draft=DRAFT, max_model_len=4096, max_num_seqs=4,
                       available_bytes=78 * GIB, total_gpu_bytes=80 * GIB)
    assert plan.required_bytes / (80 * GIB) < plan.gpu_memory_utilization <= 0.2


def test_gpu_pair_that_cannot_fit_is_refused():
    with pytest.raises(DoesNotFit, match="do not fit on the GPU"):
        plan_memory(backend="cuda", target=TARGET, draft=DRAFT, max_model_len=4096, max_num_seqs=4,
                    available_bytes=4 * GIB, total_gpu_bytes=8 * GIB)
