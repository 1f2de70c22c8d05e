"""A scripted engine behind the typed Engine interface: the pipeline, the request service and the
engine host run against it without a model or vLLM.

Each request streams ``answer`` (one token per character) as growing Generations, honours the
plan's stop strings and max_tokens, proposes ``num_speculative_tokens`` drafts a step when the plan
speculates, and is recorded in ``requests`` (id, prompt, plan, salt, and how it ended).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from completer.context.tokens import CharEstimateCounter
from completer.engine.interface import Capabilities, EngineError, new_request_id
from completer.types import Generation, GenerationPlan

# a folder that can never hold tokenizer.json: the Completer counts tokens by its char estimate
NO_MODEL_DIR = os.path.join(os.devnull, "fake-target")

SPECULATING = Capabilities("cpu", "draft_model", 5, per_request_speculation=True, speculation_with_sampling=False)
TARGET_ALONE = Capabilities("cpu", None, 0, per_request_speculation=False, speculation_with_sampling=False)

_count = CharEstimateCounter().count


@dataclass
class SeenRequest:
    """One request as the engine received it, and how it ended."""

    request_id: str
    prompt: str
    plan: GenerationPlan
    cache_salt: str | None
    outcome: str = "running"  # running → finished | aborted | failed
    tokens: int = 0  # tokens streamed so far


def common_prefix(a: str, b: str) -> int:
    """Characters ``a`` and ``b`` share from their start."""
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


class FakeEngine:
    """Satisfies ``isinstance(x, Engine)``. ``answer``: the text every request writes (or a function
    of the prompt); ``gate``: until it is set, requests wait once they streamed ``gate_after_tokens`` tokens;
    ``fail_requests``: that many next requests raise EngineError; ``dead``: the process has died."""

    def __init__(self, answer: str | Callable[[str], str] = "x + 1\n", *, capabilities: Capabilities = SPECULATING,
                 block_size: int = 4, acceptance: float = 1.0) -> None:
        self.capabilities = capabilities
        self.target_dir = NO_MODEL_DIR
        self.draft_dir = None
        self.answer = answer
        self.acceptance = acceptance  # the share of each step's drafts the target accepts
        self.gate: asyncio.Event | None = None
        self.gate_after_tokens = 0
        self.fail_requests = 0
        self.requests: list[SeenRequest] = []
        self.shut_down = False
        self._block_size = block_size
        self._dead = False
        self._cached: dict[str, str] = {}  # prefix-cache identity → the last prompt it holds

    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def dead(self) -> bool:
        return self._dead or self.shut_down

    @dead.setter
    def dead(self, value: bool) -> None:
        self._dead = value

    def by_id(self, request_id: str) -> SeenRequest:
        return next(r for r in self.requests if r.request_id == request_id)

    async def generate(self, prompt: str, plan: GenerationPlan, *, request_id: str | None = None,
                       cache_salt: str | None = None) -> AsyncIterator[Generation]:
        seen = SeenRequest(request_id or new_request_id(), prompt, plan, cache_salt)
        self.requests.append(seen)
        if self._dead or self.fail_requests:
            self.fail_requests = max(0, self.fail_requests - 1)
            seen.outcome = "failed"
            raise EngineError("the engine process died" if self._dead else "the request failed in the engine")
        start = time.monotonic()
        try:
            text, finish = self._script(prompt, plan)
            cache = self.prefix_cache(plan.speculate, cache_salt)
            held = self._cached.get(cache, "")
            cached = _count(prompt[:common_prefix(held, prompt)]) // self.block_size * self.block_size
            self._cached[cache] = prompt
            gen = Generation(text="", prompt_tokens=_count(prompt), cached_tokens=cached)
            while len(gen.text) < len(text):
                if self.gate is not None and len(gen.token_ids) >= self.gate_after_tokens:
                    await self.gate.wait()
                await asyncio.sleep(0)  # one engine step: a cancel lands here, as in vLLM
                step = 1
                if plan.speculate and plan.num_speculative_tokens:
                    accepted = min(round(plan.num_speculative_tokens * self.acceptance), len(text) - len(gen.text) - 1)
                    gen.num_draft_tokens += plan.num_speculative_tokens
                    gen.num_accepted_tokens += accepted
                    gen.num_verify_steps += 1
                    step += accepted
                gen.text = text[:len(gen.text) + step]
                gen.token_ids = [ord(c) for c in gen.text]
                gen.latency_s = time.monotonic() - start
                seen.tokens = len(gen.token_ids)
                if gen.first_token_s is None:
                    gen.first_token_s = gen.latency_s
                if len(gen.text) == len(text):
                    gen.finish_reason = finish
                yield Generation(**vars(gen))  # each yield a snapshot, like vLLM's outputs
            seen.outcome = "finished"
        except (asyncio.CancelledError, GeneratorExit):
            seen.outcome = "aborted"  # the consumer cancelled or closed the stream
            raise

    async def complete(self, prompt: str, plan: GenerationPlan, *, request_id: str | None = None,
                       cache_salt: str | None = None) -> Generation:
        last = Generation(text="")
        async for last in self.generate(prompt, plan, request_id=request_id, cache_salt=cache_salt):
            pass
        return last

    def prefix_cache(self, speculate: bool, cache_salt: str | None = None) -> str:
        # bypassed requests keep a cache of their own, as in the vLLM engine
        return f"{cache_salt or ''}{'' if speculate or not self.capabilities.per_request_speculation else ':bypass'}"

    def stats(self) -> dict:
        outcomes = [r.outcome for r in self.requests]
        return {"requests_started": len(outcomes), **{f"requests_{o}": outcomes.count(o)
                                                     for o in ("finished", "aborted", "failed")}}

    async def unfinished_requests(self) -> int:
        return sum(r.outcome == "running" for r in self.requests)

    def engine_pids(self) -> list[int]:
        return []

    def describe(self) -> str:
        return f"fake engine ({self.capabilities.speculation_method or 'target alone'})"

    def shutdown(self) -> None:
        self.shut_down = True

    def _script(self, prompt: str, plan: GenerationPlan) -> tuple[str, str]:
        """The answer cut as the engine would: at the first stop string (left out), or at max_tokens."""
        text = self.answer(prompt) if callable(self.answer) else self.answer
        cuts = [(text.index(s), "stop") for s in plan.stop if s and s in text]
        end, finish = min(cuts, default=(len(text), "stop"))
        if end > plan.max_tokens:
            end, finish = plan.max_tokens, "length"
        return text[:end], finish


async def until(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    """Wait (yielding to the loop) until ``condition()`` holds; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)
