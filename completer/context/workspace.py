"""Which files of the workspace folder may hold context for the current document.

In an editor usually one file is open, yet the code it uses lives in the files it imports
and in the files beside it. These functions only name candidate paths (relative to the
workspace root, ``/``-separated, possibly absent: the caller checks which exist); reading
them, within limits, is the server's (server/workspace_files.py). Their windows then compete
with the open documents' for the snippet budget, ranked the same way (snippets.rank).
"""

from __future__ import annotations

import posixpath
import re

# directories that hold generated, vendored or tool files, not the project's own code
IGNORED_DIRS = frozenset({
    ".git", ".hg", ".svn", "node_modules", "target", "vendor", "build", "dist", "out", "__pycache__",
    ".venv", "venv", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".gradle", ".idea",
    ".vscode", ".next", "coverage", "bazel-out", "site-packages",
})

# a language's files that may be read beside one of its documents
SOURCE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "python": (".py", ".pyi"),
    "javascript": (".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx"),
    "typescript": (".ts", ".tsx", ".mts", ".cts", ".js"),
    "tsx": (".tsx", ".ts", ".js", ".jsx"),
    "go": (".go",),
    "rust": (".rs",),
    "java": (".java",),
    "c": (".c", ".h"),
    "cpp": (".cc", ".cpp", ".cxx", ".hpp", ".hh", ".h", ".c"),
}

MAX_IMPORTS = 40  # a file's first imports say most about what it uses

_PY_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+\(?([^#\n]*)", re.M)
_PY_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w.]+(?:[ \t]+as[ \t]+\w+)?(?:[ \t]*,[ \t]*[\w.]+(?:[ \t]+as[ \t]+\w+)?)*)",
                        re.M)
_JS_SPECIFIER = re.compile(r"""(?:\bfrom|\bimport|\brequire\(|\bimport\()\s*['"](\.{1,2}/[^'"]+)['"]""")
_GO_IMPORT_BLOCK = re.compile(r"^import\s*\(([^)]*)\)", re.M)
_GO_IMPORT_LINE = re.compile(r'^import\s+(?:[\w.]+\s+)?"([^"]+)"', re.M)
_GO_QUOTED = re.compile(r'"([^"]+)"')
# `use crate::a::B;` and `use crate::{a, b::C};` (one level of braces)
_RUST_USE = re.compile(r"^[ \t]*(?:pub(?:\([^)]*\))?[ \t]+)?use[ \t]+((?:crate|super|self)(?:::\w+)*)(?:::\{([^{}]*)\})?",
                       re.M)
_RUST_PATH = re.compile(r"\w+(?:::\w+)*")
_RUST_MOD = re.compile(r"^[ \t]*(?:pub(?:\([^)]*\))?[ \t]+)?mod[ \t]+(\w+)[ \t]*;", re.M)
_JAVA_PACKAGE = re.compile(r"^[ \t]*package[ \t]+([\w.]+)[ \t]*;", re.M)
_JAVA_IMPORT = re.compile(r"^[ \t]*import[ \t]+(?:static[ \t]+)?([\w.]+)(\.\*)?[ \t]*;", re.M)
_C_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.M)


def is_ignored(rel_path: str) -> bool:
    """Whether a workspace-relative path lies in an ignored or hidden directory."""
    parts = rel_path.split("/")[:-1]
    return any(p in IGNORED_DIRS or (p.startswith(".") and p not in (".", "..")) for p in parts)


def is_source(rel_path: str, language: str) -> bool:
    """Whether ``rel_path`` is a file of ``language`` (or of one it imports, as TypeScript does JavaScript)."""
    return rel_path.endswith(SOURCE_EXTENSIONS.get(language, ()))


def ancestors(rel_dir: str) -> list[str]:
    """``rel_dir`` and each directory above it up to the root (``""``), nearest first."""
    out = []
    d = rel_dir.strip("/")
    while d:
        out.append(d)
        d = posixpath.dirname(d)
    return out + [""]


def _join(*parts: str) -> str | None:
    """The normalised relative path, or None where it climbs out of the root."""
    path = posixpath.normpath(posixpath.join(*[p for p in parts if p])) if any(parts) else ""
    if path == "." or path == "":
        return ""
    return None if path.startswith("../") or path == ".." or path.startswith("/") else path


