"""Summaries, Markdown tables and plots of benchmark records. Pure except for the plot files."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Record:
    """One request of one configuration."""

    config: str
    task: str
    length_class: str
    latency_s: float
    first_token_s: float | None
    tokens: int
    draft_tokens: int
    accepted_tokens: int
    verify_steps: int
    identical: bool | None  # same token ids as the target alone (None for the target itself)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summarize(records: list[Record], baseline: str) -> list[dict]:
    """One row per (config, length class) with the classic speculative-decoding columns."""
    rows = []
    groups: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        groups.setdefault((r.config, r.length_class), []).append(r)
    for (config, length_class), recs in sorted(groups.items()):
        base = {r.task: r for r in groups.get((baseline, length_class), [])}
        paired = [r for r in recs if r.task in base]
        lat = [r.latency_s for r in recs]
        drafted = sum(r.draft_tokens for r in recs)
        accepted = sum(r.accepted_tokens for r in recs)
        steps = sum(r.verify_steps for r in recs)
        total_time = sum(lat)
        rows.append({
            "config": config,
            "class": length_class,
            "n": len(recs),
            "mean_s": statistics.fmean(lat) if lat else 0.0,
            "p50_s": percentile(lat, 50),
            "p95_s": percentile(lat, 95),
            "mean_ttft_s": statistics.fmean([r.first_token_s for r in recs if r.first_token_s is not None] or [0.0]),
            "tokens_per_s": sum(r.tokens for r in recs) / total_time if total_time else 0.0,
            "rejection_rate": (1 - accepted / drafted) if drafted else None,
            "mean_acceptance_length": (1 + accepted / steps) if steps else 1.0,
            "speedup": (sum(base[r.task].latency_s for r in paired) / sum(r.latency_s for r in paired))
            if paired and sum(r.latency_s for r in paired) else None,
            "greedy_identical": sum(1 for r in recs if r.identical is not False),
        })
    return rows


def _fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown(rows: list[dict], baseline: str) -> str:
    head = ("| config | class | n | mean s | p50 s | p95 s | TTFT s | tokens/s | rejection | accept. len "
            f"| speedup vs {baseline} | greedy-identical |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    body = "".join(
        f"| {r['config']} | {r['class']} | {r['n']} | {r['mean_s']:.2f} | {r['p50_s']:.2f} | {r['p95_s']:.2f} "
        f"| {r['mean_ttft_s']:.2f} | {r['tokens_per_s']:.1f} | {_fmt(r['rejection_rate'], '.1%')} "
        f"| {r['mean_acceptance_length']:.2f} | {_fmt(r['speedup'], '.2f')}× | {r['greedy_identical']}/{r['n']} |\n"
        for r in rows
    )
    return head + body


def plot_latency(records: list[Record], path: Path) -> None:
    """Latency against completion length, one series per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for config in sorted({r.config for r in records}):
        recs = [r for r in records if r.config == config]
        ax.scatter([r.tokens for r in recs], [r.latency_s for r in recs], s=14, alpha=0.7, label=config)
    ax.set_xlabel("completion length (tokens)")
    ax.set_ylabel("latency (s)")
    ax.set_title("Latency against completion length")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_speedup(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = sorted({r["class"] for r in rows})
    configs = sorted({r["config"] for r in rows})
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(classes), 1)
    for j, cls in enumerate(classes):
        values = [next((r["speedup"] or 0 for r in rows if r["config"] == c and r["class"] == cls), 0) for c in configs]
        ax.bar([i + j * width for i in range(len(configs))], values, width, label=cls)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([i + width * (len(classes) - 1) / 2 for i in range(len(configs))], configs, rotation=20, fontsize=8)
    ax.set_ylabel("speedup vs target alone (summed latency)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(out: Path, name: str, result: dict, markdown_text: str, draw) -> None:
    """``name``.json, ``name``.md (the plot linked at its end) and ``name``.png, drawn by ``draw(path)``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    (out / f"{name}.md").write_text(markdown_text + f"\n![{name}]({name}.png)\n")
    draw(out / f"{name}.png")
