"""The figures of each mode of `completer bench typing`, its Markdown table and its plot.
Pure except for the plot file."""

from __future__ import annotations

from pathlib import Path

from completer.bench.report import percentile
from completer.bench.typing_bench.session import Request


def summarize(requests: list[Request], cold: list[dict], engine_requests: int | None = None) -> dict:
    """The figures of one mode; ``engine_requests``: how many of ``requests`` the server passed to vLLM."""
    answered = [r for r in requests if r.outcome == "answered"]
    model = [r for r in answered if r.source == "model"]
    typed_ahead = [r for r in answered if r.source == "type_ahead"]
    # cache share on consecutive keystrokes: every model answer but a session's first keystroke's
    # (the requests of the keystrokes before it, even cancelled ones, had read the same context)
    consecutive = [r for r in model if r.keystroke > 0]
    prompt = sum(r.prompt_tokens for r in consecutive)
    cached = sum(r.cached_tokens for r in consecutive)
    # the same, without each session's first model answer: with the hold while typing, no
    # request of the session reached the engine before it, so nothing of its context was read
    firsts: dict[int, Request] = {}
    for r in model:
        firsts.setdefault(r.session, r)
    later = [r for r in consecutive if r is not firsts[r.session]]
    later_prompt = sum(r.prompt_tokens for r in later)

    def stats(values):
        values = [v for v in values if v is not None]

        def finite(q):  # None when the percentile falls on a suggestion that never came
            value = percentile(values, q) if values else None
            return None if value == float("inf") else value
        return {"n": len(values), "p50": finite(50), "p95": finite(95)}

    single = [r for r in model if r.kind == "single_line"]
    waited = [r for r in requests if r.waited]
    # a suggestion the typist waited for in vain counts as infinitely late
    waited_latency = [r.latency_s if r.outcome == "answered" else float("inf") for r in waited]
    waited_single = [r.latency_s for r in waited if r.outcome == "answered" and r.kind == "single_line"]
    cold = [c for c in cold if c.get("prompt_tokens")]  # answered by the model, not left empty
    cold_p50 = percentile([c["latency_s"] for c in cold], 50) if cold else None
    single_p50 = percentile(waited_single, 50) if waited_single else None
    return {**one_line_figures(requests, cold_p50),
        "sent": len(requests),
        "engine_requests": engine_requests,
        "answered": len(answered),
        "cancelled": sum(r.outcome == "cancelled" for r in requests),
        "failed": sum(r.outcome == "failed" for r in requests),
        "from_model": len(model),
        "from_type_ahead": len(typed_ahead),
        "speculated": sum(r.k > 0 for r in model),
        "prompt_tokens_per_request": stats([r.prompt_tokens for r in model]),
        "cached_tokens_per_request": stats([r.cached_tokens for r in model]),
        "cached_share_consecutive": cached / prompt if prompt else None,
        "cached_share_after_first": sum(r.cached_tokens for r in later) / later_prompt if later_prompt else None,
        "time_to_first_token_s": stats([r.first_token_s for r in model]),
        "time_to_suggestion_s": stats([r.latency_s for r in answered if r.text]),
        "time_to_suggestion_model_s": stats([r.latency_s for r in model if r.text]),
        "time_to_single_line_model_s": stats([r.latency_s for r in single if r.text]),
        "on_screen_in_time": sum(r.in_time for r in requests) / len(requests) if requests else 0.0,
        "stale": sum(r.outcome == "answered" and r.answer_version is not None and r.answer_version != r.version
                     for r in requests),
        "cold_200_token_s": stats([c["latency_s"] for c in cold]),
        "waited": len(waited),
        "waited_answered": sum(r.outcome == "answered" for r in waited),
        "time_to_suggestion_waited_s": stats(waited_latency),
        "time_to_single_line_waited_s": stats(waited_single),
        "single_line_waited_over_cold": single_p50 / cold_p50 if single_p50 is not None and cold_p50 else None,
        "cold_prompt_tokens": [c["prompt_tokens"] for c in cold],
    }



