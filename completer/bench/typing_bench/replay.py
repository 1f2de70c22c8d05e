"""The typist: replays a session one keystroke at a time against the server, as an editor would,
and the cold reference requests the sessions are compared with."""

from __future__ import annotations

import asyncio
import time

from pygls.exceptions import JsonRpcException

from completer.bench.typing_bench.client import COMPLETE, ServerClient, complete_params, insertion
from completer.bench.typing_bench.session import Request, Session, pause_points

CANCELLED = -32800  # JSON-RPC's RequestCancelled


async def cold_requests(client: ServerClient, texts: list[tuple[str, int]]) -> list[dict]:
    """One request each on small documents nothing was cached for: the cold reference.

    ``texts``: (text, cursor offset) pairs. Returns per request the answer's kind, prompt and
    cached tokens, time to first token and the latency seen by the client (seconds).
    """
    out = []
    for n, (text, offset) in enumerate(texts):
        uri = f"file:///bench/cold-{n}.py"
        client.open(uri, text)
        started = time.monotonic()
        result = await client.call(COMPLETE, complete_params(uri, text, offset))
        out.append({**{k: result.get(k) for k in ("kind", "prompt_tokens", "cached_tokens", "first_token_s")},
                    "latency_s": time.monotonic() - started})
        client.close_document(uri)
    return out


async def collect(request: Request, answer: asyncio.Future) -> None:
    """Fill ``request`` in from its answer when it comes: the result, or cancelled / failed."""
    try:
        result = await answer
    except JsonRpcException as error:
        request.answered_s = time.monotonic()
        request.outcome = "cancelled" if error.code == CANCELLED else "failed"
        return
    request.answered_s = time.monotonic()
    request.outcome = "answered"
    request.text = result.get("text", "")
    request.source = result.get("source", "model" if result.get("token_ids") else "")
    request.answer_version = result.get("version")
    request.prompt_tokens = result.get("prompt_tokens", 0)
    request.cached_tokens = result.get("cached_tokens", 0)
    request.first_token_s = result.get("first_token_s")
    request.kind = result.get("kind", "")
    request.k = result.get("k", 0)


async def replay(client: ServerClient, index: int, session: Session, chars_per_s: float, max_wait_s: float,
                 progress, read_s: float = 0.0) -> list[Request]:
    """Type ``session.body`` at the cursor, one request per keystroke; the newest cancels the previous.

    The typist reads the opened document for ``read_s`` seconds first. At the pause points it waits
    for the suggestion (up to ``max_wait_s``) before typing on. ``progress(1)`` is called after each
    keystroke. Returns one Request per keystroke.
    """
    uri = f"file:///bench/session-{index}-{session.path}"
    text, offset, version = session.text, session.offset, 1
    client.open(uri, text, version)
    await asyncio.sleep(read_s)
    requests: list[Request] = []
    waiting: list[asyncio.Task] = []
    previous: tuple[int, Request] | None = None

    next_at = time.monotonic()
    for ch, pause in zip(session.body, pause_points(session.body)):
        if pause and previous is not None:
            previous[1].waited = True
            await asyncio.wait([waiting[-1]], timeout=max_wait_s)
            next_at = max(next_at, time.monotonic())
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        now = time.monotonic()
        next_at = now + 1.0 / chars_per_s
        version += 1
        client.text_document_did_change(insertion(uri, version, text, offset, ch))
        text, offset = text[:offset] + ch + text[offset:], offset + 1
        if previous is not None:
            msg_id, older = previous
            older.next_keystroke_s = now
            if older.outcome == "pending":  # an editor cancels what it no longer needs
                client.cancel(msg_id)
        request = Request(index, len(requests), version, now)
        msg_id, answer = client.send(COMPLETE, complete_params(uri, text, offset))
        waiting.append(asyncio.ensure_future(collect(request, answer)))
        requests.append(request)
        previous = (msg_id, request)
        progress(1)
    await asyncio.wait_for(asyncio.gather(*waiting), timeout=600)
    client.close_document(uri)
    return requests
