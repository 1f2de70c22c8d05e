"""A protocol that answers every request, even one whose params do not match the LSP types."""

from __future__ import annotations

import logging

from lsprotocol.types import ResponseError
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol

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
    """pygls drops a request whose params fail validation; the client would wait forever."""

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