def one_line_figures(requests: list[Request], cold_p50: float | None) -> dict:
    """Waited-for suggestions of one line that the model answered, whatever kind the server planned:
    a pause after `(` is planned as a block (the call may span lines) and answered with one line."""
    latencies = [r.latency_s for r in requests
                 if r.waited and r.outcome == "answered" and r.source == "model" and r.text and "\n" not in r.text]
    p50 = percentile(latencies, 50) if latencies else None
    return {"time_to_one_line_waited_s": {"n": len(latencies), "p50": p50,
                                          "p95": percentile(latencies, 95) if latencies else None},
            "one_line_waited_over_cold": p50 / cold_p50 if p50 is not None and cold_p50 else None}



def _fmt(value, unit: str = "s") -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if unit == "%" else f"{value:.2f}"


def _fmt_wait(value, mode: dict) -> str:
    """A percentile of waited-for suggestions; None when it falls on one that never came."""
    return "never" if value is None and mode["waited"] else _fmt(value)


def mode_table(modes: dict, rows: list) -> list[str]:
    """Markdown lines of a table with a column per mode: ``rows`` are (label, cell(mode) -> str)."""
    names = list(modes)
    return (["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
            + [f"| {label} | " + " | ".join(cell(modes[n]) for n in names) + " |" for label, cell in rows])


def markdown(result: dict) -> str:
    modes = result["modes"]
    rows = [
        ("requests sent", lambda m: str(m["sent"])),
        ("answered", lambda m: str(m["answered"])),
        ("cancelled (superseded by the next keystroke)", lambda m: str(m["cancelled"])),
        ("answered from type-ahead (no model call)", lambda m: str(m["from_type_ahead"])),
        ("answered by the model", lambda m: str(m["from_model"])),
        ("... of them speculating (the rest bypassed speculation)", lambda m: str(m.get("speculated", "-"))),
        ("passed to the engine (the rest were answered, or cancelled, before it)",
         lambda m: "-" if m.get("engine_requests") is None else str(m["engine_requests"])),
        ("prompt tokens per model request, p50", lambda m: _fmt(m["prompt_tokens_per_request"]["p50"])),
        ("... of them from the prefix cache, p50", lambda m: _fmt(m["cached_tokens_per_request"]["p50"])),
        ("prompt tokens from the cache on consecutive keystrokes", lambda m: _fmt(m["cached_share_consecutive"], "%")),
        ("... without each session's first model answer", lambda m: _fmt(m.get("cached_share_after_first"), "%")),
        ("time to first token, p50 / p95 (s)", lambda m: f"{_fmt(m['time_to_first_token_s']['p50'])} / "
                                                   f"{_fmt(m['time_to_first_token_s']['p95'])}"),
        ("time to a suggestion, all answers, p50 / p95 (s)", lambda m: f"{_fmt(m['time_to_suggestion_s']['p50'])} / "
                                                                f"{_fmt(m['time_to_suggestion_s']['p95'])}"),
        ("time to a single-line suggestion from the model, p50 / p95 (s)",
         lambda m: f"{_fmt(m['time_to_single_line_model_s']['p50'])} / {_fmt(m['time_to_single_line_model_s']['p95'])}"),
        ("suggestions the typist waited for: answered / waited", lambda m: f"{m['waited_answered']} / {m['waited']}"),
        ("time to a suggestion the typist waited for, p50 / p95 (s)",
         lambda m: f"{_fmt_wait(m['time_to_suggestion_waited_s']['p50'], m)} / "
                   f"{_fmt_wait(m['time_to_suggestion_waited_s']['p95'], m)}"),
        ("... single-line ones, p50 / p95 (s)",
         lambda m: f"{_fmt(m['time_to_single_line_waited_s']['p50'])} / {_fmt(m['time_to_single_line_waited_s']['p95'])}"
                   f" (n = {m['time_to_single_line_waited_s']['n']})"),
        ("... model answers of one line, whatever their planned kind, p50 / p95 (s)",
         lambda m: "-" if "time_to_one_line_waited_s" not in m else
         f"{_fmt(m['time_to_one_line_waited_s']['p50'])} / {_fmt(m['time_to_one_line_waited_s']['p95'])}"
         f" (n = {m['time_to_one_line_waited_s']['n']})"),
        ("cold 200-token prompt, p50 (s)", lambda m: _fmt(m["cold_200_token_s"]["p50"])),
        ("single-line while typing / cold 200-token prompt (p50)",
         lambda m: "-" if m["single_line_waited_over_cold"] is None else f"{m['single_line_waited_over_cold']:.2f}×"),
        ("one-line model answers while typing / cold 200-token prompt (p50)",
         lambda m: "-" if m.get("one_line_waited_over_cold") is None else f"{m['one_line_waited_over_cold']:.2f}×"),
        ("keystrokes with a suggestion on screen before the next one", lambda m: _fmt(m["on_screen_in_time"], "%")),
        ("stale answers (made for another document version)", lambda m: str(m["stale"])),
        ("resident memory, server + engine processes, after the sessions (GiB)",
         lambda m: _fmt(m.get("rss_gib"))),
    ]
    sessions_text = ", ".join(f"{s['file']} ({s['chars']} characters)" for s in result["sessions"])
    lines = ["# Typing: replayed sessions through the LSP server", "",
             f"Function bodies deleted from real files and typed back at {result['chars_per_s']:g} characters per "
             "second, one completion request per keystroke, the previous one cancelled; before each new line's "
             "first character, after each opening bracket and where an assignment's or a return's value begins "
             "the typist waits for the suggestion (at most "
             f"{result.get('max_wait_s', 0):g} s): {sessions_text}. "
             f"Context budget {result['context_tokens']} tokens. Machine: {result['machine']}; {result['vllm']}; "
             f"{result['wall_s']:.0f} s in all. *no reuse*: no prefix cache, no type-ahead, cuts that move "
             "with every line, the FIM prefix ending at the cursor, no hold while typing; *completer*: the defaults "
             f"({result.get('fim_order', 'psm').upper()} order, fim_middle_anchor "
             f"{result.get('fim_middle_anchor', 'cursor')}, prefix cache, type-ahead, cuts in steps of 16 lines, "
             f"{result.get('keystroke_hold_ms', 0)} ms hold while typing).", ""]
    return "\n".join(lines + mode_table(modes, rows)) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["modes"])
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 2.6 * len(names)), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for ax, name in zip(axes, names):
        requests = result["requests"][name]
        t0 = {}
        for r in requests:
            t0.setdefault(r["session"], r["sent_s"])
        offset, x_of = 0.0, {}
        for s in sorted(t0):  # sessions one after another on one time axis
            end = max(r["sent_s"] for r in requests if r["session"] == s) - t0[s]
            x_of[s] = offset
            offset += end + 1.0
        for source, colour, marker in (("model", "tab:blue", "o"), ("type_ahead", "tab:green", "^")):
            pts = [(x_of[r["session"]] + r["sent_s"] - t0[r["session"]], r["answered_s"] - r["sent_s"])
                   for r in requests if r["outcome"] == "answered" and r["source"] == source]
            if pts:
                ax.scatter(*zip(*pts), s=10, c=colour, marker=marker, label=f"answered ({source.replace('_', '-')})")
        cancelled = [(x_of[r["session"]] + r["sent_s"] - t0[r["session"]], r["answered_s"] - r["sent_s"])
                     for r in requests if r["outcome"] == "cancelled" and r["answered_s"] is not None]
        if cancelled:
            ax.scatter(*zip(*cancelled), s=6, c="tab:gray", marker="x", label="cancelled")
        ax.axhline(1.0 / result["chars_per_s"], color="black", ls=":", lw=0.8, label="next keystroke")
        ax.set_yscale("log")
        ax.set_ylabel("seconds")
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("time in the session (s)")
    fig.suptitle("latency of each keystroke's request while typing")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
