import pytest
from lsprotocol import types
from pygls.lsp.server import LanguageServer

from completer.server.protocol import CompleterProtocol

OPEN = types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
    uri="file:///a.py", language_id="python", version=1, text="x = 1\n"))
CHANGE = types.DidChangeTextDocumentParams(
    text_document=types.VersionedTextDocumentIdentifier(uri="file:///a.py", version=2),
    content_changes=[types.TextDocumentContentChangeWholeDocument(text="y = 2\n")])
CLOSE = types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri="file:///a.py"))


@pytest.mark.parametrize("method,params", [
    (types.TEXT_DOCUMENT_DID_OPEN, OPEN),
    (types.TEXT_DOCUMENT_DID_CHANGE, CHANGE),
    (types.TEXT_DOCUMENT_DID_CLOSE, CLOSE),
])
def test_document_notifications_go_to_the_server_only(method, params):
    """pygls' workspace keeps no copy: the notification reaches the server's handler untouched
    (the workspace does not exist before initialize, so touching it would raise)."""
    server = LanguageServer("t", "0", protocol_cls=CompleterProtocol)
    seen = []
    server.feature(method)(lambda ls, p: seen.append(p))
    builtin = server.protocol.fm.builtin_features[method]
    steps = list(builtin(params))
    assert [(args, kwargs) for _, args, kwargs in steps] == [((params,), None)]
    steps[0][0](params)
    assert seen == [params]


def test_without_a_server_handler_nothing_happens():
    server = LanguageServer("t", "0", protocol_cls=CompleterProtocol)
    assert list(server.protocol.fm.builtin_features[types.TEXT_DOCUMENT_DID_OPEN](OPEN)) == []
