"""`completer bench typing`: replayed typing sessions through the real LSP server.

Each session opens a real source file with one function body deleted, then types the body
back one character at a time at a steady pace (waiting for the suggestion at a line's start,
after an opening bracket and where a value begins), asking for a completion after every
keystroke and cancelling the previous request, as an editor does. Two servers run one
after the other on the same sessions: one with no reuse at all (no prefix cache, no
type-ahead, cuts that move with every line) and one with completer's full path.

The files are the Python standard library's own modules: real code, large enough for a
2,000-token context, and present wherever completer runs.
"""

from __future__ import annotations

import ast
import asyncio
import itertools
import json
import shlex
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from completer.bench.report import percentile, write_results

# modules whose functions are retyped; the first function of each that fits is used
MODULES = ("textwrap.py", "shlex.py", "fractions.py", "calendar.py", "ftplib.py", "configparser.py")
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


CANCELLED = -32800


@dataclass(frozen=True)
class Session:
    path: str  # the module, relative to the standard library
    text: str  # the file with the body deleted
    offset: int  # where the body goes (the cursor at the start)
    body: str  # what is typed


@dataclass
class Request:
    session: int
    keystroke: int
    version: int
    sent_s: float
    next_keystroke_s: float | None = None
    answered_s: float | None = None
    outcome: str = "pending"  # answered | cancelled | failed
    source: str = ""  # model | type_ahead
    text: str = ""
    answer_version: int | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    first_token_s: float | None = None
    kind: str = ""
    k: int = 0  # the answer's speculation (0: bypassed)
    waited: bool = False  # the typist stopped after this keystroke to read its suggestion

    @property
    def latency_s(self) -> float | None:
        return None if self.answered_s is None else self.answered_s - self.sent_s

    @property
    def in_time(self) -> bool:
        """A suggestion was on screen before the next keystroke."""
        if self.outcome != "answered" or not self.text or self.answered_s is None:
            return False
        return self.next_keystroke_s is None or self.answered_s <= self.next_keystroke_s


def line_starts(lines: list[str]) -> list[int]:
    """The offset of each line's start, and of the end of the last one."""
    return [0, *itertools.accumulate(map(len, lines))]


def pick_body(source: str, min_chars: int = 60, max_chars: int = 200, min_line: int = 150,
              min_after: int = 60) -> tuple[int, int] | None:
    """(start, end) offsets of the first function body that is short, deep in the file and not last.

    The body starts after the signature's line (and its docstring, which stays), so that the
    typist writes code, not documentation.
    """
    lines = source.splitlines(keepends=True)
    starts = line_starts(lines)
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.lineno < min_line:
            continue
        body = node.body[1:] if ast.get_docstring(node) and len(node.body) > 1 else node.body
        first, last = body[0].lineno, node.end_lineno
        if body[0].lineno == node.lineno or len(lines) - last < min_after:
            continue
        start, end = starts[first - 1], starts[last]
        if min_chars <= end - start <= max_chars:
            return start, end
    return None


def sessions(count: int) -> list[Session]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for name in MODULES:
        path = stdlib / name
        if not path.is_file():
            continue
        source = path.read_text()
        span = pick_body(source)
        if span is None:
            continue
        start, end = span
        out.append(Session(name, source[:start] + source[end:], start, source[start:end]))
        if len(out) == count:
            break
    return out


# the typist stops after these to read the suggestion: an opening bracket (where editors offer
# the arguments), and the start of an expression that fills the rest of the line
PAUSE_AFTER = ("(", "[", "{", "= ", "return ")


def pause_points(body: str) -> list[bool]:
    """Whether the typist stops to read a suggestion before typing ``body[n]``.

    People stop before the first non-blank character of a new line (they think at line
    starts), after an opening bracket and where the right-hand side of an assignment or a
    return value begins (one-line suggestions); elsewhere they type on at a steady pace.
    The body starts at a line's start, so its first line counts as a new one.
    """
    out, at_line_start = [], True
    for n, ch in enumerate(body):
        starts_line = at_line_start and not ch.isspace()
        out.append(n > 0 and (starts_line or body[:n].endswith(PAUSE_AFTER)))
        if starts_line:
            at_line_start = False
        if ch == "\n":
            at_line_start = True
    return out


def position_of(text: str, offset: int) -> tuple[int, int]:
    """LSP (line, UTF-16 character) of an offset, for ASCII-only lines (the stdlib's are)."""
    line = text.count("\n", 0, offset)
    return line, offset - (text.rfind("\n", 0, offset) + 1)


