"""The GPU latency benchmark's pure parts: shapes, synthetic acceptance, plans, summaries."""

import json

import pytest

from completer.bench import gpu_latency as g
from completer.bench.gpu_shapes import SHAPES, shape_folders
from completer.engine.methods import is_eagle3_head
from completer.engine.models import parameter_bytes, read_info


def test_shape_folders_hold_the_configs_and_the_tokenizer(tmp_path):
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "tokenizer.json").write_text("{}")
    folders = shape_folders(tmp_path / "models", tok)
    assert set(folders) == {"1.5b", "7b", "0.5b", "eagle3-1.5b", "eagle3-7b"}
    assert (folders["1.5b"] / "tokenizer.json").is_file()
    assert is_eagle3_head(str(folders["eagle3-7b"])) and not is_eagle3_head(str(folders["7b"]))
    head = json.loads((folders["eagle3-1.5b"] / "config.json").read_text())
    assert (head["hidden_size"], head["num_hidden_layers"]) == (SHAPES["1.5b"]["hidden_size"], 1)
    # memory is planned from the configs: no weight files here
    assert read_info(str(folders["7b"])).weight_bytes == parameter_bytes(json.loads((folders["7b"] / "config.json").read_text()))


def test_shape_folders_need_a_tokenizer(tmp_path):
    with pytest.raises(FileNotFoundError):
        shape_folders(tmp_path / "models", tmp_path)


@pytest.mark.parametrize("rate, k, expected_length", [
    (0.88, 3, 3.33),  # the real pair's acceptance length on long completions at k = 3 ...
    (0.88, 5, 4.47),  # ... and at k = 5 (docs/benchmarks/latency.md)
])
def test_synthetic_rates_reproduce_the_real_pairs_acceptance_length(rate, k, expected_length):
    rates = g.synthetic_rates(rate, k)["synthetic_acceptance_rates"]
    assert rates == sorted(rates, reverse=True) and len(rates) == k
    assert 1 + sum(rates) == pytest.approx(expected_length, abs=0.02)


@pytest.mark.parametrize("length_class, k", [("short", 0), ("long", 5)])
def test_fixed_plans_generate_exactly_their_length(length_class, k):
    plan = g.fixed_plan(length_class, k)
    assert plan.max_tokens == plan.min_tokens == g.LENGTHS[length_class]
    assert (plan.speculate, plan.num_speculative_tokens, plan.stop) == (k > 0, k, ())


def rec(config, cls, latency, batch=1, shape="1.5b", accepted=0, steps=0):
    return g.GpuRecord(shape, "e", config, cls, batch, "t", latency, 10, 5 * steps, accepted, steps)


def test_summary_speedups_are_against_the_target_alone_of_the_same_batch_and_class():
    records = [rec(g.BASELINE, "long", 0.30), rec(g.BASELINE, "long", 0.34), rec("eagle3 k=5", "long", 0.15),
               rec(g.POLICY, "long", 0.16, accepted=30, steps=10), rec(g.BASELINE, "short", 0.05),
               rec(g.POLICY, "short", 0.05), rec("eagle3 k=5", "short", 0.06),
               rec("eagle3 engine, bypass", "short", 0.045), rec(g.BASELINE, "long", 0.6, batch=8)]
    rows = {(r["batch"], r["class"], r["config"]): r for r in g.summarize(records)}
    assert rows[(1, "long", "eagle3 k=5")]["speedup"] == pytest.approx(0.34 / 0.15, rel=1e-3)  # nearest-rank p50 of two
    assert rows[(1, "long", g.POLICY)]["acceptance_length"] == 4.0
    assert rows[(8, "long", g.BASELINE)]["speedup"] == 1.0
    figures = g.summary_figures(g.summarize(records))
    assert figures["1.5b_b1_long"]["best_fixed"] == "eagle3 k=5"
    assert figures["1.5b_b1_long"]["policy_vs_best"] == pytest.approx(0.15 / 0.16, abs=1e-3)
    # bypass rows are the policy's own machinery, not a fixed configuration a user would pick
    assert figures["1.5b_b1_short"]["best_fixed"] == g.BASELINE


