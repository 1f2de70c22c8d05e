"""`completer bench load`: N editors typing at once against one shared vLLM server.

A team's setup: one `completer server`, one language server per editor (`completer serve
--engine-url URL`). Each simulated editor replays a typing session of `bench typing` (its own
function body; the previous keystroke's request cancelled, the typist waiting for the suggestion
at a line's start, after an opening bracket and where a value begins) and all N type at once.
Two server configurations run one after the other, each with N = 1, 2, 4, 8 on fresh sessions:
completer's per-request policy (batch_k_limits at its default) and vLLM's stock fixed-k
speculation (the same models and k, vLLM's own scheduler and worker). With ``repeats`` > 1 the
rounds alternate the order (policy, stock, stock, policy, ...), so a machine that slows down or
speeds up during the run favours neither; the figures are pooled over the rounds.

Throughput is what the typists got per second of the scenario (from the first keystroke to the
last answer): suggestions the model answered, and the tokens the server generated (its
``/metrics``, every request included). Typists fast enough to always wait for the server (a high
``chars_per_s``) make it a closed loop whose throughput is the server's capacity. Pure functions
apart from ``run``; the report is load_report.py.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import sysconfig
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from completer.bench.report import write_results
from completer.bench.typing_bench.report import summarize
from completer.bench.typing_bench.session import MODULES, Request, Session, cold_texts, pick_body

EDITORS = (1, 2, 4, 8)
# server settings (over the defaults) and the editors' speculation_policy of each configuration
CONFIGS = {
    "completer": ({}, "per_request"),
    "stock fixed k": ({"speculation_policy": "engine"}, "engine"),
}
POLICY, STOCK = "completer", "stock fixed k"
# /metrics counters read around each scenario (summed over labels: every engine of the server)
COUNTERS = {"generation_tokens": "vllm:generation_tokens_total", "prompt_tokens": "vllm:prompt_tokens_total",
            "cached_prompt_tokens": "vllm:prompt_tokens_cached_total",
            "draft_tokens": "vllm:spec_decode_num_draft_tokens_total",
            "accepted_tokens": "vllm:spec_decode_num_accepted_tokens_total",
            "finished_requests": "vllm:request_success_total"}


# ---------------------------------------------------------------- sessions


def load_sessions(count: int, chars: int, stdlib: Path | None = None) -> list[Session]:
    """``count`` distinct sessions of at most ``chars`` typed characters: the first acceptable body of
    each module of MODULES, then each module's next one after it, and so on (fewer if the modules run out)."""
    stdlib = stdlib or Path(sysconfig.get_paths()["stdlib"])
    sources = {name: (stdlib / name).read_text() for name in MODULES if (stdlib / name).is_file()}
    next_line = dict.fromkeys(sources, 150)  # pick_body's default min_line
    out: list[Session] = []
    while len(out) < count and next_line:
        for name in list(next_line):
            source = sources[name]
            span = pick_body(source, min_line=next_line[name])
            if span is None:
                del next_line[name]
                continue
            start, end = span
            next_line[name] = source.count("\n", 0, end) + 2  # the line after the body's last one
            out.append(Session(name, source[:start] + source[end:], start, source[start:end][:chars]))
            if len(out) == count:
                break
    return out


def scenario_sessions(sessions: list[Session], editors: tuple[int, ...]) -> dict[int, list[Session]]:
    """Each N's own sessions, taken in turn (1 + 2 + 4 + 8 = 15 for EDITORS): no scenario types what
    an earlier one did, so none finds its prompts in the server's prefix cache. ValueError if too few."""
    needed = sum(editors)
    if len(sessions) < needed:
        raise ValueError(f"{needed} sessions needed, {len(sessions)} found")
    out, at = {}, 0
    for n in editors:
        out[n] = sessions[at:at + n]
        at += n
    return out


# ---------------------------------------------------------------- figures


def counters(samples: list[tuple[str, dict, float]]) -> dict[str, float]:
    """COUNTERS' values in parsed /metrics samples (remote_protocol.parse_metrics); 0 when absent."""
    return {key: sum(v for n, _, v in samples if n == name) for key, name in COUNTERS.items()}


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}


def wall_s(requests: list[Request]) -> float:
    """Seconds from the first keystroke to the last answer (or the last keystroke) of a scenario."""
    if not requests:
        return 0.0
    ends = [r.answered_s if r.answered_s is not None else r.sent_s for r in requests]
    return max(ends) - min(r.sent_s for r in requests)


