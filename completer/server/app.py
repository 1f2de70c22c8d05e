"""The language server: every LSP method registered here, each handler a few lines.

The work is done below: `engine_host` (the engine's lifecycle), `requests` (the newest request per
document wins, hold, type-ahead, the per-request record), `documents` (the one store of texts and trees).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from types import SimpleNamespace
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from completer import __version__, logs
from completer.config import Settings, parse_settings, reload_causes
from completer.context import languages
from completer.documents import DocumentStore
from completer.documents.store import uri_key
from completer.engine.memory import resident_memory
from completer.server.engine_host import EngineHost
from completer.server.protocol import CompleterProtocol
from completer.server.requests import CompletionService
from completer.server.warmup import PromptWarmer, cursor_after

log = logging.getLogger(__name__)

STATS_REQUEST = "completer/stats"
COMPLETE_REQUEST = "completer/complete"  # the completion with its measurements (clients, tests)
DOCUMENT_TEXT_REQUEST = "completer/documentText"  # the server's copy of a document (sync checks)
ACCEPTED_NOTIFICATION = "completer/accepted"  # the client shows: the user took a suggestion
DISMISSED_NOTIFICATION = "completer/dismissed"  # ... or dismissed it
ACCEPTED_COMMAND = "completer.accepted"  # on each item: clients run it (or notify) when the user takes it
METRICS_LOG_INTERVAL_S = 30.0


class CompleterServer(LanguageServer):
    """Holds the settings, the documents, the engine host and the request service."""

    def __init__(self) -> None:
        super().__init__("completer", __version__, protocol_cls=CompleterProtocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.settings = Settings()
        self.documents = DocumentStore()  # text + syntax tree per open document
        self.host = EngineHost(self)
        self.service = CompletionService(self)
        self.warmer = PromptWarmer(self)  # fills the prefix cache while the engine is idle

    def show(self, kind: types.MessageType, message: str) -> None:
        try:
            self.window_show_message(types.ShowMessageParams(type=kind, message=message))
        except Exception as err:  # no transport yet or any more: the log has it
            log.debug("showMessage failed: %s", err)

    def apply_settings(self, data: Any) -> None:
        new, warnings = parse_settings(data, self.settings)
        for w in warnings:
            log.warning(w)
            self.show(types.MessageType.Warning, f"completer: {w}")
        causes = reload_causes(self.settings, new)
        self.settings = new
        # completer's own records; unset: the root logger's level (info, or debug with --verbose)
        logs.set_own_level(new.log_level)
        self.service.shown.clear()  # suggestions made under the old settings
        if self.host.completer is not None:
            self.host.completer.settings = new
        if causes and self.host.state != "idle":
            log.info("engine settings changed (%s); reloading the engine", ", ".join(causes))
            self.host.start()

    def position_encoding(self) -> str:
        """The encoding negotiated at initialize (UTF-16 unless the client offered better)."""
        enc = getattr(self.workspace, "position_encoding", None) or types.PositionEncodingKind.Utf16
        return {"utf-8": "utf-8", "utf-32": "utf-32"}.get(str(getattr(enc, "value", enc)), "utf-16")


server = CompleterServer()


def accepted_command(request_id: str, uri: str) -> types.Command:
    """The command an item carries: its request id comes back with the editor's accept."""
    return types.Command(title="completer: accepted", command=ACCEPTED_COMMAND,
                         arguments=[{"id": request_id, "uri": uri}])


@server.feature(types.INITIALIZE)
def on_initialize(ls: CompleterServer, params: types.InitializeParams) -> None:
    ls.apply_settings(params.initialization_options)


@server.feature(types.INITIALIZED)
def on_initialized(ls: CompleterServer, params: types.InitializedParams) -> None:
    ls.host.start()
    asyncio.ensure_future(_log_metrics_periodically(ls))
    asyncio.ensure_future(ls.host.watch())


