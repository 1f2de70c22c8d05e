"""The post-processing steps, in order, for one completion."""

from __future__ import annotations

import functools

from completer.postprocess.body import function_body_floor
from completer.postprocess.indentation import drop_leading_blank_lines, indent_unit, reindent
from completer.postprocess.overlap import (cut_before_suffix_lines, cut_before_suffix_repeat, trim_line_suffix_overlap,
                                           trim_suffix_overlap)
from completer.postprocess.truncate import (cut_at_block_end, cut_at_closing_bracket, cut_repeated_lines,
                                            cut_single_line, cut_to_parseable, end_before_next_line, inserted_above,
                                            indent_of, parse_window, scope_floor)
from completer.types import CompletionKind, Context


def block_floor(ctx: Context) -> int | None:
    """How far a completion may dedent before it has left its block: to the body of the function
    around the cursor, else to the body of the top-level statement it is in."""
    return _block_floor(ctx.full_prefix or ctx.prefix, ctx.full_suffix or ctx.suffix, ctx.language)


@functools.lru_cache(maxsize=8)  # asked at every streamed token of one request
def _block_floor(prefix: str, suffix: str, language: str) -> int | None:
    window_prefix, window_suffix = parse_window(prefix, suffix)
    unit_width = indent_of(_unit(prefix, suffix, language)) or 4
    floor = function_body_floor(window_prefix, window_suffix, language, unit_width)
    return floor if floor is not None else scope_floor(window_prefix)


# languages whose formatter fixes the indentation (gofmt: tabs), whatever else the file holds
FORMATTED_UNIT = {"go": "\t"}


def document_unit(ctx: Context) -> str:
    """The document's indentation unit (see indentation.indent_unit; FORMATTED_UNIT first), read around
    the cursor first; the cut prompt's when the whole text is not known."""
    return _unit(ctx.full_prefix or ctx.prefix, ctx.full_suffix or ctx.suffix, ctx.language)


@functools.lru_cache(maxsize=8)
def _unit(prefix: str, suffix: str, language: str) -> str:
    if language in FORMATTED_UNIT:
        return FORMATTED_UNIT[language]
    # the code around the cursor first: a Go file can hold a template indented with spaces
    # (the cursor's line counts as a line of code: its indentation is the editor's)
    window_prefix, window_suffix = parse_window(prefix, suffix)
    return indent_unit(window_prefix + "x" + window_suffix) or indent_unit(prefix[-200_000:] + suffix[:200_000])


def postprocess(text: str, ctx: Context) -> str:
    """Cut the model's raw text to what should be shown at the cursor."""
    if ctx.kind is CompletionKind.EMPTY:
        return ""
    if ctx.kind is CompletionKind.SINGLE_LINE:
        text = cut_single_line(text)
        text = trim_line_suffix_overlap(text, ctx.line_suffix, ctx.line_prefix, ctx.language)
        return text.rstrip() if not ctx.line_suffix.strip() else text
    suffix = ctx.full_suffix or ctx.suffix
    raw = text
    text = drop_leading_blank_lines(text, ctx.line_prefix, ctx.line_suffix)
    text = reindent(text, document_unit(ctx), first_line_too=not ctx.line_prefix)
    text = cut_repeated_lines(text)
    text = cut_at_block_end(text, ctx.line_prefix, block_floor(ctx))
    text = cut_at_closing_bracket(text, suffix, ctx.language)
    text = cut_before_suffix_repeat(text, suffix, ctx.line_prefix)
    text = cut_before_suffix_lines(text, suffix)
    text = trim_suffix_overlap(text, suffix)
    text = end_before_next_line(text, raw, ctx.line_prefix, ctx.line_suffix)
    tail = "\n" + ctx.line_prefix if inserted_above(ctx.line_prefix, ctx.line_suffix) else ""
    return cut_to_parseable(ctx.full_prefix or ctx.prefix, text, suffix, ctx.language, tail)


def block_finished(text: str, ctx: Context) -> bool:
    """Whether streaming can stop: the model has left the block or started repeating the suffix."""
    if "\n" not in text.rstrip():
        return False
    body = text.rstrip()
    suffix = ctx.full_suffix or ctx.suffix
    if len(cut_at_block_end(text, ctx.line_prefix, block_floor(ctx))) < len(body.rstrip()):
        return True
    if len(cut_repeated_lines(text)) < len(body) or len(cut_before_suffix_lines(text, suffix)) < len(body):
        return True
    closed = cut_at_closing_bracket(text, suffix, ctx.language)
    if len(closed) < len(body) and "\n" in text[len(closed):]:
        return True  # a bracket opened before the cursor closed, and its line ended
    return len(cut_before_suffix_repeat(text, suffix, ctx.line_prefix)) < len(body)