class Client:
    """A minimal LSP client over a real `completer serve` process (stdio)."""

    def __init__(self, settings: dict, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self._ids = 0
        self._pending: dict[int, asyncio.Future] = {}

    async def start(self) -> None:
        cmd = f"exec {shlex.quote(sys.executable)} -m completer serve 2>>{shlex.quote(str(self.log_path))}"
        self.proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", cmd, stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE, limit=1 << 24)
        self._reader = asyncio.ensure_future(self._read())
        await self.request("initialize", {"processId": None, "rootUri": None, "capabilities": {},
                                          "initializationOptions": self.settings})
        self.notify("initialized", {})

    def _send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    async def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = 0
            while (line := await out.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not line:
                return
            message = json.loads(await out.readexactly(length))
            future = self._pending.pop(message.get("id"), None) if "method" not in message else None
            if future is not None and not future.done():
                future.set_result(message)
            elif "method" in message and "id" in message:  # a request from the server: accept it
                self._send({"id": message["id"], "result": None})

    def send_request(self, method: str, params: dict) -> tuple[int, asyncio.Future]:
        self._ids += 1
        future = asyncio.get_running_loop().create_future()
        self._pending[self._ids] = future
        self._send({"id": self._ids, "method": method, "params": params})
        return self._ids, future

    async def request(self, method: str, params: dict, timeout: float = 600) -> dict:
        _, future = self.send_request(method, params)
        message = await asyncio.wait_for(future, timeout)
        if "error" in message:
            raise RuntimeError(f"{method}: {message['error']}")
        return message["result"]

    def notify(self, method: str, params: dict) -> None:
        self._send({"method": method, "params": params})

    async def wait_ready(self, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while (stats := await self.request("completer/stats", {}))["engine"] != "ready":
            if stats["engine"] == "failed" or time.monotonic() > deadline:
                raise RuntimeError(f"the engine did not start: {stats.get('error')} (log: {self.log_path})")
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        try:
            await self.request("shutdown", None, timeout=60)
            self.notify("exit", None)
            await asyncio.wait_for(self.proc.wait(), 60)
        except Exception:
            self.proc.kill()
        self._reader.cancel()


def complete_params(uri: str, text: str, offset: int) -> dict:
    line, character = position_of(text, offset)
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}


async def cold_requests(client: Client, texts: list[tuple[str, int]]) -> list[dict]:
    """One request each on small documents nothing was cached for: the cold reference."""
    out = []
    for n, (text, offset) in enumerate(texts):
        uri = f"file:///bench/cold-{n}.py"
        client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                                 "text": text}})
        started = time.monotonic()
        result = await client.request("completer/complete", complete_params(uri, text, offset))
        out.append({**{k: result.get(k) for k in ("kind", "prompt_tokens", "cached_tokens", "first_token_s")},
                    "latency_s": time.monotonic() - started})
        client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    return out


async def replay(client: Client, index: int, session: Session, chars_per_s: float, max_wait_s: float,
                 progress) -> list[Request]:
    """Type ``session.body`` at the cursor, one request per keystroke; the newest cancels the previous.

    At the pause points the typist waits for the suggestion (up to ``max_wait_s``) before typing on.
    """
    uri = f"file:///bench/session-{index}-{session.path}"
    text, offset, version = session.text, session.offset, 1
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": version,
                                                             "text": text}})
    requests: list[Request] = []
    waiting: list[asyncio.Task] = []
    previous: tuple[int, Request] | None = None

    async def collect(request: Request, future: asyncio.Future) -> None:
        message = await future
        request.answered_s = time.monotonic()
        if "error" in message:
            request.outcome = "cancelled" if message["error"]["code"] == CANCELLED else "failed"
            return
        result = message["result"]
        request.outcome = "answered"
        request.text = result.get("text", "")
        request.source = result.get("source", "model" if result.get("token_ids") else "")
        request.answer_version = result.get("version")
        request.prompt_tokens = result.get("prompt_tokens", 0)
        request.cached_tokens = result.get("cached_tokens", 0)
        request.first_token_s = result.get("first_token_s")
        request.kind = result.get("kind", "")
        request.k = result.get("k", 0)

    next_at = time.monotonic()
    for ch, pause in zip(session.body, pause_points(session.body)):
        if pause and previous is not None:
            previous[1].waited = True
            await asyncio.wait([waiting[-1]], timeout=max_wait_s)
            next_at = max(next_at, time.monotonic())
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        now = time.monotonic()
        next_at = now + 1.0 / chars_per_s
        line, character = position_of(text, offset)
        version += 1
        client.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": {"start": {"line": line, "character": character},
                                          "end": {"line": line, "character": character}}, "text": ch}]})
        text, offset = text[:offset] + ch + text[offset:], offset + 1
        if previous is not None:
            msg_id, older = previous
            older.next_keystroke_s = now
            if older.outcome == "pending":  # an editor cancels what it no longer needs
                client.notify("$/cancelRequest", {"id": msg_id})
        request = Request(index, len(requests), version, now)
        msg_id, future = client.send_request("completer/complete", complete_params(uri, text, offset))
        waiting.append(asyncio.ensure_future(collect(request, future)))
        requests.append(request)
        previous = (msg_id, request)
        progress(1)
    await asyncio.wait_for(asyncio.gather(*waiting), timeout=600)
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    return requests


