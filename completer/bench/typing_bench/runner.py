"""`completer bench typing`: replayed typing sessions through the real LSP server.

Each session opens a real source file with one function body deleted, then types the body
back one character at a time at a steady pace (waiting for the suggestion at a line's start,
after an opening bracket and where a value begins), asking for a completion after every
keystroke and cancelling the previous request, as an editor does. Two servers run one
after the other on the same sessions: one with no reuse at all (no prefix cache, no
type-ahead, cuts that move with every line) and one with completer's full path.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from completer.bench.report import write_results
from completer.bench.typing_bench.client import STATS, ServerClient
from completer.bench.typing_bench.replay import cold_requests, replay
from completer.bench.typing_bench.report import markdown, one_line_figures, plot, summarize
from completer.bench.typing_bench.session import Request, Session, cold_texts, sessions

QUICK_CONTEXT_TOKENS = 512  # --quick's prompt budget at most (as bench load's default)
MODES = {
    "no reuse": {"enable_prefix_caching": False, "type_ahead": False, "cut_snap_lines": 1,
                 "fim_middle_anchor": "cursor", "keystroke_hold_ms": 0},
    "completer": {},
}


def modes(quick: bool) -> dict[str, dict]:
    """The two modes compared, plus (in a full run) what single choices of completer's are worth.

    In prefix-suffix-middle order the suffix follows the FIM prefix, so with a prefix that ends
    at the cursor (plain FIM) the suffix's tokens are computed again on every keystroke; the
    prefix cache keeps only whole KV-cache blocks (vLLM's CPU default is 128 tokens).
    """
    if quick:
        return MODES
    return {**MODES, "completer, no hold while typing": {"keystroke_hold_ms": 0},
            "completer, FIM prefix to the cursor": {"fim_middle_anchor": "cursor"},
            "completer, FIM prefix to the block start": {"fim_middle_anchor": "block"},
            "completer, FIM prefix to the block start only after indentation": {"fim_middle_anchor": "indentation"},
            "completer, 32-token blocks": {"block_size": 32},
            "completer, one prefix cache for both plans": {"bypass_shares_prefix_cache": True},
            "completer, plan ignores the prefix caches": {"warm_cache_plan": False}}



async def _run_mode(name: str, overrides: dict, base: dict, chosen: list[Session], cold: list[tuple[str, int]],
                    chars_per_s: float, max_wait_s: float, log_dir: Path,
                    bar, memory: dict) -> tuple[list[Request], list[dict], int]:
    """One server's run; ``memory`` gets its resident memory after the last session (`completer/stats`)."""
    log_path = log_dir / f"typing-{name.replace(' ', '-')}.log"
    client = ServerClient({**base, **overrides}, log_path)
    bar.set_description(f"bench typing: {name}: loading the engine")
    await client.start()
    try:
        await client.wait_ready()
        bar.set_description(f"bench typing: {name}: cold requests")
        cold_results = await cold_requests(client, cold)
        started = (await client.call(STATS, {})).get("requests_started", 0)
        requests: list[Request] = []
        for i, session in enumerate(chosen):
            bar.set_description(f"bench typing: {name}: {session.path}")
            requests += await replay(client, i, session, chars_per_s, max_wait_s, bar.update)
        stats = await client.call(STATS, {})
        engine_requests = stats.get("requests_started", 0) - started
        memory.update({k: stats.get(k) for k in ("rss_bytes", "rss_gib", "server_rss_bytes", "engine_rss_bytes")})
        return requests, cold_results, engine_requests
    finally:
        await client.close()


def run(num_sessions: int, chars_per_s: float, context_tokens: int, out: Path | None, quick: bool = False,
        max_wait_s: float = 60.0, only: tuple[str, ...] = ()) -> dict:
    from tqdm import tqdm

    from completer.bench.latency import machine_description, vllm_version

    chosen = sessions(num_sessions)
    if quick:  # a couple of lines of one session, short prompts: checks that it works, not speed
        chosen = [Session(s.path, s.text, s.offset, s.body[:12]) for s in chosen[:1]]
        context_tokens = min(context_tokens, QUICK_CONTEXT_TOKENS)
    cold = cold_texts(1 if quick else 5)
    base = {"context_tokens": context_tokens, "max_model_len": max(4096, context_tokens + 512)}
    log_dir = Path(tempfile.mkdtemp(prefix="completer-typing-"))
    results, raw = {}, {}
    started = time.time()
    compared = modes(quick)
    if only:  # a subset, e.g. to rerun one mode; a full comparison runs them all in one run
        exact = [name for name in compared if name in only]
        compared = {name: compared[name] for name in compared if name in exact or
                    (not exact and any(o in name for o in only))}
    total = len(compared) * sum(len(s.body) for s in chosen)
    with tqdm(total=total, unit="key", desc="bench typing") as bar:
        for name, overrides in compared.items():
            memory: dict = {}
            requests, cold_results, engine_requests = asyncio.run(
                _run_mode(name, overrides, base, chosen, cold, chars_per_s, max_wait_s, log_dir, bar, memory))
            results[name] = {**summarize(requests, cold_results, engine_requests), **memory}
            raw[name] = [asdict(r) for r in requests]
    from completer.config import Settings

    result = {"machine": machine_description(), "vllm": vllm_version(), "chars_per_s": chars_per_s,
              "max_wait_s": max_wait_s,
              "fim_order": Settings().fim_order, "fim_middle_anchor": Settings().fim_middle_anchor,
              "keystroke_hold_ms": Settings().keystroke_hold_ms,
              "context_tokens": context_tokens, "sessions": [{"file": s.path, "chars": len(s.body)} for s in chosen],
              "wall_s": round(time.time() - started, 1), "modes": results, "requests": raw, "logs": str(log_dir)}
    if out is not None:
        write_results(out, "typing", result, markdown(result), lambda path: plot(result, path))
    return result



def rescore(folder: Path) -> dict:
    """Add the figures of one_line_figures to a recorded run and write its report again."""
    result = json.loads((folder / "typing.json").read_text())
    for name, mode in result["modes"].items():
        requests = [Request(**r) for r in result["requests"][name]]
        mode.update(one_line_figures(requests, mode["cold_200_token_s"]["p50"]))
    write_results(folder, "typing", result, markdown(result), lambda path: plot(result, path))
    return result

