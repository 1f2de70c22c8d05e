import pytest

from completer.policy.warm_cache import RecentPrompts, StepCosts, expected_seconds, other_plan_sooner, plan_seconds

CPU = StepCosts(prefill_s=0.015, decode_s=0.15)  # 1.5B target on one core of a 2-core CPU
GPU = StepCosts(prefill_s=0.00003, decode_s=0.007)


@pytest.mark.parametrize("seen, prompt, expected", [
    ([], "abcdef", 0),
    (["abcdef"], "abcxyz", 3),
    (["abcdef", "abcdeZ"], "abcdeZZ", 6),
    (["xyz"], "abc", 0),
    (["abc"], "abcdef", 3),
])
def test_cached_chars_is_the_longest_shared_start(seen, prompt, expected):
    recent = RecentPrompts()
    for p in seen:
        recent.remember("c", p)
    assert recent.cached_chars("c", prompt) == expected
    assert recent.cached_chars("other", prompt) == 0


def test_recent_prompts_forget_the_oldest():
    recent = RecentPrompts(size=2)
    for p in ("aaaa", "bbbb", "cccc"):
        recent.remember("c", p)
    assert recent.cached_chars("c", "aaaa") == 0
    assert recent.cached_chars("c", "cccc") == 4


@pytest.mark.parametrize("observations, prefill_s, decode_s", [
    ([], None, None),
    ([dict(read_tokens=1000, first_token_s=20.0, new_tokens=11, latency_s=21.5)], 0.02, 0.15),
    # too few tokens read: the first token's decode step would dominate
    ([dict(read_tokens=50, first_token_s=1.0, new_tokens=11, latency_s=2.5)], None, 0.15),
    # too few tokens written to time the decode
    ([dict(read_tokens=1000, first_token_s=20.0, new_tokens=2, latency_s=20.2)], 0.02, None),
    ([dict(read_tokens=1000, first_token_s=None, new_tokens=0, latency_s=5.0)], None, None),
    # a moving average: 0.7 of the old value, 0.3 of the new
    ([dict(read_tokens=1000, first_token_s=20.0, new_tokens=11, latency_s=21.5),
      dict(read_tokens=1000, first_token_s=10.0, new_tokens=11, latency_s=13.0)], 0.017, 0.195),
])
def test_step_costs_average_what_requests_measured(observations, prefill_s, decode_s):
    costs = StepCosts()
    for o in observations:
        costs.observe(**o)
    assert costs.prefill_s == pytest.approx(prefill_s)
    assert costs.decode_s == pytest.approx(decode_s)
    assert costs.known == (prefill_s is not None and decode_s is not None)


def test_expected_seconds_charges_the_draft_for_the_prompt_it_reads():
    alone = expected_seconds(CPU, 1000, 100, speculate=False, speedup=1.5, draft_cost=0.3)
    speculating = expected_seconds(CPU, 1000, 100, speculate=True, speedup=1.5, draft_cost=0.3)
    assert alone == pytest.approx(15.0 + 15.0)
    assert speculating == pytest.approx(15.0 * 1.3 + 10.0)


@pytest.mark.parametrize("costs, cached_if_speculating, cached_if_bypassed, bypass", [
    (CPU, 0, 1400, True),       # typing on after a one-line answer: re-reading 1,400 tokens costs 25 s
    (CPU, 1400, 1400, False),   # both caches as warm: the policy's choice stands
    (CPU, 0, 0, False),         # both cold: likewise
    (CPU, 0, 100, False),       # less than a block apart
    (CPU, 1400, 0, False),      # the speculating cache is the warmer one
    (CPU, 1700, 1900, False),   # 200 tokens more to read cost less than speculation saves
    (GPU, 0, 1400, False),      # prefill is cheap on a GPU: speculation still pays
    (StepCosts(), 0, 1400, False),  # nothing measured yet
])
def test_bypass_pays_only_where_the_warmer_cache_outweighs_speculation(costs, cached_if_speculating,
                                                                       cached_if_bypassed, bypass):
    seconds = plan_seconds(costs, planned_speculate=True, prompt_tokens=1900,
                           cached_if_speculating=cached_if_speculating, cached_if_bypassed=cached_if_bypassed,
                           new_tokens=128, speedup=1.3, draft_cost=0.31, block_tokens=128)
    assert other_plan_sooner(seconds, planned_speculate=True) is bypass


