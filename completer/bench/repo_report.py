"""The real-repository benchmark's tables: by language, kind and row, the summary per row, the
block answers by cause, the Markdown report and its plot."""

from __future__ import annotations

import statistics
from pathlib import Path

from completer.bench.repo_scoring import CAUSES, RepoRecord
from completer.bench.repo_tasks import BLOCK_KINDS, KINDS, SINGLE_LINE


def _share(records: list[RepoRecord], attr: str) -> float | None:
    return sum(getattr(r, attr) for r in records) / len(records) if records else None


def group_row(records: list[RepoRecord]) -> dict:
    """n, exact match, exact as inserted, edit similarity, latency, and for blocks empty and shorter answers."""
    blocks = [r for r in records if r.kind in BLOCK_KINDS]
    return {"n": len(records), "exact_match": _share(records, "exact"),
            "exact_as_inserted": _share(records, "exact_as_inserted"),
            "edit_similarity": _share(records, "edit_similarity"),
            "mean_latency_s": _share(records, "latency_s"),
            "median_latency_s": statistics.median(r.latency_s for r in records) if records else None,
            "empty_answers": sum(r.empty for r in blocks) if blocks else None,
            "shorter_answers": sum(r.answer_lines < r.expected_lines for r in blocks) if blocks else None}


def summarize(records: list[RepoRecord]) -> tuple[list[dict], dict]:
    """(table rows by language × kind × row, then by kind over all languages; summary per row)."""
    rows_names = list(dict.fromkeys(r.row for r in records))
    languages = list(dict.fromkeys(r.language for r in records))
    table = []
    for language in languages + ["all"]:
        for kind in KINDS:
            for row in rows_names:
                recs = [r for r in records if r.row == row and r.kind == kind and language in ("all", r.language)]
                if recs:
                    table.append({"language": language, "kind": kind, "row": row, **group_row(recs)})
    summary = {}
    for row in rows_names:
        recs = [r for r in records if r.row == row]
        single = group_row([r for r in recs if r.kind == SINGLE_LINE])
        block = group_row([r for r in recs if r.kind in BLOCK_KINDS])
        whole = group_row(recs)
        summary[row] = {
            "single_line_tasks": single["n"], "single_line_exact_match": single["exact_match"],
            "single_line_edit_similarity": single["edit_similarity"],
            "block_tasks": block["n"], "block_exact_match": block["exact_match"],
            "block_exact_as_inserted": block["exact_as_inserted"], "block_edit_similarity": block["edit_similarity"],
            "empty_block_answers": block["empty_answers"], "short_block_answers": block["shorter_answers"],
            **{f"{kind.replace('-', '_')}_exact_match": group_row([r for r in recs if r.kind == kind])["exact_match"]
               for kind in BLOCK_KINDS},
            "mean_latency_s": whole["mean_latency_s"], "median_latency_s": whole["median_latency_s"],
        }
        causes = cause_counts(recs)
        if causes:
            summary[row]["block_answers_by_cause"] = causes
    return table, summary


def cause_counts(records: list[RepoRecord]) -> dict[str, int]:
    """Block answers by miss_cause, in CAUSES order (only causes that occur; {} when none was classified)."""
    found = [r.cause for r in records if r.cause]
    return {cause: found.count(cause) for cause in CAUSES if cause in found}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def causes_markdown(summary: dict) -> str:
    """The block answers of each row that has causes, counted by cause (a Markdown table), or ""."""
    rows = {row: s["block_answers_by_cause"] for row, s in summary.items() if s.get("block_answers_by_cause")}
    if not rows:
        return ""
    lines = ["| row | " + " | ".join(CAUSES) + " |", "|---|" + "---:|" * len(CAUSES)]
    lines += [f"| {row} | " + " | ".join(str(causes.get(c, 0)) for c in CAUSES) + " |" for row, causes in rows.items()]
    return ("Block answers by cause, read from the model's raw text beside the shown answer: *the model ended* "
            "(a stop token right after the answer) and *the model closed the block* (its next line is indented "
            "less, or closes a bracket) are the model's own short answers; *cut while the model went on in the "
            "block* are lines the streaming stop or the cuts dropped.\n\n" + "\n".join(lines) + "\n\n")


def markdown(table: list[dict], meta: dict) -> str:
    lines = ["| language | kind | row | n | exact match | exact as inserted | edit similarity | mean s | median s "
             "| empty | shorter |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table:
        blank = lambda v: "–" if v is None else str(v)  # noqa: E731
        lines.append(f"| {r['language']} | {r['kind']} | {r['row']} | {r['n']} | {_pct(r['exact_match'])} "
                     f"| {_pct(r['exact_as_inserted'])} | {r['edit_similarity']:.3f} | {r['mean_latency_s']:.2f} "
                     f"| {r['median_latency_s']:.2f} | {blank(r['empty_answers'])} | {blank(r['shorter_answers'])} |")
    repos = ", ".join(f"{r['repo']}@{r['commit'][:10]} ({r['language']})" for r in meta["repos"])
    commit = meta.get("completer_commit") or "unknown"
    if meta.get("completer_changes"):
        commit += " plus uncommitted changes to " + ", ".join(meta["completer_changes"])
    return ("# Quality on real repositories: plain FIM vs completer\n\n"
            f"Command: `{meta['command']}`; completer at {commit}.\n\n"
            f"Machine: {meta['machine']}; {meta['vllm']}; target {meta['target']} (greedy, target alone); "
            f"{meta['tasks']} holes ({', '.join(f'{v} {k}' for k, v in meta['counts'].items())} per language) from "
            f"{repos}; context budget {meta['context_tokens']} tokens for both rows; max {meta['max_tokens']} tokens; "
            f"wall time {meta['wall_s']} s.\n\n"
            "Exact match ignores the whitespace around the answer; *exact as inserted* counts leading newlines and the "
            "first line's indentation. *Empty*: block holes answered with nothing; *shorter*: block answers with fewer "
            "lines than the removed block. Latency is the time to the whole answer.\n\n"
            + "\n".join(lines) + "\n\n" + causes_markdown(meta.get("summary", {}))
            + "![exact match by kind](quality-repo.png)\n")


def plot(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table if r["language"] == "all"]
    names = list(dict.fromkeys(r["row"] for r in rows))
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    width = 0.8 / max(len(names), 1)
    for ax, key, label in ((axes[0], "exact_match", "exact match (%)"), (axes[1], "edit_similarity", "edit similarity")):
        scale = 100 if key == "exact_match" else 1
        for i, name in enumerate(names):
            values = [next((r[key] for r in rows if r["kind"] == k and r["row"] == name), 0.0) * scale for k in kinds]
            bars = ax.bar([x + i * width for x in range(len(kinds))], values, width, label=name)
            ax.bar_label(bars, fmt="%.0f" if scale == 100 else "%.2f", fontsize=7)
        ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(kinds))], kinds)
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle("Holes in five public repositories, Qwen2.5-Coder-1.5B")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
