"""A bypassed request beside a speculating one, in the same engine steps: it keeps the drafts those
steps make anyway (policy/steps.keep_k), and its greedy output stays the target alone's."""

from __future__ import annotations

import asyncio

import pytest

from completer.config import Settings
from completer.context.prompt import QWEN
from completer.engine.vllm_engine import VllmEngine
from completer.types import GenerationPlan
from tests.e2e.helpers import ALL_CORES
from tests.e2e.test_equivalence import tasks

pytestmark = pytest.mark.engine

# float32: a token never depends on the shape of the step that computed it, so the bypassed
# request's output beside a speculating one (mixed steps) equals its output alone
SETTINGS = Settings(dtype="float32", cpu_threads_bind=ALL_CORES, max_num_seqs=2)
SPECULATING = GenerationPlan(max_tokens=64, speculate=True, num_speculative_tokens=3)
BYPASSED = GenerationPlan(max_tokens=24, speculate=False)


async def test_a_bypassed_request_beside_a_speculating_one_keeps_the_steps_drafts_and_its_output():
    long_prompt, short_prompt = (QWEN.render(prefix, suffix) for prefix, suffix in tasks(2))
    engine = await asyncio.to_thread(VllmEngine.build, SETTINGS)
    try:
        stream = engine.generate(long_prompt, SPECULATING)
        first = await anext(stream)  # the speculating request is decoding: its steps draft
        rest = asyncio.ensure_future(_drain(stream, first))
        beside = await engine.complete(short_prompt, BYPASSED)
        outlived = not rest.done()
        await rest
        alone = await engine.complete(short_prompt, BYPASSED)  # no other request: no drafts at all
    finally:
        engine.shutdown()
    assert outlived, "the speculating request ended before the bypassed one: the steps were not mixed"
    assert beside.num_draft_tokens > 0, "the bypassed request kept none of the drafts made beside it"
    assert alone.num_draft_tokens == 0
    assert beside.token_ids == alone.token_ids


async def _drain(stream, result):
    async for result in stream:
        pass
    return result
