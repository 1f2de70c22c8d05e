import { strict as assert } from "node:assert";
import { test } from "node:test";
import { percent, planFeedback, statusText, statusTooltip } from "../../src/status";

const ready = {
  engine: "ready", speculation: true, accepted: 2, dismissed: 1, requests_started: 5, requests_finished: 4,
  requests_aborted: 1, acceptance_rate: 0.5,
  last: { latency_s: 1.234, tokens: 27, acceptance_rate: 0.6667, kind: "multi_line", speculate: true, k: 5 },
};

test("percent rounds, and says – when there is no rate", () => {
  assert.equal(percent(0.6667), "67%");
  assert.equal(percent(1), "100%");
  assert.equal(percent(null), "–");
  assert.equal(percent(undefined), "–");
});

test("status text: the engine state until there is a completion", () => {
  assert.equal(statusText(undefined), "$(circle-slash) completer");
  assert.equal(statusText({ engine: "loading" }), "$(sync~spin) completer: loading");
  assert.equal(statusText({ engine: "idle" }), "$(sync~spin) completer: loading");
  assert.equal(statusText({ engine: "restarting" }), "$(sync~spin) completer: restarting");
  assert.equal(statusText({ engine: "failed", error: "no model" }), "$(error) completer: failed");
  assert.equal(statusText({ engine: "ready", last: null }), "$(check) completer: ready");
});

test("status text: last latency and acceptance rate", () => {
  assert.equal(statusText(ready), "$(sparkle) 1.23 s · 67%");
  assert.equal(statusText({ ...ready, last: { ...ready.last, acceptance_rate: null } }), "$(sparkle) 1.23 s · –");
  // a short completion the server ran without the draft: no acceptance rate to show
  const bypassed = { ...ready.last, speculate: false, k: 0, acceptance_rate: null };
  assert.equal(statusText({ ...ready, last: bypassed }), "$(sparkle) 1.23 s · no draft");
  // a server without the plan fields: drafted when there is a rate
  const { speculate, k, ...old } = ready.last;
  assert.equal(statusText({ ...ready, last: old }), "$(sparkle) 1.23 s · 67%");
  assert.equal(statusText({ ...ready, last: { ...old, acceptance_rate: null } }), "$(sparkle) 1.23 s · no draft");
});

test("tooltip lists the last completion and the totals", () => {
  assert.equal(statusTooltip(ready), [
    "completer: engine ready",
    "last: multi_line, 27 tokens in 1.23 s, draft acceptance 67% (k=5)",
    "requests: 5 started, 4 finished, 1 cancelled",
    "draft acceptance overall: 50%",
    "suggestions: 2 accepted, 1 dismissed",
  ].join("\n"));
  assert.equal(statusTooltip({ engine: "failed", error: "no model" }),
    "completer: engine failed (no model)\nsuggestions: 0 accepted, 0 dismissed");
  assert.equal(statusTooltip(undefined), "completer: server not running");
  assert.match(statusTooltip({ engine: "ready", last: { latency_s: 0.5, tokens: 5, acceptance_rate: null,
                                                        kind: "single_line", speculate: false } }),
               /last: single_line, 5 tokens in 0.50 s, target alone/);
});

test("suggestions accepted of those shown, by plan: the most shown first", () => {
  const byPlan = {
    short: { shown: 4, accepted: 1, dismissed: 2, accept_rate: 0.25 },
    long: { shown: 5, accepted: 3, dismissed: 1, accept_rate: 0.6 },
    warm_cache: { shown: 4, accepted: 4, dismissed: 0, accept_rate: 1 },
    "fixed k": { shown: 0, accepted: 0, dismissed: 0, accept_rate: null },
  };
  assert.equal(planFeedback(byPlan), "long 3/5 (60%), short 1/4 (25%), warm cache 4/4 (100%)");
  assert.equal(planFeedback({}), undefined);
  assert.equal(planFeedback(undefined), undefined);
  assert.match(statusTooltip({ ...ready, by_plan: byPlan }),
               /suggestions: 2 accepted, 1 dismissed\naccepted of shown, by plan: long 3\/5 \(60%\), short/);
  assert.doesNotMatch(statusTooltip({ ...ready, by_plan: {} }), /by plan/);
});
