import pytest

from completer.bench.typing import Request, keystroke_times, pick_body, position_of, summarize

SOURCE = "\n".join([
    "import os",
    "",
    "def first():",
    '    """Docs stay."""',
    "    value = os.sep",
    "    return value",
    "",
    "def last():",
    "    return 1",
    "",
])


def test_pick_body_keeps_the_signature_and_docstring():
    start, end = pick_body(SOURCE, min_chars=10, max_chars=100, min_line=1, min_after=2)
    assert SOURCE[start:end] == "    value = os.sep\n    return value\n"


@pytest.mark.parametrize("kwargs", [
    {"min_chars": 100, "max_chars": 200, "min_line": 1, "min_after": 2},  # too short
    {"min_chars": 10, "max_chars": 100, "min_line": 5, "min_after": 2},  # too early
    {"min_chars": 10, "max_chars": 100, "min_line": 1, "min_after": 20},  # too close to the end
])
def test_pick_body_refuses(kwargs):
    assert pick_body(SOURCE, **kwargs) is None


@pytest.mark.parametrize("text, offset, expected", [
    ("abc", 0, (0, 0)),
    ("abc", 2, (0, 2)),
    ("ab\ncd", 3, (1, 0)),
    ("ab\ncd", 5, (1, 2)),
])
def test_position_of(text, offset, expected):
    assert position_of(text, offset) == expected


def request(keystroke, outcome="answered", source="model", text="x", sent=0.0, answered=0.05, nxt=0.1,
            prompt=100, cached=0, version=None):
    r = Request(0, keystroke, keystroke + 2, sent, nxt, answered, outcome, source, text,
                keystroke + 2 if version is None else version, prompt, cached, 0.01, "single_line")
    return r


def test_in_time_means_before_the_next_keystroke():
    assert request(0).in_time
    assert not request(0, answered=0.2).in_time
    assert not request(0, text="").in_time
    assert not request(0, outcome="cancelled").in_time
    assert request(0, nxt=None, answered=5.0).in_time  # the last keystroke has no deadline


def test_summarize_counts_cache_on_consecutive_requests_only():
    requests = [request(0, cached=0), request(1, cached=90), request(2, cached=80),
                request(3, source="type_ahead", prompt=0), request(4, outcome="cancelled", text=""),
                request(5, version=99)]
    s = summarize(requests, [{"latency_s": 1.0, "prompt_tokens": 200}])
    assert (s["sent"], s["answered"], s["cancelled"], s["from_model"], s["from_type_ahead"]) == (6, 5, 1, 4, 1)
    assert s["cached_share_consecutive"] == pytest.approx(170 / 300)
    assert s["stale"] == 1
    assert s["cold_200_token_s"]["p50"] == 1.0


@pytest.mark.parametrize("body, pause, expected", [
    ("ab", 5.0, [0.0, 0.1]),
    ("a\nb", 5.0, [0.0, 0.1, 5.2]),  # the pause comes before the new line's first character
    ("a\n  b", 1.0, [0.0, 0.1, 0.2, 0.3, 1.4]),  # ...after its indentation
    ("a\n\nb", 1.0, [0.0, 0.1, 0.2, 1.3]),  # a blank line does not pause twice
    ("a\nb", 0.0, [0.0, 0.1, 0.2]),
])
def test_keystroke_times_pause_at_line_starts(body, pause, expected):
    assert keystroke_times(body, 10.0, pause) == pytest.approx(expected)


def test_a_late_first_answer_counts_as_consecutive():
    # every earlier keystroke's request was cancelled, yet it had read the same context
    requests = [request(n, outcome="cancelled", text="") for n in range(9)] + [request(9, cached=90)]
    assert summarize(requests, [])["cached_share_consecutive"] == pytest.approx(0.9)