def _python(text: str, rel_dir: str) -> list[str]:
    out: list[str] = []
    modules: list[tuple[int, str, list[str]]] = []  # (leading dots, module, imported names)
    for dots, module, names in _PY_FROM.findall(text):
        modules.append((len(dots), module, [n.split(" as ")[0].strip() for n in names.split(",")]))
    for line in _PY_IMPORT.findall(text):
        modules += [(0, m.split(" as ")[0].strip(), []) for m in line.split(",")]
    for dots, module, names in modules[:MAX_IMPORTS]:
        parts = [p for p in module.split(".") if p]
        # a name imported from a package may be a module of it
        tails = [parts] + [parts + [n] for n in names if n.isidentifier()]
        if dots:
            bases = [_join(rel_dir, *[".."] * (dots - 1))]
        else:
            bases = ancestors(rel_dir)
        for base in bases:
            if base is None:
                continue
            for tail in tails:
                if tail:
                    stem = "/".join(tail)
                    out += [_join(base, stem + ".py"), _join(base, stem, "__init__.py")]
    return [p for p in out if p]


def _javascript(text: str, rel_dir: str) -> list[str]:
    out: list[str] = []
    for spec in _JS_SPECIFIER.findall(text)[:MAX_IMPORTS]:
        path = _join(rel_dir, spec)
        if path is None:
            continue
        stem = re.sub(r"\.(?:m|c)?js$", "", path)  # TypeScript imports its own files as .js
        out += [path, stem + ".ts", stem + ".tsx", stem + ".js", stem + "/index.ts", stem + "/index.js"]
    return out


def _go(text: str, module: tuple[str, str] | None) -> list[str]:
    """Go imports packages (directories); only those of the workspace's own module can be found."""
    if module is None:
        return []
    paths = [p for block in _GO_IMPORT_BLOCK.findall(text) for p in _GO_QUOTED.findall(block)]
    paths += _GO_IMPORT_LINE.findall(text)
    module_path, module_dir = module
    out = []
    for p in paths[:MAX_IMPORTS]:
        if p == module_path or p.startswith(module_path + "/"):
            d = _join(module_dir, p[len(module_path) + 1:])
            if d is not None:
                out.append(d + "/" if d else "")
    return out


def _rust(text: str, rel_path: str) -> list[str]:
    rel_dir = posixpath.dirname(rel_path)
    stem = posixpath.basename(rel_path)[:-3]
    # the directory of the module this file is: mod.rs/lib.rs/main.rs speak for their folder
    module_dir = rel_dir if stem in ("mod", "lib", "main") else _join(rel_dir, stem)
    out: list[str] = []
    for name in _RUST_MOD.findall(text)[:MAX_IMPORTS]:
        out += [_join(module_dir, name + ".rs"), _join(module_dir, name, "mod.rs"), _join(rel_dir, name + ".rs")]
    paths: list[str] = []
    for prefix, braced in _RUST_USE.findall(text)[:MAX_IMPORTS]:
        items = [item.strip().split(" as ")[0].strip() for item in braced.split(",")] if braced else [""]
        paths += [prefix if item in ("", "self") else f"{prefix}::{item}" for item in items
                  if item in ("", "self") or _RUST_PATH.fullmatch(item)]
    for path in paths[:MAX_IMPORTS]:
        head, *parts = path.split("::")
        if head == "crate":
            bases = ancestors(rel_dir)  # the crate root is one of them (the reader finds which exist)
        elif head == "super":
            bases = [posixpath.dirname(module_dir) if module_dir else None]
        else:
            bases = [module_dir]
        for base in bases:
            if base is None:
                continue
            for n in range(len(parts), 0, -1):  # the last parts may name items, not modules
                stem_path = "/".join(parts[:n])
                out += [_join(base, stem_path + ".rs"), _join(base, stem_path, "mod.rs")]
    return [p for p in out if p]


