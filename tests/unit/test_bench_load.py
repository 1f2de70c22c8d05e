import json

import pytest

from pydantic import ValidationError

from completer.bench import load, load_report
from completer.bench.load import POLICY, STOCK
from completer.config import Settings
from completer.bench.typing_bench.session import Request, Session

BODY = "    value = first_value + second_value\n    total = value * 2\n    return total\n"  # 60-200 chars


def module(functions: int) -> str:
    """A module whose functions (from line 150 on) each have BODY, with 70 lines after the last."""
    lines = ["x = 0"] * 150
    for n in range(functions):
        lines += [f"def f{n}():", *BODY.rstrip("\n").split("\n"), ""]
    return "\n".join(lines + ["y = 0"] * 70) + "\n"


def request(session=0, keystroke=0, outcome="answered", source="model", text="x", sent=0.0, answered=1.0,
            waited=False, speculated=False):
    return Request(session, keystroke, keystroke + 2, sent, sent + 0.1, answered, outcome, source, text,
                   keystroke + 2, 100, 0, 0.5, "single_line", 5 if speculated else 0, waited)


def figures(per_s_model: float, tokens_per_s: float, p50: float, p95: float, n: int = 1) -> dict:
    return {"suggestions_per_s": per_s_model + 1, "model_suggestions_per_s": per_s_model,
            "generated_tokens_per_s": tokens_per_s, "time_to_suggestion_model_s": {"n": 3, "p50": p50, "p95": p95},
            "time_to_suggestion_waited_s": {"n": 3, "p50": p50, "p95": None}, "waited_answered": 2, "waited": 3,
            "speculated": 1, "from_model": 3, "wall_s": 10.0, "editors": n}


def test_sessions_are_distinct_bodies_taken_module_by_module(tmp_path, monkeypatch):
    monkeypatch.setattr(load, "MODULES", ("a.py", "b.py", "missing.py"))
    (tmp_path / "a.py").write_text(module(3))
    (tmp_path / "b.py").write_text(module(1))
    sessions = load.load_sessions(10, 12, tmp_path)
    # a, b, then a's next ones once b has no more
    assert [s.path for s in sessions] == ["a.py", "b.py", "a.py", "a.py"]
    assert len({(s.path, s.offset) for s in sessions}) == 4
    assert all(s.body == BODY[:12] and s.text[:s.offset].endswith(":\n") for s in sessions)
    assert len(load.load_sessions(2, 12, tmp_path)) == 2


def test_each_scenario_types_sessions_of_its_own():
    sessions = [Session(f"m{n}.py", "", 0, "x") for n in range(15)]
    plan = load.scenario_sessions(sessions, (1, 2, 4, 8))
    assert {n: [s.path for s in ss] for n, ss in plan.items()} == {
        1: ["m0.py"], 2: ["m1.py", "m2.py"], 4: [f"m{n}.py" for n in range(3, 7)],
        8: [f"m{n}.py" for n in range(7, 15)]}
    with pytest.raises(ValueError, match="15 sessions needed, 14 found"):
        load.scenario_sessions(sessions[:14], (1, 2, 4, 8))


def test_counters_sum_over_labels_and_delta():
    samples = [("vllm:generation_tokens_total", {"engine": "0"}, 10.0),
               ("vllm:generation_tokens_total", {"engine": "1"}, 5.0),
               ("vllm:prompt_tokens_total", {}, 100.0), ("vllm:num_requests_running", {}, 3.0)]
    before = load.counters(samples)
    assert before["generation_tokens"] == 15.0 and before["prompt_tokens"] == 100.0 and before["draft_tokens"] == 0
    after = {**before, "generation_tokens": 40.0}
    assert load.delta(before, after)["generation_tokens"] == 25.0 and load.delta(before, after)["prompt_tokens"] == 0


@pytest.mark.parametrize("requests, expected", [
    ([], 0.0),
    ([request(sent=1.0, answered=4.0), request(sent=2.0, answered=3.0)], 3.0),
    ([request(sent=1.0, answered=2.0), request(sent=5.0, answered=None, outcome="pending")], 4.0),
])
def test_wall_time_runs_from_the_first_keystroke_to_the_last_answer(requests, expected):
    assert load.wall_s(requests) == expected


