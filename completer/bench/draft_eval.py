"""`completer draft eval`: how well candidate drafts predict the target on the user's own code."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from pathlib import Path

from completer.config import Settings, SpeculativeConfig
from completer.context import languages
from completer.context.builder import build_context
from completer.context.prompt import QWEN
from completer.context.tokens import HFTokenCounter, stop_token_ids
from completer.engine import models
from completer.types import GenerationPlan

MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class Cut:
    path: str
    text: str
    offset: int
    language: str


def code_cuts(folder: Path, n: int, seed: int = 0, exclude: frozenset[str] = frozenset()) -> list[Cut]:
    """``n`` cursor positions at the start of a line of code, in files with a known language
    (``exclude``: paths relative to ``folder`` to pass over, e.g. the files a head trained on)."""
    rng = random.Random(seed)
    root = folder.resolve()
    files = []
    for p in sorted(root.rglob("*")):
        resolved = p.resolve()
        # symlinks that lead out of the folder are not followed
        if p.is_file() and root in resolved.parents and languages.detect(None, p.name) != languages.PLAIN_TEXT \
                and 200 < p.stat().st_size < MAX_FILE_BYTES and str(p.relative_to(root)) not in exclude:
            files.append(p)
    cuts: list[Cut] = []
    rng.shuffle(files)
    for i in range(n * 4):
        if len(cuts) >= n or not files:
            break
        path = files[i % len(files)]
        text = path.read_text(encoding="utf-8", errors="replace")
        lines = text.split("\n")
        candidates = [j for j, line in enumerate(lines) if j > 3 and len(line.strip()) > 8]
        if not candidates:
            continue
        j = rng.choice(candidates)
        indent = len(lines[j]) - len(lines[j].lstrip())
        offset = sum(len(x) + 1 for x in lines[:j]) + indent
        cuts.append(Cut(str(path.relative_to(root)), text, offset, languages.detect(None, path.name)))
    return cuts


def projected_speedup(mean_acceptance_length: float, k: int, draft_cost: float) -> float:
    """Tokens per target pass over the cost of a round (one target pass + k draft passes)."""
    return mean_acceptance_length / (1 + k * draft_cost)


async def _evaluate_one(target: str, draft: str, cuts: list[Cut], k: int, max_tokens: int) -> dict:
    from completer.engine import start_engine

    settings = Settings(model=target, speculative_config=SpeculativeConfig(model=draft, num_speculative_tokens=k))
    engine = await asyncio.to_thread(start_engine, settings)
    try:
        counter = HFTokenCounter(engine.target_dir)
        stop_ids = stop_token_ids(counter, QWEN.stop)
        drafted = accepted = steps = tokens = 0
        for cut in cuts:
            ctx = build_context(cut.text, cut.offset, cut.language, counter, QWEN, settings.context_tokens,
                                settings.prefix_share)
            plan = GenerationPlan(max_tokens=max_tokens, stop_token_ids=stop_ids, speculate=True, num_speculative_tokens=k)
            gen = await engine.complete(ctx.prompt, plan, cache_salt=f"draft-eval-{draft}")
            drafted += gen.num_draft_tokens
            accepted += gen.num_accepted_tokens
            steps += gen.num_verify_steps
            tokens += len(gen.token_ids)
        target_bytes = models.read_info(engine.target_dir).weight_bytes
        draft_bytes = models.read_info(engine.draft_dir).weight_bytes
    finally:
        engine.shutdown()
    # decoding on a CPU is bound by memory bandwidth: a step costs in proportion to the weights read
    cost = draft_bytes / target_bytes
    length = 1 + accepted / steps if steps else 1.0
    return {
        "draft": draft,
        "requests": len(cuts),
        "tokens": tokens,
        "acceptance_rate": accepted / drafted if drafted else None,
        "mean_acceptance_length": length,
        "draft_cost": cost,
        "projected_speedup": projected_speedup(length, k, cost),
        "k": k,
    }


def evaluate(target: str, drafts: list[str], folder: Path, n: int, k: int, max_tokens: int = 64) -> list[dict]:
    cuts = code_cuts(folder, n)
    if not cuts:
        raise ValueError(f"no code files with a known language under {folder}")
    return [asyncio.run(_evaluate_one(target, d, cuts, k, max_tokens)) for d in drafts]


# ------------------------------------------------------------------ a trained EAGLE-3 head

HEAD_KS = (3, 5, 8)


def trained_files(head: Path, folder: Path) -> frozenset[str]:
    """Paths (relative to ``folder``) that the head in ``head`` was trained on, from the
    completer-draft.json that `completer draft train` writes beside it; empty when it was trained
    on another folder or elsewhere."""
    from completer.draft.train import MANIFEST

    for candidate in (head / MANIFEST, head.parent / MANIFEST, head.parent.parent / MANIFEST):
        if candidate.exists():
            manifest = json.loads(candidate.read_text())
            if Path(manifest.get("code_dir", "")) == folder.resolve():
                return frozenset(manifest.get("files_trained", []))
            return frozenset()
    return frozenset()


def head_rows(alone: list[dict], runs: dict[int, list[dict]], draft_cost: float) -> list[dict]:
    """One row per k from per-request records ({tokens, latency_s, drafted, accepted, steps,
    token_ids}) of the target alone and of the head at each k, run over the same cuts."""
    alone_s = sum(r["latency_s"] for r in alone)
    rows = []
    for k, records in sorted(runs.items()):
        drafted = sum(r["drafted"] for r in records)
        accepted = sum(r["accepted"] for r in records)
        steps = sum(r["steps"] for r in records)
        length = 1 + accepted / steps if steps else 1.0
        head_s = sum(r["latency_s"] for r in records)
        pairs = [(a["token_ids"], r["token_ids"]) for a, r in zip(alone, records)]
        differing = [first_difference(a, r) for a, r in pairs if a != r]
        rows.append({
            "k": k,
            "requests": len(records),
            "tokens": sum(len(r["token_ids"]) for r in records),
            "acceptance_rate": accepted / drafted if drafted else None,
            "mean_acceptance_length": length,
            "draft_cost": draft_cost,
            "projected_speedup": projected_speedup(length, k, draft_cost),
            "measured_speedup": alone_s / head_s if head_s else None,
            "identical": not differing,
            "identical_requests": len(pairs) - len(differing),
            "first_differences": differing,
        })
    return rows


def first_difference(expected: list[int], got: list[int]) -> int:
    """Index of the first token where ``got`` leaves ``expected`` (the shorter one's length when one
    is the other's beginning): how far two greedy runs agreed."""
    return next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))


