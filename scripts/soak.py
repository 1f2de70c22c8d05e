"""Soak benchmark: a real `completer serve` with the real engine under an editor-like load for N
minutes, recording the resident memory of the server and all its child processes.

    flock /tmp/completer-engine.lock .venv/bin/python scripts/soak.py --minutes 60

Typing is simulated on a few of the project's own files: an edit, then a completion request
that supersedes the previous one; every few keystrokes the client waits for an answer (a
pause in typing). Writes docs/benchmarks/soak.csv, soak.png and soak.json. Memory counts as
flat when the mean RSS of the last tenth of the run is within 10 % of the mean over the first
tenth after warm-up.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hardening.lsp import RawServer  # noqa: E402

FILES = ["completer/config.py", "completer/pipeline.py", "completer/server/transport.py",
         "completer/engine/memory.py", "completer/policy/speculation.py"]


def rss_mb(proc: psutil.Process) -> tuple[float, float]:
    """(server RSS, sum of its descendants' RSS) in MiB."""
    own = proc.memory_info().rss
    children = 0
    for child in proc.children(recursive=True):
        try:
            children += child.memory_info().rss
        except psutil.Error:
            pass
    return own / 2**20, children / 2**20


def flat_within(values: list[float], share: float = 0.10) -> tuple[float, float, bool]:
    n = max(1, len(values) // 10)
    first, last = sum(values[:n]) / n, sum(values[-n:]) / n
    return first, last, abs(last - first) <= share * first


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--sample-s", type=float, default=10)
    ap.add_argument("--warmup-s", type=float, default=60, help="excluded from the flatness check")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    server = RawServer()
    server.initialize({})
    t_load = time.monotonic()
    server.wait_engine(timeout=900)
    print(f"engine ready in {time.monotonic() - t_load:.0f} s", flush=True)
    proc = psutil.Process(server.proc.pid)

    docs = {}
    for i, name in enumerate(FILES):
        uri = f"file:///soak/{i}-{Path(name).name}"
        docs[uri] = [(ROOT / name).read_text(), 1]
        server.open(uri, docs[uri][0])

    rows, counts = [], {"requests": 0, "answered": 0, "cancelled": 0, "edits": 0}
    pending: list[int] = []
    start = time.monotonic()
    next_sample = start
    end = start + args.minutes * 60
    while time.monotonic() < end:
        uri = rng.choice(list(docs))
        text, version = docs[uri]
        lines = text.split("\n")
        line = rng.randrange(len(lines))
        col = len(lines[line])
        for _ in range(rng.randint(1, 6)):  # a burst of keystrokes at the end of a line
            ch = rng.choice("abcdefgh_ (.")
            server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version + 1},
                                                     "contentChanges": [{"range": {
                                                         "start": {"line": line, "character": col},
                                                         "end": {"line": line, "character": col}}, "text": ch}]})
            lines[line] += ch
            col += 1
            version += 1
            counts["edits"] += 1
            pending.append(server.complete_async(uri, line, col))
            counts["requests"] += 1
            time.sleep(rng.uniform(0.05, 0.25))
        # restore the line now and then so the files do not drift into noise
        if rng.random() < 0.3:
            original = (ROOT / FILES[list(docs).index(uri)]).read_text()
            server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version + 1},
                                                     "contentChanges": [{"text": original}]})
            version += 1
            docs[uri] = [original, version]
        else:
            docs[uri] = ["\n".join(lines), version]
        for msg_id in pending:  # the pause: every request is answered or cancelled
            response = server.wait_response(msg_id, timeout=300)
            counts["cancelled" if "error" in response else "answered"] += 1
        pending.clear()
        if time.monotonic() >= next_sample:
            own, children = rss_mb(proc)
            t = time.monotonic() - start
            rows.append({"t_s": round(t, 1), "server_rss_mib": round(own, 1), "children_rss_mib": round(children, 1),
                         "total_rss_mib": round(own + children, 1), **counts})
            print(f"{t / 60:6.1f} min  total {own + children:8.1f} MiB  server {own:7.1f}  "
                  f"children {children:7.1f}  {counts}", flush=True)
            next_sample += args.sample_s
    stats = server.stats()
    server.close()

    with open(args.out / "soak.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    steady = [r for r in rows if r["t_s"] >= args.warmup_s] or rows
    totals = [r["total_rss_mib"] for r in steady]
    first, last, flat = flat_within(totals)
    summary = {
        "minutes": round(rows[-1]["t_s"] / 60, 1), "samples": len(rows), "warmup_s": args.warmup_s,
        "rss_total_mib": {"start": totals[0], "end": totals[-1], "max": max(totals), "min": min(totals),
                          "first_tenth_mean": round(first, 1), "last_tenth_mean": round(last, 1)},
        "flat_within_10_percent": flat, **counts,
        "server_stats": {k: stats.get(k) for k in ("requests_started", "requests_finished", "requests_aborted",
                                                    "requests_failed", "superseded", "vllm_unfinished_requests")},
    }
    (args.out / "soak.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(rows, args.out / "soak.png", summary)
    print(json.dumps(summary, indent=2))


def plot(rows: list[dict], path: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t_s"] / 60 for r in rows]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(t, [r["total_rss_mib"] for r in rows], label="server + engine processes")
    ax.plot(t, [r["server_rss_mib"] for r in rows], label="server process")
    ax.plot(t, [r["children_rss_mib"] for r in rows], label="engine processes")
    ax.set_xlabel("minutes")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"completer soak: {summary['minutes']} min, {summary['requests']} requests "
                 f"({summary['cancelled']} superseded); flat within 10 %: {summary['flat_within_10_percent']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
