"""Benchmark tasks: HumanEval-infilling and cuts from real source files."""

from __future__ import annotations

import gzip
import json
import os
import random
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

SHORT, LONG = "short", "long"


@dataclass(frozen=True)
class Task:
    id: str
    length_class: str  # SHORT (single-line) or LONG (multi-line / left-to-right code)
    prefix: str
    suffix: str
    language: str = "python"


DATA_ENV = "COMPLETER_BENCH_DATA"


def default_data_dir() -> Path | None:
    """HumanEval-infilling: $COMPLETER_BENCH_DATA, next to the checkout (shared/data), else the tests' sample."""
    here = Path(__file__).resolve()
    named = [Path(os.environ[DATA_ENV])] if os.environ.get(DATA_ENV) else []
    for candidate in (*named, here.parents[3] / "shared" / "data" / "humaneval-infilling",
                      Path.cwd().parent / "shared" / "data" / "humaneval-infilling",
                      here.parents[2] / "tests" / "data" / "humaneval-infilling"):  # 12 tasks a set
        if candidate.is_dir():
            return candidate
    return None


def humaneval(data_dir: Path, name: str, length_class: str, n: int, rng: random.Random) -> list[Task]:
    path = data_dir / f"HumanEval-{name}.jsonl.gz"
    rows = [json.loads(line) for line in gzip.open(path, "rt")]
    picked = rng.sample(rows, min(n, len(rows)))
    return [Task(f"{name}/{r['task_id']}", length_class, r["prompt"], r["suffix"]) for r in picked]


def file_cuts(n: int, rng: random.Random, root: Path | None = None) -> list[Task]:
    """Left-to-right code: a real module cut at the start of a function body, nothing after it."""
    root = root or Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if 2_000 < p.stat().st_size < 200_000)
    tasks: list[Task] = []
    rng.shuffle(files)
    for path in files:
        if len(tasks) >= n:
            break
        lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        starts = [i for i, line in enumerate(lines[:-1]) if line.lstrip().startswith("def ")
                  and line.rstrip().endswith(":") and i > 20]
        if not starts:
            continue
        i = rng.choice(starts)
        prefix = "\n".join(lines[: i + 1]) + "\n"
        tasks.append(Task(f"file/{path.name}:{i + 2}", LONG, prefix, ""))
    return tasks


def load_tasks(n: int, seed: int = 0, data_dir: Path | None = None) -> list[Task]:
    """``n`` tasks: half single-line FIM, a quarter multi-line FIM, a quarter real-file cuts."""
    rng = random.Random(seed)
    data_dir = data_dir or default_data_dir()
    n_short = n // 2
    n_cuts = n // 4
    n_multi = n - n_short - n_cuts
    tasks: list[Task] = []
    if data_dir is not None:
        tasks += humaneval(data_dir, "SingleLineInfilling", SHORT, n_short, rng)
        tasks += humaneval(data_dir, "MultiLineInfilling", LONG, n_multi, rng)
    else:  # a run without its short tasks must say so, not report long ones only
        print(f"completer: HumanEval-infilling not found (set {DATA_ENV} to its folder): "
              "every task is a long file cut, none is single-line", file=sys.stderr)
    tasks += file_cuts(n - len(tasks), rng)
    rng.shuffle(tasks)
    return tasks
