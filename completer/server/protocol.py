"""The LSP protocol: answers every request, even one whose params do not match the LSP types, and
leaves documents to the server's one DocumentStore."""

from __future__ import annotations

import logging

from lsprotocol import types
from lsprotocol.types import ResponseError
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

log = logging.getLogger(__name__)

_ANSWERED = object()  # a request already answered with an error while it was read


def _describe(err: BaseException) -> str:
    cause = err.__cause__
    try:
        from cattrs import transform_error

        return "; ".join(transform_error(cause)) if cause is not None else str(err)
    except Exception:
        return str(cause or err)


class CompleterProtocol(LanguageServerProtocol):
    """pygls drops a request whose params fail validation; the client would wait forever.

    pygls' own didOpen/didChange/didClose handlers keep a copy of every document in its workspace
    and then call the server's handlers; here they only call the server's handlers, which keep the
    one copy (completer/documents/store.py). The workspace still holds the folders and the
    negotiated position encoding.
    """

    def structure_message(self, data):
        try:
            return super().structure_message(data)
        except JsonRpcException as err:
            if isinstance(data, dict) and "id" in data and "method" in data:
                detail = _describe(err)
                log.warning("invalid params for %s: %s", data.get("method"), detail)
                error = JsonRpcInvalidParams(f"invalid params for {data.get('method')}: {detail}")
                self._send_response(data["id"], error=error.to_response_error())
                return _ANSWERED
            raise

    def handle_message(self, message):
        if message is _ANSWERED:
            return
        method = getattr(message, "method", None)
        if self._shutdown and method not in (None, "exit") and getattr(message, "id", None) is not None:
            # LSP: requests after shutdown get InvalidRequest (pygls would leave them unanswered)
            self._send_response(message.id, error=ResponseError(code=-32600, message="the server is shutting down"))
            return
        super().handle_message(message)

    def _to_server(self, method: str, params):
        """Hand a document notification to the server's handler (pygls' generator-handler form)."""
        if (handler := self.fm.features.get(method)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        yield from self._to_server(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        yield from self._to_server(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        yield from self._to_server(types.TEXT_DOCUMENT_DID_CLOSE, params)
