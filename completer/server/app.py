"""The language server: every LSP method registered here, each handler thin and typed."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import uuid
from dataclasses import replace
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from completer import __version__
from completer.config import Settings, parse_settings
from completer.context import languages
from completer.context.documents import DocumentStore, display_path
from completer.engine.metrics import MetricsLog, RequestMetrics
from completer.server.protocol import CompleterProtocol
from completer.server.positions import PositionError, offset_for
from completer.server.supervisor import LatestPerDocument, restart_plan
from completer.server.text_sync import LspWorkspace
from completer.server.typeahead import ShownSuggestions
from completer.types import Completion, CompletionKind

log = logging.getLogger(__name__)

STATS_REQUEST = "completer/stats"
COMPLETE_REQUEST = "completer/complete"  # the completion with its measurements (clients, tests)
DOCUMENT_TEXT_REQUEST = "completer/documentText"  # the server's copy of a document (sync checks)
ACCEPTED_NOTIFICATION = "completer/accepted"  # the client shows: the user took a suggestion
DISMISSED_NOTIFICATION = "completer/dismissed"  # ... or dismissed it
# settings whose change needs a new engine (everything else applies at once)
ENGINE_SETTINGS = ("model", "speculative_config", "dtype", "max_model_len", "max_num_seqs",
                   "kv_cache_space_gib", "gpu_memory_utilization", "cpu_threads_bind", "enforce_eager",
                   "trust_remote_code", "speculation_policy", "batch_k_limits", "enable_prefix_caching",
                   "block_size")
MAX_DOCUMENT_CHARS = 4 << 20
WATCHDOG_INTERVAL_S = 1.0  # how often a ready engine is checked for a dead engine process


class CompleterServer(LanguageServer):
    """Holds the settings and the engine; the engine loads in the background after `initialized`."""

    def __init__(self) -> None:
        super().__init__("completer", __version__, protocol_cls=CompleterProtocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.settings = Settings()
        self.engine = None
        self.completer = None
        self.engine_state = "idle"  # idle → loading → ready | failed
        self.engine_error: str | None = None
        self._load_task: asyncio.Task | None = None
        self.last: dict | None = None  # the last completion's measurements, for status bars
        self.metrics = MetricsLog()
        self.feedback = {"accepted": 0, "accepted_partially": 0, "dismissed": 0, "accepted_chars": 0}
        self.latest = LatestPerDocument()
        self.shown = ShownSuggestions()  # the last suggestion per document, for type-ahead
        self.documents = DocumentStore()  # a syntax tree per open document, for context and snippets
        self.failures = 0  # engine loads failed or engines died, in a row
        self.restarts = 0  # restarts after a failure, in total
        self.next_restart_s: float | None = None

    # ---------------------------------------------------------------- engine

    def start_engine(self, *, delay_s: float = 0.0, after_failure: bool = False) -> None:
        """(Re)load the engine in the background; requests meanwhile get empty results."""
        if self._load_task and not self._load_task.done() and self._load_task is not asyncio.current_task():
            self._load_task.cancel()
        if not after_failure:
            self.failures = 0
        if self.engine_state == "ready":
            self.engine_state = "loading"  # clients must not see "ready" while the old engine goes
        self._load_task = asyncio.ensure_future(self._load_engine(delay_s))

    def _engine_failed(self, what: str, err: str) -> None:
        """Report a failure once per series, then restart with backoff until the attempts run out."""
        self.failures += 1
        self.engine_state, self.engine_error = "failed", err
        delay = restart_plan(self.failures, self.settings.engine_restart_attempts,
                             self.settings.engine_restart_backoff_s)
        if delay is None:
            self.next_restart_s = None
            log.error("%s: %s; giving up after %d attempts", what, err, self.failures)
            self._show(types.MessageType.Error, f"completer: {what}: {err}. Gave up after {self.failures} "
                       "attempts; completions stay empty until the settings change or the server restarts.")
            return
        self.next_restart_s = delay
        log.error("%s: %s; restart %d in %.1f s", what, err, self.failures, delay)
        if self.failures == 1:
            self._show(types.MessageType.Error, f"completer: {what}: {err}. Completions are empty meanwhile; "
                       f"restarting in {delay:g} s (at most {self.settings.engine_restart_attempts} attempts).")
        self.restarts += 1
        self.start_engine(delay_s=delay, after_failure=True)

    def _show(self, kind: types.MessageType, message: str) -> None:
        try:
            self.window_show_message(types.ShowMessageParams(type=kind, message=message))
        except Exception as err:  # no transport yet or any more: the log has it
            log.debug("showMessage failed: %s", err)

    def engine_died(self) -> None:
        """vLLM's engine process is gone: drop the engine and restart it with backoff (idempotent)."""
        engine = self.engine
        if engine is None or self.engine_state != "ready":
            return
        self.engine, self.completer = None, None
        asyncio.ensure_future(asyncio.to_thread(engine.shutdown))
        self._engine_failed("the engine stopped unexpectedly", "its process exited")

    async def watch_engine(self) -> None:
        """Notice a dead engine even while no request runs."""
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL_S)
            if self.engine is not None and self.engine_state == "ready" and self.engine.dead:
                self.engine_died()

    async def _load_engine(self, delay_s: float = 0.0) -> None:
        from completer.engine.vllm_engine import Engine
        from completer.pipeline import Completer

        old, self.engine, self.completer = self.engine, None, None
        if old is not None:
            await asyncio.to_thread(old.shutdown)
        if delay_s:
            self.engine_state = "restarting"
            await asyncio.sleep(delay_s)
        self.next_restart_s = None
        self.engine_state = "loading"
        settings = self.settings
        progress = await self._begin_progress("completer: loading models")
        loop = asyncio.get_running_loop()

        def report(message: str, fraction: float | None) -> None:
            loop.call_soon_threadsafe(progress, message, fraction)

        try:
            engine = await asyncio.to_thread(Engine.build, settings, report)
        except Exception as err:
            progress("failed", 1.0, end=True)
            self._engine_failed("the engine could not start", str(err))
            return
        self.engine = engine
        self.completer = Completer(engine, settings)
        self.engine_state, self.engine_error = "ready", None
        log.info("engine ready: %s (draft: %s)", engine.target_dir, engine.draft_dir)
        progress("ready", 1.0, end=True)
        if self.failures:
            self._show(types.MessageType.Info, f"completer: the engine is running again (after {self.failures} "
                       f"failure{'s' if self.failures > 1 else ''})")
            self.failures = 0

    async def _begin_progress(self, title: str):
        """A `$/progress` reporter, or a log-only one when the client does not support it."""
        caps = self.client_capabilities
        supported = bool(caps and caps.window and caps.window.work_done_progress)
        token = f"completer-load-{uuid.uuid4()}"
        if supported:
            try:
                await asyncio.wait_for(self.work_done_progress.create_async(token), timeout=5)
                self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, percentage=0,
                                                                                 cancellable=False))
            except Exception as err:
                log.debug("client refused progress: %s", err)
                supported = False

        def progress(message: str, fraction: float | None, end: bool = False) -> None:
            log.info("%s: %s%s", title, message, f" ({fraction:.0%})" if fraction is not None else "")
            if not supported:
                return
            if end:
                self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))
            else:
                pct = int(fraction * 100) if fraction is not None else None
                self.work_done_progress.report(token, types.WorkDoneProgressReport(message=message, percentage=pct))

        return progress

    def apply_settings(self, data: Any) -> None:
        new, warnings = parse_settings(data, self.settings)
        for w in warnings:
            log.warning(w)
            self.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=f"completer: {w}"))
        reload = any(getattr(new, k) != getattr(self.settings, k) for k in ENGINE_SETTINGS)
        if new.speculation_policy == "engine" and (new.temperature > 0) != (self.settings.temperature > 0):
            reload = True  # without per-request plans, a CPU engine that samples must load without a draft
        self.settings = new
        self.shown.clear()  # suggestions made under the old settings
        if self.completer is not None:
            self.completer.settings = new
        if reload and self.engine_state != "idle":
            log.info("engine settings changed; reloading the engine")
            self.start_engine()

    # ---------------------------------------------------------------- completing

    def _position_encoding(self) -> str:
        """The encoding negotiated at initialize (UTF-16 unless the client offered better)."""
        enc = getattr(self.workspace, "position_encoding", None) or types.PositionEncodingKind.Utf16
        return {"utf-8": "utf-8", "utf-32": "utf-32"}.get(str(getattr(enc, "value", enc)), "utf-16")

    async def completion_at(self, uri: str, position: types.Position) -> str | None:
        """The completion text at a position, or None when there is nothing to show."""
        result = await self.completion_result(uri, position)
        return result.text if result is not None and result.text else None

    async def completion_result(self, uri: str, position: types.Position, *, stop_early: bool = True):
        """The full Completion at a position, or None when the engine cannot answer.

        A newer request for the same document cancels this one (the client gets RequestCancelled).
        """
        task = asyncio.current_task()
        self.latest.claim(uri, task)
        try:
            return await self._completion_result(uri, position, stop_early)
        finally:
            self.latest.release(uri, task)

    async def _completion_result(self, uri: str, position: types.Position, stop_early: bool):
        doc = self.workspace.text_documents.get(uri)
        if doc is None:
            raise JsonRpcInvalidParams(f"document {uri} is not open (send textDocument/didOpen first)")
        text, version = doc.source, doc.version  # the state this answer is for (edits may arrive meanwhile)
        if len(text) > MAX_DOCUMENT_CHARS:
            log.warning("%s has %d characters; too large to complete", uri, len(text))
            return None
        try:
            offset = offset_for(text, position.line, position.character, self._position_encoding())
        except PositionError as err:
            raise JsonRpcInvalidParams(f"{err} in {uri}") from None
        prefix, suffix = text[:offset], text[offset:]
        if self.settings.type_ahead and stop_early:  # raw requests are for exact comparisons: always the model
            reused = self.shown.answer(uri, prefix, suffix)
            if reused is not None:
                log.debug("answered from the suggestion on screen (type-ahead)")
                return Completion(text=reused[0], kind=CompletionKind(reused[1] or "single_line"),
                                  source="type_ahead", version=version)
        if self.completer is None:
            log.info("completion requested while the engine is %s; answering empty", self.engine_state)
            return None
        if self.settings.keystroke_hold_ms and stop_early:
            # the next keystroke cancels this request before the engine starts a step it could not
            # interrupt (also the first keystroke after a pause, which nothing else tells apart)
            self.latest.held += 1
            await asyncio.sleep(self.settings.keystroke_hold_ms / 1000)
        language = languages.detect(doc.language_id, to_fs_path(uri) or uri)
        tracked = self.documents.get(uri)
        if tracked is None or tracked.text != text:  # out of step with pygls: start over from its text
            tracked = self.documents.open(uri, text, language, doc.version or 0)
        root = self.workspace.root_path
        neighbours = [(display_path(d.uri, root), d.windows()) for d in self.documents.neighbours(uri)]
        try:
            result = await self.completer.complete(text, offset, language, stop_early=stop_early,
                                                   tree=tracked.tree_near(offset), neighbours=neighbours,
                                                   path=display_path(uri, root), repo=os.path.basename(root or ""))
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.error("completion failed: %s", err)
            if self.engine is not None and self.engine.dead:
                self.engine_died()
            return None
        result = replace(result, version=version)
        if stop_early:
            self.shown.remember(uri, prefix, suffix, result.text, result.kind.value)
        gen = result.generation
        if gen is not None:
            plan = result.plan
            self.last = {"latency_s": round(gen.latency_s, 4), "tokens": len(gen.token_ids),
                         "acceptance_rate": gen.acceptance_rate, "kind": result.kind.value,
                         "speculate": bool(plan and plan.speculate), "k": plan.num_speculative_tokens if plan else 0}
            self.metrics.add(RequestMetrics(result.kind.value, bool(plan and plan.speculate), self.last["k"],
                                            len(gen.token_ids), gen.num_draft_tokens, gen.num_accepted_tokens,
                                            gen.latency_s, gen.first_token_s))
            rate = f"{gen.acceptance_rate:.0%}" if gen.acceptance_rate is not None else "-"
            log.info("completion %s: %d tokens in %.2fs, acceptance %s", result.kind.value,
                     len(gen.token_ids), gen.latency_s, rate)
        return result