def test_a_whole_run_records_every_engine_once_and_writes_the_report(tmp_path, monkeypatch):
    """The benchmark's flow with a scripted engine in place of vLLM (no GPU here): each engine's rows
    at batch 1 and 8, records appended per engine, a rerun skips what is recorded."""
    from completer.context.tokens import CharEstimateCounter
    from completer.engine import vllm_engine
    from completer.engine.interface import Capabilities
    from tests.unit.fake_engine import FakeEngine

    tok = tmp_path / "tok"
    tok.mkdir()
    built = []

    def build(settings, progress=None, extra_engine_args=None):
        method = settings.speculative_config.method
        caps = Capabilities("cuda", None if method == "none" else method, 5,
                            per_request_speculation=settings.speculation_policy == "per_request",
                            speculation_with_sampling=True, engine_k_only=method == "eagle3")
        built.append((method, extra_engine_args))
        return FakeEngine("y" * 200, capabilities=caps, block_size=16)

    monkeypatch.setattr(vllm_engine.VllmEngine, "build", staticmethod(build))
    monkeypatch.setattr(g, "HFTokenCounter", lambda path: CharEstimateCounter())
    (tok / "tokenizer.json").write_text("{}")
    result = g.run(["1.5b"], ["target", "eagle3"], tmp_path / "out", tok, n=4, models_dir=tmp_path / "m")
    assert [m for m, _ in built] == ["none", "eagle3"]
    assert built[1][1]["load_format"] == "dummy" and built[1][1]["speculative_config"]["synthetic_acceptance_length"] == 4.0
    configs = {(r["batch"], r["class"], r["config"]) for r in result["rows"]}
    assert (1, "long", g.POLICY) in configs and (2, "short", g.BASELINE) in configs  # the 2 short tasks at once
    assert {"1.5b_b1_long", "1.5b_b2_short"} <= set(result["summary"])
    assert (tmp_path / "out" / "gpu-latency.md").is_file() and (tmp_path / "out" / "gpu-latency.png").is_file()
    g.run(["1.5b"], ["target", "eagle3"], tmp_path / "out", tok, n=4, models_dir=tmp_path / "m")
    assert len(built) == 2  # both engines were recorded: nothing ran again


@pytest.mark.parametrize("head, draft, runnable_engines", [
    (None, None, {"target", "ngram_gpu"}),
    ("head", None, {"target", "ngram_gpu", "eagle3", "eagle3-stock"}),
    (None, "draft", {"target", "ngram_gpu", "draft"}),
])
def test_real_weights_run_the_engines_whose_drafter_was_given(tmp_path, head, draft, runnable_engines):
    models = g.RealModels(tmp_path / "target", head and tmp_path / head, draft and tmp_path / draft)
    folders = models.folders()
    assert folders[g.REAL] == tmp_path / "target"
    got = {s.name for s in g.engine_specs() if g.runnable(s, folders, g.REAL)}
    assert runnable_engines <= got
    assert ("draft" in got) == (draft is not None)
    assert any(name.startswith("eagle3") for name in got) == (head is not None)


def test_real_weights_are_named_in_the_report():
    rec = g.GpuRecord(g.REAL, "target", g.BASELINE, "long", 1, "t", 0.5, 128, 0, 0, 0)
    result = {"machine": "m", "vllm": "0.26.0", "command": "c", "weights": "real", "eagle3_acceptance_length": 4.0,
              "draft_rate": 0.88, "lengths": g.LENGTHS, "rows": g.summarize([rec])}
    assert "real weights and real acceptance" in g.markdown(result)
    assert "synthetic" not in g.markdown(result)
