"""A real `completer serve` process driven over stdio by pygls' language client, as an editor drives it."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient
from pygls.protocol import JsonRPCResponseMessage, default_converter

from completer import __version__
from completer.documents.positions import position_at

COMPLETE = "completer/complete"
STATS = "completer/stats"


def position(text: str, offset: int) -> types.Position:
    """The LSP position (UTF-16 characters) of a string offset into ``text``."""
    line, character = position_at(text, offset)
    return types.Position(line=line, character=character)


def complete_params(uri: str, text: str, offset: int) -> dict:
    """`completer/complete`'s params: the document and the cursor at ``offset`` (a string offset)."""
    at = position(text, offset)
    return {"textDocument": {"uri": uri}, "position": {"line": at.line, "character": at.character}}


def insertion(uri: str, version: int, text: str, offset: int, typed: str) -> types.DidChangeTextDocumentParams:
    """The incremental change that inserts ``typed`` at ``offset`` of ``text`` (the text before it)."""
    at = position(text, offset)
    return types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=at, end=at), text=typed)])


def plain_results_converter():
    """pygls' converter, but the results of requests it has no type for (completer's own) stay the
    JSON objects they were sent as, where pygls would make namedtuples of them."""
    converter = default_converter()
    converter.register_structure_hook(JsonRPCResponseMessage, lambda message, cls: cls(**message))
    return converter


class ServerClient(LanguageClient):
    """pygls' client over a `completer serve` subprocess whose stderr goes to ``log_path``.

    ``settings`` are the server's initializationOptions; ``serve_args``, more arguments of
    `completer serve` (e.g. ``--engine-url URL``). Errors of the requests made with ``call`` are
    raised as RuntimeError; ``send`` leaves them to the caller (JsonRpcException).
    """

    def __init__(self, settings: dict, log_path: Path, serve_args: Sequence[str] = ()) -> None:
        super().__init__("completer-bench-typing", __version__, converter_factory=plain_results_converter)
        self.settings = settings
        self.log_path = log_path
        self.serve_args = tuple(serve_args)
        self._ids = 0
        for method in (types.WINDOW_SHOW_MESSAGE, types.WINDOW_LOG_MESSAGE):  # read by nobody here
            self.feature(method)(lambda params: None)

    async def start(self) -> None:
        """Start the server and initialize the session (the engine loads in the background)."""
        # through a shell so that the server's stderr (vLLM's log) goes to a file: start_io
        # pipes it, and a pipe nobody reads would block the server once full
        args = "".join(f" {shlex.quote(a)}" for a in self.serve_args)
        cmd = f"exec {shlex.quote(sys.executable)} -m completer serve{args} 2>>{shlex.quote(str(self.log_path))}"
        await self.start_io("/bin/sh", "-c", cmd)
        await asyncio.wait_for(self.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(), process_id=None, root_uri=None,
            initialization_options=self.settings)), 600)
        self.initialized(types.InitializedParams())

    def send(self, method: str, params: dict) -> tuple[int, asyncio.Future]:
        """Send a request; returns its id (for `$/cancelRequest`) and the future of its result."""
        self._ids += 1
        return self._ids, self.protocol.send_request_async(method, params, msg_id=self._ids)

    async def call(self, method: str, params: dict, timeout: float = 600) -> dict:
        """A request's result, waiting at most ``timeout`` seconds; RuntimeError on an error answer."""
        _, answer = self.send(method, params)
        try:
            return await asyncio.wait_for(answer, timeout)
        except JsonRpcException as error:
            raise RuntimeError(f"{method}: {error}") from error

    def cancel(self, msg_id: int) -> None:
        """`$/cancelRequest` for a request made with ``send``; pygls sends it only when asked."""
        self.cancel_request(types.CancelParams(id=msg_id))

    def open(self, uri: str, text: str, version: int = 1) -> None:
        self.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)))

    def close_document(self, uri: str) -> None:
        self.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))

    async def wait_ready(self, timeout: float = 900) -> None:
        """Poll `completer/stats` until the engine is ready; RuntimeError if it fails or takes too long."""
        deadline = time.monotonic() + timeout
        while (stats := await self.call(STATS, {}))["engine"] != "ready":
            if stats["engine"] == "failed" or time.monotonic() > deadline:
                raise RuntimeError(f"the engine did not start: {stats.get('error')} (log: {self.log_path})")
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        """Shut the server down (killed if it does not exit within a minute) and stop the client."""
        try:
            await asyncio.wait_for(self.shutdown_async(None), 60)
            self.exit(None)
            await asyncio.wait_for(self._server.wait(), 60)
        except Exception:
            if self._server.returncode is None:
                self._server.kill()
        # the engine's own child process may hold the server's stdout open a little longer
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stop(), 60)
