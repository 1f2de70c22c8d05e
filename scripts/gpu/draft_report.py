"""The report of one `draft-pipeline.sh` run: acceptance against training time, and the head on held-out code.

    .venv/bin/python scripts/gpu/draft_report.py RUN_DIR OUT_DIR [--started ISO] [--note TEXT]

RUN_DIR is what the pipeline's polling calls bring back (`tar -C /tmp/draft results run/...`):
``run/checkpoints/N/val_metrics.json`` (the trainer's validation after each epoch that improved its
loss; without them, the same points from ``results/completer-draft.json``'s ``curve``), and
``results/eval-*.json`` (`completer draft eval --json`: the head in vLLM at k = 3, 5, 8
against the target alone). ``--started`` is when training began (UTC; default: the first line of
``results/train.log`` that carries a timestamp), the zero of the time axis.

Writes OUT_DIR/draft-curve.{json,md,png}; the JSON's ``summary`` holds ``acceptance_length`` per k on
each held-out set, ``identical`` and the last epoch's validation acceptance length.
"""

from __future__ import annotations

import argparse
import calendar
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from completer.bench.report import write_results  # noqa: E402
from completer.draft.heads import epoch_curve  # noqa: E402

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)")


def _epoch_s(iso: str) -> float:
    return calendar.timegm(time.strptime(iso.replace("T", " ").rstrip("Z"), "%Y-%m-%d %H:%M:%S"))


def training_start(train_log: Path) -> str | None:
    """The first timestamp the trainer logged (speculators' loguru lines), as ISO UTC."""
    if not train_log.exists():
        return None
    for line in train_log.read_text(errors="replace").splitlines():
        m = STAMP.match(line)
        if m:
            return f"{m[1]}T{m[2]}Z"
    return None


def evaluations(results: Path) -> dict[str, dict]:
    """eval-NAME.json files that hold rows, by NAME (e.g. humaneval, heldout-code)."""
    out = {}
    for path in sorted(results.glob("eval-*.json")):
        if path.stem.startswith("eval-k5-epoch"):  # a checkpoint's evaluation, not the head's
            continue
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue  # an evaluation that did not finish leaves an empty file
        if data.get("rows"):
            out[path.stem.removeprefix("eval-")] = data
    return out


def recorded_curve(record: Path) -> list[dict]:
    """The curve `draft train` wrote into ``completer-draft.json`` (the same points as the checkpoints'
    ``val_metrics.json``), for a run whose checkpoints did not come back."""
    try:
        return json.loads(record.read_text()).get("curve") or []
    except (OSError, ValueError):
        return []


def build(run_dir: Path, started: str | None, note: str, machine: str = "") -> dict:
    curve = epoch_curve(run_dir / "run" / "checkpoints") or recorded_curve(run_dir / "results" / "completer-draft.json")
    started = started or training_start(run_dir / "results" / "train.log")
    for point in curve:
        point["minutes"] = round((_epoch_s(point["written"]) - _epoch_s(started)) / 60, 2) if started else None
    evals = evaluations(run_dir / "results")
    summary = {f"{name}_k{row['k']}": round(row["mean_acceptance_length"], 3)
               for name, data in evals.items() for row in data["rows"]}
    summary["identical"] = all(row["identical"] for data in evals.values() for row in data["rows"]) if evals else None
    if curve:
        summary["validation_acceptance_length_last_epoch"] = curve[-1]["acceptance_length"]
        summary["epochs"] = curve[-1]["epoch"] + 1
        summary["training_minutes"] = curve[-1]["minutes"]
    return {"command": "scripts/gpu/draft-pipeline.sh; scripts/gpu/draft_report.py", "machine": machine, "note": note,
            "training_started": started, "summary": summary, "curve": curve, "evaluations": evals}


def markdown(result: dict) -> str:
    lines = ["# An EAGLE-3 head for Qwen2.5-Coder-1.5B: acceptance against training time", "",
             f"Machine: {result['machine']}." if result.get("machine") else "", result["note"], "",
             "## The trainer's validation after each epoch (teacher-forced, on the last 10 % of the examples: "
             "speculators' --train-data-ratio=0.9; their files are among those trained on)", "",
             "| epoch | minutes of training | validation loss | draft 1 | drafts 1–2 | drafts 1–3 | acceptance length (3 drafts) |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for p in result["curve"]:
        acc = [f"{a:.3f}" for a in p["full_acc"][:3]] + ["–"] * (3 - len(p["full_acc"][:3]))
        loss = f"{p['val_loss']:.3f}" if p["val_loss"] is not None else "–"
        lines.append(f"| {p['epoch']} | {p['minutes']} | {loss} | {' | '.join(acc)} | {p['acceptance_length']:.2f} |")
    lines += ["", "\"draft i\": the share of positions where drafts 1..i all equal the target's greedy token.", ""]
    for name, data in result["evaluations"].items():
        given = ", ".join(f"{k} {v}" for k, v in data.get("settings", {}).items()) or "the configured settings"
        lines += [f"## In vLLM, on {name} ({data['cuts']} cursor positions, greedy, against the target alone; {given})", "",
                  "| k | acceptance rate | mean acceptance length | projected speedup | measured speedup | identical |",
                  "|---:|---:|---:|---:|---:|---|"]
        for r in data["rows"]:
            lines.append(f"| {r['k']} | {r['acceptance_rate']:.1%} | {r['mean_acceptance_length']:.2f} | "
                         f"{r['projected_speedup']:.2f}× | {r['measured_speedup']:.2f}× | {r['identical']} |")
        lines.append("")
    return "\n".join(lines)


def draw(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    pts = [p for p in result["curve"] if p["minutes"] is not None]
    ax.plot([p["minutes"] for p in pts], [p["acceptance_length"] for p in pts], "o-",
            label="validation, 3 drafts (teacher-forced)")
    end = pts[-1]["minutes"] if pts else 0
    for name, data in result["evaluations"].items():
        for r in data["rows"]:
            ax.scatter([end], [r["mean_acceptance_length"]], marker="s",
                       label=f"vLLM on {name}, k={r['k']}: {r['mean_acceptance_length']:.2f}")
    ax.axhline(3.5, color="grey", linestyle="--", linewidth=1, label="target at k=5: 3.5")
    ax.set_xlabel("minutes of training (H200)")
    ax.set_ylabel("mean acceptance length")
    ax.set_ylim(1, 4)
    ax.set_xlim(left=0)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--started", help="training start, ISO UTC (default: from results/train.log)")
    ap.add_argument("--note", default="", help="a paragraph on how the run was made")
    ap.add_argument("--machine", default="", help="the GPU machine the run was made on")
    args = ap.parse_args()
    result = build(args.run_dir, args.started, args.note, args.machine)
    write_results(args.out_dir, "draft-curve", result, markdown(result), lambda p: draw(result, p))
    print(json.dumps(result["summary"]))


if __name__ == "__main__":
    main()