def _java(text: str, rel_path: str) -> list[str]:
    rel_dir = posixpath.dirname(rel_path)
    package = _JAVA_PACKAGE.search(text)
    roots = ancestors(rel_dir)
    if package:
        package_dir = package.group(1).replace(".", "/")
        if rel_dir == package_dir or rel_dir.endswith("/" + package_dir):
            roots = [rel_dir[: len(rel_dir) - len(package_dir)].rstrip("/")]  # the source root
    out: list[str] = []
    for name, star in _JAVA_IMPORT.findall(text)[:MAX_IMPORTS]:
        parts = name.split(".")
        for root in roots:
            found = [_join(root, *parts)] if star else []
            found = [p + "/" for p in found if p is not None]
            # a static import names a member of a class: the class is one part shorter
            found += [p + ".java" for n in range(len(parts), 1, -1) if (p := _join(root, *parts[:n]))]
            out += found
    return out


def _c(text: str, rel_path: str) -> list[str]:
    rel_dir = posixpath.dirname(rel_path)
    stem, _ = posixpath.splitext(rel_path)
    out = [stem + ext for ext in (".h", ".hpp", ".hh", ".c", ".cc", ".cpp")]  # the header or its source
    for name in _C_INCLUDE.findall(text)[:MAX_IMPORTS]:
        out += [p for p in (_join(rel_dir, name),) + tuple(_join(a, name) for a in ancestors(rel_dir)) if p]
    return [p for p in out if p != rel_path]


def imported_paths(text: str, language: str, rel_path: str, go_module: tuple[str, str] | None = None) -> list[str]:
    """Workspace-relative paths the document at ``rel_path`` may import, nearest guess first, without
    duplicates. A path ending in ``/`` is a directory (a Go package, a Java wildcard import), ``""`` the root.

    ``go_module`` is (module path, its directory) from the nearest go.mod, for Go.
    """
    rel_dir = posixpath.dirname(rel_path)
    if language == "python":
        paths = _python(text, rel_dir)
    elif language in ("javascript", "typescript", "tsx"):
        paths = _javascript(text, rel_dir)
    elif language == "go":
        paths = _go(text, go_module)
    elif language == "rust":
        paths = _rust(text, rel_path)
    elif language == "java":
        paths = _java(text, rel_path)
    elif language in ("c", "cpp"):
        paths = _c(text, rel_path)
    else:
        paths = []
    seen, out = {rel_path}, []
    for p in paths:
        if p not in seen and not is_ignored(p):
            seen.add(p)
            out.append(p)
    return out


def go_module_path(go_mod: str) -> str | None:
    """The module path a go.mod declares."""
    m = re.search(r"^module\s+(\S+)", go_mod, re.M)
    return m.group(1).strip('"') if m else None


def candidate_files(imported: list[str], listings: dict[str, list[str]], rel_path: str, language: str,
                    max_files: int) -> list[str]:
    """The files to read, in order: those imported that exist, then the files beside the document
    (its package, in Go and Java), then the files of imported packages, at most ``max_files``.

    ``listings`` maps each directory that was listed (a Go package, a Java wildcard import, the
    document's own directory) to its file names; ``imported`` holds existing files and directories
    (``/``-terminated) from imported_paths.
    """
    out: list[str] = []
    seen = {rel_path}

    def add(path: str) -> None:
        if path not in seen and is_source(path, language) and not is_ignored(path):
            seen.add(path)
            out.append(path)

    for p in imported:
        if not p.endswith("/") and p:
            add(p)
    here = posixpath.dirname(rel_path)
    for name in sorted(listings.get(here, []), key=lambda n: sibling_order(n, posixpath.basename(rel_path))):
        add(_join(here, name) or name)
    for p in imported:
        if p.endswith("/") or p == "":
            d = p.rstrip("/")
            for name in sorted(listings.get(d, [])):
                add(_join(d, name) or name)
    return out[:max_files]


_TEST_SUFFIX = re.compile(r"(_test|\.test|\.spec|Test|Tests)?\.\w+$")


def sibling_order(name: str, current: str) -> tuple[int, str]:
    """Files beside the document: its own test or implementation first (``foo_test.go`` for ``foo.go``),
    then by name."""
    stem, own = _TEST_SUFFIX.sub("", name), _TEST_SUFFIX.sub("", current)
    test_of = stem == own or stem in (f"test_{own}", own.removeprefix("test_"))
    return (0 if test_of else 1, name)
