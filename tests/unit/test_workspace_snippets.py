"""Workspace files as snippet candidates: which paths a document's imports name, which files are
read, and the limits on reading them (confinement, size, binary, ignored folders, cache)."""

import os

import pytest

from completer.context.workspace import (ancestors, candidate_files, go_module_path, imported_paths, is_ignored,
                                         sibling_order)
from completer.server.workspace_files import WorkspaceFiles


@pytest.mark.parametrize("rel, ignored", [
    ("src/a.py", False),
    ("a.py", False),
    ("node_modules/x/index.js", True),
    ("crates/core/target/debug/build.rs", True),
    ("vendor/github.com/x/y.go", True),
    (".git/config", True),
    ("src/.hidden/a.py", True),
    ("build.rs", False),  # a file named like an ignored folder is not in one
])
def test_is_ignored(rel, ignored):
    assert is_ignored(rel) is ignored


def test_ancestors_nearest_first():
    assert ancestors("a/b/c") == ["a/b/c", "a/b", "a", ""]
    assert ancestors("") == [""]


@pytest.mark.parametrize("language, rel, text, expected", [
    # Python: relative imports from the package, absolute ones under each folder above
    ("python", "src/pkg/cli.py", "from .core import Command\nfrom . import utils\n",
     ["src/pkg/core.py", "src/pkg/core/__init__.py", "src/pkg/core/Command.py", "src/pkg/core/Command/__init__.py",
      "src/pkg/utils.py", "src/pkg/utils/__init__.py"]),  # an imported name may be a module
    ("python", "src/pkg/cli.py", "from .. import top\n", ["src/top.py", "src/top/__init__.py"]),
    ("python", "a.py", "from .... import x\n", []),  # climbing out of the workspace names nothing
    ("python", "src/pkg/cli.py", "import pkg.core as c\n",
     ["src/pkg/pkg/core.py", "src/pkg/pkg/core/__init__.py", "src/pkg/core.py", "src/pkg/core/__init__.py",
      "pkg/core.py", "pkg/core/__init__.py"]),
    ("python", "a.py", "import os.path as p, pkg\n",  # every module of the line, aliased or not
     ["os/path.py", "os/path/__init__.py", "pkg.py", "pkg/__init__.py"]),
    # TypeScript imports its own files as .js; packages (no ./) are not the workspace's
    ("typescript", "source/core/Ky.ts", "import {merge} from '../utils/merge.js';\nimport x from 'lodash';\n",
     ["source/utils/merge.js", "source/utils/merge.ts", "source/utils/merge.tsx", "source/utils/merge/index.ts",
      "source/utils/merge/index.js"]),
    # Rust: declared modules and crate/super paths
    ("rust", "src/lib.rs", "mod walk;\n", ["src/walk.rs", "src/walk/mod.rs"]),
    ("rust", "src/a/b.rs", "use super::c::Item;\n",
     ["src/a/c/Item.rs", "src/a/c/Item/mod.rs", "src/a/c.rs", "src/a/c/mod.rs"]),
    ("rust", "src/lib.rs", "use crate::{walk, dir::Entry as E, self};\n",  # one level of braces
     ["src/walk.rs", "src/walk/mod.rs", "walk.rs", "walk/mod.rs",
      "src/dir/Entry.rs", "src/dir/Entry/mod.rs", "src/dir.rs", "src/dir/mod.rs",
      "dir/Entry.rs", "dir/Entry/mod.rs", "dir.rs", "dir/mod.rs"]),
    # Java: from the source root the package line gives; a static import names a member
    ("java", "lib/src/main/java/com/x/A.java", "package com.x;\nimport com.x.internal.B;\nimport static com.x.C.m;\n",
     ["lib/src/main/java/com/x/internal/B.java", "lib/src/main/java/com/x/internal.java",
      "lib/src/main/java/com/x.java", "lib/src/main/java/com/x/C/m.java", "lib/src/main/java/com/x/C.java"]),
    ("java", "src/com/x/A.java", "package com.x;\nimport com.x.util.*;\n",
     ["src/com/x/util/", "src/com/x/util.java", "src/com/x.java"]),
    # C: the header of a source file, and quoted includes
    ("c", "src/a.c", '#include "b.h"\n#include <stdio.h>\n',
     ["src/a.h", "src/a.hpp", "src/a.hh", "src/a.cc", "src/a.cpp", "src/b.h", "b.h"]),
    ("text", "notes.txt", "import x\n", []),
])
def test_imported_paths(language, rel, text, expected):
    assert imported_paths(text, language, rel) == expected


