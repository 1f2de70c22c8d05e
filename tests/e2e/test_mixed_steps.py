"""A bypassed request beside a speculating one, in the same engine steps: it keeps the drafts those
steps make anyway where the drafter has read all of its tokens (policy/steps.keep_k), none where
its prompt came from the prefix cache, and its greedy output stays its output alone."""

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

# float32: the steps a token is computed in (alone, or beside another request with drafts to
# verify) do not flip a near-tie, as bf16's rounding can
SETTINGS = Settings(dtype="float32", cpu_threads_bind=ALL_CORES, max_num_seqs=2)
SPECULATING = GenerationPlan(max_tokens=64, speculate=True, num_speculative_tokens=3)
BYPASSED = GenerationPlan(max_tokens=24, speculate=False)


async def test_a_bypassed_request_beside_a_speculating_one_keeps_the_steps_drafts_and_its_output():
    long_prompt, short_prompt = (QWEN.render(prefix, suffix) for prefix, suffix in tasks(2))
    engine = await asyncio.to_thread(VllmEngine.build, SETTINGS)
    try:
        beside, outlived = await _beside(engine, long_prompt, short_prompt, BYPASSED)
        alone = await engine.complete(short_prompt, BYPASSED)  # no other request: no drafts at all
        # now in the bypass's prefix cache: blocks the drafter may never have read
        cached, cached_outlived = await _beside(engine, long_prompt, short_prompt,
                                                GenerationPlan(max_tokens=12, speculate=False))
    finally:
        engine.shutdown()
    assert outlived and cached_outlived, "the speculating request ended first: the steps were not mixed"
    assert beside.num_draft_tokens > 0, "the bypassed request kept none of the drafts made beside it"
    assert beside.num_accepted_tokens > 0, "its drafts were never right: the drafter had not read its tokens"
    assert alone.num_draft_tokens == 0
    assert beside.token_ids == alone.token_ids
    assert cached.num_draft_tokens == 0, "drafts kept over a prompt from the prefix cache"
    assert cached.token_ids == alone.token_ids[:12]


async def _beside(engine, long_prompt: str, short_prompt: str, plan: GenerationPlan):
    """The bypassed request, started once the speculating one decodes; (its result, whether the
    speculating one was still running when it ended)."""
    stream = engine.generate(long_prompt, SPECULATING)
    first = await anext(stream)  # decoding: its steps draft
    rest = asyncio.ensure_future(_drain(stream, first))
    result = await engine.complete(short_prompt, plan)
    outlived = not rest.done()
    await rest
    return result, outlived


async def _drain(stream, result):
    async for result in stream:
        pass
    return result