def scenario_figures(requests: list[Request], editors: int, server: dict[str, float],
                     engine_requests: int | None = None, wall: float | None = None) -> dict:
    """One (configuration, N)'s figures: bench typing's (typing_bench.report.summarize, without the
    cold reference) plus the wall time, throughput and the server's counters over the scenario.

    ``server``: COUNTERS' increase over the scenario. Rates are per second of ``wall``, by default
    ``wall_s(requests)``.
    """
    figures = {k: v for k, v in summarize(requests, [], engine_requests).items() if "cold" not in k}
    wall = wall_s(requests) if wall is None else wall
    shown = sum(r.outcome == "answered" and bool(r.text) for r in requests)
    model = sum(r.outcome == "answered" and bool(r.text) and r.source == "model" for r in requests)
    drafted = server.get("draft_tokens", 0.0)

    def rate(x: float) -> float | None:
        return x / wall if wall > 0 else None

    return {**figures, "editors": editors, "wall_s": wall, "suggestions": shown, "model_suggestions": model,
            "suggestions_per_s": rate(shown), "model_suggestions_per_s": rate(model),
            "generated_tokens_per_s": rate(server.get("generation_tokens", 0.0)),
            "server": server, "acceptance_rate": server.get("accepted_tokens", 0.0) / drafted if drafted else None,
            "cached_share": _ratio(server.get("cached_prompt_tokens"), server.get("prompt_tokens"))}


# one scenario: its requests, COUNTERS' increase over it, the requests passed to the server
Measured = tuple[list[Request], dict[str, float], "int | None"]


def pooled_figures(rounds: list[Measured], editors: int) -> dict:
    """The figures of one (configuration, N) over several rounds of the same scenario: every
    round's requests and counters together, rates per second of the rounds' walls added up."""
    requests = [r for measured in rounds for r in measured[0]]
    server: dict[str, float] = {}
    for _, counts, _ in rounds:
        for key, value in counts.items():
            server[key] = server.get(key, 0.0) + value
    engine = [e for _, _, e in rounds]
    return scenario_figures(requests, editors, server, None if None in engine else sum(engine),
                            wall=sum(wall_s(measured[0]) for measured in rounds))


def round_order(round_index: int, names: list[str]) -> list[str]:
    """The configurations' order in a round: as given in even rounds, reversed in odd ones (ABBA...)."""
    return list(names) if round_index % 2 == 0 else list(reversed(names))


def slug(label: str) -> str:
    """A label as a file name's part: 'stock fixed k, round 2 of 2' → 'stock-fixed-k-round-2-of-2'."""
    return re.sub(r"\W+", "-", label).strip("-")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summary(configs: dict[str, dict[str, dict]], rounds: list[dict[str, dict[str, dict]]] | None = None) -> dict:
    """Per N (string keys): each configuration's throughput and p50/p95 time to a model suggestion,
    and the policy's throughput over stock fixed k's (``throughput_ratio``: model suggestions per
    second; ``tokens_ratio``: generated tokens per second). ``configs``: name → N → scenario_figures
    (pooled over the rounds); ``rounds``: the same per round, for each round's own ratio
    (``round_throughput_ratios``) and their spread."""
    out: dict = {"throughput": "model suggestions per second of the scenario, all editors together",
                 "per_editors": {}}
    ns = sorted({int(n) for figures in configs.values() for n in figures})
    round_rows = [summary(r)["per_editors"] for r in rounds] if rounds and len(rounds) > 1 else []
    for n in ns:
        row: dict = {}
        for name, figures in configs.items():
            f = figures.get(str(n)) or figures.get(n)
            if f is None:
                continue
            latency = f["time_to_suggestion_model_s"]
            waited = f["time_to_suggestion_waited_s"]
            row[name] = {"suggestions_per_s": f["suggestions_per_s"],
                         "model_suggestions_per_s": f["model_suggestions_per_s"],
                         "generated_tokens_per_s": f["generated_tokens_per_s"],
                         "p50_s": latency["p50"], "p95_s": latency["p95"],
                         "waited_p50_s": waited["p50"], "waited_p95_s": waited["p95"],
                         "waited_answered": f"{f['waited_answered']}/{f['waited']}",
                         "speculated": f["speculated"], "from_model": f["from_model"], "wall_s": f["wall_s"]}
        if POLICY in row and STOCK in row:
            policy, stock = row[POLICY], row[STOCK]
            row["throughput_ratio"] = _ratio(policy["model_suggestions_per_s"], stock["model_suggestions_per_s"])
            row["tokens_ratio"] = _ratio(policy["generated_tokens_per_s"], stock["generated_tokens_per_s"])
            row["p50_ratio"] = _ratio(policy["p50_s"], stock["p50_s"])
        if round_rows:
            row["round_throughput_ratios"] = [r.get(str(n), {}).get("throughput_ratio") for r in round_rows]
        out["per_editors"][str(n)] = row
    ratios = [r["throughput_ratio"] for r in out["per_editors"].values() if r.get("throughput_ratio") is not None]
    out["min_throughput_ratio"] = min(ratios) if ratios else None
    out["rounds"] = len(rounds) if rounds else 1
    spread = [x for r in out["per_editors"].values() for x in r.get("round_throughput_ratios", []) if x is not None]
    out["round_ratio_range"] = [min(spread), max(spread)] if spread else None
    # the target: under N typists the policy's throughput is never below stock fixed k's
    out["target_met"] = bool(ratios) and len(ratios) == len(ns) and min(ratios) >= 1.0
    return out