@pytest.mark.parametrize("module, text, expected", [
    (("github.com/spf13/cobra", ""), 'import (\n\t"fmt"\n\t"github.com/spf13/cobra"\n\t"github.com/spf13/cobra/doc"\n)',
     ["", "doc/"]),
    (("example.com/m", "mod"), 'import "example.com/m/pkg"\nimport alias "example.com/other"\n', ["mod/pkg/"]),
    (None, 'import "example.com/m/pkg"\n', []),  # no go.mod: no import is the workspace's
])
def test_go_imports_name_package_folders_of_the_module(module, text, expected):
    assert imported_paths(text, "go", "cmd/main.go", module) == expected


def test_go_module_path():
    assert go_module_path("// comment\nmodule github.com/spf13/cobra\n\ngo 1.15\n") == "github.com/spf13/cobra"
    assert go_module_path("go 1.20\n") is None


@pytest.mark.parametrize("imported, listings, max_files, expected", [
    # imported files first, then the document's own folder (its test first), then imported packages
    (["pkg/util.go", "lib/"], {"pkg": ["b.go", "main.go", "main_test.go", "notes.md"], "lib": ["l.go"]}, 10,
     ["pkg/util.go", "pkg/main_test.go", "pkg/b.go", "lib/l.go"]),
    (["pkg/util.go"], {"pkg": ["b.go", "c.go"]}, 2, ["pkg/util.go", "pkg/b.go"]),  # at most max_files
    (["vendor/x.go"], {"pkg": []}, 10, []),  # an ignored folder is never read
    (["pkg/readme.txt"], {"pkg": ["main.go"]}, 10, []),  # other languages' files are not candidates
])
def test_candidate_files(imported, listings, max_files, expected):
    assert candidate_files(imported, listings, "pkg/main.go", "go", max_files) == expected


@pytest.mark.parametrize("name, current, first", [
    ("foo_test.go", "foo.go", True),
    ("test_foo.py", "foo.py", True),
    ("foo.test.ts", "foo.ts", True),
    ("FooTest.java", "Foo.java", True),
    ("bar.go", "foo.go", False),
])
def test_sibling_order_puts_the_documents_own_test_first(name, current, first):
    assert (sibling_order(name, current)[0] == 0) is first


