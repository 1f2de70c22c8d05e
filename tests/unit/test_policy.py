import pytest

from completer.config import Settings
from completer.engine.vllm_engine import PLAN_KEY, draft_prefill_k, planned_k, step_k
from completer.policy.acceptance import AcceptanceTracker, best_k, expected_speedup
from completer.policy.planner import choose_k, plan_request, should_speculate
from completer.types import CompletionKind, Context


@pytest.mark.parametrize("alpha,k,cost,expected", [
    (0.0, 3, 0.31, 1 / 1.93),  # nothing accepted: pure overhead
    (0.5, 1, 0.0, 1.5),  # free drafts: 1 + alpha tokens a pass
    (0.8, 3, 0.31, (1 - 0.8 ** 4) / 0.2 / 1.93),
])
def test_expected_speedup(alpha, k, cost, expected):
    assert expected_speedup(alpha, k, cost) == pytest.approx(expected)


@pytest.mark.parametrize("alpha,cost,k", [
    (0.95, 0.05, 8),  # cheap, accurate drafts: long rounds
    (0.75, 0.31, 2),  # the measured 0.5B/1.5B pair
    (0.3, 0.31, 1),  # poor drafts: as short as allowed
    (0.9, 0.31, 5),
])
def test_best_k(alpha, cost, k):
    assert best_k(alpha, cost) == k


def test_tracker_moves_towards_observed_rate_per_language():
    t = AcceptanceTracker(prior=0.5, weight=0.5, min_drafts=4)
    t.observe("python", 10, 10)
    t.observe("go", 2, 0)  # too few drafts to count
    assert t.alpha("python") == pytest.approx(0.75)
    assert t.alpha("go") == 0.5


@pytest.mark.parametrize("extra,engine_k,k", [
    (None, 5, 5),  # no plan: the engine's k
    ({PLAN_KEY: 0}, 5, 0),  # bypass
    ({PLAN_KEY: 3}, 5, 3),
    ({PLAN_KEY: 9}, 5, 5),  # never above what vLLM sized its buffers for
    ({PLAN_KEY: -2}, 5, 0),
])
def test_planned_k(extra, engine_k, k):
    assert planned_k(extra, engine_k) == k


@pytest.mark.parametrize("planned,batch,limits,k", [
    ([0], 1, None, 0),
    ([0, 3, 5], 3, None, 5),
    ([5, 5, 5], 3, {3: 2}, 2),
    ([5, 5], 2, {3: 2}, 5),
    ([5, 5, 5, 5], 4, {2: 3, 4: 0}, 0),
    ([], 0, None, 0),
])
def test_step_k(planned, batch, limits, k):
    assert step_k(planned, batch, limits) == k


@pytest.mark.parametrize("enabled, k, samples, scheduled, expected", [
    (True, 0, False, [300], 1),  # a bypassed request's prompt: the draft model reads it too
    (True, 0, False, [1, 1], 0),  # decode steps only: the draft model stays off
    (True, 3, False, [4], 3),  # a speculating step keeps its k
    (True, 0, True, [300], 0),  # a sampled request in the step: no drafts at all
    (False, 0, False, [300], 0),  # off: bypassed requests keep a prefix cache of their own
])
def test_draft_prefill_k(enabled, k, samples, scheduled, expected):
    assert draft_prefill_k(enabled, k, samples, scheduled) == expected


def _ctx(kind, line_prefix="", line_suffix="", may_grow=False):
    return Context(language="python", prefix="", suffix="", prompt="", kind=kind, line_prefix=line_prefix,
                   line_suffix=line_suffix, may_grow=may_grow)


@pytest.mark.parametrize("settings,max_tokens,engine,backend,expected", [
    (Settings(), 128, True, "cpu", True),
    (Settings(), 48, True, "cpu", False),  # short: bypass
    (Settings(speculation_policy="engine"), 48, True, "cpu", True),
    (Settings(temperature=0.7), 128, True, "cpu", False),  # sampling never speculates on the CPU
    (Settings(temperature=0.7), 128, True, "cuda", True),
    (Settings(), 128, False, "cpu", False),
])
def test_should_speculate(settings, max_tokens, engine, backend, expected):
    assert should_speculate(settings, max_tokens, engine_speculates=engine, backend=backend) is expected


