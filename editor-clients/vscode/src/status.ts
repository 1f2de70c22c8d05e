// Pure: `completer/stats` → status-bar text and tooltip (no `vscode` import).

export interface LastCompletion {
  latency_s: number;
  tokens: number;
  acceptance_rate: number | null;
  kind: string;
  speculate?: boolean; // the server's per-request plan: short completions skip the draft
  k?: number;
  id?: string; // the server's request id, as on the suggestion
  reason?: string; // why the plan is what it is ("short", "long", "warm_cache", ...)
}

/** What happened to the suggestions shown under one plan reason. */
export interface PlanFeedback {
  shown: number;
  accepted: number;
  dismissed: number;
  accept_rate: number | null;
}

export interface Stats {
  engine: string; // idle | loading | ready | failed
  error?: string | null;
  speculation?: boolean;
  last?: LastCompletion | null;
  accepted?: number;
  accepted_partially?: number;
  dismissed?: number;
  requests_started?: number;
  requests_finished?: number;
  requests_aborted?: number;
  acceptance_rate?: number | null;
  by_plan?: Record<string, PlanFeedback>;
  [key: string]: unknown;
}

/** States in which the engine will become ready by itself (the status bar keeps polling). */
export function isLoading(stats: Stats | undefined): boolean {
  return !!stats && ["idle", "loading", "restarting"].includes(stats.engine);
}

function drafted(last: LastCompletion): boolean {
  return last.speculate ?? last.acceptance_rate !== null;
}

export function percent(rate: number | null | undefined): string {
  return rate === null || rate === undefined ? "–" : `${Math.round(rate * 100)}%`;
}

/** Short text: the last completion's latency and the draft's acceptance rate, or the engine state. */
export function statusText(stats: Stats | undefined): string {
  if (!stats) return "$(circle-slash) completer";
  if (isLoading(stats)) return `$(sync~spin) completer: ${stats.engine === "restarting" ? "restarting" : "loading"}`;
  if (stats.engine === "failed") return "$(error) completer: failed";
  const last = stats.last;
  if (!last) return "$(check) completer: ready";
  return `$(sparkle) ${last.latency_s.toFixed(2)} s · ${drafted(last) ? percent(last.acceptance_rate) : "no draft"}`;
}

/** Several lines: what the status text stands for, and the running totals. */
export function statusTooltip(stats: Stats | undefined): string {
  if (!stats) return "completer: server not running";
  const lines = [`completer: engine ${stats.engine}${stats.error ? ` (${stats.error})` : ""}`];
  const last = stats.last;
  if (last) {
    const spec = drafted(last)
      ? `draft acceptance ${percent(last.acceptance_rate)}${last.k ? ` (k=${last.k})` : ""}`
      : "target alone";
    lines.push(`last: ${last.kind}, ${last.tokens} tokens in ${last.latency_s.toFixed(2)} s, ${spec}`);
  }
  if (stats.requests_started !== undefined) {
    lines.push(`requests: ${stats.requests_started} started, ${stats.requests_finished ?? 0} finished, ` +
      `${stats.requests_aborted ?? 0} cancelled`);
  }
  if (stats.speculation) lines.push(`draft acceptance overall: ${percent(stats.acceptance_rate)}`);
  lines.push(`suggestions: ${stats.accepted ?? 0} accepted, ${stats.dismissed ?? 0} dismissed`);
  const byPlan = planFeedback(stats.by_plan);
  if (byPlan) lines.push(`accepted of shown, by plan: ${byPlan}`);
  return lines.join("\n");
}

/** "long 3/5 (60%), short 1/4 (25%)": the most shown plan first; undefined when none was shown. */
export function planFeedback(byPlan: Record<string, PlanFeedback> | undefined): string | undefined {
  const rows = Object.entries(byPlan ?? {}).filter(([, row]) => row.shown > 0);
  if (rows.length === 0) return undefined;
  rows.sort(([a, x], [b, y]) => y.shown - x.shown || a.localeCompare(b));
  return rows.map(([reason, row]) => `${reason.replace(/_/g, " ")} ${row.accepted}/${row.shown} (${percent(row.accepted / row.shown)})`)
    .join(", ");
}