async def _run_cuts(settings: Settings, cuts: list[Cut], k: int | None, max_tokens: int) -> list[dict]:
    from completer.engine import start_engine

    engine = await asyncio.to_thread(start_engine, settings)
    try:
        counter = HFTokenCounter(engine.target_dir)
        stop_ids = stop_token_ids(counter, QWEN.stop)
        out = []
        for i, cut in enumerate(cuts):
            ctx = build_context(cut.text, cut.offset, cut.language, counter, QWEN, settings.context_tokens,
                                settings.prefix_share)
            plan = GenerationPlan(max_tokens=max_tokens, stop_token_ids=stop_ids, speculate=k is not None,
                                  num_speculative_tokens=k or 1)
            gen = await engine.complete(ctx.prompt, plan, cache_salt=f"head-eval-{k}-{i}")
            out.append({"token_ids": list(gen.token_ids), "latency_s": gen.latency_s,
                        "drafted": gen.num_draft_tokens, "accepted": gen.num_accepted_tokens,
                        "steps": gen.num_verify_steps})
        return out
    finally:
        engine.shutdown()


def evaluate_head(target: str, head: Path, folder: Path, n: int, ks: tuple[int, ...] = HEAD_KS,
                  max_tokens: int = 64, draft_cost: float | None = None, **settings: object) -> dict:
    """An EAGLE-3 head against the target alone on ``n`` cursor positions of ``folder`` (files the
    head trained on left out), one engine per k. ``draft_cost`` defaults to the policy's prior for
    eagle3; ``settings`` are more Settings fields (e.g. dtype). Returns {rows, cuts, files_left_out,
    settings (those given)}.
    Raises ValueError when the folder has no code left to evaluate on."""
    from completer.policy.speculation import PRIOR_DRAFT_COST

    skip = trained_files(head, folder)
    cuts = code_cuts(folder, n, exclude=skip)
    if not cuts:
        raise ValueError(f"no held-out code files with a known language under {folder}")
    cost = PRIOR_DRAFT_COST["eagle3"] if draft_cost is None else draft_cost
    alone = asyncio.run(_run_cuts(Settings(model=target, speculative_config=SpeculativeConfig(method="none"),
                                           **settings), cuts, None, max_tokens))
    runs = {}
    for k in ks:
        spec = SpeculativeConfig(method="eagle3", model=str(head), num_speculative_tokens=k)
        runs[k] = asyncio.run(_run_cuts(Settings(model=target, speculative_config=spec, **settings), cuts, k,
                                        max_tokens))
    return {"rows": head_rows(alone, runs, cost), "cuts": len(cuts), "files_left_out": len(skip),
            "settings": dict(settings)}