def test_single_line_plan_bypasses_and_multi_line_plan_speculates():
    s = Settings()
    short = plan_request(_ctx(CompletionKind.SINGLE_LINE), s, engine_speculates=True, backend="cpu")
    long = plan_request(_ctx(CompletionKind.MULTI_LINE), s, engine_speculates=True, backend="cpu")
    assert (short.speculate, short.num_speculative_tokens, short.stop) == (False, 0, ("\n",))
    assert long.speculate and 1 <= long.num_speculative_tokens <= 5


@pytest.mark.parametrize("ctx, max_tokens, stop, speculate, min_tokens", [
    (_ctx(CompletionKind.SINGLE_LINE, "    x = f("), 48, ("\n",), False, 0),
    # may grow into a block: room for it, the stop in the pipeline, but still planned as short
    (_ctx(CompletionKind.SINGLE_LINE, "    for op in o", may_grow=True), 128, (), False, 0),
    (_ctx(CompletionKind.MULTI_LINE, "    "), 128, (), True, 1),  # a blank line asks for code
    (_ctx(CompletionKind.MULTI_LINE, "def f():"), 128, (), True, 0),
    (_ctx(CompletionKind.MULTI_LINE, "    ", "return x"), 128, (), True, 1),  # before a line's code: a line above
    (_ctx(CompletionKind.MULTI_LINE, "x = [", ""), 128, (), True, 0),
])
def test_plan_by_position(ctx, max_tokens, stop, speculate, min_tokens):
    plan = plan_request(ctx, Settings(), engine_speculates=True, backend="cpu")
    assert (plan.max_tokens, plan.stop, plan.speculate, plan.min_tokens) == (max_tokens, stop, speculate, min_tokens)


def test_adaptive_k_follows_acceptance_and_is_capped_by_the_engine():
    tracker = AcceptanceTracker(prior=0.99)
    assert choose_k(Settings(), "python", tracker) == 5  # best_k would be 8: capped
    tracker = AcceptanceTracker(prior=0.3)
    assert choose_k(Settings(), "python", tracker) == 1
    assert choose_k(Settings(adaptive_k=False), "python", tracker) == 5


def test_projected_speedup_and_code_cuts(tmp_path):
    from completer.bench.draft_eval import code_cuts, projected_speedup

    assert projected_speedup(4.0, 3, 0.31) == pytest.approx(4.0 / 1.93)
    (tmp_path / "a.py").write_text("\n".join(f"value_{i} = compute({i}, {i + 1})" for i in range(30)))
    (tmp_path / "notes.txt").write_text("plain text " * 100)
    outside = tmp_path.parent / "outside.py"
    outside.write_text("x = 1\n" * 100)
    (tmp_path / "link.py").symlink_to(outside)  # leads out of the folder: never read
    cuts = code_cuts(tmp_path, 5)
    assert len(cuts) == 5 and {c.path for c in cuts} == {"a.py"}
    for c in cuts:
        assert c.text[c.offset:].startswith("value_")


@pytest.mark.parametrize("cpus,bind", [(1, "0"), (2, "0"), (4, "0-2"), (16, "0-14")])
def test_default_threads_bind_leaves_a_core_free(cpus, bind):
    from completer.engine.vllm_engine import default_threads_bind

    assert default_threads_bind(cpus) == bind


@pytest.mark.parametrize("preload, present, expected", [
    ("", True, "/lib/libtcmalloc_minimal.so.4"),
    ("/torch/libgomp.so", True, "/lib/libtcmalloc_minimal.so.4:/torch/libgomp.so"),  # first, so it wins
    ("/opt/libtcmalloc.so", True, "/opt/libtcmalloc.so"),  # already preloaded
    ("/torch/libgomp.so", False, "/torch/libgomp.so"),  # not installed: unchanged
])
def test_with_tcmalloc(tmp_path, preload, present, expected):
    from completer.engine.vllm_engine import with_tcmalloc

    lib = tmp_path / "libtcmalloc_minimal.so.4"
    if present:
        lib.write_bytes(b"")
    got = with_tcmalloc(preload, candidates=(str(tmp_path / "missing.so"), str(lib)))
    assert got == expected.replace("/lib/libtcmalloc_minimal.so.4", str(lib))