# ---------------------------------------------------------------- settings and command


def command_line(editors: tuple[int, ...], chars: int, chars_per_s: float, max_wait_s: float, context_tokens: int,
                 cpu_threads_bind: str | None = None, settings_json: str | None = None, repeats: int = 1) -> str:
    """The `completer bench load` command that runs these figures again."""
    parts = ["completer bench load", *(f"--editors {n}" for n in editors), f"--chars {chars}",
             f"--cps {chars_per_s:g}", f"--max-wait {max_wait_s:g}", f"--context-tokens {context_tokens}",
             *([f"--repeats {repeats}"] if repeats > 1 else [])]
    if settings_json:
        parts.append(f"--settings {shlex.quote(settings_json)}")
    if cpu_threads_bind:
        parts.append(f"--cpu-threads-bind {cpu_threads_bind}")
    return " ".join(parts)


def server_settings(overrides: dict, config_overrides: dict, cpu_threads_bind: str | None = None):
    """One configuration's server Settings: the defaults, then ``overrides`` (--settings, both
    servers), then the configuration's own (CONFIGS). Raises pydantic.ValidationError."""
    from completer.config import Settings

    return Settings(**{**overrides, **config_overrides,
                       **({"cpu_threads_bind": cpu_threads_bind} if cpu_threads_bind else {})})


# ---------------------------------------------------------------- the run


async def _metrics(url: str) -> dict[str, float]:
    import httpx

    from completer.engine.remote_protocol import parse_metrics

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return counters(parse_metrics((await http.get("/metrics")).text))


async def _wait_idle(url: str, timeout_s: float = 120.0) -> None:
    """Until the server runs and queues nothing (aborted requests included)."""
    import httpx

    from completer.engine.remote_protocol import metric_sum, parse_metrics

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        while time.monotonic() < deadline:
            samples = parse_metrics((await http.get("/metrics")).text)
            if not metric_sum(samples, "vllm:num_requests_running") + metric_sum(samples, "vllm:num_requests_waiting"):
                return
            await asyncio.sleep(0.5)


