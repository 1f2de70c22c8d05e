"""The listeners: LSP over stdio, or over TCP for one client at a time (with an optional token).

Both hand every message to transport.MessageLoop, which frames, bounds and checks it first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any, BinaryIO

from completer.server.transport import (INVALID_REQUEST, MAX_HEADER_LINE, MessageLoop, StdinReader, StreamReader,
                                        error_message, strip_token, token_matches)

log = logging.getLogger(__name__)


class _Writer:
    """pygls' writer interface over a binary stream."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream

    def close(self) -> None:
        self._stream.close()

    def write(self, data: bytes) -> None:
        self._stream.write(data)
        self._stream.flush()


def serve_stdio(server, stdin: BinaryIO, stdout: BinaryIO) -> None:
    server._stop_event = stop = threading.Event()
    server.protocol.set_writer(_Writer(stdout))
    try:
        asyncio.run(MessageLoop(server.protocol).run(StdinReader(stdin), stop))
    except BrokenPipeError:
        log.error("the client closed the connection; shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()


def serve_tcp(server, host: str, port: int, token: str | None) -> None:
    """One client at a time; a connection without the token (when one is set) is refused."""
    server._stop_event = stop = threading.Event()
    busy = asyncio.Lock()

    def check(message: Any) -> bool:
        ok = token_matches(token, message)
        if ok and token and isinstance(message, dict):
            strip_token(message)
        return ok

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:  # a connection that just closed may still be winding down
            await asyncio.wait_for(busy.acquire(), timeout=2.0)
        except asyncio.TimeoutError:
            writer.write(_frame(error_message(None, INVALID_REQUEST, "another client is connected")))
            writer.close()
            return
        try:
            server.protocol.set_writer(writer)
            loop = MessageLoop(server.protocol, first_message=check)
            outcome = await loop.run(StreamReader(reader), stop)
            if outcome == "refused":
                log.warning("refused a TCP connection from %s: no valid token", peer)
                await writer.drain()
                writer.close()
                return
        finally:
            busy.release()
        if loop.counts["messages"]:
            server.shutdown()  # the client went away, as pygls does for TCP (a mere probe does not count)

    async def main() -> None:
        listener = await asyncio.start_server(connection, host, port, limit=MAX_HEADER_LINE)
        server._server = listener
        log.info("serving LSP on %s", ", ".join(str(s.getsockname()) for s in listener.sockets))
        async with listener:
            try:
                await listener.serve_forever()
            except asyncio.CancelledError:
                pass

    try:
        asyncio.run(main())
    except (KeyboardInterrupt, SystemExit):
        pass


def _frame(data: dict) -> bytes:
    body = json.dumps(data).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def is_loopback(host: str) -> bool:
    """Whether a listening address is reachable only from this machine."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
