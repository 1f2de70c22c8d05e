"""Which files the server may read from disk: only those inside the editor's workspace folders.

Cross-file context reads neighbouring files; a path (or a symlink) leading out of the
workspace would let a document's imports pull in ~/.ssh or /etc. Paths are compared after
resolving every symlink, so a link inside the workspace that points outside is refused.
"""

from __future__ import annotations

import itertools
import os
import stat
import time
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

from pygls.uris import to_fs_path

from completer.context import workspace


def workspace_roots(folders: Iterable[str]) -> list[Path]:
    """Workspace folder URIs or paths → resolved directories (non-file URIs are dropped)."""
    roots = []
    for folder in folders:
        path = to_fs_path(folder) if "://" in folder else folder
        if path:
            roots.append(Path(os.path.realpath(path)))
    return roots


def is_inside_workspace(path: str | os.PathLike, folders: Iterable[str]) -> bool:
    """Whether ``path``, with every symlink resolved, lies inside one of ``folders``."""
    roots = workspace_roots(folders)
    if not roots:
        return False  # no workspace: nothing on disk is the editor's to share
    target = Path(os.path.realpath(path))
    return any(target == root or root in target.parents for root in roots)


def read_workspace_file(path: str | os.PathLike, folders: Iterable[str], max_bytes: int = 1 << 20) -> str | None:
    """The text of a workspace file, or None when it lies outside, is missing, too large or binary."""
    if not is_inside_workspace(path, folders):
        return None
    real = os.path.realpath(path)
    try:
        # O_NOFOLLOW on the resolved path: a link swapped in after the check is not followed;
        # O_NONBLOCK: opening a FIFO does not wait for a writer (it is refused below)
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None  # a directory, FIFO, socket or device
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > max_bytes or b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


class WorkspaceFiles:
    """Files of the workspace folders that the client never opened, read for cross-file snippets.

    Which files: those the document imports and those beside it (context/workspace.py). Every
    path is checked inside the workspace after resolving symlinks, ignored directories are
    skipped, and a file larger than ``max_file_bytes`` or binary is never used. A request reads
    at most ``max_files`` files and ``max_bytes`` bytes and stops reading new ones once
    ``budget_s`` has passed (what it left is read by the next request); a file read once is
    kept, as windows, until its mtime or size changes.
    """

    def __init__(self, max_files: int = 16, max_file_bytes: int = 256 << 10, max_bytes: int = 1 << 20,
                 budget_s: float | None = 0.03, resolve_ttl_s: float = 10.0, keep: int = 256) -> None:
        self.max_files, self.max_file_bytes, self.max_bytes = max_files, max_file_bytes, max_bytes
        self.budget_s, self.resolve_ttl_s, self.keep = budget_s, resolve_ttl_s, keep
        self._files: OrderedDict[str, tuple[tuple[int, int], list]] = OrderedDict()  # real path → (stat, windows)
        self._candidates: dict[tuple[str, str], tuple[float, list[str]]] = {}  # (root, rel path) → (when, files)
        self.reads = 0  # files read from disk (for tests and stats)

    def neighbours(self, folders: Iterable[str], path: str, text: str, language: str,
                   exclude: Iterable[str] = ()) -> list[tuple[str, list]]:
        """(path relative to its workspace folder, snippet windows) of the workspace files worth
        ranking for the document at ``path`` (a file-system path) whose text is ``text``.

        ``exclude``: paths whose text comes from elsewhere (open documents: their buffer is newer).
        """
        from completer.context.snippets import windows

        if language not in workspace.SOURCE_EXTENSIONS:
            return []
        deadline = None if self.budget_s is None else time.monotonic() + self.budget_s
        roots = workspace_roots(folders)
        real = Path(os.path.realpath(path))
        root = next((r for r in sorted(roots, key=lambda r: -len(r.parts)) if r in real.parents), None)
        if root is None:
            return []  # a document outside the workspace: nothing on disk is known to belong with it
        rel_path = real.relative_to(root).as_posix()
        skip = {os.path.realpath(p) for p in exclude} | {str(real)}
        out, used = [], 0
        for rel in self._candidate_files(root, rel_path, text, language):
            file = os.path.realpath(root / rel)
            if file in skip or not _inside(file, root):
                continue
            try:
                st = os.stat(file)
            except OSError:
                continue
            key = (st.st_mtime_ns, st.st_size)
            cached = self._files.get(file)
            if cached is None or cached[0] != key:
                if st.st_size > self.max_file_bytes or used + st.st_size > self.max_bytes:
                    continue
                if deadline is not None and time.monotonic() >= deadline:
                    continue  # a cached file further down may still serve
                content = read_workspace_file(file, [str(root)], self.max_file_bytes)
                self.reads += 1
                used += st.st_size
                cached = (key, windows(content) if content is not None else [])
                self._files[file] = cached
                while len(self._files) > self.keep:
                    self._files.popitem(last=False)
            self._files.move_to_end(file)
            if cached[1]:
                out.append((rel, cached[1]))
        return out

    def _candidate_files(self, root: Path, rel_path: str, text: str, language: str) -> list[str]:
        """The existing files to consider (workspace-relative), resolved at most once per ``resolve_ttl_s``."""
        now = time.monotonic()
        hit = self._candidates.get((str(root), rel_path))
        if hit is not None and now - hit[0] < self.resolve_ttl_s:
            return hit[1]
        go_module = _go_module(root, rel_path) if language == "go" else None
        existing: list[str] = []
        listings: dict[str, list[str]] = {}
        for p in workspace.imported_paths(text, language, rel_path, go_module)[:MAX_PROBES]:
            if p.endswith("/") or p == "":
                d = p.rstrip("/")
                names = _list_dir(root, d)
                if names:
                    listings[d] = names
                    existing.append(p)
            elif os.path.isfile(root / p):
                existing.append(p)
        here = os.path.dirname(rel_path)
        listings.setdefault(here, _list_dir(root, here))
        files = workspace.candidate_files(existing, listings, rel_path, language, self.max_files)
        self._candidates[(str(root), rel_path)] = (now, files)
        if len(self._candidates) > self.keep:
            self._candidates.pop(next(iter(self._candidates)))
        return files


MAX_PROBES = 400  # existence checks for one document's imports
MAX_LISTED = 200  # files taken from one directory


def _inside(path: str, root: Path) -> bool:
    p = Path(path)
    return p == root or root in p.parents


def _list_dir(root: Path, rel_dir: str) -> list[str]:
    """Names of the regular files in a workspace directory (none if it leads outside)."""
    if workspace.is_ignored(rel_dir + "/x"):
        return []
    try:
        d = os.path.realpath(root / rel_dir) if rel_dir else str(root)
        if not _inside(d, root):
            return []
        with os.scandir(d) as entries:
            return sorted(e.name for e in itertools.islice(entries, 4 * MAX_LISTED)
                          if e.is_file(follow_symlinks=False))[:MAX_LISTED]
    except (OSError, ValueError):  # ValueError: a NUL in the name an import gave
        return []


def _go_module(root: Path, rel_path: str) -> tuple[str, str] | None:
    """(module path, its directory) from the nearest go.mod above ``rel_path`` inside the workspace."""
    for d in workspace.ancestors(os.path.dirname(rel_path)):
        text = read_workspace_file(root / d / "go.mod", [str(root)], 64 << 10)
        if text is not None:
            module = workspace.go_module_path(text)
            return (module, d) if module else None
    return None