# ---------------------------------------------------------------- reading, within limits


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg" / "main.py").write_text("from .helpers import parse_header\n")
    (ws / "pkg" / "helpers.py").write_text("def parse_header(raw):\n    return raw.split(':')\n")
    (ws / "pkg" / "blob.py").write_bytes(b"\0\1binary")
    (ws / "pkg" / "huge.py").write_text("huge_name = 1\n" * 2000)
    (ws / "pkg" / "__pycache__").mkdir()
    (ws / "pkg" / "__pycache__" / "helpers.py").write_text("cached_name = 1\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("secret_token = 'x'\n")
    os.symlink(outside / "secret.py", ws / "pkg" / "leak.py")
    os.symlink(outside, ws / "pkg" / "linked")
    return ws


def _files(**kw) -> WorkspaceFiles:
    return WorkspaceFiles(max_file_bytes=10_000, **kw)  # huge.py (28 kB) is over it


def _read(ws, files: WorkspaceFiles, text="from .helpers import parse_header\nfrom .linked.secret import t\n",
          exclude=()):
    return dict(files.neighbours([ws.as_uri()], str(ws / "pkg" / "main.py"), text, "python", exclude=exclude))


def test_reads_the_imported_and_neighbouring_files_only_inside_the_workspace(workspace):
    got = _read(workspace, _files())
    assert sorted(got) == ["pkg/helpers.py"]  # not itself, the binary, the huge file, links out, caches
    assert "parse_header" in got["pkg/helpers.py"][0][1]


def test_an_open_document_is_not_read_from_disk(workspace):
    assert _read(workspace, _files(), exclude=[str(workspace / "pkg" / "helpers.py")]) == {}


def test_a_document_outside_the_workspace_reads_nothing(workspace, tmp_path):
    files = WorkspaceFiles()
    assert files.neighbours([workspace.as_uri()], str(tmp_path / "outside" / "secret.py"), "", "python") == []
    assert files.neighbours([], str(workspace / "pkg" / "main.py"), "", "python") == []
    assert files.reads == 0


def test_files_are_cached_until_they_change(workspace):
    files = _files(resolve_ttl_s=0)
    _read(workspace, files)
    reads = files.reads
    _read(workspace, files)
    assert files.reads == reads  # nothing changed: nothing read again
    helper = workspace / "pkg" / "helpers.py"
    helper.write_text("def parse_header(raw, sep):\n    return raw.split(sep)\n")
    os.utime(helper, ns=(helper.stat().st_mtime_ns + 10**9,) * 2)
    assert "sep" in _read(workspace, files)["pkg/helpers.py"][0][1]
    assert files.reads == reads + 1


def test_a_spent_time_budget_reads_no_new_file_but_keeps_cached_ones(workspace):
    files = _files(budget_s=0.0)
    assert _read(workspace, files) == {}
    files.budget_s = None
    assert sorted(_read(workspace, files)) == ["pkg/helpers.py"]
    files.budget_s = 0.0
    assert sorted(_read(workspace, files)) == ["pkg/helpers.py"]  # from the cache


def test_the_bytes_per_request_are_capped(workspace):
    assert _read(workspace, _files(max_bytes=10)) == {}


# ---------------------------------------------------------------- through the server


@pytest.mark.parametrize("enabled", [True, False])
def test_the_server_reads_the_workspace_folder_of_initialize(workspace, enabled):
    from lsprotocol import types

    from completer.server.app import CompleterServer

    server = CompleterServer()
    params = types.InitializeParams(capabilities=types.ClientCapabilities(), root_uri=workspace.as_uri(),
                                    workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")])
    for _ in server.protocol.lsp_initialize(params):
        pass
    server.show = lambda kind, message: None
    server.apply_settings({"workspace_snippets": enabled})
    uri = (workspace / "pkg" / "main.py").as_uri()
    doc = server.documents.open(uri, "from .helpers import parse_header\nparse_header(\n", "python", 1)
    paths = [p for p, _ in server.service.context_inputs(uri, doc, len(doc.text))["neighbours"]]
    assert (paths[:1] == ["pkg/helpers.py"]) is enabled  # the imported file first
    assert not {"pkg/leak.py", "pkg/blob.py", "pkg/main.py"} & set(paths)
    if not enabled:
        assert paths == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_or_a_folder_where_a_file_is_expected_is_skipped(tmp_path):
    ws = tmp_path / "ws"
    (ws / "cmd" / "go.mod").mkdir(parents=True)  # a folder named like the file looked for
    os.mkfifo(ws / "go.mod")  # opening it for reading would wait for a writer
    (ws / "cmd" / "main.go").write_text('package main\n\nimport "example.com/m/pkg"\n')
    (ws / "cmd" / "util.go").write_text("package main\n\nfunc helper() int { return 1 }\n")
    files = WorkspaceFiles(budget_s=None)
    got = files.neighbours([str(ws)], str(ws / "cmd" / "main.go"), (ws / "cmd" / "main.go").read_text(), "go")
    assert [p for p, _ in got] == ["cmd/util.go"]  # no go.mod read: the files beside it still serve
