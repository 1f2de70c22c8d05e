"""The post-processing steps, in order, for one completion."""

from __future__ import annotations

from completer.postprocess.overlap import cut_before_suffix_repeat, trim_line_suffix_overlap
from completer.postprocess.truncate import cut_at_block_end, cut_single_line, cut_to_parseable
from completer.types import CompletionKind, Context


def postprocess(text: str, ctx: Context) -> str:
    """Cut the model's raw text to what should be shown at the cursor."""
    if ctx.kind is CompletionKind.EMPTY:
        return ""
    if ctx.kind is CompletionKind.SINGLE_LINE:
        text = cut_single_line(text)
        text = trim_line_suffix_overlap(text, ctx.line_suffix)
        return text.rstrip() if not ctx.line_suffix.strip() else text
    text = cut_at_block_end(text, ctx.line_prefix)
    text = cut_before_suffix_repeat(text, ctx.full_suffix or ctx.suffix)
    text = cut_to_parseable(ctx.full_prefix or ctx.prefix, text, ctx.full_suffix or ctx.suffix, ctx.language)
    return text


def block_finished(text: str, ctx: Context) -> bool:
    """Whether streaming can stop: the model has left the block or started repeating the suffix."""
    if "\n" not in text.rstrip():
        return False
    body = text.rstrip()
    if len(cut_at_block_end(text, ctx.line_prefix)) < len(body):
        return True
    return len(cut_before_suffix_repeat(text, ctx.full_suffix or ctx.suffix)) < len(body)