server = CompleterServer()


@server.feature(types.INITIALIZE)
def on_initialize(ls: CompleterServer, params: types.InitializeParams) -> None:
    ls.workspace.__class__ = LspWorkspace  # documents split into lines as LSP does (text_sync.py)
    ls.apply_settings(params.initialization_options)


METRICS_LOG_INTERVAL_S = 30.0


@server.feature(types.INITIALIZED)
def on_initialized(ls: CompleterServer, params: types.InitializedParams) -> None:
    ls.start_engine()
    asyncio.ensure_future(_log_metrics_periodically(ls))
    asyncio.ensure_future(ls.watch_engine())


async def _log_metrics_periodically(ls: CompleterServer) -> None:
    while True:
        await asyncio.sleep(METRICS_LOG_INTERVAL_S)
        line = ls.metrics.log_line()
        if line:
            log.info(line)


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def on_did_change_configuration(ls: CompleterServer, params: types.DidChangeConfigurationParams) -> None:
    ls.apply_settings(params.settings)


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def on_inline_completion(ls: CompleterServer, params: types.InlineCompletionParams):
    text = await ls.completion_at(params.text_document.uri, params.position)
    if not text:
        return types.InlineCompletionList(items=[])
    at = types.Range(start=params.position, end=params.position)
    return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=text, range=at)])


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "(", " "]))
async def on_completion(ls: CompleterServer, params: types.CompletionParams):
    text = await ls.completion_at(params.text_document.uri, params.position)
    if not text:
        return types.CompletionList(is_incomplete=True, items=[])
    at = types.Range(start=params.position, end=params.position)
    label = text.strip().split("\n", 1)[0][:80] or text[:80]
    item = types.CompletionItem(
        label=label,
        kind=types.CompletionItemKind.Text,
        detail="completer",
        documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```\n{text}\n```"),
        text_edit=types.TextEdit(range=at, new_text=text),
        filter_text=label,
        sort_text="0",
    )
    # incomplete: the next keystroke should ask again rather than filter a stale answer
    return types.CompletionList(is_incomplete=True, items=[item])


