"""Which files the server may read from disk: only those inside the editor's workspace folders.

Cross-file context reads neighbouring files; a path (or a symlink) leading out of the
workspace would let a document's imports pull in ~/.ssh or /etc. Paths are compared after
resolving every symlink, so a link inside the workspace that points outside is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from pygls.uris import to_fs_path


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
        # O_NOFOLLOW on the resolved path: a link swapped in after the check is not followed
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes or b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")
