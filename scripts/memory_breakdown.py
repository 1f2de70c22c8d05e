"""Where the memory of a completion goes: proportional set size (PSS) of each process of one
`completer complete` run (the command's own process, vLLM's engine core, its worker), at the moment
their sum peaks, and the largest mappings of the biggest process.

    .venv/bin/python scripts/memory_breakdown.py [--out docs/benchmarks] [-- COMPLETE ARGS...]

PSS counts a page shared by n processes as 1/n of it in each, so the processes' figures add up to
what they hold together (RSS would count shared libraries once per process). Sampled once a second
with psutil. Writes memory-breakdown.{json,md,png}; the JSON's ``summary`` holds
``total_gib`` and ``per_process_gib``.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_ARGS = ["examples/sample.py:6:5"]
KIB_PER_GIB = 1 << 20


def processes(pid: int) -> list:
    """``pid`` and every process below it (psutil.Process objects; none once it has gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def pss_kib(process) -> int:
    """The process's PSS in KiB (0 once it has gone)."""
    try:
        return process.memory_full_info().pss // 1024
    except psutil.Error:
        return 0


def process_name(process) -> str:
    """vLLM names its processes (VLLM::EngineCore, VLLM::Worker); others by their command line."""
    try:
        cmd = " ".join(process.cmdline()).strip()
    except psutil.Error:
        return "?"
    if cmd.startswith("VLLM::"):
        return cmd.split()[0]
    return "completer (front end)" if "completer" in cmd else cmd[:60]


def mappings_kib(process, top: int = 6) -> list[tuple[str, int]]:
    """The ``top`` largest mappings of a process by PSS: [heap], anonymous memory, files."""
    try:
        maps = process.memory_maps(grouped=True)
    except psutil.Error:
        return []
    totals = sorted(((m.path or "[anon]", m.pss // 1024) for m in maps), key=lambda m: -m[1])
    return totals[:top]


def watch(command: list[str]) -> dict:
    """Run ``command``; the per-process PSS at the peak of their sum, and the biggest one's mappings."""
    log = tempfile.TemporaryFile(mode="w+")  # a pipe read only at the end could fill and stall the command
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    peak: list[tuple[object, str, int]] = []
    peak_total = 0
    peak_mappings: list[tuple[str, int]] = []
    while proc.poll() is None:
        sample = [(p, process_name(p), pss_kib(p)) for p in processes(proc.pid)]
        total = sum(kib for _, _, kib in sample)
        if total > peak_total:
            peak_total, peak = total, sample
            biggest = max(sample, key=lambda s: s[2])
            peak_mappings = mappings_kib(biggest[0])
        time.sleep(1.0)
    log.seek(0)
    output = log.read()
    log.close()
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
