"""`completer bench load`'s report: the result of load.run as Markdown tables and a plot."""

from __future__ import annotations

import json
from pathlib import Path

from completer.bench.load import POLICY, STOCK


def _f(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def table(result: dict) -> str:
    """The summary as a Markdown table: one row per N, both configurations side by side."""
    names = [POLICY, STOCK]
    rounds = result["summary"].get("rounds", 1) > 1
    head = ("| editors | " + " | ".join(f"{n}: suggestions/s | {n}: tokens/s | {n}: p50 / p95 s" for n in names)
            + " | throughput ratio | tokens/s ratio |" + (" each round's throughput ratio |" if rounds else "")
            + "\n|---:|" + "---:|---:|---:|" * len(names) + "---:|---:|" + ("---|" if rounds else "") + "\n")
    lines = []
    for n, row in result["summary"]["per_editors"].items():
        cells = []
        for name in names:
            c = row.get(name)
            cells += ["-", "-", "-"] if c is None else [
                _f(c["model_suggestions_per_s"]), _f(c["generated_tokens_per_s"], ".1f"),
                f"{_f(c['p50_s'])} / {_f(c['p95_s'])}"]
        each = ", ".join(f"{_f(x, '.3f')}×" for x in row.get("round_throughput_ratios", []))
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {_f(row.get('throughput_ratio'))}× "
                     f"| {_f(row.get('tokens_ratio'))}× |" + (f" {each} |" if rounds else ""))
    return head + "\n".join(lines) + "\n"


def details(result: dict) -> str:
    """More figures per configuration and N: what was sent, answered, waited for, speculated."""
    rows = [("wall time (s)", lambda f: _f(f["wall_s"], ".0f")),
            ("requests sent / answered / cancelled", lambda f: f"{f['sent']} / {f['answered']} / {f['cancelled']}"),
            ("passed to the server", lambda f: "-" if f.get("engine_requests") is None else str(f["engine_requests"])),
            ("answered by the model (of them speculating)", lambda f: f"{f['from_model']} ({f['speculated']})"),
            ("answered from type-ahead", lambda f: str(f["from_type_ahead"])),
            ("suggestions shown per s (model + type-ahead)", lambda f: _f(f["suggestions_per_s"])),
            ("waited-for suggestions answered / waited", lambda f: f"{f['waited_answered']} / {f['waited']}"),
            ("time to a waited-for suggestion, p50 / p95 (s)",
             lambda f: f"{_f(f['time_to_suggestion_waited_s']['p50'])} / "
                       f"{_f(f['time_to_suggestion_waited_s']['p95'])}"),
            ("draft acceptance (server)", lambda f: _f(f["acceptance_rate"], ".0%")),
            ("prompt tokens from the prefix cache (server)", lambda f: _f(f.get("cached_share"), ".0%")),
            ("failed / stale answers", lambda f: f"{f['failed']} / {f['stale']}")]
    columns = [(name, n) for name in result["configs"] for n in result["configs"][name]]
    head = "| | " + " | ".join(f"{name}, N={n}" for name, n in columns) + " |\n|---|" + "---:|" * len(columns) + "\n"
    return head + "".join(f"| {label} | " + " | ".join(cell(result["configs"][name][n]) for name, n in columns)
                          + " |\n" for label, cell in rows)


def markdown(result: dict) -> str:
    s = result["summary"]
    met = "met" if s["target_met"] else "not met"
    return "\n".join([
        "# Load: N editors typing at once against one vLLM server", "",
        f"One vLLM server (vLLM's OpenAI-compatible server on this machine), N language servers "
        f"(`completer serve --engine-url URL`, one per editor), each replaying its own typing session at "
        f"{result['chars_per_s']:g} characters per second ({result['chars']} characters of a function body from "
        f"the standard library; the typist waits at most {result['max_wait_s']:g} s for a suggestion at a line's "
        f"start, after an opening bracket and where a value begins; context budget {result['context_tokens']} "
        f"tokens). Every N types sessions no other N typed. *{POLICY}*: `completer server` (per-request "
        f"speculation, batch_k_limits {result['batch_k_limits']}); *{STOCK}*: vLLM's own server with "
        f"`--speculative-config` alone (the same models, k = {result['k']} on every request, vLLM's scheduler "
        f"and worker). Machine: {result['machine']}; {result['vllm']}; {result['wall_s']:.0f} s in all.", "",
        *([f"{result['repeats']} rounds, each server started afresh for each, in this order: "
           f"{'; '.join(result['order'])}. Figures are pooled over the rounds (answers and tokens of all "
           f"rounds over their walls added up).", ""] if result.get("repeats", 1) > 1 else []),
        f"Command: `{result['command']}`", "",
        *([f"Settings over the defaults (both servers and every editor): `{json.dumps(result['settings'])}`.", ""]
          if result.get("settings") else []),
        *([f"**{name} did not run:** {error}" for name, error in result["errors"].items()] + [""]
          if result.get("errors") else []),
        "Suggestions/s: suggestions the model answered, all editors together, per second of the scenario (first "
        "keystroke to last answer); tokens/s: tokens the server generated (its /metrics, cancelled requests "
        "included); p50 / p95: time from the keystroke to the model's suggestion. Ratios: "
        f"{POLICY} over {STOCK}.", "",
        table(result),
        f"Target (the policy's throughput never below stock fixed k's at the same N): **{met}** (lowest "
        f"throughput ratio {_f(s['min_throughput_ratio'])}×"
        + (f"; single rounds ranged {_f(s['round_ratio_range'][0], '.3f')}–{_f(s['round_ratio_range'][1], '.3f')}×"
           if s.get("round_ratio_range") else "") + ").", "",
        "## Per configuration and N", "",
        details(result)])


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = result["summary"]["per_editors"]
    ns = [int(n) for n in per]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for name, colour in ((POLICY, "tab:blue"), (STOCK, "tab:orange")):
        rows = [per[str(n)].get(name) for n in ns]
        xs = [n for n, r in zip(ns, rows) if r]
        rows = [r for r in rows if r]
        axes[0].plot(xs, [r["model_suggestions_per_s"] or 0 for r in rows], "o-", c=colour, label=name)
        axes[1].plot(xs, [r["generated_tokens_per_s"] or 0 for r in rows], "o-", c=colour, label=name)
        for key, style in (("p50_s", "o-"), ("p95_s", "x--")):
            pts = [(x, r[key]) for x, r in zip(xs, rows) if r[key] is not None]
            if pts:
                axes[2].plot(*zip(*pts), style, c=colour, label=f"{name} {key[:3]}")
    for ax, title in zip(axes, ("model suggestions / s", "generated tokens / s (server)",
                                "time to a model suggestion (s)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("editors typing at once")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("N editors against one vLLM server: completer's policy vs stock fixed-k speculation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
