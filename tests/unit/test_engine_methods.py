"""Which speculation method an engine loads, which vLLM classes carry the plans, and the engine's arguments."""

import json

import pytest

from completer.config import Settings
from completer.engine import vllm_adapter
from completer.engine.interface import EngineError
from completer.engine.methods import is_eagle3_head, resolve_method
from completer.engine.models import parameter_bytes
from completer.engine.vllm_engine import eager, with_extra_args

CPU_METHODS = vllm_adapter.METHODS["cpu"]
CUDA_METHODS = vllm_adapter.METHODS["cuda"]


@pytest.fixture
def head(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLMEagle3"]}))
    return str(tmp_path)


@pytest.fixture
def plain_model(tmp_path):
    folder = tmp_path / "draft"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"]}))
    return str(folder)


@pytest.mark.parametrize("configured, backend, head_given, expected", [
    ("auto", "cpu", False, "draft_model"),
    ("auto", "cuda", False, None),  # the 0.5B draft is slower than the target alone on a GPU
    ("auto", "cuda", True, "eagle3"),
    ("auto", "cpu", True, "eagle3"),
    ("none", "cuda", True, None),
    ("ngram_gpu", "cuda", False, "ngram_gpu"),
    ("draft_model", "cuda", False, "draft_model"),
    ("eagle3", "cuda", True, "eagle3"),
])
def test_the_method_an_engine_loads(configured, backend, head_given, expected, head, plain_model):
    supported = vllm_adapter.METHODS[backend]
    assert resolve_method(configured, backend, supported, head if head_given else plain_model) == expected


@pytest.mark.parametrize("configured, backend, message", [
    ("ngram_gpu", "cpu", "does not run on cpu"),
    ("eagle3", "cuda", "needs an EAGLE-3 head"),
])
def test_a_method_that_cannot_run_is_refused_with_why(configured, backend, message, plain_model):
    with pytest.raises(EngineError, match=message):
        resolve_method(configured, backend, vllm_adapter.METHODS[backend], plain_model)


def test_an_eagle3_head_is_known_by_its_config(head, plain_model, tmp_path):
    assert is_eagle3_head(head)
    assert not is_eagle3_head(plain_model)
    assert not is_eagle3_head(str(tmp_path / "missing"))
    assert not is_eagle3_head(None)


@pytest.mark.parametrize("backend, method, scheduler, worker, asynchronous", [
    ("cpu", "draft_model", "PolicyScheduler", "PolicyCPUWorker", None),
    ("cuda", "eagle3", "PolicyAsyncScheduler", "PolicyGPUWorker", True),
    ("cuda", "draft_model", "PolicyScheduler", "PolicyGPUWorker", False),
    ("cuda", "ngram_gpu", "PolicyScheduler", "PolicyGPUWorker", False),
])
def test_per_request_classes_follow_the_runner(backend, method, scheduler, worker, asynchronous):
    args = vllm_adapter.per_request_args(backend, method, True, {4: 0}, False)
    assert args["scheduler_cls"] == f"completer.engine.vllm_extension.{scheduler}"
    assert args["worker_cls"] == f"completer.engine.vllm_extension.{worker}"
    assert args.get("async_scheduling") is asynchronous
    assert args["additional_config"]["completer_batch_k_limits"] == {"4": 0}


@pytest.mark.parametrize("enforce_eager, backend, expected", [
    (None, "cpu", True), (None, "cuda", False), (True, "cuda", True), (False, "cpu", False),
])
def test_eager_by_backend_unless_set(enforce_eager, backend, expected):
    assert eager(Settings(enforce_eager=enforce_eager), backend) is expected


def test_extra_engine_args_merge_into_the_speculative_config():
    args = {"model": "t", "speculative_config": {"method": "eagle3", "num_speculative_tokens": 5}}
    extra = {"load_format": "dummy", "speculative_config": {"rejection_sample_method": "synthetic"}}
    assert with_extra_args(args, extra) == {
        "model": "t", "load_format": "dummy",
        "speculative_config": {"method": "eagle3", "num_speculative_tokens": 5, "rejection_sample_method": "synthetic"}}
    assert args["speculative_config"] == {"method": "eagle3", "num_speculative_tokens": 5}  # not changed


@pytest.mark.parametrize("config, billions", [
    # Qwen2.5-Coder-1.5B and 7B: 1.54 and 7.62 billion parameters (their model cards)
    ({"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
      "num_key_value_heads": 2, "tie_word_embeddings": True, "vocab_size": 151936}, 1.54),
    ({"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
      "num_key_value_heads": 4, "tie_word_embeddings": False, "vocab_size": 152064}, 7.62),
])
def test_weights_size_from_a_config_without_weight_files(config, billions):
    assert parameter_bytes(config) / 2 / 1e9 == pytest.approx(billions, rel=0.02)


@pytest.mark.parametrize("configured, backend, expected", [
    (None, "cpu", {4: 0}), (None, "cuda", {}), ({2: 1}, "cuda", {2: 1}), ({}, "cpu", {}),
])
def test_batch_caps_as_set_else_the_backends_measured_default(configured, backend, expected):
    from completer.engine.methods import batch_k_limits

    assert batch_k_limits(configured, backend) == expected


def test_piecewise_fallbacks_fill_the_token_counts_only_a_full_uniform_graph_covers():
    from dataclasses import dataclass

    from completer.engine.vllm_extension import with_piecewise_fallbacks

    @dataclass(frozen=True)
    class Desc:  # the fields of vLLM's BatchExecutionDescriptor that the repair reads
        mode: str
        num_tokens: int
        uniform_token_count: int | None = None
        num_active_loras: int = 0

    full6, full12 = Desc("FULL", 6, 6), Desc("FULL", 12, 6)
    pw4, pw8, pw16 = Desc("PIECEWISE", 4), Desc("PIECEWISE", 8), Desc("PIECEWISE", 16)
    # as vLLM 0.26 files them for capture sizes 1, 2, 4, 8, 16 and K + 1 = 6
    candidates = {(4, 0): [pw4], (5, 0): [full6], (6, 0): [full6], (7, 0): [pw8], (8, 0): [pw8],
                  (11, 0): [full12], (16, 0): [pw16]}
    repaired = with_piecewise_fallbacks(candidates, [pw4, pw8, pw16])
    assert repaired[(6, 0)] == [full6, pw8]  # uniform steps keep their full graph first
    assert repaired[(5, 0)] == [full6, pw8]
    assert repaired[(11, 0)] == [full12, pw16]
    assert repaired[(4, 0)] == [pw4] and repaired[(8, 0)] == [pw8]  # already had one
    assert with_piecewise_fallbacks({(32, 0): [Desc("FULL", 36, 6)]}, [pw16]) == {(32, 0): [Desc("FULL", 36, 6)]}
