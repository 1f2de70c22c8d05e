import { strict as assert } from "node:assert";
import { test } from "node:test";
import { SERVER_SETTINGS, serverSettings } from "../../src/settings";
import * as pkg from "../../package.json";

// a getter over a flat map, like WorkspaceConfiguration.get with dotted keys
const from = (values: Record<string, unknown>) => (key: string) => values[key];

type Declared = { default: unknown; enum?: unknown[]; order?: number };
type Category = { id: string; title: string; properties: Record<string, Declared> };
const categories = (pkg as any).contributes.configuration as Category[];
// every category's settings in one map, as VS Code merges them
const props: Record<string, Declared> = Object.assign({}, ...categories.map((c) => c.properties));
const NULLS = { seed: null, kv_cache_space_gib: null, gpu_memory_utilization: null, cpu_threads_bind: null, block_size: null,
                max_num_batched_tokens: null, log_level: null, enforce_eager: null, draft_cost_ratio: null, batch_k_limits: null,
                bypass_shares_prefix_cache: null };

test("dotted names become the nested object the server parses", () => {
  const got = serverSettings(from({
    model: "qwen2.5-coder-1.5b-instruct",
    "speculative_config.method": "draft_model",
    "speculative_config.num_speculative_tokens": 5,
    max_tokens: 128,
  }));
  assert.deepEqual(got, {
    model: "qwen2.5-coder-1.5b-instruct",
    speculative_config: { method: "draft_model", num_speculative_tokens: 5 },
    max_tokens: 128,
    ...NULLS,
  });
});

test("unset and empty values are left to the server; nullable ones are sent as null", () => {
  const got = serverSettings(from({ model: "", temperature: undefined, seed: "", cpu_threads_bind: "0-1" }));
  assert.deepEqual(got, { ...NULLS, cpu_threads_bind: "0-1" });
});

test("zero and false are values, not unset", () => {
  const got = serverSettings(from({ temperature: 0, seed: 0, adaptive_k: false }));
  assert.equal(got.temperature, 0);
  assert.equal(got.seed, 0);
  assert.equal(got.adaptive_k, false);
});

test("an unset engine_url is left out: the server's --engine-url holds", () => {
  const got = serverSettings(from({ engine_url: "", engine_api_key_file: undefined }));
  assert.equal("engine_url" in got, false);
  assert.equal("engine_api_key_file" in got, false);
  assert.equal(serverSettings(from({ engine_url: "http://gpu:8000" })).engine_url, "http://gpu:8000");
});

test("pythonPath is client-only and never sent", () => {
  const got = serverSettings(from({ pythonPath: "/usr/bin/python3", max_tokens: 64 }));
  assert.equal("pythonPath" in got, false);
  assert.equal(got.max_tokens, 64);
});

test("every server setting is declared in package.json with the server's default", () => {
  const defaults: Record<string, unknown> = {
    model: "qwen2.5-coder-1.5b-instruct", "speculative_config.method": "auto",
    "speculative_config.model": "qwen2.5-coder-0.5b-instruct", "speculative_config.num_speculative_tokens": 5,
    "speculative_config.prompt_lookup_max": 4, "speculative_config.prompt_lookup_min": 2,
    speculation_policy: "per_request", bypass_max_tokens: 50, adaptive_k: true, draft_cost_ratio: null,
    batch_k_limits: null, bypass_shares_prefix_cache: null, warm_cache_plan: true, max_tokens: 128, max_tokens_single_line: 48, temperature: 0, top_p: 1, seed: null, context_tokens: 1536,
    prefix_share: 0.75, snippet_share: 0.25, workspace_snippets: false, fim_order: "psm", fim_middle_anchor: "auto", cut_snap_lines: 16, enable_prefix_caching: true,
    block_size: null, max_num_batched_tokens: null, keystroke_hold_ms: 200, type_ahead: true, warm_prompt: true, warm_prompt_pause_ms: 1000, engine_restart_attempts: 5, engine_restart_backoff_s: 2, dtype: "bfloat16", max_model_len: 4096, max_num_seqs: 4, kv_cache_space_gib: null,
    gpu_memory_utilization: null, cpu_threads_bind: null, enforce_eager: null, trust_remote_code: false,
    engine_url: null, engine_api_key_file: null,
    "quantization.target": "auto", "quantization.draft": "auto",
    log_level: "",  // empty: unset, sent as null (the command line's level)
  };
  assert.deepEqual([...SERVER_SETTINGS].sort(), Object.keys(defaults).sort());
  for (const key of SERVER_SETTINGS) {
    assert.ok(props[`completer.${key}`], `completer.${key} is not declared`);
    assert.deepEqual(props[`completer.${key}`].default, defaults[key], key);
  }
  const declared = Object.keys(props).map((k) => k.replace(/^completer\./, ""));
  assert.deepEqual(declared.filter((k) => !(SERVER_SETTINGS as readonly string[]).includes(k)), ["pythonPath"]);
});

test("the first category holds the everyday settings, in order; the rest are advanced, one category per section", () => {
  const [everyday, ...advanced] = categories;
  assert.equal(everyday.title, "completer");  // the extension's name: shown at the top of its settings
  assert.deepEqual(Object.keys(everyday.properties).map((k) => k.replace(/^completer\./, "")), [
    "pythonPath", "model", "speculative_config.method", "speculative_config.model",
    "speculative_config.num_speculative_tokens", "max_tokens", "max_tokens_single_line", "temperature",
    "context_tokens", "keystroke_hold_ms", "speculation_policy",
  ]);
  assert.deepEqual(Object.values(everyday.properties).map((p) => p.order), [...Array(11).keys()]);
  assert.deepEqual(advanced.map((c) => c.id),
                   ["completer.engine", "completer.speculation", "completer.context", "completer.server"]);
  for (const c of advanced) assert.match(c.title, /\(advanced\)$/);
  const keys = categories.flatMap((c) => Object.keys(c.properties));
  assert.equal(new Set(keys).size, keys.length, "a setting is declared twice");
});

test("an empty log_level is unset: the server's command line decides", () => {
  assert.equal(props["completer.log_level"].enum?.[0], "");
  assert.equal(serverSettings(from({ log_level: "" })).log_level, null);
  assert.equal(serverSettings(from({ log_level: "debug" })).log_level, "debug");
});
