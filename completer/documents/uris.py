"""One spelling per document URI, and the path a URI names.

Editors spell one URI in several ways: VS Code escapes the colon of a Windows drive and the
``=`` of a notebook cell's fragment (``file:///c%3A/Users/a.py``,
``vscode-notebook-cell:/w/nb.ipynb#W0sZmlsZQ%3D%3D``), Neovim does not (``file:///C:/Users/a.py``);
hex digits come in either case, non-ASCII characters raw or escaped. Every place that keeps or
finds something by URI uses ``uri_key``; every place that needs a path uses ``uri_path``.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit, urlunsplit

from pygls.uris import to_fs_path

# RFC 3986's pchar beyond the unreserved characters (which quote never escapes)
_PCHAR = "!$&'()*+,;=:@"
_DRIVE = re.compile(r"^/[A-Za-z]:(/|$)")


def _requote(part: str, safe: str) -> str:
    """``part`` with every escape decoded and escaped again one way (bytes that are not UTF-8 too)."""
    return quote(unquote_to_bytes(part), safe=safe)


def uri_key(uri: str) -> str:
    """The one spelling ``uri`` is kept and found under (idempotent).

    Each part (authority, every path segment, query, fragment) is decoded and escaped again
    one way; the scheme and a Windows drive letter are lower-cased. An escaped ``/``, ``?`` or
    ``#`` stays escaped, so the parts stay apart. A string that is no URI comes back escaped the
    same way, never an error.
    """
    try:
        scheme, netloc, path, query, fragment = urlsplit(uri)
    except ValueError:  # e.g. an unbalanced [ in the authority
        return _requote(uri, _PCHAR + "/?#[]")
    path = "/".join(_requote(segment, _PCHAR) for segment in path.split("/"))
    if _DRIVE.match(path):
        path = path[0] + path[1].lower() + path[2:]
    return urlunsplit((scheme.lower(), _requote(netloc, _PCHAR + "[]"), path,
                       _requote(query, _PCHAR + "/?"), _requote(fragment, _PCHAR + "/?")))


def uri_path(uri: str) -> str:
    """The path ``uri`` names, decoded: a file URI's file-system path (a Windows drive lower-cased,
    as pygls gives the workspace root), else the decoded path part (a notebook cell's notebook)."""
    key = uri_key(uri)
    path = to_fs_path(key) if key.startswith("file:") else None
    if path is None:
        try:
            path = unquote(urlsplit(key).path)
        except ValueError:
            path = unquote(key)
        if _DRIVE.match(path):
            path = path[1:]
    return path