def test_scenario_figures_count_suggestions_and_server_tokens_per_second():
    requests = [request(0, 0, sent=0.0, answered=2.0, waited=True, speculated=True),
                request(0, 1, source="type_ahead", sent=2.0, answered=2.0),
                request(1, 0, outcome="cancelled", text="", sent=1.0, answered=1.5),
                request(1, 1, text="", sent=3.0, answered=4.0),  # an empty answer: no suggestion
                request(1, 2, sent=4.0, answered=10.0, waited=True)]
    f = load.scenario_figures(requests, 2, {"generation_tokens": 50.0, "draft_tokens": 20.0, "accepted_tokens": 15.0,
                                            "prompt_tokens": 100.0, "cached_prompt_tokens": 40.0}, engine_requests=3)
    assert f["wall_s"] == 10.0 and f["editors"] == 2 and f["engine_requests"] == 3
    assert (f["suggestions"], f["model_suggestions"]) == (3, 2)
    assert f["suggestions_per_s"] == pytest.approx(0.3) and f["model_suggestions_per_s"] == pytest.approx(0.2)
    assert f["generated_tokens_per_s"] == pytest.approx(5.0) and f["acceptance_rate"] == pytest.approx(0.75)
    assert f["time_to_suggestion_model_s"]["n"] == 2 and f["time_to_suggestion_model_s"]["p95"] == 6.0
    assert f["time_to_suggestion_waited_s"]["n"] == 2
    assert f["speculated"] == 1 and f["cached_share"] == pytest.approx(0.4) and not any("cold" in key for key in f)
    assert load.scenario_figures([], 1, {})["model_suggestions_per_s"] is None


def configs() -> dict:
    return {POLICY: {"1": figures(1.0, 10.0, 2.0, 3.0), "2": figures(1.5, 12.0, 3.0, 6.0, 2)},
            STOCK: {"1": figures(0.8, 11.0, 2.5, 3.5), "2": figures(1.5, 12.0, 4.0, 8.0, 2)}}


def test_summary_holds_both_configurations_and_the_ratios_per_n():
    s = load.summary(configs())
    one, two = s["per_editors"]["1"], s["per_editors"]["2"]
    assert one[POLICY]["model_suggestions_per_s"] == 1.0 and one[STOCK]["p95_s"] == 3.5
    assert one["throughput_ratio"] == pytest.approx(1.25) and one["tokens_ratio"] == pytest.approx(10 / 11)
    assert one["p50_ratio"] == pytest.approx(0.8) and one[POLICY]["waited_answered"] == "2/3"
    assert two["throughput_ratio"] == pytest.approx(1.0)
    assert s["min_throughput_ratio"] == pytest.approx(1.0) and s["target_met"]
    json.dumps(s)  # plain keys and values


@pytest.mark.parametrize("change, met", [
    ({"model_suggestions_per_s": 1.4}, False),  # below stock at N=2
    ({"model_suggestions_per_s": None}, False),  # no throughput measured: not a pass
])
def test_the_target_fails_below_stock_or_without_a_figure(change, met):
    c = configs()
    c[POLICY]["2"].update(change)
    assert load.summary(c)["target_met"] is met


def test_a_configuration_missing_at_some_n_gives_no_ratio_there():
    c = configs()
    del c[STOCK]["2"]
    s = load.summary(c)
    assert "throughput_ratio" not in s["per_editors"]["2"] and not s["target_met"]


def test_table_has_a_row_per_n_with_both_configurations():
    result = {"summary": load.summary(configs())}
    lines = load_report.table(result).splitlines()
    assert len(lines) == 4 and lines[0].count("|") == lines[2].count("|") == lines[1].count("|")
    assert lines[2] == "| 1 | 1.00 | 10.0 | 2.00 / 3.00 | 0.80 | 11.0 | 2.50 / 3.50 | 1.25× | 0.91× |"
    c = configs()
    c[POLICY]["1"]["time_to_suggestion_model_s"]["p95"] = None
    del c[STOCK]["2"]
    lines = load_report.table({"summary": load.summary(c)}).splitlines()
    assert "2.00 / -" in lines[2] and lines[3].endswith("| - | - | - | -× | -× |")


