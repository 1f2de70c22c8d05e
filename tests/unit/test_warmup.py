"""What a warm prompt warms and when: the pure parts of completer.server.warmup, and the warmer in a
real CompleterServer over a scripted engine."""

import asyncio

import pytest
from lsprotocol import types

from completer.server.warmup import WarmSchedule, cursor_after, likely_cursor, piece_ends, warm_plan
from completer.types import GenerationPlan
from tests.unit.fake_engine import FakeEngine, until
from tests.unit.test_request_service import LINE_END, URI, serving


def ranged(line, character, text, end=None):
    end = end or (line, character)
    return types.TextDocumentContentChangePartial(
        range=types.Range(start=types.Position(line=line, character=character),
                          end=types.Position(line=end[0], character=end[1])), text=text)


@pytest.mark.parametrize("after, changes, expected", [
    ("ab\ncXd\n", [ranged(1, 1, "X")], 5),  # one typed character: just after it
    ("ab\ncd\n\n    \n", [ranged(2, 0, "\n    ")], 11),  # a new indented line
    ("ab\nd\n", [ranged(1, 0, "", end=(1, 1))], 3),  # a deletion: where it was
    ("xy\nXY", [ranged(0, 0, "xy"), ranged(1, 0, "XY")], 5),  # several: the last one's end
    ("whole", [types.TextDocumentContentChangeWholeDocument(text="whole")], None),
    ("", [], None),
])
def test_the_cursor_after_a_change_is_the_end_of_the_last_edit(after, changes, expected):
    assert cursor_after(after, changes) == expected


@pytest.mark.parametrize("length, last_edit, expected", [
    (100, None, 100),  # never edited: the end of the document
    (100, 40, 40),
    (100, 140, 100),  # the text shrank since (a whole-text change)
    (0, None, 0),
])
def test_the_likely_cursor(length, last_edit, expected):
    assert likely_cursor(length, last_edit) == expected


@pytest.mark.parametrize("speculate, min_tokens, max_tokens, expected_min", [
    (False, 0, 1, 0), (False, 1, 1, 1), (True, 1, 2, 1), (True, 0, 2, 0),
])
def test_the_warm_plan_is_the_real_plan_cut_to_the_prefill(speculate, min_tokens, max_tokens, expected_min):
    plan = GenerationPlan(max_tokens=128, stop=("\n",), min_tokens=min_tokens, speculate=speculate,
                          num_speculative_tokens=3 if speculate else 0, reason="long")
    warm = warm_plan(plan)
    assert (warm.max_tokens, warm.min_tokens) == (max_tokens, expected_min)
    assert (warm.speculate, warm.num_speculative_tokens, warm.stop) == (plan.speculate, plan.num_speculative_tokens,
                                                                        plan.stop)


DOCS = {"a": (3, 100), "b": (1, 50)}


@pytest.mark.parametrize("events, now, expected", [
    ([("opened", "a", 0.0)], 0.5, None),  # not yet: the pause has not passed
    ([("opened", "a", 0.0)], 1.0, ("a", 3, 100)),  # opened, never edited: its end
    ([("opened", "a", 0.0), ("edited", "a", 40, 0.8)], 1.5, None),  # an edit restarts the pause
    ([("opened", "a", 0.0), ("edited", "a", 40, 0.8)], 1.8, ("a", 3, 40)),  # ... at the edit
    ([("edited", "a", 40, 0.0), ("edited", "a", None, 0.2)], 2.0, ("a", 3, 40)),  # a whole-text change keeps it
    ([("opened", "a", 0.0), ("opened", "b", 0.5)], 2.0, ("b", 1, 50)),  # the document touched last
    ([("edited", "a", 40, 0.0), ("read", "a", 3, 40)], 2.0, None),  # a request read that prompt already
    ([("edited", "a", 40, 0.0), ("read", "a", 2, 40), ("edited", "a", 40, 0.1)], 2.0, ("a", 3, 40)),
    ([("edited", "a", 40, 0.0), ("requested", "a", 60)], 2.0, ("a", 3, 60)),  # a request moved the cursor
    ([("opened", "a", 0.0), ("closed", "a")], 2.0, None),
    ([("edited", "a", 40, 0.0), ("closed", "a"), ("opened", "a", 1.0)], 2.0, ("a", 3, 40)),  # reopened: its last edit
    ([("opened", "gone", 0.0)], 2.0, None),  # closed meanwhile: the store no longer has it
    ([("opened", "a", 0.0), ("postpone", 0.9)], 1.5, None),  # the engine was busy: another pause
    ([("opened", "a", 0.0), ("postpone", 0.9)], 1.9, ("a", 3, 100)),
])
def test_what_is_warmed_and_when(events, now, expected):
    schedule = WarmSchedule(pause_s=1.0)
    for name, *args in events:
        {"opened": schedule.opened, "edited": schedule.edited, "requested": schedule.requested,
         "read": schedule.was_read, "closed": schedule.closed, "postpone": schedule.postpone}[name](*args)
    assert schedule.due(now, DOCS.get) == expected


