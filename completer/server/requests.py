"""The request service: one completion per document at a time (the newest wins), the hold while
typing, type-ahead from the suggestion on screen, and one record per request."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from completer.documents import display_path
from completer.documents.store import uri_key
from completer.documents.uris import uri_path
from completer.documents.positions import PositionError, offset_at, position_at
from completer.records import RequestLog, RequestRecord
from completer.server.supervisor import LatestPerDocument
from completer.server.typeahead import ShownSuggestions
from completer.server.workspace_files import WorkspaceFiles
from completer.types import Completion, CompletionKind

if TYPE_CHECKING:
    from completer.server.app import CompleterServer

log = logging.getLogger(__name__)

MAX_DOCUMENT_CHARS = 4 << 20


class CompletionService:
    """Turns an LSP position into a Completion, through the engine host's Completer."""

    def __init__(self, server: "CompleterServer") -> None:
        self.server = server
        self.latest = LatestPerDocument()
        self.shown = ShownSuggestions()  # the last suggestion per document, for type-ahead
        self.records = RequestLog()
        self._type_ahead_ids = itertools.count()
        self.workspace_files = WorkspaceFiles()  # files of the workspace folders, read for snippets

    async def complete(self, uri: str, position: types.Position, *, stop_early: bool = True) -> Completion | None:
        """The Completion at a position (with its ``request_id``), or None when there is nothing to show.

        A newer request for the same document cancels this one (the client gets RequestCancelled).
        Raises JsonRpcInvalidParams for a document that is not open or a position outside it.
        """
        uri = uri_key(uri)
        task = asyncio.current_task()
        self.latest.claim(uri, task)
        try:
            result = await self._complete(uri, position, stop_early)
        finally:
            self.latest.release(uri, task)
        if result is not None and result.request_id:
            record = RequestRecord.of(result.request_id, result, shown=stop_early)
            self.records.add(record)
            if record.ran_in_engine:
                log.info(record.log_line())
        return result

    async def _complete(self, uri: str, position: types.Position, stop_early: bool) -> Completion | None:
        server = self.server
        doc = server.documents.get(uri)
        if doc is None:
            raise JsonRpcInvalidParams(f"document {uri} is not open (send textDocument/didOpen first)")
        text, version = doc.text, doc.version  # the state this answer is for (edits may arrive meanwhile)
        if len(text) > MAX_DOCUMENT_CHARS:
            log.warning("%s has %d characters; too large to complete", uri, len(text))
            return None
        try:
            offset = offset_at(text, position.line, position.character, server.position_encoding())
        except PositionError as err:
            raise JsonRpcInvalidParams(f"{err} in {uri}") from None
        prefix, suffix = text[:offset], text[offset:]
        settings = server.settings
        if settings.type_ahead and stop_early:  # raw requests are for exact comparisons: always the model
            reused = self.shown.answer(uri, prefix, suffix)
            if reused is not None:
                log.debug("answered from the suggestion on screen (type-ahead)")
                return Completion(text=reused[0], kind=CompletionKind(reused[1] or "single_line"),
                                  source="type_ahead", version=version,
                                  request_id=f"ta-{next(self._type_ahead_ids)}")
        completer = server.host.completer
        server.warmer.request_started(uri, offset)  # a real request goes first
        if not server.host.ready:
            log.info("completion requested while the engine is %s; answering empty", server.host.state)
            return None
        if settings.keystroke_hold_ms and stop_early:
            # the next keystroke cancels this request before the engine starts a step it could not
            # interrupt (also the first keystroke after a pause, which nothing else tells apart)
            self.latest.held += 1
            await asyncio.sleep(settings.keystroke_hold_ms / 1000)
        try:
            result = await completer.complete(text, offset, doc.language, stop_early=stop_early,
                                              **self.context_inputs(uri, doc, offset))
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.error("completion at %s:%d:%d failed: %s", uri, position.line, position.character, err)
            engine = server.host.engine
            if engine is not None and engine.dead:
                server.host.died()
            return None
        result = replace(result, version=version)
        if result.generation is not None and result.generation.first_token_s is not None:
            server.warmer.request_read(uri, version, offset)
        if stop_early:
            self.shown.remember(uri, prefix, suffix, result.text, result.kind.value)
        return result

    def context_inputs(self, uri: str, doc, offset: int) -> dict:
        """build_context's tree, neighbours, path and repo for a request at ``offset`` of ``doc``."""
        root = self.server.workspace.root_path
        others = self.server.documents.neighbours(uri)
        neighbours = [(display_path(d.uri, root), d.windows()) for d in others]
        if self.server.settings.workspace_snippets and self.server.settings.snippet_share > 0:
            neighbours += self.workspace_neighbours(uri, doc, [d.uri for d in others])
        return {"tree": doc.tree_near(offset), "neighbours": neighbours, "path": display_path(uri, root),
                "repo": os.path.basename(root or "")}

    def workspace_neighbours(self, uri: str, doc, open_uris: list[str]) -> list[tuple[str, list]]:
        """Windows of the workspace files the document imports or sits beside (not open ones: their
        buffers are already neighbours and may be newer than the disk)."""
        if not uri.startswith("file:"):
            return []
        workspace = self.server.workspace
        folders = [f.uri for f in workspace.folders.values()] or ([workspace.root_uri] if workspace.root_uri else [])
        try:
            return self.workspace_files.neighbours(folders, uri_path(uri), doc.text, doc.language,
                                                   exclude=[uri_path(u) for u in open_uris])
        except Exception as err:  # context from disk is a bonus: never fail the request over it
            log.debug("workspace snippets for %s skipped: %s", uri, err)
            return []

    def clamped(self, uri: str, position: types.Position) -> types.Position:
        """``position`` as it lies in the document: a character past its line's end is the line's end
        (the LSP rule), so the answer's range names a place that exists. Unchanged if it cannot be read."""
        doc = self.server.documents.get(uri_key(uri))
        encoding = self.server.position_encoding()
        try:
            line, character = position_at(doc.text, offset_at(doc.text, position.line, position.character, encoding),
                                          encoding)
        except (AttributeError, PositionError):
            return position
        return types.Position(line=line, character=character)

    def as_dict(self) -> dict:
        """The request part of `completer/stats`."""
        return {"superseded": self.latest.superseded, "held_while_typing": self.latest.held,
                "type_ahead_served": self.shown.served, "in_flight": len(self.latest), **self.records.as_dict()}
