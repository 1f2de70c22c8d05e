"""`completer bench batch`: does speculation still pay when several requests run at once?

A shared server batches concurrent requests into one engine step. Each speculated request adds
k + 1 tokens to the step the target verifies, so the gain of drafting shrinks as the batch
grows. This benchmark runs groups of 1..N long completions at once under each k (per-request k,
one engine, ``batch_k_limits`` off) and reports throughput against k = 0 at the same batch size;
the smallest k that is best from each batch size on is what ``batch_k_limits`` should say.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from completer.bench.latency import machine_description, rotated, vllm_version
from completer.bench.report import write_results
from completer.bench.workloads import LONG, Task, load_tasks
from completer.config import Settings, SpeculativeConfig
from completer.context.builder import build_context
from completer.context.prompt import QWEN
from completer.context.tokens import HFTokenCounter, stop_token_ids
from completer.types import GenerationPlan

KS = (0, 2, 5)
BATCH_SIZES = (1, 2, 3, 4)


@dataclass
class GroupRecord:
    """One group of ``batch_size`` requests sent at once, all with the same k."""

    batch_size: int
    k: int
    group: int
    wall_s: float  # until the last request of the group finished
    tokens: int
    mean_latency_s: float
    draft_tokens: int
    accepted_tokens: int
    identical: int  # requests whose tokens equal the same request at k = 0


def groups_for(tasks: list[Task], batch_size: int, reps: int) -> list[list[Task]]:
    """``reps`` groups of ``batch_size`` distinct tasks, taken in order and wrapping around."""
    out, i = [], 0
    for _ in range(reps):
        out.append([tasks[(i + j) % len(tasks)] for j in range(batch_size)])
        i += batch_size
    return out


def summarize_groups(records: list[GroupRecord]) -> list[dict]:
    """One row per (batch size, k): throughput and its ratio to k = 0 over the same groups."""
    rows = []
    by_key: dict[tuple[int, int], list[GroupRecord]] = {}
    for r in records:
        by_key.setdefault((r.batch_size, r.k), []).append(r)
    for (b, k), recs in sorted(by_key.items()):
        base = {r.group: r for r in by_key.get((b, 0), [])}
        paired = [r for r in recs if r.group in base]
        wall = sum(r.wall_s for r in recs)
        drafted = sum(r.draft_tokens for r in recs)
        rows.append({
            "batch_size": b,
            "k": k,
            "groups": len(recs),
            "wall_s": wall,
            "tokens_per_s": sum(r.tokens for r in recs) / wall if wall else 0.0,
            "mean_latency_s": sum(r.mean_latency_s for r in recs) / len(recs),
            "acceptance": sum(r.accepted_tokens for r in recs) / drafted if drafted else None,
            "speedup": (sum(base[r.group].wall_s for r in paired) / sum(r.wall_s for r in paired))
            if paired and sum(r.wall_s for r in paired) else None,
            "identical": sum(r.identical for r in recs),
            "requests": b * len(recs),
        })
    return rows


def best_k(rows: list[dict], batch_size: int, min_gain: float) -> int:
    """The k with the highest speedup at this batch size; 0 unless it beats k = 0 by ``min_gain``."""
    candidates = [r for r in rows if r["batch_size"] == batch_size and r["k"] > 0 and r["speedup"]]
    if not candidates:
        return 0
    top = max(candidates, key=lambda r: (r["speedup"], -r["k"]))
    return top["k"] if top["speedup"] >= 1 + min_gain else 0


def suggest_limits(rows: list[dict], max_k: int, min_gain: float = 0.03) -> dict[int, int]:
    """``batch_k_limits`` from the measurements: from each batch size where the best k drops, cap it there."""
    limits: dict[int, int] = {}
    cap = max_k
    for b in sorted({r["batch_size"] for r in rows}):
        k = min(best_k(rows, b, min_gain), cap)
        if k < cap:
            limits[b] = k
            cap = k
    return limits


def markdown(rows: list[dict]) -> str:
    head = ("| requests at once | k | groups | wall s | tokens/s | mean latency s | acceptance "
            "| throughput vs k=0 | greedy-identical |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    body = "".join(
        f"| {r['batch_size']} | {r['k']} | {r['groups']} | {r['wall_s']:.1f} | {r['tokens_per_s']:.1f} "
        f"| {r['mean_latency_s']:.2f} | {'–' if r['acceptance'] is None else format(r['acceptance'], '.1%')} "
        f"| {'–' if r['speedup'] is None else format(r['speedup'], '.2f')}× | {r['identical']}/{r['requests']} |\n"
        for r in rows)
    return head + body


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k in sorted({r["k"] for r in rows}):
        pts = [(r["batch_size"], r["tokens_per_s"]) for r in rows if r["k"] == k]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"k={k}" + (" (target alone)" if k == 0 else ""))
    ax.set_xticks(sorted({r["batch_size"] for r in rows}))
    ax.set_xlabel("long completions running at once")
    ax.set_ylabel("tokens/s (all requests together)")
    ax.set_title("Speculation under concurrent requests")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def _run(settings: Settings, tasks: list[Task], batch_sizes, ks, reps: int, progress) -> list[GroupRecord]:
    from completer.engine import start_engine

    engine = await asyncio.to_thread(start_engine, settings)
    try:
        counter = HFTokenCounter(engine.target_dir)
        stop_ids = stop_token_ids(counter, QWEN.stop)
        prompts = {t.id: build_context(t.prefix + t.suffix, len(t.prefix), t.language, counter, QWEN,
                                       settings.context_tokens, settings.prefix_share).prompt for t in tasks}
        records: list[GroupRecord] = []
        n = 0
        for b in batch_sizes:
            for g, group in enumerate(groups_for(tasks, b, reps)):
                reference: dict[str, list[int]] = {}
                # k = 0 first, since the others compare against it; the rest take turns going first
                order = [0] + rotated([k for k in ks if k], n)
                n += 1
                for k in order:
                    plan = GenerationPlan(max_tokens=settings.max_tokens, stop_token_ids=stop_ids,
                                          speculate=k > 0, num_speculative_tokens=k)
                    started = time.perf_counter()
                    gens = await asyncio.gather(*(
                        engine.complete(prompts[t.id], plan,
                                        cache_salt=f"batch-{b}-{g}-{k}-{i}")
                        for i, t in enumerate(group)))
                    wall = time.perf_counter() - started
                    if k == 0:
                        reference = {t.id: gen.token_ids for t, gen in zip(group, gens)}
                    records.append(GroupRecord(
                        b, k, g, wall, sum(len(x.token_ids) for x in gens),
                        sum(x.latency_s for x in gens) / len(gens), sum(x.num_draft_tokens for x in gens),
                        sum(x.num_accepted_tokens for x in gens),
                        sum(reference.get(t.id) == x.token_ids for t, x in zip(group, gens))))
                    progress(1)
        return records
    finally:
        engine.shutdown()


def run(reps: int, out: Path | None, seed: int = 0, cpu_threads_bind: str | None = None,
        batch_sizes=BATCH_SIZES, ks=KS) -> dict:
    from tqdm import tqdm

    tasks = [t for t in load_tasks(8 * max(batch_sizes) * reps, seed) if t.length_class == LONG]
    settings = Settings(speculation_policy="per_request", max_tokens=128, dtype="bfloat16", cpu_threads_bind=cpu_threads_bind,
                        batch_k_limits={}, max_num_seqs=max(batch_sizes),
                        speculative_config=SpeculativeConfig(num_speculative_tokens=max(ks)))
    started = time.time()
    with tqdm(total=len(batch_sizes) * reps * len(ks), desc="bench batch", unit="group") as bar:
        records = asyncio.run(_run(settings, tasks, batch_sizes, ks, reps, bar.update))
    rows = summarize_groups(records)
    result = {
        "machine": machine_description(),
        "vllm": vllm_version(),
        "settings": {"max_tokens": settings.max_tokens, "dtype": settings.dtype, "cpu_threads_bind": cpu_threads_bind},
        "reps": reps,
        "wall_s": round(time.time() - started, 1),
        "suggested_batch_k_limits": suggest_limits(rows, max(ks)),
        "rows": rows,
        "records": [asdict(r) for r in records],
    }
    if out is not None:
        text = (f"# Speculation under concurrent requests\n\nMachine: {result['machine']}; vLLM {result['vllm']}; "
                f"long completions (up to {settings.max_tokens} tokens), greedy, {reps} groups per batch size, "
                f"the same groups under every k, k = 0 first; wall time {result['wall_s']} s.\n\n"
                f"{markdown(rows)}\nSuggested `batch_k_limits` (a k must beat k = 0 by 3 %): "
                f"`{result['suggested_batch_k_limits']}`\n")
        write_results(out, "batch", result, text, lambda path: plot(rows, path))
    return result