@server.feature(COMPLETE_REQUEST)
async def on_complete(ls: CompleterServer, params: Any) -> dict:
    """Like inlineCompletion, plus what was measured: tokens, latency, acceptance."""
    try:
        uri = params.textDocument.uri
        position = types.Position(line=int(params.position.line), character=int(params.position.character))
    except (AttributeError, TypeError, ValueError):
        raise JsonRpcInvalidParams("expected {textDocument: {uri}, position: {line, character}}") from None
    raw = bool(getattr(params, "raw", False))  # run to the engine's own stop, for exact comparisons
    result = await ls.completion_result(uri, position, stop_early=not raw)
    if result is None:
        return {"text": "", "engine": ls.engine_state}
    gen = result.generation
    return {
        "text": result.text,
        "kind": result.kind.value,
        "source": result.source,
        "version": result.version,
        "cached_tokens": gen.cached_tokens if gen else 0,
        "engine": ls.engine_state,
        "speculation": bool(ls.engine and ls.engine.speculates),
        "k": result.plan.num_speculative_tokens if result.plan and result.plan.speculate else 0,
        "raw_text": gen.text if gen else "",
        "token_ids": gen.token_ids if gen else [],
        "latency_s": gen.latency_s if gen else 0.0,
        "first_token_s": gen.first_token_s if gen else None,
        "prompt_tokens": gen.prompt_tokens if gen else 0,
        "draft_tokens": gen.num_draft_tokens if gen else 0,
        "accepted_tokens": gen.num_accepted_tokens if gen else 0,
        "acceptance_rate": gen.acceptance_rate if gen else None,
    }


