"""Property-based edit sequences against the real server process.

Random didOpen / incremental didChange (multi-byte, astral and CRLF text, several changes per
notification) / completion / cancel / didClose sequences. After every step the server's copy of
each document (completer/documentText) equals a full-text oracle kept here, every request is
answered or cancelled, and the server stays up. COMPLETER_FUZZ_EXAMPLES sets the number of
sequences (CI: a few hundred; the long run: 10000).
"""

import itertools
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hardening.conftest import record
from tests.hardening.lsp import RawServer

EXAMPLES = int(os.environ.get("COMPLETER_FUZZ_EXAMPLES", "200"))
CANCELLED, INVALID_PARAMS = -32800, -32602
ALPHABET = ["a", "b", " ", "\t", "\n", "\r\n", "\r", "é", "中", "😀", "𝄞", "(", ")", ":", "'", "\u2028", "\x0c", "\x85"]
_BREAK = re.compile(r"\r\n|\n|\r")  # the only line ends LSP knows


# ------------------------------------------------------------ the oracle


def utf16_len(s: str) -> int:
    return sum(2 if ord(c) > 0xFFFF else 1 for c in s)


def positions(text: str) -> list[tuple[int, int, int]]:
    """Every valid LSP position in ``text`` as (line, utf-16 character, string index)."""
    out, line, start = [], 0, 0
    ends = [(m.start(), m.end()) for m in _BREAK.finditer(text)] + [(len(text), len(text))]
    for end, next_start in ends:
        units = 0
        for i in range(start, end):
            out.append((line, units, i))
            units += utf16_len(text[i])
        out.append((line, units, end))
        line, start = line + 1, next_start
    return out


def apply(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


# ------------------------------------------------------------ strategies

fragments = st.lists(st.sampled_from(ALPHABET), max_size=12).map("".join)
op = st.one_of(
    st.tuples(st.just("open"), fragments),
    st.tuples(st.just("change"), st.integers(0, 7), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 40),
                                                                       fragments), min_size=1, max_size=3)),
    st.tuples(st.just("replace_all"), st.integers(0, 7), fragments),
    st.tuples(st.just("complete"), st.integers(0, 7), st.integers(0, 10**6), st.booleans()),
    st.tuples(st.just("cancel"),),
    st.tuples(st.just("close"), st.integers(0, 7)),
)
_serial = itertools.count()


@pytest.fixture(scope="module")
def server():
    s = RawServer()
    s.initialize()
    yield s
    assert s.alive(), s.log_text()[-3000:]
    assert s.close() == 0


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=st.lists(op, min_size=1, max_size=25))
def test_server_text_equals_the_oracle(server, ops):
    serial = next(_serial)
    docs: dict[str, list] = {}  # uri → [text, version]
    pending: list[tuple[int, bool]] = []  # (request id, position was valid)

    def uri_at(i):
        uris = list(docs)
        return uris[i % len(uris)] if uris else None

    for step in ops:
        kind = step[0]
        if kind == "open":
            uri = f"file:///seq/{serial}/{len(docs)}-{next(_serial)}.py"
            docs[uri] = [step[1], 1]
            server.open(uri, step[1])
        elif kind in ("change", "replace_all") and docs:
            uri = uri_at(step[1])
            text, version = docs[uri]
            changes = []
            if kind == "replace_all":
                changes.append({"text": step[2]})
                text = step[2]
            else:
                for pick, span, new in step[2]:
                    pos = positions(text)
                    a = pos[pick % len(pos)]
                    b = pos[min(len(pos) - 1, pick % len(pos) + span)]
                    changes.append({"range": {"start": {"line": a[0], "character": a[1]},
                                              "end": {"line": b[0], "character": b[1]}}, "text": new})
                    text = apply(text, a[2], b[2], new)
            docs[uri] = [text, version + 1]
            server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version + 1},
                                                     "contentChanges": changes})
        elif kind == "complete" and docs:
            uri = uri_at(step[1])
            pos = positions(docs[uri][0])
            line, char, _ = pos[step[2] % len(pos)]
            valid = step[3]
            if not valid:
                line += 1000  # out of range: must be refused, not crash
            method = "textDocument/inlineCompletion" if step[2] % 2 else "textDocument/completion"
            pending.append((server.complete_async(uri, line, char, method), valid))
        elif kind == "cancel" and pending:
            server.cancel(pending[-1][0])
        elif kind == "close" and docs:
            uri = uri_at(step[1])
            del docs[uri]
            server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        for uri, (text, _) in docs.items():
            assert server.document_text(uri) == text, (uri, ops)

    for msg_id, valid in pending:
        response = server.wait_response(msg_id)
        if "error" in response:
            allowed = {CANCELLED} | ({INVALID_PARAMS} if not valid else set())
            assert response["error"]["code"] in allowed, response
        else:
            assert valid, response
    for uri in docs:
        server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    record("edit_sequences_run", 1)
    record("edit_steps_run", len(ops))
    record("edit_requests_answered", len(pending))


@pytest.mark.parametrize("encoding,after_emoji", [("utf-8", 6), ("utf-16", 3), ("utf-32", 2)])
def test_edits_count_columns_in_the_negotiated_encoding(encoding, after_emoji):
    s = RawServer()
    try:
        caps = s.initialize(encodings=[encoding])["capabilities"]
        assert caps["positionEncoding"] == encoding
        s.open("file:///enc.py", "é😀x\n")
        at = {"line": 0, "character": after_emoji}
        s.notify("textDocument/didChange", {"textDocument": {"uri": "file:///enc.py", "version": 2},
                                            "contentChanges": [{"range": {"start": at, "end": at}, "text": "!"}]})
        assert s.document_text("file:///enc.py") == "é😀!x\n"
    finally:
        assert s.close() == 0