async def _run_config(name: str, url: str, policy: str, editor_settings: dict, plan: dict[int, list[Session]],
                      chars_per_s: float, max_wait_s: float, log_dir: Path, bar) -> dict[str, Measured]:
    """Start max(N) language servers on ``url``, run every N in turn, stop them.
    Returns N → (the scenario's requests, COUNTERS' increase, requests passed to the server)."""
    from completer.bench.typing_bench.client import STATS, ServerClient
    from completer.bench.typing_bench.replay import cold_requests, replay

    clients = [ServerClient({**editor_settings, "speculation_policy": policy}, log_dir / f"{slug(name)}-editor-{i}.log",
                            ("--engine-url", url)) for i in range(max(plan))]
    bar.set_description(f"bench load: {name}: starting {len(clients)} language servers")
    try:
        await asyncio.gather(*(c.start() for c in clients))
        for c in clients:
            await c.wait_ready(timeout=120)  # connecting: no model to load
        await cold_requests(clients[0], cold_texts(1))  # the server's first request, not measured
        measured, index = {}, 0
        for n, sessions in plan.items():
            bar.set_description(f"bench load: {name}: {n} editor{'s' * (n > 1)}")
            await _wait_idle(url)
            before = await _metrics(url)
            started = [(await c.call(STATS, {})).get("requests_started", 0) for c in clients[:n]]
            runs = await asyncio.gather(*(replay(c, index + i, s, chars_per_s, max_wait_s, bar.update)
                                          for i, (c, s) in enumerate(zip(clients, sessions))))
            index += n
            requests = [r for run in runs for r in run]
            ended = [(await c.call(STATS, {})).get("requests_started", 0) for c in clients[:n]]
            engine = sum(e - s for e, s in zip(ended, started))
            await _wait_idle(url)
            measured[str(n)] = (requests, delta(before, await _metrics(url)), engine)
        return measured
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def run(editors: tuple[int, ...] = EDITORS, chars: int = 120, chars_per_s: float = 10.0, max_wait_s: float = 30.0,
        context_tokens: int = 512, out: Path | None = None, cpu_threads_bind: str | None = None,
        command: str = "", overrides: dict | None = None, repeats: int = 1) -> dict:
    """Both configurations, one server at a time, every N of ``editors`` on each, ``repeats`` rounds
    (round_order); writes ``out``/load.{json,md,png} unless ``out`` is None. ``overrides``: settings
    of both servers and of every editor (an editor plans with its server's speculation settings,
    e.g. bypass_shares_prefix_cache decides a bypassed request's cache salt). A configuration
    whose server does not start is left out, its error in the
    result's ``errors``, and the files are then load-failed.{json,md,png}."""
    from tqdm import tqdm

    from completer.bench.latency import machine_description, vllm_version
    from completer.engine.memory import DoesNotFit
    from completer.engine.methods import batch_k_limits
    from completer.engine.models import ModelError
    from completer.engine.interface import EngineError
    from completer.engine.vllm_server import start_server

    plan = scenario_sessions(load_sessions(sum(editors), chars), tuple(editors))
    log_dir = Path(tempfile.mkdtemp(prefix="completer-load-"))
    editor_settings = {**(overrides or {}), "context_tokens": context_tokens}
    started = time.time()
    measured: dict[str, list[dict[str, Measured]]] = {}  # name → per round: N → Measured
    servers, errors, backend = {}, {}, "cpu"
    total = repeats * len(CONFIGS) * sum(len(s.body) for sessions in plan.values() for s in sessions)
    schedule = [(r, name) for r in range(repeats) for name in round_order(r, list(CONFIGS))]
    with tqdm(total=total, unit="key", desc="bench load") as bar:
        for round_index, name in schedule:
            if name in errors:
                continue
            server_overrides, policy = CONFIGS[name]
            settings = server_settings(overrides or {}, server_overrides, cpu_threads_bind)
            label = f"{name}, round {round_index + 1} of {repeats}" if repeats > 1 else name
            bar.set_description(f"bench load: {label}: starting vLLM's server")
            proc = None
            try:
                proc = start_server(settings, log_path=log_dir / f"{slug(label)}-server.log")
                proc.wait_ready()
                args = proc.plan.args if proc.plan else {}
                servers[name] = {key: args.get(key) for key in ("model", "scheduler_cls", "worker_cls",
                                                                "speculative_config", "additional_config",
                                                                "max_num_seqs")}
                backend = proc.plan.capabilities.backend if proc.plan else "cpu"
                measured.setdefault(name, []).append(asyncio.run(_run_config(
                    label, proc.url, policy, editor_settings, plan, chars_per_s, max_wait_s, log_dir, bar)))
            except (EngineError, ModelError, DoesNotFit) as err:  # the other configuration still runs
                errors[name] = str(err)
                bar.write(f"bench load: {name}: {err}")
            finally:
                if proc is not None:
                    proc.stop()
    complete = {name: rounds for name, rounds in measured.items() if len(rounds) == repeats}
    configs = {name: {n: pooled_figures([r[n] for r in rounds], int(n)) for n in rounds[0]}
               for name, rounds in complete.items()}
    per_round = [{name: {n: scenario_figures(m[0], int(n), m[1], m[2]) for n, m in rounds[i].items()}
                  for name, rounds in complete.items()} for i in range(repeats)]
    # requests as dicts: name → N → the scenario's requests, every round's in turn
    raw = {name: {n: [asdict(q) for r in rounds for q in r[n][0]] for n in rounds[0]}
           for name, rounds in complete.items()}
    settings = server_settings(overrides or {}, {})
    result = {"machine": machine_description(), "vllm": vllm_version(), "command": command,
              "chars": chars, "chars_per_s": chars_per_s, "max_wait_s": max_wait_s, "context_tokens": context_tokens,
              "settings": overrides or {}, "k": settings.speculative_config.num_speculative_tokens,
              "batch_k_limits": batch_k_limits(settings.batch_k_limits, backend),
              "servers": servers, "editors": list(editors),
              "sessions": {str(n): [{"file": s.path, "chars": len(s.body)} for s in ss] for n, ss in plan.items()},
              "wall_s": round(time.time() - started, 1), "logs": str(log_dir), "errors": errors,
              "repeats": repeats, "order": [f"{name} (round {r + 1})" for r, name in schedule],
              "configs": configs, "rounds": per_round if repeats > 1 else None}
    result = {"summary": summary(configs, per_round), **result, "requests": raw}
    if out is not None:  # a run with a configuration missing does not replace a whole one
        from completer.bench.load_report import markdown, plot

        write_results(out, "load-failed" if errors else "load", result, markdown(result),
                      lambda path: plot(result, path))
    return result