@pytest.mark.parametrize("costs, cached_if_speculating, cached_if_bypassed, speedup, speculate", [
    (CPU, 1800, 0, 0.9, True),     # a one-line request after a speculating block: 1,800 tokens not read again
    (CPU, 1800, 1800, 0.9, False),  # both caches as warm: the bypass stands
    (CPU, 0, 1800, 0.9, False),    # the bypass's cache is the warmer one
    (CPU, 1800, 1700, 0.9, False),  # under a block apart
    (CPU, 1900, 1664, 0.5, False),  # 236 tokens saved (3.5 s) against decoding at half speed (19 s more)
    (GPU, 1800, 0, 0.9, False),    # prefill is cheap on a GPU: the draft's slower decode would cost more
    (StepCosts(), 1800, 0, 0.9, False),
])
def test_speculation_pays_where_only_the_speculating_cache_holds_a_short_requests_prompt(
        costs, cached_if_speculating, cached_if_bypassed, speedup, speculate):
    seconds = plan_seconds(costs, planned_speculate=False, prompt_tokens=1900,
                           cached_if_speculating=cached_if_speculating, cached_if_bypassed=cached_if_bypassed,
                           new_tokens=128, speedup=speedup, draft_cost=0.31, block_tokens=128)
    assert other_plan_sooner(seconds, planned_speculate=False) is speculate


@pytest.mark.parametrize("decode_s, step_s, k, expected", [
    (0.10, 0.10 + 5 * 0.031, 5, 0.31),  # each of k drafts adds 0.031 s: 0.31 of a 0.1 s target step
    (0.007, 0.007 * 1.75, 5, 0.15),  # an H200-like EAGLE-3 step
    (0.10, 0.09, 3, -0.1 / 3),  # a speculated step faster than a bypassed one: drafting costs less than nothing
    (0.0056, 0.0047, 5, (0.0047 / 0.0056 - 1) / 5),  # EAGLE-3 on V2, 1.5B on an H200: k = 0 steps are the slow ones
    (0.10, 0.10 * 12, 5, 2.0),  # capped
])
def test_the_draft_cost_comes_from_speculated_steps_against_the_target_alone(decode_s, step_s, k, expected):
    costs = StepCosts(decode_s=decode_s)
    costs.observe_speculated(first_token_s=0.5, latency_s=0.5 + 20 * step_s, verify_steps=20, k=k)
    assert costs.draft_cost == pytest.approx(expected, abs=1e-9)


def test_no_draft_cost_before_the_target_alone_was_measured_or_from_too_few_steps():
    costs = StepCosts()
    costs.observe_speculated(first_token_s=0.5, latency_s=2.0, verify_steps=20, k=5)
    assert costs.draft_cost is None
    costs.decode_s = 0.1
    costs.observe_speculated(first_token_s=0.5, latency_s=0.7, verify_steps=2, k=5)
    assert costs.draft_cost is None


@pytest.mark.parametrize("costs, planned_speculate, cached_if_speculating, cached_if_bypassed, weighed", [
    (CPU, True, 0, 1400, True),  # planned to speculate; the bypass's cache is a block warmer
    (CPU, False, 1400, 0, True),  # planned to bypass; the speculating cache is a block warmer
    (CPU, True, 1400, 0, False),  # the planned plan's own cache is the warmer one: nothing to weigh
    (CPU, True, 0, 100, False),  # less than a block apart
    (StepCosts(), True, 0, 1400, False),  # nothing measured yet
])
def test_plan_seconds_weighs_the_plans_only_where_the_other_is_a_block_warmer_and_costs_are_known(
        costs, planned_speculate, cached_if_speculating, cached_if_bypassed, weighed):
    seconds = plan_seconds(costs, planned_speculate=planned_speculate, prompt_tokens=1900,
                           cached_if_speculating=cached_if_speculating, cached_if_bypassed=cached_if_bypassed,
                           new_tokens=128, speedup=1.3, draft_cost=0.31, block_tokens=128)
    assert (seconds is not None) is weighed
    if weighed:
        speculating, bypassed = seconds
        assert speculating == expected_seconds(costs, 1900 - cached_if_speculating, 128, speculate=True,
                                               speedup=1.3, draft_cost=0.31)
        assert bypassed == expected_seconds(costs, 1900 - cached_if_bypassed, 128, speculate=False,
                                            speedup=1.3, draft_cost=0.31)


@pytest.mark.parametrize("seconds, planned_speculate, sooner", [
    (None, True, False),  # nothing weighed
    ((9.0, 4.0), True, True),  # planned to speculate; the bypass is expected first
    ((4.0, 9.0), True, False),
    ((4.0, 9.0), False, True),  # planned to bypass; speculation is expected first
    ((9.0, 4.0), False, False),
])
def test_the_other_plan_is_sooner_only_where_its_seconds_are_fewer(seconds, planned_speculate, sooner):
    assert other_plan_sooner(seconds, planned_speculate) is sooner
