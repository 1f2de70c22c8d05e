"""llama-server as a benchmark row: its pure parts (the request, the command line, the cores)."""

from pathlib import Path

import pytest

from completer.bench import llama_server as ls


@pytest.mark.parametrize("bind, cores", [
    ("0", [0]),
    ("0-1", [0, 1]),
    ("0,2-3", [0, 2, 3]),
    (" 1 , 3", [1, 3]),
])
def test_cores_of_a_binding(bind, cores):
    assert ls.cores_of(bind) == cores


@pytest.mark.parametrize("bind", ["auto", "0-1|2-3", "", "a-b", "1-"])
def test_cores_of_rejects_what_is_not_a_core_list(bind):
    with pytest.raises(ValueError):
        ls.cores_of(bind)


def test_the_request_writes_exactly_n_greedy_tokens_from_a_cold_prompt():
    body = ls.completion_request([1, 2, 3], 48)
    assert body["prompt"] == [1, 2, 3] and body["n_predict"] == 48
    assert body["ignore_eos"] is True and body["cache_prompt"] is False
    assert body["temperature"] == 0.0 and body["top_k"] == 1


@pytest.mark.parametrize("draft, expected", [
    (None, []),
    (Path("d.gguf"), ["-md", "d.gguf", "--spec-draft-n-max", "5"]),
])
def test_server_args_one_slot_on_the_given_threads_and_the_draft_if_any(draft, expected):
    args = ls.server_args(Path("t.gguf"), 8080, 2, 4096, draft)
    assert args[args.index("-m") + 1] == "t.gguf" and args[args.index("-t") + 1] == "2"
    assert args[args.index("-np") + 1] == "1" and args[args.index("--host") + 1] == "127.0.0.1"
    for a, b in zip(expected[::2], expected[1::2]):
        assert args[args.index(a) + 1] == b
    assert ("-md" in args) == (draft is not None)


def test_the_latency_summary_compares_the_policy_with_the_target_alone_and_llama_server():
    from completer.bench.latency import POLICY, summary_figures

    rows = [{"config": POLICY, "class": "long", "speedup": 1.5, "mean_s": 20.0},
            {"config": "llama-server (Q4_K_M)", "class": "long", "speedup": 1.2, "mean_s": 30.0},
            {"config": POLICY, "class": "short", "speedup": 1.0, "mean_s": 4.0}]
    assert summary_figures(rows) == {"long": 1.5, "llama_server_long": 1.2, "policy_vs_llama_server_long": 1.5,
                                     "short": 1.0}
