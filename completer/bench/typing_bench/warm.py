"""`completer bench typing --warm-prompt`: the first suggestion of a typing session, with and without
the warm prompt, against a cold one-line request on a 200-token document; two servers, one run.

Each session opens a module of the standard library cut just after a function's signature and
docstring, as when a new function is being written at the end of a file. The typist reads the
opened document for ``read_s`` seconds, types the body's indentation and waits for the suggestion:
that is the session's first suggestion. With the warm prompt, the server reads the document's prompt
during the reading pause; without it, the first suggestion reads the whole prompt then.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from completer.bench.report import percentile, write_results
from completer.bench.typing_bench.client import STATS, ServerClient
from completer.bench.typing_bench.replay import cold_requests, replay
from completer.bench.typing_bench.report import mode_table
from completer.bench.typing_bench.session import Request, Session, cold_texts, pause_points, sessions

MODES = {"no warm prompt": {"warm_prompt": False}, "warm prompt": {"warm_prompt": True}}
WARM_STATS = ("warm_prompts_started", "warm_prompts_finished", "warm_prompts_cancelled", "warm_prompt_tokens")
MEMORY_STATS = ("rss_bytes", "rss_gib", "server_rss_bytes", "engine_rss_bytes")


def at_the_end(session: Session) -> Session:
    """``session`` written at the end of its file (nothing after the cursor), typed up to its first
    pause point: the indentation of the body's first line, where the typist waits for a suggestion."""
    first_pause = pause_points(session.body).index(True)
    return replace(session, text=session.text[:session.offset], body=session.body[:first_pause])


def first_suggestion(requests: list[Request]) -> Request | None:
    """The first suggestion the typist waits for: the last keystroke's, as the session stops at its
    first pause point (replay waits for every request to be answered)."""
    if requests:
        requests[-1].waited = True
    return requests[-1] if requests else None


def summarize(firsts: list[Request | None], cold: list[dict]) -> dict:
    """One mode's figures: each session's first suggestion against the cold one-line requests (s)."""
    latencies = [r.latency_s if r is not None and r.outcome == "answered" else float("inf") for r in firsts]
    cold_latencies = [c["latency_s"] for c in cold if c.get("prompt_tokens")]
    first_p50 = percentile(latencies, 50) if latencies else None
    cold_p50 = percentile(cold_latencies, 50) if cold_latencies else None
    return {
        "first_suggestion_s": first_p50,
        "first_suggestion_each_s": latencies,
        "first_prompt_tokens": [r.prompt_tokens if r else None for r in firsts],
        "first_cached_tokens": [r.cached_tokens if r else None for r in firsts],
        "first_kind": [r.kind if r else None for r in firsts],
        "cold_one_line_s": cold_p50,
        "cold_one_line_each_s": cold_latencies,
        "cold_prompt_tokens": [c["prompt_tokens"] for c in cold],
        "ratio": first_p50 / cold_p50 if first_p50 is not None and cold_p50 else None,
    }


async def _run_mode(overrides: dict, base: dict, chosen: list[Session], cold: list[tuple[str, int]],
                    chars_per_s: float, read_s: float, log_path: Path, bar) -> dict:
    client = ServerClient({**base, **overrides}, log_path)
    await client.start()
    try:
        await client.wait_ready()
        cold_results = await cold_requests(client, cold)
        firsts, raw = [], []
        for i, session in enumerate(chosen):
            requests = await replay(client, i, session, chars_per_s, 600.0, bar.update, read_s=read_s)
            firsts.append(first_suggestion(requests))
            raw += [asdict(r) for r in requests]
        stats = await client.call(STATS, {})
        return {**summarize(firsts, cold_results), **{k: stats.get(k) for k in WARM_STATS + MEMORY_STATS},
                "requests": raw}
    finally:
        await client.close()