def cold_cut(source: str, head_chars: int = 800) -> tuple[str, int] | None:
    """A small document cut from ``source``: about ``head_chars`` characters (some 200 tokens) of
    code, a ``return`` line with the cursor just after ``return `` (a one-line suggestion), and
    the five lines after it."""
    lines = source.splitlines(keepends=True)
    starts = line_starts(lines)
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("return ") or starts[i] < head_chars:
            continue
        first = i
        while first > 0 and starts[i] - starts[first] < head_chars:
            first -= 1
        head = "".join(lines[first:i])
        cut = len(line) - len(line.lstrip()) + len("return ")
        return head + line + "".join(lines[i + 1:i + 6]), len(head) + cut
    return None


def cold_texts(count: int) -> list[tuple[str, int]]:
    """Small documents from modules the sessions do not type in: the cold reference."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for name in ("heapq.py", "bisect.py", "colorsys.py", "glob.py", "fnmatch.py", "base64.py", "copy.py"):
        path = stdlib / name
        cut = cold_cut(path.read_text()) if path.is_file() else None
        if cut is not None:
            out.append(cut)
        if len(out) == count:
            break
    return out


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


async def _run_mode(name: str, overrides: dict, base: dict, chosen: list[Session], cold: list[tuple[str, int]],
                    chars_per_s: float, max_wait_s: float, log_dir: Path,
                    bar) -> tuple[list[Request], list[dict], int]:
    log_path = log_dir / f"typing-{name.replace(' ', '-')}.log"
    client = Client({**base, **overrides}, log_path)
    bar.set_description(f"bench typing: {name}: loading the engine")
    await client.start()
    try:
        await client.wait_ready()
        bar.set_description(f"bench typing: {name}: cold requests")
        cold_results = await cold_requests(client, cold)
        started = (await client.request("completer/stats", {})).get("requests_started", 0)
        requests: list[Request] = []
        for i, session in enumerate(chosen):
            bar.set_description(f"bench typing: {name}: {session.path}")
            requests += await replay(client, i, session, chars_per_s, max_wait_s, bar.update)
        engine_requests = (await client.request("completer/stats", {})).get("requests_started", 0) - started
        return requests, cold_results, engine_requests
    finally:
        await client.close()


def run(num_sessions: int, chars_per_s: float, context_tokens: int, out: Path | None, quick: bool = False,
        max_wait_s: float = 60.0, only: tuple[str, ...] = ()) -> dict:
    from tqdm import tqdm

    from completer.bench.latency import machine_description, vllm_version

    chosen = sessions(num_sessions)
    if quick:  # a couple of lines of one session: checks that it works, not speed
        chosen = [Session(s.path, s.text, s.offset, s.body[:12]) for s in chosen[:1]]
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
            requests, cold_results, engine_requests = asyncio.run(
                _run_mode(name, overrides, base, chosen, cold, chars_per_s, max_wait_s, log_dir, bar))
            results[name] = summarize(requests, cold_results, engine_requests)
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


def one_line_figures(requests: list[Request], cold_p50: float | None) -> dict:
    """Waited-for suggestions of one line that the model answered, whatever kind the server planned:
    a pause after `(` is planned as a block (the call may span lines) and answered with one line."""
    latencies = [r.latency_s for r in requests
                 if r.waited and r.outcome == "answered" and r.source == "model" and r.text and "\n" not in r.text]
    p50 = percentile(latencies, 50) if latencies else None
    return {"time_to_one_line_waited_s": {"n": len(latencies), "p50": p50,
                                          "p95": percentile(latencies, 95) if latencies else None},
            "one_line_waited_over_cold": p50 / cold_p50 if p50 is not None and cold_p50 else None}


def rescore(folder: Path) -> dict:
    """Add the figures of one_line_figures to a recorded run and write its report again."""
    result = json.loads((folder / "typing.json").read_text())
    for name, mode in result["modes"].items():
        requests = [Request(**r) for r in result["requests"][name]]
        mode.update(one_line_figures(requests, mode["cold_200_token_s"]["p50"]))
    write_results(folder, "typing", result, markdown(result), lambda path: plot(result, path))
    return result


def _fmt(value, unit: str = "s") -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if unit == "%" else f"{value:.2f}"


def _fmt_wait(value, mode: dict) -> str:
    """A percentile of waited-for suggestions; None when it falls on one that never came."""
    return "never" if value is None and mode["waited"] else _fmt(value)


def markdown(result: dict) -> str:
    modes = result["modes"]
    names = list(modes)
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
             f"{result.get('keystroke_hold_ms', 0)} ms hold while typing).", "",
             "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(modes[n]) for n in names) + " |")
    return "\n".join(lines) + "\n"


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
