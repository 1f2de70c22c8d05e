import os
import subprocess
import sys
import time
from dataclasses import dataclass

import psutil

import pytest

from completer.engine.memory import GIB, DoesNotFit, cpu_kv_tokens, plan_memory, resident_memory


@dataclass
class Info:
    weight_bytes: int
    kv_bytes_per_token: int


TARGET = Info(int(3.3 * GIB), 28_672)  # Qwen2.5-Coder-1.5B bf16
DRAFT = Info(int(1.2 * GIB), 12_288)  # Qwen2.5-Coder-0.5B bf16


@pytest.mark.parametrize("max_len, seqs, request_tokens, tokens", [
    (4096, 4, 1792, 4 * 1792 + 2 * 1792),  # the defaults: four editor requests and two cached prompts
    (4096, 1, 1792, 4096 + 2 * 1792),  # never less than one whole max_model_len (vLLM checks it)
    (4096, 4, None, 4 * 4096 + 2 * 4096),  # unknown request size: max_model_len each
    (2048, 4, 4000, 4 * 2048 + 2 * 2048),  # a request holds at most max_model_len
    (32768, 8, 2304, 32768 + 2 * 2304),  # a long max_model_len: one whole one
])
def test_cpu_kv_tokens_follow_what_an_editor_needs(max_len, seqs, request_tokens, tokens):
    assert cpu_kv_tokens(max_len, seqs, request_tokens) == tokens


@pytest.mark.parametrize("setting, expected", [
    (None, 10752 * (28_672 + 12_288)),  # planned: 420 MiB, exact to the MiB (it was 1 GiB, whole GiB)
    (1.5, int(1.5 * GIB)),  # the user's kv_cache_space_gib, in bytes
])
def test_cpu_kv_cache_is_planned_in_bytes(setting, expected):
    plan = plan_memory(backend="cpu", target=TARGET, draft=DRAFT, max_model_len=4096, max_num_seqs=4,
                       available_bytes=24 * GIB, kv_cache_gib=setting, request_tokens=1792)
    assert plan.kv_bytes == -(-expected // (1 << 20)) * (1 << 20)
    assert plan.required_bytes == TARGET.weight_bytes + DRAFT.weight_bytes + plan.kv_bytes + int(2 * GIB)


def test_cpu_pair_that_cannot_fit_is_refused_with_numbers():
    with pytest.raises(DoesNotFit, match=r"weights 4\.50 GiB \+ KV cache .* only 4\.00 GiB"):
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


def test_resident_memory_adds_the_engines_processes_and_their_children_once():
    # a stand-in engine process with a child of its own
    engine = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                               "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
                               "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while not psutil.Process(engine.pid).children() and time.monotonic() < deadline:
            time.sleep(0.05)
        alone = resident_memory([])
        both = resident_memory([engine.pid, engine.pid, os.getpid(), 2 ** 22 + 12345])  # twice, self, gone
        child = psutil.Process(engine.pid).children()[0]
        assert alone["engine_rss_bytes"] == 0 and alone["rss_bytes"] == alone["server_rss_bytes"] > 0
        assert both["engine_rss_bytes"] >= psutil.Process(engine.pid).memory_info().rss + child.memory_info().rss // 2
        assert both["rss_bytes"] == both["server_rss_bytes"] + both["engine_rss_bytes"]
        assert both["rss_gib"] == round(both["rss_bytes"] / GIB, 2)
    finally:
        for p in psutil.Process(engine.pid).children(recursive=True):
            p.kill()
        engine.kill()
        engine.wait()


QWEN_1_5B = dict(path="q", vocab_size=151936, tokenizer_vocab=None, weight_bytes=3_087_467_520, num_layers=28,
                 num_kv_heads=2, head_dim=128)


@pytest.mark.parametrize("dtype, weight_bytes, kv_bytes_per_token", [
    ("bfloat16", 3_087_467_520, 28_672),  # as the folder holds it
    ("auto", 3_087_467_520, 28_672),
    ("float16", 3_087_467_520, 28_672),
    ("float32", 6_174_935_040, 57_344),  # every weight and KV element takes 4 bytes instead of 2
])
def test_a_model_loaded_in_float32_takes_twice_the_memory(dtype, weight_bytes, kv_bytes_per_token):
    from completer.engine.models import ModelInfo, loaded_as

    info = loaded_as(ModelInfo(**QWEN_1_5B), dtype)
    assert (info.weight_bytes, info.kv_bytes_per_token) == (weight_bytes, kv_bytes_per_token)


@pytest.mark.parametrize("stored, quantized, weight_bytes, kv_bytes_per_token", [
    (4, False, 6_174_935_040, 57_344),  # a float32 folder in float32: as stored
    (2, True, 3_087_467_520, 57_344),  # int8 weights keep their size; the KV cache is float32
])
def test_float32_doubles_only_what_is_stored_in_two_bytes(stored, quantized, weight_bytes, kv_bytes_per_token):
    from completer.engine.models import ModelInfo, loaded_as

    info = ModelInfo(**{**QWEN_1_5B, "weight_bytes": weight_bytes if stored == 4 else 3_087_467_520},
                     dtype_bytes=stored, quantized=quantized)
    loaded = loaded_as(info, "float32")
    assert (loaded.weight_bytes, loaded.kv_bytes_per_token) == (weight_bytes, kv_bytes_per_token)


@pytest.mark.parametrize("config, dtype_bytes, quantized", [
    ({"torch_dtype": "float32"}, 4, False),
    ({"dtype": "bfloat16"}, 2, False),  # newer transformers write "dtype"
    ({}, 2, False),  # unsaid: bf16, as completer's own folders
    ({"dtype": "bfloat16", "quantization_config": {"format": "int-quantized"}}, 2, True),
])
def test_read_info_reads_how_the_weights_are_stored(tmp_path, config, dtype_bytes, quantized):
    import json

    from completer.engine.models import parameter_bytes, read_info

    base = {"hidden_size": 64, "num_attention_heads": 2, "num_hidden_layers": 2, "intermediate_size": 128,
            "vocab_size": 100}
    (tmp_path / "config.json").write_text(json.dumps({**base, **config}))
    info = read_info(str(tmp_path))
    assert (info.dtype_bytes, info.quantized) == (dtype_bytes, quantized)
    assert info.weight_bytes == parameter_bytes(base, dtype_bytes)  # no weight files: sized from the config