@server.feature(ACCEPTED_NOTIFICATION)
def on_accepted(ls: CompleterServer, params: Any) -> None:
    """{uri, text, partial?}: counted for `completer/stats`; the text itself is not logged."""
    text = getattr(params, "text", "") or ""
    key = "accepted_partially" if getattr(params, "partial", False) else "accepted"
    ls.feedback[key] += 1
    ls.feedback["accepted_chars"] += len(text)


@server.feature(DISMISSED_NOTIFICATION)
def on_dismissed(ls: CompleterServer, params: Any) -> None:
    ls.feedback["dismissed"] += 1


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def on_did_open(ls: CompleterServer, params: types.DidOpenTextDocumentParams) -> None:
    item = params.text_document
    ls.documents.open(item.uri, item.text, languages.detect(item.language_id, to_fs_path(item.uri) or item.uri),
                      item.version)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def on_did_change(ls: CompleterServer, params: types.DidChangeTextDocumentParams) -> None:
    # pygls has applied the changes to its copy; ours also edits the syntax tree
    ls.documents.change(params.text_document.uri, params.content_changes, params.text_document.version,
                        ls._position_encoding())


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def on_did_close(ls: CompleterServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.latest.cancel(params.text_document.uri)  # nothing left to complete
    ls.shown.forget(params.text_document.uri)
    ls.documents.close(params.text_document.uri)


@server.feature(DOCUMENT_TEXT_REQUEST)
def on_document_text(ls: CompleterServer, params: Any) -> dict:
    """{uri} → the server's copy of the document, so clients and tests can check sync."""
    uri = getattr(params, "uri", None)
    doc = ls.workspace.text_documents.get(uri) if isinstance(uri, str) else None
    if doc is None:
        raise JsonRpcInvalidParams(f"document {uri} is not open")
    return {"uri": uri, "version": doc.version, "text": doc.source}


@server.feature(STATS_REQUEST)
async def on_stats(ls: CompleterServer, params: Any) -> dict:
    stats = ls.engine.stats.as_dict() if ls.engine is not None else {}
    if ls.engine is not None:
        stats["vllm_unfinished_requests"] = await ls.engine.running_in_vllm()
    return {
        "engine": ls.engine_state,
        "error": ls.engine_error,
        "engine_failures": ls.failures,
        "engine_restarts": ls.restarts,
        "next_restart_s": ls.next_restart_s,
        "engine_pids": ls.engine.engine_pids() if ls.engine is not None else [],
        "superseded": ls.latest.superseded,
        "held_while_typing": ls.latest.held,
        "type_ahead_served": ls.shown.served,
        "in_flight": len(ls.latest),
        "speculation": bool(ls.engine and ls.engine.speculates),
        "last": ls.last,
        **ls.metrics.as_dict(),
        **ls.feedback,
        **stats,
    }


@server.feature(types.SHUTDOWN)
def on_shutdown(ls: CompleterServer, params: Any) -> None:
    if ls._load_task is not None:
        ls._load_task.cancel()  # no restart after shutdown
    _stop_engine()


def _stop_engine() -> None:
    """Shut the engine's processes down with the server, however the server ends."""
    if server.engine is not None:
        server.engine.shutdown()
        server.engine = None


def run(*, tcp: bool = False, host: str = "127.0.0.1", port: int = 2087, token: str | None = None) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so that `finally` below runs
    try:
        _serve(tcp, host, port, token)
    finally:
        _stop_engine()


def _serve(tcp: bool, host: str, port: int, token: str | None = None) -> None:
    from completer.server import transport

    if tcp:
        transport.serve_tcp(server, host, port, token)
        return
    # The LSP stream gets a private copy of stdout; fd 1 goes to stderr so that nothing
    # else (vLLM's engine process, progress bars) can write into the protocol stream.
    lsp_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    transport.serve_stdio(server, sys.stdin.buffer, lsp_out)
