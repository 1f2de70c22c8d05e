"""LSP message framing over stdio or TCP, bounded and answering what pygls would drop.

pygls' own reader drops malformed JSON silently, reads headers and bodies of any size, and
answers nothing to a message that is not a JSON-RPC object. This reader answers each of those
with the JSON-RPC error the spec names (parse error → -32700 with id null, invalid request →
-32600), discards messages over MAX_MESSAGE_BYTES without holding them in memory, and hands
everything else to the pygls protocol unchanged. The TCP listener refuses a connection whose
first message does not carry the configured token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import queue
import re
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, BinaryIO, Callable

log = logging.getLogger(__name__)

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
UNAUTHORIZED = -32001  # a server-defined code: the TCP connection did not present the token

# a 4 Mi-character document escaped as \uXXXX is 24 MiB of JSON; anything bigger is refused
MAX_MESSAGE_BYTES = 32 << 20
MAX_HEADER_LINE = 8 << 10
MAX_HEADER_LINES = 32
DISCARD_CHUNK = 1 << 20

_CONTENT_LENGTH = re.compile(rb"content-length\s*:\s*(\d{1,12})\s*", re.IGNORECASE)


# ---------------------------------------------------------------- pure parts


def content_length(line: bytes) -> int | None:
    """The length a `Content-Length` header line announces, else None (another header or junk)."""
    match = _CONTENT_LENGTH.fullmatch(line.rstrip(b"\r\n"))
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Problem:
    """Why a parsed message cannot go to the protocol, and whether to answer it."""

    msg_id: int | str | None
    code: int
    message: str
    answer: bool = True


def _valid_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def envelope_problem(obj: Any) -> Problem | None:
    """What is wrong with a JSON-RPC 2.0 envelope, or None when it is well formed."""
    if not isinstance(obj, dict):
        kind = "an array (batches are not part of LSP)" if isinstance(obj, list) else type(obj).__name__
        return Problem(None, INVALID_REQUEST, f"a message must be a JSON object, got {kind}")
    has_id = "id" in obj
    msg_id = obj.get("id")
    if has_id and msg_id is not None and not _valid_id(msg_id):
        return Problem(None, INVALID_REQUEST, f"id must be an integer or a string, got {type(msg_id).__name__}")
    answer_id = msg_id if has_id else None
    if obj.get("jsonrpc") != "2.0":
        return Problem(answer_id, INVALID_REQUEST, 'jsonrpc must be "2.0"')
    if "method" in obj:
        method = obj["method"]
        is_request = has_id
        if not isinstance(method, str) or not method:
            return Problem(answer_id, INVALID_REQUEST, "method must be a non-empty string")
        if is_request and msg_id is None:
            return Problem(None, INVALID_REQUEST, "a request's id must not be null")
        if "result" in obj or "error" in obj:  # pygls would take it for a response and never answer
            return Problem(answer_id, INVALID_REQUEST, "a message with a method has no result or error",
                           answer=is_request)
        params = obj.get("params")
        if "params" in obj and params is not None and not isinstance(params, (dict, list)):
            # a notification is never answered, not even with an error
            return Problem(answer_id, INVALID_PARAMS, "params must be an object or an array", answer=is_request)
        return None
    if not has_id or ("result" not in obj and "error" not in obj):
        return Problem(answer_id, INVALID_REQUEST, "neither a request, a notification nor a response")
    return None


def error_message(msg_id: int | str | None, code: int, message: str) -> dict:
    return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}


def token_matches(expected: str | None, message: Any) -> bool:
    """Whether the first message of a TCP connection carries the token (no token configured: yes)."""
    if not expected:
        return True
    if not isinstance(message, dict) or message.get("method") != "initialize":
        return False
    params = message.get("params")
    options = params.get("initializationOptions") if isinstance(params, dict) else None
    token = options.get("token") if isinstance(options, dict) else None
    return isinstance(token, str) and hmac.compare_digest(token.encode(), expected.encode())


def strip_token(message: dict) -> None:
    """The token is not a setting: drop it before the server reads initializationOptions."""
    options = (message.get("params") or {}).get("initializationOptions")
    if isinstance(options, dict):
        options.pop("token", None)


# ---------------------------------------------------------------- readers


class StdinReader:
    """Blocking reads of a binary stream in one daemon thread, so the event loop stays free
    and a read still pending at exit never holds the process (an executor's would)."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._work, daemon=True, name="lsp-stdin").start()

    def _work(self) -> None:
        while True:
            fn, arg, future, loop = self._jobs.get()
            try:
                result, error = fn(arg), None
            except Exception as err:
                result, error = b"", err
            loop.call_soon_threadsafe(_settle, future, result, error)

    def _call(self, fn, arg) -> Awaitable[bytes]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((fn, arg, future, loop))
        return future

    def read_line(self, limit: int) -> Awaitable[bytes]:
        return self._call(self._stream.readline, limit)

    def read(self, n: int) -> Awaitable[bytes]:
        return self._call(self._stream.read, n)


def _settle(future: asyncio.Future, result: bytes, error: Exception | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class StreamReader:
    """An asyncio StreamReader (TCP) with the same two calls."""

    def __init__(self, reader: asyncio.StreamReader):
        self._reader = reader

    async def read_line(self, limit: int) -> bytes:
        try:
            return await self._reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as err:
            return await self._reader.readexactly(max(1, min(err.consumed, limit)))
        except asyncio.IncompleteReadError as err:
            return err.partial

    async def read(self, n: int) -> bytes:
        try:
            return await self._reader.readexactly(n)
        except asyncio.IncompleteReadError as err:
            return err.partial


# ---------------------------------------------------------------- the loop


class _EOF(Exception):
    pass


async def _read_headers(reader) -> tuple[int | None, str | None]:
    """(content length, None) or (length if one was given, why the header block was refused); _EOF at the end."""
    length: int | None = None
    problem: str | None = None
    lines = 0
    while True:
        line = await reader.read_line(MAX_HEADER_LINE)
        if not line:
            raise _EOF
        if not line.endswith(b"\n"):
            lines += 1
            problem = problem or f"a header line is longer than {MAX_HEADER_LINE} bytes"
            while line and not line.endswith(b"\n"):  # skip the rest of it
                line = await reader.read_line(MAX_HEADER_LINE)
            continue
        if line.strip() == b"":
            if lines == 0:
                continue  # stray blank lines between messages
            if problem is None and length is None:
                problem = "the header has no Content-Length"
            return length, problem
        lines += 1
        if lines > MAX_HEADER_LINES:
            problem = problem or f"more than {MAX_HEADER_LINES} header lines"
        n = content_length(line)
        if n is not None:
            length = n


async def _discard(reader, n: int) -> bool:
    while n > 0:
        chunk = await reader.read(min(n, DISCARD_CHUNK))
        if not chunk:
            return False
        n -= len(chunk)
    return True


class MessageLoop:
    """Reads framed messages and feeds pygls' protocol; answers what it cannot take."""

    def __init__(self, protocol, *, first_message: Callable[[Any], bool] | None = None):
        self.protocol = protocol
        self.first_message = first_message  # False → refuse the connection (TCP token)
        self.counts = {"messages": 0, "refused": 0}

    def send(self, data: dict) -> None:
        self.protocol._send_data(data)

    async def run(self, reader, stop: threading.Event | None = None) -> str:
        """Serve until EOF (returns "eof") or a refused first message (returns "refused")."""
        first = True
        while stop is None or not stop.is_set():
            try:
                length, problem = await _read_headers(reader)
                if problem is not None:
                    # skip a body it announced, so that the next message is read from its start
                    if length is not None and not await _discard(reader, length):
                        return "eof"
                    self._refuse(None, INVALID_REQUEST, problem)
                    continue
                if length > MAX_MESSAGE_BYTES:
                    if not await _discard(reader, length):
                        return "eof"
                    self._refuse(None, INVALID_REQUEST,
                                 f"message of {length} bytes refused (at most {MAX_MESSAGE_BYTES})")
                    continue
                body = await reader.read(length)
                if len(body) < length:
                    return "eof"
            except _EOF:
                return "eof"
            obj = self._parse(body)
            if obj is _UNPARSED:
                continue
            if first and self.first_message is not None and not self.first_message(obj):
                msg_id = obj.get("id") if isinstance(obj, dict) and _valid_id(obj.get("id")) else None
                self._refuse(msg_id, UNAUTHORIZED, "this server requires a token: send it as "
                                                   "initializationOptions.token in the first message, initialize")
                return "refused"
            first = False
            self.dispatch(obj)
        return "stopped"

    def _refuse(self, msg_id, code: int, message: str) -> None:
        self.counts["refused"] += 1
        log.warning("refused a message: %s", message)
        self.send(error_message(msg_id, code, message))

    def _parse(self, body: bytes) -> Any:
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            # the reason names a position, never the content (it may be document text)
            self._refuse(None, PARSE_ERROR, f"parse error: {type(err).__name__} at byte "
                                            f"{getattr(err, 'pos', getattr(err, 'start', '?'))}")
            return _UNPARSED
        except RecursionError:
            self._refuse(None, PARSE_ERROR, "parse error: nested too deeply")
            return _UNPARSED

    def dispatch(self, obj: Any) -> None:
        """Validate the envelope, then hand the message to pygls."""
        self.counts["messages"] += 1
        problem = envelope_problem(obj)
        if problem is not None:
            if problem.answer:
                self._refuse(problem.msg_id, problem.code, problem.message)
            else:
                log.warning("ignored a notification: %s", problem.message)
            return
        is_request = "method" in obj and "id" in obj
        method = obj.get("method")
        try:
            message = self.protocol.structure_message(obj)
            if is_request and getattr(message, "id", None) is None and message is not None \
                    and hasattr(message, "method"):
                # a notification method sent with an id: pygls would run it and never answer
                self._refuse(obj["id"], INVALID_REQUEST, f"{method} is a notification: send it without an id")
                return
            self.protocol.handle_message(message)
        except Exception as err:
            # no params in the log: they may hold document text
            log.error("could not handle %s: %s", method or "a response", type(err).__name__)
            if is_request:
                self.send(error_message(obj["id"], INTERNAL_ERROR, f"internal error: {type(err).__name__}"))


_UNPARSED = object()
