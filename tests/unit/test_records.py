import pytest

from completer.records import RequestLog, RequestRecord
from completer.types import Completion, CompletionKind, Generation, GenerationPlan


def record(request_id, speculate=False, drafted=0, accepted=0, reason="short", text="x", source="model"):
    gen = Generation(text=text, token_ids=[1] * 20, num_draft_tokens=drafted, num_accepted_tokens=accepted,
                     latency_s=1.0, first_token_s=0.2)
    plan = GenerationPlan(max_tokens=48, speculate=speculate, num_speculative_tokens=5 if speculate else 0,
                          reason=reason)
    completion = Completion(text=text, kind=CompletionKind.MULTI_LINE, generation=gen, plan=plan, source=source,
                            request_id=request_id)
    return RequestRecord.of(request_id, completion)


def test_a_record_carries_the_plan_and_the_measurements():
    r = record("cmpl-1", speculate=True, drafted=50, accepted=40, reason="long")
    assert (r.k, r.reason, r.tokens, r.acceptance_rate, r.outcome) == (5, "long", 20, 0.8, "shown")
    assert "cmpl-1" in r.log_line() and "k=5 (long)" in r.log_line()
    assert record("cmpl-2", text="").outcome == "empty"


def test_log_line_covers_the_interval_and_resets():
    log = RequestLog()
    assert log.log_line() is None
    log.add(record("a", True, 50, 40, "long"))
    log.add(record("b"))
    line = log.log_line()
    assert "requests 2 (1 speculated, 1 bypassed)" in line and "acceptance rate 80.0%" in line
    assert log.log_line() is None
    assert log.as_dict()["requests_speculated"] == 1 and log.as_dict()["requests_bypassed"] == 1


@pytest.mark.parametrize("events, by_plan", [
    ([("a", "accepted")], {"long": (1, 1, 0, 1.0), "short": (2, 0, 1, 0.0)}),
    ([("a", "accepted_partially"), ("c", "accepted")], {"long": (1, 1, 0, 1.0), "short": (2, 1, 1, 0.5)}),
    ([("unknown-id", "accepted")], {"long": (1, 0, 0, 0.0), "short": (2, 0, 1, 0.0)}),
])
def test_feedback_by_id_feeds_the_acceptance_of_shown_suggestions_by_plan(events, by_plan):
    log = RequestLog()
    log.add(record("a", True, 10, 5, "long"))
    log.add(record("b"))
    log.add(record("c"))
    log.add(record("d", text=""))  # nothing shown: not counted
    log.feedback("b", "dismissed")
    for request_id, outcome in events:
        log.feedback(request_id, outcome, chars=3)
    got = {reason: (row["shown"], row["accepted"], row["dismissed"], row["accept_rate"])
           for reason, row in log.as_dict()["by_plan"].items()}
    assert got == by_plan
    assert log.as_dict()["accepted_chars"] == 3 * sum(o.startswith("accepted") for _, o in events)


def test_history_is_bounded_and_type_ahead_is_not_a_model_request():
    log = RequestLog(keep=100)
    for i in range(500):
        log.add(record(f"r{i}"))
    log.add(record("ta-0", source="type_ahead"))
    assert len(log.records) == 100 and len(log.as_dict()["recent"]) == 20
    assert log.as_dict()["requests_bypassed"] == 500
    assert log.last()["id"] == "r499"


def test_an_accept_without_text_counts_the_whole_suggestion_and_raw_answers_are_not_shown():
    log = RequestLog()
    log.add(record("a", text="abcd"))
    log.feedback("a", "accepted")  # a client that ran the item's command sends no text
    assert log.as_dict()["accepted_chars"] == 4
    raw = RequestRecord.of("r", Completion(text="x", kind=CompletionKind.SINGLE_LINE, request_id="r"), shown=False)
    log.add(raw)
    assert raw.outcome == "not_shown" and set(log.by_plan()) == {"short"}
    empty = RequestRecord.of("e", Completion(text="", kind=CompletionKind.EMPTY, request_id="e"))
    log.add(empty)
    assert (empty.reason, empty.ran_in_engine) == ("no_plan", False)
    assert log.as_dict()["requests_bypassed"] == 1 and log.last()["id"] == "a"
