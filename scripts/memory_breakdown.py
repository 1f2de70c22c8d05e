"""Where the memory of a completion goes: proportional set size (PSS) of each process of one
`completer complete` run (the command's own process, vLLM's engine core, its worker), at the moment
their sum peaks, and the largest mappings of the biggest process.

    .venv/bin/python scripts/memory_breakdown.py [--out docs/benchmarks] [-- COMPLETE ARGS...]

PSS counts a page shared by n processes as 1/n of it in each, so the processes' figures add up to
what they hold together (RSS would count shared libraries once per process). Sampled once a second
from /proc (Linux only). Writes memory-breakdown.{json,md,png}; the JSON's ``summary`` holds
``total_gib`` and ``per_process_gib``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_ARGS = ["examples/sample.py:6:5"]
KIB_PER_GIB = 1 << 20


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (children of any of its threads)."""
    out = [pid]
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            out += descendants(int(child))
    return out


def pss_kib(pid: int) -> int:
    """The process's PSS in KiB (0 once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_name(pid: int) -> str:
    """vLLM names its processes (VLLM::EngineCore, VLLM::Worker); others by their command line."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
    except OSError:
        return "?"
    if cmd.startswith("VLLM::"):
        return cmd.split()[0]
    return "completer (front end)" if "completer" in cmd else cmd[:60]


def mappings_kib(pid: int, top: int = 6) -> list[tuple[str, int]]:
    """The ``top`` largest mappings of a process by PSS: [heap], anonymous memory, files."""
    totals: collections.Counter[str] = collections.Counter()
    current = "[anon]"
    try:
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            fields = line.split()
            if fields and "-" in fields[0] and ":" not in fields[0]:
                current = fields[5] if len(fields) > 5 else "[anon]"
            elif line.startswith("Pss:"):
                totals[current] += int(fields[1])
    except OSError:
        return []
    return totals.most_common(top)


def watch(command: list[str]) -> dict:
    """Run ``command``; the per-process PSS at the peak of their sum, and the biggest one's mappings."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak: list[tuple[int, str, int]] = []
    peak_total = 0
    peak_mappings: list[tuple[str, int]] = []
    while proc.poll() is None:
        sample = [(pid, process_name(pid), pss_kib(pid)) for pid in descendants(proc.pid)]
        total = sum(kib for _, _, kib in sample)
        if total > peak_total:
            peak_total, peak = total, sample
            biggest = max(sample, key=lambda s: s[2])
            peak_mappings = mappings_kib(biggest[0])
        time.sleep(1.0)
    output = proc.stdout.read() if proc.stdout else ""
    per_process: dict[str, float] = collections.defaultdict(float)
    for _, name, kib in peak:
        if kib:
            per_process[name] += kib / KIB_PER_GIB
    return {"exit_status": proc.returncode, "output_tail": output[-400:],
            "summary": {"total_gib": round(peak_total / KIB_PER_GIB, 2),
                        "per_process_gib": {k: round(v, 2) for k, v in per_process.items()}},
            "largest_process_mappings_gib": [(name, round(kib / KIB_PER_GIB, 2)) for name, kib in peak_mappings]}


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = ["# Memory of one completion, by process (PSS at the peak of their sum)", "",
             f"Machine: {result['machine']}. Command: `{result['command']}`.", "",
             "| process | GiB |", "|---|---:|"]
    lines += [f"| {name} | {gib:.2f} |" for name, gib in sorted(s["per_process_gib"].items(), key=lambda x: -x[1])]
    lines += [f"| **all** | **{s['total_gib']:.2f}** |", "", "The biggest process's largest mappings:", "",
              "| mapping | GiB |", "|---|---:|"]
    lines += [f"| {name} | {gib:.2f} |" for name, gib in result["largest_process_mappings_gib"]]
    lines += ["", "![memory](memory-breakdown.png)"]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(result["summary"]["per_process_gib"].items(), key=lambda x: x[1])
    fig, ax = plt.subplots(figsize=(7, 2.5))
    ax.barh([n for n, _ in items], [g for _, g in items])
    ax.set_xlabel("PSS at the peak (GiB)")
    ax.set_title(f"one completion: {result['summary']['total_gib']:.2f} GiB in all")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks")
    ap.add_argument("complete_args", nargs="*", help="arguments of `completer complete` (default: the README's example)")
    args = ap.parse_args()
    from completer.bench.latency import machine_description

    command = [str(REPO / ".venv" / "bin" / "completer"), "complete", *(args.complete_args or DEFAULT_ARGS)]
    result = {"command": "completer complete " + " ".join(args.complete_args or DEFAULT_ARGS),
              "machine": machine_description(), **watch(command)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory-breakdown.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "memory-breakdown.md").write_text(markdown(result))
    plot(result, args.out / "memory-breakdown.png")
    print(markdown(result))
    sys.exit(result["exit_status"])


if __name__ == "__main__":
    main()
