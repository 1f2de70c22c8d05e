"""`completer bench latency --engine-url URL | --start-server`: what the HTTP path to vLLM's server
costs against the in-process engine, on the same tasks, models, settings and policy.

One engine at a time: an in-process engine and a server at once need two engines' memory, and on
a small CPU each one's worker busy-polls a core after every step, which would slow the other. So
the run goes in phases, in-process / server / server / in-process (ABBA): a drift in the machine's
speed over the run weighs on both alike. Each phase starts with one untimed request; every timed
request has a prefix-cache salt of its own (every prefill is cold). Each phase plans with a fresh
policy, so that, greedy outputs being the same, every phase runs the same plans.

A task's overhead is its mean latency through the server over its mean in-process latency, minus 1;
the summary's ``overhead_single_line`` is the median over the single-line tasks.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from completer.bench.latency import machine_description, vllm_version
from completer.bench.report import percentile, write_results
from completer.bench.workloads import LONG, SHORT, Task, load_tasks
from completer.config import Settings
from completer.context.builder import build_context
from completer.context.prompt import QWEN
from completer.context.tokens import HFTokenCounter, stop_token_ids
from completer.policy.speculation import SpeculationPolicy
from completer.types import CompletionKind, GenerationPlan

IN_PROCESS, SERVER = "in-process", "server"
PHASES = (IN_PROCESS, SERVER, SERVER, IN_PROCESS)
TARGET_OVERHEAD = 0.05  # the issue's target on single-line completions
GIB = 1 << 30


@dataclass
class OverheadRecord:
    """One timed request."""

    config: str  # IN_PROCESS or SERVER
    phase: int  # index into PHASES
    task: str
    length_class: str
    latency_s: float  # wall time of engine.complete, as the pipeline waits for it
    first_token_s: float | None
    tokens: int
    k: int  # the policy's plan (0: bypassed)
    draft_tokens: int
    accepted_tokens: int
    identical: bool | None  # the same token ids as the first in-process phase (None there)


def pick_tasks(n_short: int, n_long: int, seed: int = 0) -> list[Task]:
    """``n_short`` single-line and ``n_long`` long tasks of load_tasks, in its (shuffled) order."""
    pool = load_tasks(2 * max(n_short, n_long, 1), seed)
    shorts = [t for t in pool if t.length_class == SHORT][:n_short]
    longs = [t for t in pool if t.length_class == LONG][:n_long]
    return [t for t in pool if t in shorts or t in longs]


def per_task(records: list[OverheadRecord]) -> list[dict]:
    """Per task: mean latency in-process and through the server, their ratio, whether plans agreed."""
    tasks: dict[str, dict] = {}
    for r in records:
        entry = tasks.setdefault(r.task, {"task": r.task, "class": r.length_class, IN_PROCESS: [], SERVER: [],
                                          "ks": set()})
        entry[r.config].append(r.latency_s)
        entry["ks"].add(r.k)
    rows = []
    for entry in tasks.values():
        if not entry[IN_PROCESS] or not entry[SERVER]:
            continue
        local, remote = statistics.fmean(entry[IN_PROCESS]), statistics.fmean(entry[SERVER])
        rows.append({"task": entry["task"], "class": entry["class"], "in_process_s": local, "server_s": remote,
                     "ratio": remote / local if local else None, "same_plan": len(entry["ks"]) == 1})
    return rows


def class_rows(records: list[OverheadRecord]) -> list[dict]:
    """One row per (class, config): latency percentiles, time to first token, tokens/s, identity."""
    rows = []
    for length_class in (SHORT, LONG):
        for config in (IN_PROCESS, SERVER):
            recs = [r for r in records if r.length_class == length_class and r.config == config]
            if not recs:
                continue
            lat = [r.latency_s for r in recs]
            ttft = [r.first_token_s for r in recs if r.first_token_s is not None]
            rows.append({"class": length_class, "config": config, "n": len(recs), "p50_s": percentile(lat, 50),
                         "p95_s": percentile(lat, 95), "mean_s": statistics.fmean(lat),
                         "mean_ttft_s": statistics.fmean(ttft) if ttft else None,
                         "tokens_per_s": sum(r.tokens for r in recs) / sum(lat) if sum(lat) else 0.0,
                         "identical": sum(r.identical is not False for r in recs)})
    return rows


def summarize(records: list[OverheadRecord]) -> dict:
    """The summary's plain keys: per class the median per-task overhead (server / in-process − 1) and
    the median extra milliseconds, the target met or not, greedy identity, plans the same in every phase."""
    tasks = per_task(records)
    summary: dict = {}
    for length_class, name in ((SHORT, "single_line"), (LONG, "long")):
        rows = [t for t in tasks if t["class"] == length_class and t["ratio"] is not None]
        summary[f"overhead_{name}"] = statistics.median(t["ratio"] for t in rows) - 1 if rows else None
        summary[f"overhead_{name}_ms"] = (statistics.median(1000 * (t["server_s"] - t["in_process_s"]) for t in rows)
                                          if rows else None)
        summary[f"tasks_{name}"] = len(rows)
    overhead = summary["overhead_single_line"]
    summary["target_overhead_single_line"] = TARGET_OVERHEAD
    summary["meets_target"] = overhead is not None and overhead < TARGET_OVERHEAD
    compared = [r for r in records if r.config == SERVER and r.identical is not None]
    summary["greedy_identical"] = sum(r.identical for r in compared)
    summary["greedy_compared"] = len(compared)
    summary["same_plans"] = all(t["same_plan"] for t in tasks)
    # each phase's median on single-line tasks: a drift, or one phase disturbed, shows here
    summary["phase_p50_single_line_s"] = [
        statistics.median(lat) if (lat := [r.latency_s for r in records if r.phase == phase
                                            and r.length_class == SHORT]) else None
        for phase in range(len(PHASES))]
    return summary


def _fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown(result: dict) -> str:
    s = result["summary"]
    head = ("| class | engine | requests | p50 s | p95 s | mean s | TTFT s | tokens/s | greedy-identical |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
    body = "".join(f"| {r['class']} | {r['config']} | {r['n']} | {r['p50_s']:.3f} | {r['p95_s']:.3f} "
                   f"| {r['mean_s']:.3f} | {_fmt(r['mean_ttft_s'], '.3f')} | {r['tokens_per_s']:.1f} "
                   f"| {r['identical']}/{r['n']} |\n" for r in result["rows"])
    rss = result.get("rss_gib") or {}
    return (
        "# The HTTP path's overhead: completer's engine in-process vs through `completer server`\n\n"
        f"Machine: {result['machine']}; {result['vllm']}; target {result['models']['target']}, draft "
        f"{result['models']['draft']}, completer's policy; {s['tasks_single_line']} single-line and "
        f"{s['tasks_long']} long tasks, greedy, one request at a time; phases "
        f"{' / '.join(result['phases'])} ({result['server']}); wall time {result['wall_s']} s.\n\n"
        f"Command: `{result['command']}`\n\n"
        f"**Overhead** (median over tasks of server / in-process − 1): single-line "
        f"**{_fmt(s['overhead_single_line'], '+.1%')}** ({_fmt(s['overhead_single_line_ms'], '+.1f')} ms; "
        f"target < {s['target_overhead_single_line']:.0%}: {'met' if s['meets_target'] else 'not met'}), "
        f"long {_fmt(s['overhead_long'], '+.1%')} ({_fmt(s['overhead_long_ms'], '+.1f')} ms). "
        f"Greedy output through the server identical to in-process: {s['greedy_identical']}/{s['greedy_compared']}; "
        f"the same plans in every phase: {'yes' if s['same_plans'] else 'no'}. Single-line p50 per phase: "
        + ", ".join(f"{name} {_fmt(v, '.3f')} s" for name, v in zip(result["phases"], s["phase_p50_single_line_s"]))
        + f". Resident memory: in-process "
        f"{_fmt(rss.get(IN_PROCESS), '.1f')} GiB, server {_fmt(rss.get(SERVER), '.1f')} GiB.\n\n" + head + body)


def plot(result: dict, path: Path) -> None:
    """Per task: latency through the server against in-process (left), and the ratio (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = result["tasks"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8))
    for length_class, colour in ((SHORT, "tab:blue"), (LONG, "tab:orange")):
        rows = [t for t in tasks if t["class"] == length_class]
        left.scatter([t["in_process_s"] for t in rows], [t["server_s"] for t in rows], s=18, c=colour,
                     label=length_class)
    top = max([t["server_s"] for t in tasks] + [t["in_process_s"] for t in tasks] + [0.1])
    left.plot([0, top], [0, top], color="black", linewidth=0.8, label="equal")
    left.plot([0, top], [0, top * (1 + TARGET_OVERHEAD)], color="grey", linewidth=0.8, linestyle="--",
              label=f"+{TARGET_OVERHEAD:.0%}")
    left.set_xlabel("in-process latency (s, mean of its phases)")
    left.set_ylabel("through the server (s)")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    ordered = sorted(tasks, key=lambda t: (t["class"] != SHORT, t["ratio"] or 0))
    right.bar(range(len(ordered)), [(t["ratio"] or 1) - 1 for t in ordered],
              color=["tab:blue" if t["class"] == SHORT else "tab:orange" for t in ordered])
    right.axhline(TARGET_OVERHEAD, color="grey", linestyle="--", linewidth=0.8)
    right.axhline(0, color="black", linewidth=0.8)
    right.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    right.set_xlabel("task (single-line, then long)")
    right.set_ylabel("server / in-process − 1")
    right.grid(alpha=0.3, axis="y")
    fig.suptitle("The HTTP path's overhead per task")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- running it


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and its descendants (vLLM's engine core is a child process)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


async def run_phase(engine, config: str, phase: int, tasks: list[Task], settings: Settings,
                    reference: dict[str, list[int]], progress) -> list[OverheadRecord]:
    """Every task once through ``engine``, after one untimed request."""
    counter = HFTokenCounter(engine.target_dir) if Path(engine.target_dir).is_dir() else None
    if counter is None:
        raise RuntimeError("the bench needs the target's tokenizer here (the same models on both sides)")
    stop_ids = stop_token_ids(counter, QWEN.stop)
    policy = SpeculationPolicy(settings.model_copy(update={"warm_cache_plan": False}), engine.capabilities,
                               block_size=engine.block_size, count_tokens=counter.count)
    warm_up = GenerationPlan(max_tokens=4, speculate=engine.capabilities.speculates)
    await engine.complete(QWEN.render("def warm_up():\n    ", ""), warm_up, cache_salt=f"overhead-warmup-{phase}")
    records = []
    for n, task in enumerate(tasks):
        ctx = build_context(task.prefix + task.suffix, len(task.prefix), task.language, counter, QWEN,
                            settings.context_tokens, settings.prefix_share)
        short = task.length_class == SHORT
        ctx = replace(ctx, kind=CompletionKind.SINGLE_LINE if short else CompletionKind.MULTI_LINE)
        base = GenerationPlan(max_tokens=settings.max_tokens_single_line if short else settings.max_tokens,
                              stop=("\n",) if short else (), stop_token_ids=stop_ids)
        chosen = policy.plan(ctx, lambda speculate: engine.prefix_cache(speculate))
        plan = replace(base, speculate=chosen.speculate, num_speculative_tokens=chosen.num_speculative_tokens,
                       reason=chosen.reason)
        started = time.perf_counter()
        gen = await engine.complete(ctx.prompt, plan, cache_salt=f"overhead-{phase}-{n}")
        latency = time.perf_counter() - started
        if plan.speculate:
            policy.acceptance.observe(task.language, gen.num_draft_tokens, gen.num_accepted_tokens,
                                      gen.num_verify_steps)
        same = None if task.id not in reference else reference[task.id] == gen.token_ids
        reference.setdefault(task.id, gen.token_ids)
        records.append(OverheadRecord(config, phase, task.id, task.length_class, latency, gen.first_token_s,
                                      len(gen.token_ids), plan.num_speculative_tokens if plan.speculate else 0,
                                      gen.num_draft_tokens, gen.num_accepted_tokens, same))
        progress(1)
    return records


async def engine_phase(engine_settings: Settings, config: str, phase: int, tasks: list[Task], settings: Settings,
                       reference: dict[str, list[int]], progress, pid: int | None) -> tuple[list[OverheadRecord], int]:
    """Start the engine (in this event loop, as the language server does), run the phase, and return
    its records and the resident bytes of ``pid``'s processes at its end (0 for None)."""
    from completer.engine import start_engine

    engine = await asyncio.to_thread(start_engine, engine_settings)
    try:
        records = await run_phase(engine, config, phase, tasks, settings, reference, progress)
        return records, tree_rss(pid) if pid else 0
    finally:
        engine.shutdown()


def run(n_short: int, n_long: int, out: Path | None, *, engine_url: str | None, api_key_file: str | None,
        seed: int = 0, cpu_threads_bind: str | None = None, command: str = "") -> dict:
    """Run the phases (starting a server for them when ``engine_url`` is None) and write
    remote-overhead.{json,md,png} to ``out``. Returns the result (``summary``, ``rows``, ``tasks``, ``records``)."""
    from tqdm import tqdm

    from completer.engine.vllm_server import start_server

    tasks = pick_tasks(n_short, n_long, seed)
    # bypassed requests keep a prefix cache of their own on both paths (a team's server shares it by
    # default, its one-line requests then paying the draft's prefill): only the HTTP path differs
    settings = Settings(speculation_policy="per_request", max_tokens=128, max_tokens_single_line=48,
                        cpu_threads_bind=cpu_threads_bind, bypass_shares_prefix_cache=False)
    remote = settings.model_copy(update={"engine_url": engine_url, "engine_api_key_file": api_key_file})
    reference: dict[str, list[int]] = {}
    records: list[OverheadRecord] = []
    rss: dict[str, float] = {}
    server = None
    started = time.time()
    with tqdm(total=len(tasks) * len(PHASES), desc="bench remote overhead", unit="req") as bar:
        try:
            for phase, config in enumerate(PHASES):
                if config == SERVER and engine_url is None and server is None:
                    server = start_server(settings)
                    server.wait_ready(timeout_s=900)
                    remote = remote.model_copy(update={"engine_url": server.url})
                if config == IN_PROCESS and server is not None:
                    server.stop()  # one engine at a time
                    server = None
                # the server's processes, or this one's with its engine core (unknown for a server elsewhere)
                pid = (server.proc.pid if server else None) if config == SERVER else os.getpid()
                phase_records, used = asyncio.run(engine_phase(remote if config == SERVER else settings, config,
                                                               phase, tasks, settings, reference, bar.update, pid))
                records += phase_records
                if used:
                    rss[config] = max(rss.get(config, 0.0), used / GIB)
        finally:
            if server is not None:
                server.stop()
    result = {
        "summary": summarize(records),
        "command": command,
        "machine": machine_description(),
        "vllm": vllm_version(),
        "models": {"target": settings.model, "draft": settings.speculative_config.model},
        "phases": list(PHASES),
        "server": f"a running server at {engine_url}" if engine_url else "a server this run started",
        "wall_s": round(time.time() - started, 1),
        "rss_gib": {k: round(v, 2) for k, v in rss.items()},
        "rows": class_rows(records),
        "tasks": per_task(records),
        "records": [asdict(r) for r in records],
    }
    if out is not None:
        write_results(out, "remote-overhead", result, markdown(result), lambda path: plot(result, path))
    return result