async def _log_metrics_periodically(ls: CompleterServer) -> None:
    while True:
        await asyncio.sleep(METRICS_LOG_INTERVAL_S)
        line = ls.service.records.log_line()
        if line:
            log.info(line)


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def on_did_change_configuration(ls: CompleterServer, params: types.DidChangeConfigurationParams) -> None:
    ls.apply_settings(params.settings)


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def on_inline_completion(ls: CompleterServer, params: types.InlineCompletionParams):
    uri = params.text_document.uri
    result = await ls.service.complete(uri, params.position)
    if result is None or not result.text:
        return types.InlineCompletionList(items=[])
    position = ls.service.clamped(uri, params.position)
    at = types.Range(start=position, end=position)
    return types.InlineCompletionList(items=[types.InlineCompletionItem(
        insert_text=result.text, range=at, command=accepted_command(result.request_id, uri))])


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "(", " "]))
async def on_completion(ls: CompleterServer, params: types.CompletionParams):
    uri = params.text_document.uri
    result = await ls.service.complete(uri, params.position)
    if result is None or not result.text:
        return types.CompletionList(is_incomplete=True, items=[])
    text = result.text
    position = ls.service.clamped(uri, params.position)
    at = types.Range(start=position, end=position)
    label = text.strip().split("\n", 1)[0][:80] or text[:80]
    item = types.CompletionItem(
        label=label,
        kind=types.CompletionItemKind.Text,
        detail="completer",
        documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```\n{text}\n```"),
        text_edit=types.TextEdit(range=at, new_text=text),
        filter_text=label,
        sort_text="0",
        command=accepted_command(result.request_id, uri),
        data={"id": result.request_id, "uri": uri},
    )
    # incomplete: the next keystroke should ask again rather than filter a stale answer
    return types.CompletionList(is_incomplete=True, items=[item])


@server.feature(COMPLETE_REQUEST)
async def on_complete(ls: CompleterServer, params: Any) -> dict:
    """Like inlineCompletion, plus the request's record: id, plan, tokens, latency, acceptance."""
    try:
        uri = params.textDocument.uri
        position = types.Position(line=int(params.position.line), character=int(params.position.character))
    except (AttributeError, TypeError, ValueError):
        raise JsonRpcInvalidParams("expected {textDocument: {uri}, position: {line, character}}") from None
    raw = bool(getattr(params, "raw", False))  # run to the engine's own stop, for exact comparisons
    result = await ls.service.complete(uri, position, stop_early=not raw)
    if result is None:
        return {"text": "", "engine": ls.host.state}
    record = ls.service.records.records.get(result.request_id)
    gen = result.generation
    return {
        **(record.as_dict() if record is not None else {}),
        "text": result.text,
        "version": result.version,
        "engine": ls.host.state,
        "speculation": bool(ls.host.engine and ls.host.engine.capabilities.speculation_method),
        "raw_text": gen.text if gen else "",
        "token_ids": gen.token_ids if gen else [],
    }


def _feedback(ls: CompleterServer, params: Any, outcome: str) -> None:
    request_id = getattr(params, "id", None)
    text = getattr(params, "text", None)
    record = ls.service.records.feedback(request_id if isinstance(request_id, str) else None, outcome,
                                         len(text) if isinstance(text, str) else None)
    log.info("suggestion %s %s%s", request_id or "(no id)", outcome.replace("_", " "),
             "" if record is not None or not request_id else " (no longer in the record)")


@server.feature(ACCEPTED_NOTIFICATION)
def on_accepted(ls: CompleterServer, params: Any) -> None:
    """{id, uri, text, partial?}: the record of that id is marked accepted; the text itself is not logged."""
    _feedback(ls, params, "accepted_partially" if getattr(params, "partial", False) else "accepted")