@pytest.mark.parametrize("editors, bind, settings, expected", [
    ((1, 2, 4, 8), None, None, "completer bench load --editors 1 --editors 2 --editors 4 --editors 8 --chars 40 "
                               "--cps 10 --max-wait 30 --context-tokens 512"),
    ((2,), "0-1", None, "completer bench load --editors 2 --chars 40 --cps 10 --max-wait 30 --context-tokens 512 "
                        "--cpu-threads-bind 0-1"),
    ((2,), None, '{"max_num_seqs": 8}', "completer bench load --editors 2 --chars 40 --cps 10 --max-wait 30 "
                                        "--context-tokens 512 --settings '{\"max_num_seqs\": 8}'"),
])
def test_command_line(editors, bind, settings, expected):
    assert load.command_line(editors, 40, 10.0, 30.0, 512, bind, settings) == expected


@pytest.mark.parametrize("overrides, config, bind, expected", [
    ({}, {}, None, {"speculation_policy": "per_request", "max_num_seqs": Settings().max_num_seqs}),
    ({"max_num_seqs": 8}, {"speculation_policy": "engine"}, None, {"speculation_policy": "engine", "max_num_seqs": 8}),
    # the configuration's own setting wins over --settings: it is what the configuration is
    ({"speculation_policy": "per_request"}, {"speculation_policy": "engine"}, "0-1",
     {"speculation_policy": "engine", "cpu_threads_bind": "0-1"}),
])
def test_server_settings_layer_the_defaults_the_option_and_the_configuration(overrides, config, bind, expected):
    settings = load.server_settings(overrides, config, bind)
    assert {key: getattr(settings, key) for key in expected} == expected


def test_server_settings_refuse_an_unknown_setting():
    with pytest.raises(ValidationError):
        load.server_settings({"no_such_setting": 1}, {})


def test_the_report_names_the_settings_and_a_configuration_that_did_not_run():
    result = {"summary": load.summary({POLICY: configs()[POLICY]}), "chars_per_s": 10.0, "chars": 40,
              "max_wait_s": 30.0, "context_tokens": 512, "batch_k_limits": {}, "k": 5, "machine": "m",
              "vllm": "vLLM x", "wall_s": 1.0, "command": "c", "settings": {"max_num_seqs": 8},
              "errors": {STOCK: "vLLM's server did not start"}, "configs": {}}
    text = load_report.markdown(result)
    assert 'Settings over the defaults (both servers and every editor): `{"max_num_seqs": 8}`' in text
    assert f"**{STOCK} did not run:** vLLM's server did not start" in text and "**not met**" in text


def test_a_run_whose_server_does_not_start_writes_load_failed_not_load(tmp_path, monkeypatch):
    from completer.engine import vllm_server
    from completer.engine.interface import EngineError

    def no_server(settings, **kwargs):
        raise EngineError("vLLM's server did not start")

    monkeypatch.setattr(vllm_server, "start_server", no_server)
    result = load.run((1,), chars=12, out=tmp_path)
    assert result["errors"] == {POLICY: "vLLM's server did not start", STOCK: "vLLM's server did not start"}
    assert (tmp_path / "load-failed.json").is_file() and not (tmp_path / "load.json").exists()
    assert json.loads((tmp_path / "load-failed.json").read_text())["summary"]["target_met"] is False


@pytest.mark.parametrize("round_index, expected", [
    (0, [POLICY, STOCK]), (1, [STOCK, POLICY]), (2, [POLICY, STOCK]), (3, [STOCK, POLICY]),
])
def test_rounds_alternate_the_order(round_index, expected):
    assert load.round_order(round_index, [POLICY, STOCK]) == expected


def test_pooled_figures_add_the_rounds_answers_tokens_and_walls():
    first = ([request(0, 0, sent=0.0, answered=2.0), request(0, 1, sent=2.0, answered=4.0)],
             {"generation_tokens": 30.0, "draft_tokens": 10.0, "accepted_tokens": 5.0}, 2)
    second = ([request(0, 0, sent=100.0, answered=106.0)], {"generation_tokens": 20.0, "draft_tokens": 10.0,
                                                              "accepted_tokens": 8.0}, 1)
    f = load.pooled_figures([first, second], 1)
    assert f["wall_s"] == 10.0  # 4 + 6, not the 106 s from the first keystroke to the last answer
    assert f["model_suggestions"] == 3 and f["model_suggestions_per_s"] == pytest.approx(0.3)
    assert f["generated_tokens_per_s"] == pytest.approx(5.0) and f["acceptance_rate"] == pytest.approx(0.65)
    assert f["engine_requests"] == 3 and f["time_to_suggestion_model_s"]["n"] == 3
    assert load.pooled_figures([first, (second[0], second[1], None)], 1)["engine_requests"] is None


