"""One spelling per document URI (documents/uris.py): every equivalent spelling finds the document."""

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lsprotocol import types

from completer.documents.store import DocumentStore, display_path
from completer.documents.uris import uri_key, uri_path
from completer.server.workspace_files import is_inside_workspace

# each row: spellings editors send for one document
SAME = [
    ("notebook cell", ["vscode-notebook-cell:/w/nb.ipynb#W0sZmlsZQ%3D%3D", "vscode-notebook-cell:/w/nb.ipynb#W0sZmlsZQ==",
                       "vscode-notebook-cell:/w/nb.ipynb#W0sZmlsZQ%3d%3d"]),
    ("space", ["file:///w/my%20proj/a.py", "file:///w/my proj/a.py"]),
    ("non-ASCII", ["file:///w/caf%C3%A9/%C3%BCber.py", "file:///w/café/über.py", "file:///w/caf%c3%a9/%c3%bcber.py"]),
    ("brackets", ["file:///w/app/%5Bid%5D/page.tsx", "file:///w/app/[id]/page.tsx", "file:///w/app/%5bid%5d/page.tsx"]),
    ("VS Code on Windows", ["file:///c%3A/Users/me/proj/main.py", "file:///C:/Users/me/proj/main.py",
                            "file:///c:/Users/me/proj/main.py", "file:///C%3A/Users/me/proj/main.py"]),
    ("scheme case, one slash", ["file:///w/a.py", "FILE:///w/a.py", "file:/w/a.py"]),
    ("UNC share", ["file://server/share/a%20b.py", "file://server/share/a b.py"]),
]

# pairs that must stay apart: an escaped delimiter is not the delimiter
APART = [
    ("file:///w/a%23b.py", "file:///w/a#b.py"),
    ("file:///w/a%2Fb.py", "file:///w/a/b.py"),
    ("file:///w/a%3Fb.py", "file:///w/a?b.py"),
    ("vscode-notebook-cell:/w/nb.ipynb#W0sZmlsZQ%3D%3D", "vscode-notebook-cell:/w/nb.ipynb#X0sZmlsZQ%3D%3D"),
    ("file:///w/A.py", "file:///w/a.py"),  # paths keep their case (only a drive letter is folded)
]


@pytest.mark.parametrize("name, spellings", SAME, ids=[n for n, _ in SAME])
def test_equivalent_spellings_have_one_key(name, spellings):
    assert len({uri_key(s) for s in spellings}) == 1


@pytest.mark.parametrize("a, b", APART)
def test_different_uris_keep_different_keys(a, b):
    assert uri_key(a) != uri_key(b)


@given(st.text())
def test_the_key_is_its_own_key(text):
    key = uri_key(text)
    assert uri_key(key) == key
    assert uri_key("file:///w/" + text) == uri_key(uri_key("file:///w/" + text))


@pytest.mark.parametrize("uri, path", [
    ("file:///c%3A/Users/me/proj/main.py", "c:/Users/me/proj/main.py"),
    ("file:///C:/Users/me/proj/main.py", "c:/Users/me/proj/main.py"),
    ("file:///w/my%20proj/%5Bid%5D.py", "/w/my proj/[id].py"),
    ("file:///w/caf%C3%A9.py", "/w/café.py"),
    ("vscode-notebook-cell:/w/nb.ipynb#W0sZmlsZQ%3D%3D", "/w/nb.ipynb"),
    ("vscode-notebook-cell:/c%3A/w/nb.ipynb#W0s", "c:/w/nb.ipynb"),
    ("untitled:Untitled-1", "Untitled-1"),
])
def test_uri_path_is_decoded(uri, path):
    assert uri_path(uri) == path


@pytest.mark.parametrize("uri, root, expected", [
    ("file:///w/my%20proj/src/a.py", "/w/my proj", "src/a.py"),
    ("file:///c%3A/Users/me/proj/src/a.py", "c:/Users/me/proj", "src/a.py"),  # pygls' root_path of c%3A
    ("vscode-notebook-cell:/w/proj/nb.ipynb#W0sZmlsZQ%3D%3D", "/w/proj", "nb.ipynb"),
    ("file:///w/caf%C3%A9/a.py", "/w/café", "a.py"),
])
def test_display_path_reads_the_decoded_path(uri, root, expected):
    assert display_path(uri, root) == expected


def _edit(text: str) -> SimpleNamespace:
    at = types.Position(line=0, character=0)
    return SimpleNamespace(range=types.Range(start=at, end=at), text=text)


@pytest.mark.parametrize("name, spellings", SAME, ids=[n for n, _ in SAME])
def test_the_store_finds_a_document_under_every_spelling(name, spellings):
    store = DocumentStore()
    doc = store.open(spellings[0], "x", "python")
    for i, spelling in enumerate(spellings[1:] + spellings[:1], start=2):
        assert store.get(spelling) is doc
        assert store.change(spelling, [_edit("!")], version=i) is doc
        assert store.neighbours(spelling) == []
    store.close(spellings[-1])
    assert all(store.get(s) is None for s in spellings)


@pytest.mark.parametrize("folder", ["file:///{root}/my%20proj", "file:///{root}/my proj"])
def test_the_workspace_check_reads_escaped_folder_uris(tmp_path, folder):
    inside = tmp_path / "my proj" / "a.py"
    inside.parent.mkdir()
    inside.write_text("x")
    outside = tmp_path / "other.py"
    outside.write_text("y")
    folders = [folder.format(root=str(tmp_path).lstrip("/"))]
    assert is_inside_workspace(inside, folders)
    assert not is_inside_workspace(outside, folders)