@server.command(ACCEPTED_COMMAND)
def on_accepted_command(ls: CompleterServer, *arguments: Any) -> None:
    """`workspace/executeCommand` of an item's command, from clients that run it on the server:
    arguments [{id, uri}], the same as `completer/accepted` without the text."""
    first = arguments[0] if arguments and isinstance(arguments[0], dict) else {}
    _feedback(ls, SimpleNamespace(**{k: v for k, v in first.items() if k in ("id", "uri")}), "accepted")


@server.feature(DISMISSED_NOTIFICATION)
def on_dismissed(ls: CompleterServer, params: Any) -> None:
    """{id, uri}: the record of that id is marked dismissed, and type-ahead no longer offers it."""
    _feedback(ls, params, "dismissed")
    uri = getattr(params, "uri", None)
    if isinstance(uri, str):
        ls.service.shown.forget(uri_key(uri))


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def on_did_open(ls: CompleterServer, params: types.DidOpenTextDocumentParams) -> None:
    item = params.text_document
    ls.documents.open(item.uri, item.text, languages.detect(item.language_id, to_fs_path(item.uri) or item.uri),
                      item.version)
    ls.warmer.opened(uri_key(item.uri))


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def on_did_change(ls: CompleterServer, params: types.DidChangeTextDocumentParams) -> None:
    doc = ls.documents.change(params.text_document.uri, params.content_changes, params.text_document.version,
                              ls.position_encoding())
    if doc is not None:
        ls.warmer.edited(uri_key(doc.uri), cursor_after(doc.text, params.content_changes, ls.position_encoding()))


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def on_did_close(ls: CompleterServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = uri_key(params.text_document.uri)
    ls.service.latest.cancel(uri)  # nothing left to complete
    ls.service.shown.forget(uri)
    ls.warmer.closed(uri)
    ls.documents.close(params.text_document.uri)


@server.feature(DOCUMENT_TEXT_REQUEST)
def on_document_text(ls: CompleterServer, params: Any) -> dict:
    """{uri} → the server's copy of the document, so clients and tests can check sync."""
    uri = getattr(params, "uri", None)
    doc = ls.documents.get(uri) if isinstance(uri, str) else None
    if doc is None:
        raise JsonRpcInvalidParams(f"document {uri} is not open")
    return {"uri": uri, "version": doc.version, "text": doc.text}


@server.feature(STATS_REQUEST)
async def on_stats(ls: CompleterServer, params: Any) -> dict:
    engine = ls.host.engine
    stats = engine.stats() if engine is not None else {}
    if engine is not None:
        stats["vllm_unfinished_requests"] = await engine.unfinished_requests()
    # this server's and its engine's resident memory (a remote engine's server is not counted)
    stats.update(resident_memory(engine.engine_pids() if engine is not None else []))
    return {
        **ls.host.as_dict(),
        "speculation": bool(engine and engine.capabilities.speculation_method),
        **ls.service.as_dict(),
        **ls.warmer.as_dict(),
        "policy": ls.host.completer.policy.as_dict() if ls.host.completer is not None else None,
        **stats,
    }


@server.feature(types.SHUTDOWN)
def on_shutdown(ls: CompleterServer, params: Any) -> None:
    ls.host.stop_restarting()
    ls.host.shutdown()


def run(*, tcp: bool = False, host: str = "127.0.0.1", port: int = 2087, token: str | None = None) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so that `finally` below runs
    try:
        _serve(tcp, host, port, token)
    finally:
        server.host.shutdown()  # the engine's processes end with the server, however it ends


def _serve(tcp: bool, host: str, port: int, token: str | None = None) -> None:
    from completer.server import listeners

    if tcp:
        listeners.serve_tcp(server, host, port, token)
        return
    # The LSP stream gets a private copy of stdout; fd 1 goes where fd 2 goes (the log file, or the
    # terminal with --verbose: logs.py) so that nothing else (vLLM's engine processes, progress bars)
    # can write into the protocol stream.
    lsp_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(2, sys.stdout.fileno())
    sys.stdout = sys.stderr
    listeners.serve_stdio(server, sys.stdin.buffer, lsp_out)