def run(num_sessions: int, read_s: float, chars_per_s: float, context_tokens: int, out: Path | None,
        num_cold: int = 3, command: str = "") -> dict:
    """Both modes, one after the other, on the same sessions; writes typing-warm-prompt.* to ``out``."""
    from tqdm import tqdm

    from completer.bench.latency import machine_description, vllm_version
    from completer.config import Settings

    chosen = [at_the_end(s) for s in sessions(num_sessions)]
    cold = cold_texts(num_cold)
    base = {"context_tokens": context_tokens, "max_model_len": max(4096, context_tokens + 512)}
    log_dir = Path(tempfile.mkdtemp(prefix="completer-typing-warm-"))
    started, modes = time.time(), {}
    with tqdm(total=len(MODES) * sum(len(s.body) for s in chosen), unit="key", desc="bench typing --warm-prompt") as bar:
        for name, overrides in MODES.items():
            bar.set_description(f"bench typing --warm-prompt: {name}")
            modes[name] = asyncio.run(_run_mode(overrides, base, chosen, cold, chars_per_s, read_s,
                                                log_dir / f"{name.replace(' ', '-')}.log", bar))
    cold_mode, warm_mode = modes["no warm prompt"], modes["warm prompt"]
    result = {
        "summary": {
            "first_suggestion_s": warm_mode["first_suggestion_s"],
            "first_suggestion_no_warm_s": cold_mode["first_suggestion_s"],
            "cold_one_line_s": warm_mode["cold_one_line_s"],
            "cold_one_line_no_warm_s": cold_mode["cold_one_line_s"],
            "ratio": warm_mode["ratio"],
            "ratio_no_warm": cold_mode["ratio"],
            "rss_gib": warm_mode["rss_gib"],
        },
        "command": command, "machine": machine_description(), "vllm": vllm_version(),
        "read_s": read_s, "chars_per_s": chars_per_s, "context_tokens": context_tokens,
        "warm_prompt_pause_ms": Settings().warm_prompt_pause_ms,
        "sessions": [{"file": s.path, "typed": s.body} for s in chosen],
        "wall_s": round(time.time() - started, 1), "modes": modes, "logs": str(log_dir),
    }
    if out is not None:
        write_results(out, "typing-warm-prompt", result, markdown(result), lambda path: plot(result, path))
    return result


def _s(value) -> str:
    return "-" if value is None else "never" if value == float("inf") else f"{value:.2f}"


def markdown(result: dict) -> str:
    modes = result["modes"]
    names = list(modes)
    rows = [
        ("first suggestion of a session, p50 (s)", lambda m: _s(m["first_suggestion_s"])),
        ("... each session (s)", lambda m: ", ".join(_s(v) for v in m["first_suggestion_each_s"])),
        ("... prompt tokens / of them from the prefix cache",
         lambda m: ", ".join(f"{p} / {c}" for p, c in zip(m["first_prompt_tokens"], m["first_cached_tokens"]))),
        ("cold one-line request on a 200-token document, p50 (s)", lambda m: _s(m["cold_one_line_s"])),
        ("first suggestion / cold one-line request", lambda m: "-" if m["ratio"] is None else f"{m['ratio']:.2f}×"),
        ("warm requests: started / finished / cancelled by a real request",
         lambda m: f"{m.get('warm_prompts_started')} / {m.get('warm_prompts_finished')} / "
                   f"{m.get('warm_prompts_cancelled')}"),
        ("resident memory, server + engine processes (GiB)", lambda m: _s(m.get("rss_gib"))),
    ]
    files = ", ".join(s["file"] for s in result["sessions"])
    lines = [
        "# Typing: the first suggestion, with and without the warm prompt", "",
        f"`{result['command']}`. Each session opens a standard-library module cut just after a function's "
        f"signature and docstring ({files}), as when a function is being written at the end of a file; the "
        f"typist reads the document for {result['read_s']:g} s, types the body's indentation at "
        f"{result['chars_per_s']:g} characters per second and waits for the suggestion: the session's first. "
        f"The reference: one-line requests (after `return `) on {len(modes[names[0]]['cold_one_line_each_s'])} "
        f"other modules' 200-token cuts, nothing cached. Two servers one after the other, the same sessions; "
        f"*warm prompt*: the default (warm_prompt_pause_ms {result['warm_prompt_pause_ms']}), *no warm prompt*: "
        f"warm_prompt false. Context budget {result['context_tokens']} tokens. Machine: {result['machine']}; "
        f"{result['vllm']}; {result['wall_s']:.0f} s in all.", ""]
    return "\n".join(lines + mode_table(modes, rows)) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["modes"])
    sessions_n = len(result["sessions"])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        m = result["modes"][name]
        values = [v if v != float("inf") else 0 for v in m["first_suggestion_each_s"]]
        ax.bar([s + i * width for s in range(sessions_n)], values, width, label=f"first suggestion, {name}")
    cold = result["summary"]["cold_one_line_s"]
    if cold:
        ax.axhline(cold, color="black", ls="--", lw=1, label="cold one-line request, p50")
        ax.axhline(2 * cold, color="gray", ls=":", lw=1, label="2 × cold one-line")
    ax.set_xticks([s + width * (len(names) - 1) / 2 for s in range(sessions_n)])
    ax.set_xticklabels([s["file"] for s in result["sessions"]])
    ax.set_ylabel("seconds")
    ax.set_title(f"first suggestion after a {result['read_s']:g} s read of the opened file")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
