"""The Completer over a scripted engine: ids, plans, cancellation and the held-back text."""

import asyncio

import pytest

from completer.config import Settings
from completer.context.tokens import CharEstimateCounter
from completer.engine.interface import Engine
from completer.pipeline import Completer
from completer.policy import speculation as sp
from completer.types import CompletionKind as K
from tests.unit.fake_engine import SPECULATING, TARGET_ALONE, FakeEngine, until

BLOCK = ("def f(x):\n    ", "\n")  # a blank line in a body: a block
LINE_END = ("total = ", "")  # the end of a line that may grow: one line
IN_CALL = ("print(", ")")  # text follows on the line: one line
IN_WORD = ("    pri", "nt(x)\n")  # inside a word: nothing to complete


def make(answer="x + 1\n", caps=SPECULATING, **settings) -> tuple[Completer, FakeEngine]:
    engine = FakeEngine(answer, capabilities=caps)
    return Completer(engine, Settings(**settings)), engine


async def complete(completer: Completer, at: tuple[str, str], **kw):
    before, after = at
    return await completer.complete(before + after, len(before), "python", **kw)


def test_fake_engine_is_an_engine_and_counts_without_a_model():
    completer, engine = make()
    assert isinstance(engine, Engine)
    assert isinstance(completer.counter, CharEstimateCounter)


@pytest.mark.parametrize("given", ["cmpl-given", None])
async def test_the_request_id_is_the_one_the_engine_saw(given):
    completer, engine = make()
    result = await complete(completer, BLOCK, request_id=given)
    assert [r.request_id for r in engine.requests] == [result.request_id]
    assert result.request_id == (given or result.request_id) and result.request_id.startswith("cmpl-")


async def test_an_empty_position_gets_an_id_and_never_reaches_the_engine():
    completer, engine = make()
    result = await complete(completer, IN_WORD, request_id="cmpl-empty")
    assert (result.kind, result.text, result.request_id, result.plan) == (K.EMPTY, "", "cmpl-empty", None)
    assert engine.requests == []


@pytest.mark.parametrize("at,caps,kind,reason,speculates", [
    (LINE_END, SPECULATING, K.SINGLE_LINE, sp.SHORT, False),
    (IN_CALL, SPECULATING, K.SINGLE_LINE, sp.SHORT, False),
    (BLOCK, SPECULATING, K.MULTI_LINE, sp.LONG, True),
    (BLOCK, TARGET_ALONE, K.MULTI_LINE, sp.NO_DRAFT, False),
])
async def test_plans_by_kind(at, caps, kind, reason, speculates):
    completer, engine = make(caps=caps)
    result = await complete(completer, at)
    plan = engine.requests[0].plan
    assert (result.kind, plan.reason, plan.speculate, plan.num_speculative_tokens > 0) == \
        (kind, reason, speculates, speculates)
    assert result.plan == plan


@pytest.mark.parametrize("at,k", [(BLOCK, 0), (LINE_END, 3)])
async def test_k_fixes_the_plan(at, k):
    completer, engine = make()
    await complete(completer, at, k=k)
    plan = engine.requests[0].plan
    assert (plan.reason, plan.speculate, plan.num_speculative_tokens) == (sp.FIXED_K, k > 0, k)


async def test_the_cache_salt_reaches_the_engine():
    completer, engine = make()
    await complete(completer, BLOCK, cache_salt="user-a")
    assert engine.requests[0].cache_salt == "user-a"


async def cancelled(completer: Completer, engine: FakeEngine, *, after_first_token: bool) -> None:
    """Cancel a block request once its first token streamed, or while it waits for its prefill."""
    engine.gate, engine.gate_after_tokens = asyncio.Event(), int(after_first_token)  # never released
    task = asyncio.ensure_future(complete(completer, BLOCK))
    await until(lambda: engine.requests and engine.requests[0].tokens >= engine.gate_after_tokens)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("after_first_token", [True, False])
async def test_a_cancelled_request_is_aborted_and_its_prompt_remembered_once_a_token_came(after_first_token):
    completer, engine = make()
    await cancelled(completer, engine, after_first_token=after_first_token)
    seen = engine.requests[0]
    assert seen.outcome == "aborted"
    cache = engine.prefix_cache(seen.plan.speculate)
    remembered = completer.policy.recent_prompts.cached_chars(cache, seen.prompt)
    assert remembered == (len(seen.prompt) if after_first_token else 0)


@pytest.mark.parametrize("at,answer,shown", [
    (("x = foo(", ""), "(a, b)\n", "a, b)"),  # the held-back bracket written again: dropped
    (("x = foo(", ""), "[1]\n", ""),  # another bracket: the model continues other code, no answer
    (("total = ", ""), " 1\n", "1"),  # the held-back space written again
    (("total = ", ""), "1\n", "1"),  # ... or not: no loss
])
async def test_held_back_text(at, answer, shown):
    completer, engine = make(answer)
    assert (await complete(completer, at)).text == shown


async def test_an_answer_that_leaves_the_held_back_bracket_stops_the_stream():
    completer, engine = make("[" + "1, " * 40 + "]\n")
    await complete(completer, ("x = foo(", ""))
    assert engine.requests[0].outcome == "aborted" and engine.requests[0].tokens < 10


@pytest.mark.parametrize("stop_early,outcome", [(True, "aborted"), (False, "finished")])
async def test_a_closed_block_stops_the_engine_unless_raw(stop_early, outcome):
    completer, engine = make(" return x\n\ndef g():\n    pass\n" * 4)  # the held-back space first
    result = await complete(completer, BLOCK, stop_early=stop_early)
    assert engine.requests[0].outcome == outcome
    assert result.text.startswith("return x")
