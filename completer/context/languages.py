"""Which tree-sitter grammar reads a document, from its LSP languageId or file name."""

from __future__ import annotations

import functools
import importlib
import logging
from pathlib import PurePosixPath

from tree_sitter import Language, Parser

log = logging.getLogger(__name__)

# language name → (grammar module, function returning the language pointer)
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}

# LSP languageId → language name (ids as VS Code and Neovim send them)
LANGUAGE_IDS: dict[str, str] = {
    "python": "python",
    "javascript": "javascript",
    "javascriptreact": "javascript",
    "typescript": "typescript",
    "typescriptreact": "tsx",
    "go": "go",
    "rust": "rust",
    "java": "java",
    "c": "c",
    "cpp": "cpp",
}

EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust", ".java": "java",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp",
}

PLAIN_TEXT = "text"


def detect(language_id: str | None, path: str | None) -> str:
    """The language name for a document; PLAIN_TEXT when no grammar fits."""
    if language_id and language_id.lower() in LANGUAGE_IDS:
        return LANGUAGE_IDS[language_id.lower()]
    if path:
        return EXTENSIONS.get(PurePosixPath(path).suffix.lower(), PLAIN_TEXT)
    return PLAIN_TEXT


@functools.cache
def grammar(name: str) -> Language | None:
    """The tree-sitter Language for ``name``, or None (plain text) if it cannot load."""
    spec = GRAMMARS.get(name)
    if spec is None:
        return None
    module_name, attr = spec
    try:
        module = importlib.import_module(module_name)
        return Language(getattr(module, attr)())
    except Exception as err:  # a broken grammar wheel must not stop completions
        log.warning("grammar %s unavailable (%s); using plain text", name, err)
        return None


def parser(name: str) -> Parser | None:
    lang = grammar(name)
    return Parser(lang) if lang is not None else None


@functools.cache
def shared_parser(name: str) -> Parser | None:
    """One parser per language for throwaway parses (the server is single-threaded)."""
    return parser(name)


def has_syntax_error(name: str, text: str) -> bool | None:
    """Whether ``text`` parses with errors; None when the language has no grammar."""
    p = parser(name)
    if p is None:
        return None
    return p.parse(text.encode("utf-8")).root_node.has_error


def count_errors(name: str, text: str) -> int | None:
    """Number of ERROR and MISSING nodes; None when the language has no grammar."""
    p = shared_parser(name)
    if p is None:
        return None
    root = p.parse(text.encode("utf-8")).root_node
    if not root.has_error:
        return 0
    count = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            count += 1
        if node.has_error:
            stack.extend(node.children)
    return count