def test_a_due_target_already_read_is_dropped():
    schedule = WarmSchedule(pause_s=1.0)
    schedule.opened("a", 0.0)
    schedule.was_read("a", 3, 100)
    assert schedule.pending is None and schedule.due(5.0, DOCS.get) is None


async def test_the_prompt_at_the_last_edit_is_warmed_with_the_real_requests_plan():
    engine = FakeEngine("x + 1")
    server = serving(engine, warm_prompt_pause_ms=100)
    server.warmer.edited(URI, len("import os\ntotal = "))  # the cursor at LINE_END
    await until(lambda: server.warmer.finished == 1)
    warm = engine.requests[-1]
    assert warm.plan.max_tokens == (2 if warm.plan.speculate else 1)
    await server.service.complete(URI, LINE_END)
    real = engine.requests[-1]
    assert real.plan.max_tokens > 2
    assert (real.prompt, real.cache_salt, real.plan.speculate) == (warm.prompt, warm.cache_salt, warm.plan.speculate)
    await asyncio.sleep(0.3)
    assert server.warmer.as_dict()["warm_prompts_started"] == 1  # the real request read it: not again


async def test_an_opened_document_is_warmed_at_its_end():
    engine = FakeEngine("x + 1")
    server = serving(engine, warm_prompt_pause_ms=100)
    server.warmer.opened(URI)
    await until(lambda: server.warmer.finished == 1)
    text = server.documents.get(URI).text
    expected = server.host.completer.context(text, len(text), "python").prompt
    assert engine.requests[-1].prompt == expected


async def test_a_real_request_cancels_the_warm_one_and_goes_first():
    engine = FakeEngine("x + 1")
    server = serving(engine, warm_prompt_pause_ms=100)
    engine.gate = asyncio.Event()  # the engine holds every request until released
    server.warmer.opened(URI)
    await until(lambda: server.warmer.started == 1)
    real = asyncio.ensure_future(server.service.complete(URI, LINE_END))
    await until(lambda: server.warmer.cancelled == 1)
    engine.gate.set()
    assert (await real).text
    assert server.warmer.finished == 0


async def test_no_warm_prompt_while_a_request_runs_or_when_it_is_off():
    engine = FakeEngine("x + 1")
    server = serving(engine, warm_prompt_pause_ms=100, warm_prompt=False)
    server.warmer.opened(URI)
    await asyncio.sleep(0.3)
    assert server.warmer.started == 0
    server.apply_settings({"keystroke_hold_ms": 0, "warm_prompt_pause_ms": 100})
    engine.gate = asyncio.Event()
    real = asyncio.ensure_future(server.service.complete(URI, LINE_END))
    await until(lambda: len(server.service.latest) == 1)
    server.warmer.opened(URI)
    await asyncio.sleep(0.3)
    assert server.warmer.started == 0  # the engine is busy with a real request
    engine.gate.set()
    await real
    await asyncio.sleep(0.3)
    # the real request read the prompt at its cursor; the opened document's end is another prompt
    assert server.warmer.started <= 1


@pytest.mark.parametrize("prompt, tokens, piece, expected", [
    ("a\nb\nc\nd\n", 4, 256, [8]),  # shorter than a piece: one request
    ("aaa\nbbb\nccc\nddd\n", 8, 2, [4, 8, 12, 16]),  # one line per piece
    ("aaa\n\n\nbbb\nccc", 6, 3, [6, 13]),  # a cut after a run of line breaks, never inside it
    ("abcdefgh", 8, 2, [8]),  # no line break: one request
    ("", 0, 256, [0]),
])
def test_warm_pieces_end_after_line_breaks(prompt, tokens, piece, expected):
    assert piece_ends(prompt, tokens, piece) == expected
