"""The completer row of `bench quality` again, against the one committed in docs/benchmarks/quality.json:
the same seeded HumanEval-infilling tasks, pass@1 and exact match per set, and the answers that changed.

Half the time of `bench quality` (no plain FIM row): for checking that a change to the context or the
post-processing keeps pass@1. The engine binding must be the committed run's (``--cpu-threads-bind 0-1``
there): in bf16 another core count rounds differently and flips near-ties.

    flock /tmp/completer-engine.lock .venv/bin/python scripts/quality_recheck.py [CPU_THREADS_BIND] [OUT.json]
"""

import asyncio
import json
import sys
import time
from pathlib import Path

from completer.bench import quality
from completer.bench.workloads import default_data_dir
from completer.config import Settings


async def completer_records(settings: Settings, tasks: list, row: str = quality.COMPLETER) -> list:
    """completer's answer (k = 0) to each task through one engine, as records of ``row``; each request
    has its own prefix-cache salt, so every prompt is read cold."""
    from completer.engine import start_engine
    from completer.pipeline import Completer

    engine = await asyncio.to_thread(start_engine, settings)
    try:
        completer = Completer(engine, settings)
        records = []
        for n, task in enumerate(tasks):
            result = await completer.complete(task.prompt + task.suffix, len(task.prompt), "python", k=0,
                                              cache_salt=f"{row}-{n}")
            gen = result.generation
            records.append(quality._record(task, row, result.text, len(gen.token_ids) if gen else 0,
                                           gen.latency_s if gen else 0.0))
            print(f"{n + 1}/{len(tasks)} {task.id}", flush=True)
        return records
    finally:
        engine.shutdown()


def compare(records: list, committed: dict) -> dict:
    """Per set: tasks, pass@1 and exact match now and in the committed run, and the answers that differ."""
    before = {(r["set"], r["task"]): r for r in committed["records"] if r["row"] == quality.COMPLETER}
    out = {}
    for name in dict.fromkeys(r.set for r in records):
        mine = [r for r in records if r.set == name]
        old = [before[(name, r.task)] for r in mine]
        out[name] = {"n": len(mine), "pass_now": sum(r.passed for r in mine), "pass_before": sum(o["passed"] for o in old),
                     "exact_now": sum(r.exact for r in mine), "exact_before": sum(o["exact"] for o in old),
                     "changed": [{"task": r.task, "before": o["completion"], "now": r.completion,
                                  "passed_before": o["passed"], "passed_now": r.passed}
                                 for r, o in zip(mine, old) if r.completion != o["completion"]]}
    return out


if __name__ == "__main__":
    committed = json.loads(Path("docs/benchmarks/quality.json").read_text())
    bind = sys.argv[1] if len(sys.argv) > 1 else committed.get("cpu_threads_bind")
    settings = Settings(speculation_policy="per_request", max_tokens=committed["max_tokens"], dtype="bfloat16",
                        cpu_threads_bind=bind)
    tasks = quality.load(default_data_dir(), committed["n"], committed["seed"])
    started = time.time()
    records = asyncio.run(completer_records(settings, tasks))
    quality.score(tasks, records)
    result = {"cpu_threads_bind": bind, "wall_s": round(time.time() - started), "sets": compare(records, committed)}
    if len(sys.argv) > 2:
        Path(sys.argv[2]).write_text(json.dumps(result, indent=1))
    for name, row in result["sets"].items():
        print(f"{name}: pass@1 {row['pass_now']}/{row['n']} (committed run {row['pass_before']}), "
              f"exact {row['exact_now']}/{row['n']} ({row['exact_before']}), {len(row['changed'])} answers differ")
