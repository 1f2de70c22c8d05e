"""The post-processing steps, in order, for one completion."""

from __future__ import annotations

from completer.postprocess.overlap import cut_before_suffix_repeat, trim_line_suffix_overlap, trim_suffix_overlap
from completer.postprocess.truncate import (cut_at_block_end, cut_at_closing_bracket, cut_repeated_lines,
                                            cut_single_line, cut_to_parseable, end_before_next_line, inserted_above,
                                            parse_window, scope_floor)
from completer.types import CompletionKind, Context


def block_floor(ctx: Context) -> int | None:
    """How far a completion may dedent before it has left its block: to the body of its function or class."""
    window_prefix, _ = parse_window(ctx.full_prefix or ctx.prefix, "")
    return scope_floor(window_prefix)


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
    text = cut_repeated_lines(text)
    text = cut_at_block_end(text, ctx.line_prefix, block_floor(ctx))
    text = cut_at_closing_bracket(text, suffix, ctx.language)
    text = cut_before_suffix_repeat(text, suffix, ctx.line_prefix)
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
    if len(cut_repeated_lines(text)) < len(body):
        return True
    return len(cut_before_suffix_repeat(text, suffix, ctx.line_prefix)) < len(body)
