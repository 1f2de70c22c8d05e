// Pure: VS Code's `completer.*` settings → the object the server parses (no `vscode` import,
// so that the unit tests run under plain node).

/**
 * The server's setting names (dotted = nested), as `contributes.configuration` declares them: the
 * everyday ones in its first category, the rest under one "advanced" category per section of the
 * server's settings (engine, speculation, context, server). The names are the server's, flat.
 */
export const SERVER_SETTINGS = [
  "model",
  "speculative_config.method",
  "speculative_config.model",
  "speculative_config.num_speculative_tokens",
  "speculative_config.prompt_lookup_max",
  "speculative_config.prompt_lookup_min",
  "quantization.target",
  "quantization.draft",
  "max_tokens",
  "max_tokens_single_line",
  "temperature",
  "top_p",
  "seed",
  "context_tokens",
  "prefix_share",
  "snippet_share",
  "workspace_snippets",
  "fim_order",
  "fim_middle_anchor",
  "cut_snap_lines",
  "enable_prefix_caching",
  "block_size",
  "max_num_batched_tokens",
  "keystroke_hold_ms",
  "type_ahead",
  "warm_prompt",
  "warm_prompt_pause_ms",
  "speculation_policy",
  "bypass_max_tokens",
  "adaptive_k",
  "draft_cost_ratio",
  "batch_k_limits",
  "bypass_shares_prefix_cache",
  "warm_cache_plan",
  "dtype",
  "max_model_len",
  "max_num_seqs",
  "kv_cache_space_gib",
  "gpu_memory_utilization",
  "cpu_threads_bind",
  "enforce_eager",
  "trust_remote_code",
  "engine_url",
  "engine_api_key_file",
  "log_level",
  "engine_restart_attempts",
  "engine_restart_backoff_s",
] as const;

// Settings whose `null` means "let the server decide"; sent as null so that clearing one resets it
// (the server merges what it gets over its current settings).
const NULLABLE = new Set(["seed", "kv_cache_space_gib", "gpu_memory_utilization", "cpu_threads_bind", "block_size",
  "max_num_batched_tokens", "log_level", "enforce_eager", "draft_cost_ratio", "batch_k_limits",
  "bypass_shares_prefix_cache"]);

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * Build `{model, speculative_config: {...}, max_tokens, ...}` from a getter over the `completer`
 * section. Unset values are left out (the server keeps its default); empty strings count as unset.
 */
export function serverSettings(get: (key: string) => unknown): { [key: string]: Json } {
  const out: { [key: string]: Json } = {};
  for (const key of SERVER_SETTINGS) {
    let value = get(key);
    if (value === undefined || value === "") {
      if (!NULLABLE.has(key)) continue;
      value = null;
    }
    if (value === null && !NULLABLE.has(key)) continue;
    const path = key.split(".");
    let node = out;
    for (const part of path.slice(0, -1)) {
      node = (node[part] ??= {}) as { [key: string]: Json };
    }
    node[path[path.length - 1]] = value as Json;
  }
  return out;
}