def test_summary_gives_each_rounds_ratio_and_their_range():
    one, two = configs(), configs()
    two[POLICY]["1"]["model_suggestions_per_s"] = 0.7  # round 2 at N=1: 0.7 / 0.8
    s = load.summary(configs(), [one, two])
    assert s["rounds"] == 2
    assert s["per_editors"]["1"]["round_throughput_ratios"] == pytest.approx([1.25, 0.875])
    assert s["per_editors"]["2"]["round_throughput_ratios"] == pytest.approx([1.0, 1.0])
    assert s["round_ratio_range"] == pytest.approx([0.875, 1.25])
    assert s["target_met"]  # judged on the pooled figures
    single = load.summary(configs(), [one])
    assert single["rounds"] == 1 and single["round_ratio_range"] is None
    assert "round_throughput_ratios" not in single["per_editors"]["1"]


def test_table_shows_each_rounds_ratio_when_there_are_rounds():
    s = load.summary(configs(), [configs(), configs()])
    lines = load_report.table({"summary": s}).splitlines()
    assert lines[0].endswith("each round's throughput ratio |") and lines[1].endswith("---|")
    assert lines[2].endswith("| 1.25× | 0.91× | 1.250×, 1.250× |")
    assert lines[0].count("|") == lines[1].count("|") == lines[2].count("|")


@pytest.mark.parametrize("label, expected", [
    ("completer", "completer"), ("stock fixed k, round 2 of 2", "stock-fixed-k-round-2-of-2"),
])
def test_slug(label, expected):
    assert load.slug(label) == expected


def test_command_line_names_the_repeats():
    assert load.command_line((1,), 40, 1000.0, 300.0, 512, repeats=2).endswith(
        "--cps 1000 --max-wait 300 --context-tokens 512 --repeats 2")


def test_a_run_of_two_rounds_alternates_the_servers_and_pools_their_figures(tmp_path, monkeypatch):
    from completer.engine import vllm_server

    started: list[str] = []

    class Server:  # stands in for vLLM's server: start, ready, stop
        url, plan = "http://127.0.0.1:1", None

        def __init__(self, settings, **kwargs):
            started.append(settings.speculation_policy)

        def wait_ready(self):
            pass

        def stop(self):
            pass

    async def scenario(name, url, policy, editor_settings, plan, chars_per_s, max_wait_s, log_dir, bar):
        # the policy answers 2 suggestions per round in 4 s, stock in 5 s
        wall = 4.0 if policy == "per_request" else 5.0
        return {str(n): ([request(0, 0, sent=0.0, answered=1.0), request(0, 1, sent=1.0, answered=wall)],
                         {"generation_tokens": 10.0}, 2) for n in plan}

    monkeypatch.setattr(vllm_server, "start_server", Server)
    monkeypatch.setattr(load, "_run_config", scenario)
    monkeypatch.setattr(load, "load_sessions", lambda count, chars: [Session("m.py", "", 0, "x")] * count)
    result = load.run((1, 2), chars=12, out=tmp_path, repeats=2)
    assert started == ["per_request", "engine", "engine", "per_request"]
    assert result["order"] == [f"{POLICY} (round 1)", f"{STOCK} (round 1)", f"{STOCK} (round 2)", f"{POLICY} (round 2)"]
    pooled = result["configs"][POLICY]["2"]
    assert pooled["wall_s"] == 8.0 and pooled["model_suggestions"] == 4 and pooled["engine_requests"] == 4
    row = result["summary"]["per_editors"]["1"]
    assert row["throughput_ratio"] == pytest.approx(1.25)
    assert row["round_throughput_ratios"] == pytest.approx([1.25] * 2)
    assert len(result["requests"][STOCK]["1"]) == 4 and result["summary"]["target_met"]
    saved = json.loads((tmp_path / "load.json").read_text())
    assert saved["summary"]["rounds"] == 2 and "each round's throughput ratio" in (tmp_path / "load.md").read_text()
