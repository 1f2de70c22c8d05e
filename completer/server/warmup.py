"""A warm prompt before the first keystroke: while the engine is idle, a prefill-only request fills
vLLM's prefix cache with the prompt that a completion at the likely cursor would read.

On a CPU the first suggestion in a document reads its whole prompt (some 2,000 tokens) afresh, many
times the cost of a short prompt. The engine is idle while the user reads the opened document or
stops to think, so that reading is done then.

When: a document was opened, or edited and then left alone, for ``warm_prompt_pause_ms``: longer than
the gap between keystrokes while typing, so a burst of typing never starts one, and a completion
request that an editor sends right after opening a document goes first. Where: the end of the
document's last edit (the editor's cursor after it), else the end of the document (new code is
mostly written at a file's end, and in a file shorter than the context budget the prompt's prefix is
the same for every cursor). What: the context, plan and prefix cache the real request would use, and
one token to generate (two when speculating, so that the draft model has read the prompt too).

Any real request goes first: it cancels a running warm request (the blocks vLLM has computed stay in
its prefix cache), and none starts while a request is in flight or the engine is not ready. An engine
step cannot be interrupted, and vLLM's CPU engine reads a 2,000-token prompt in one step, so the
prompt is warmed in pieces of WARM_PIECE_TOKENS, each a request for a longer start of it that finds
the pieces before it in the cache: a real request waits for one piece at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable

from completer.documents.store import edit_offset
from completer.engine.interface import new_request_id
from completer.types import CompletionKind, Generation, GenerationPlan

if TYPE_CHECKING:
    from completer.pipeline import Completer
    from completer.server.app import CompleterServer

log = logging.getLogger(__name__)

# tokens read per warm request: ~1.6 s of prefill for the bf16 1.5B target on one core (160 tok/s)
WARM_PIECE_TOKENS = 256
KEPT_CURSORS = 64  # documents whose last edit is remembered after they close


def cursor_after(text: str, changes, encoding: str = "utf-16") -> int | None:
    """Where an editor's cursor is after a didChange: the end of the last ranged change's new text,
    as an offset into ``text`` (the document after all the changes); None for a whole-text change."""
    last = changes[-1] if changes else None
    rng = getattr(last, "range", None)
    if rng is None:
        return None
    start = edit_offset(text, rng.start.line, rng.start.character, encoding)
    return min(start + len(last.text), len(text))


def likely_cursor(text_length: int, last_edit: int | None) -> int:
    """The offset a completion is likely asked at next: the last edit's end, else the document's end."""
    return text_length if last_edit is None else min(max(last_edit, 0), text_length)


def warm_plan(plan: GenerationPlan) -> GenerationPlan:
    """The real request's plan, cut to the prefill: one token, or two when speculating (the draft
    model reads the prompt when it first proposes, after the first token)."""
    tokens = 2 if plan.speculate else 1
    return replace(plan, max_tokens=tokens, min_tokens=min(plan.min_tokens, tokens))


def piece_ends(prompt: str, prompt_tokens: int, piece_tokens: int = WARM_PIECE_TOKENS) -> list[int]:
    """Where each warm piece of ``prompt`` ends (character offsets, the last one its end): about
    ``piece_tokens`` tokens apart, each just after a line break that no other line break follows,
    where the tokenizer always starts a new token, so a piece's tokens begin the whole prompt's."""
    count = -(-prompt_tokens // piece_tokens) if prompt_tokens > 0 else 1
    ends: list[int] = []
    for i in range(1, count):
        at = prompt.rfind("\n", 0, len(prompt) * i // count)
        while at > 0 and prompt[at - 1] in "\r\n":
            at -= 1  # the start of a run of line breaks
        if at <= 0:
            continue
        cut = at + len(prompt[at:]) - len(prompt[at:].lstrip("\r\n"))  # after the whole run
        if cut < len(prompt) and (not ends or cut > ends[-1]):
            ends.append(cut)
    return ends + [len(prompt)]


@dataclass
class WarmSchedule:
    """When and where to warm; pure (``now`` is the caller's clock in seconds).

    Only the document touched last is warmed: that is where the user is. ``read`` keeps, per
    document, the (version, offset) whose prompt a request has already read (real or warm).
    """

    pause_s: float
    cursors: dict[str, int] = field(default_factory=dict)
    read: dict[str, tuple[int, int]] = field(default_factory=dict)
    pending: tuple[str, float] | None = None  # (document, when it is due)

    def opened(self, uri: str, now: float) -> None:
        self.pending = (uri, now + self.pause_s)

    def edited(self, uri: str, cursor: int | None, now: float) -> None:
        if cursor is not None:
            self.cursors[uri] = cursor
        self.pending = (uri, now + self.pause_s)

    def requested(self, uri: str, offset: int) -> None:
        """A real request at ``offset``: the cursor is there."""
        self.cursors[uri] = offset

    def was_read(self, uri: str, version: int, offset: int) -> None:
        """A request read the prompt at (version, offset): warming it again gains nothing."""
        self.read[uri] = (version, offset)
        if self.pending is not None and self.pending[0] == uri:
            self.pending = None

    def closed(self, uri: str) -> None:
        """The cursor is kept (editors reopen a document where it was left), for the last KEPT_CURSORS."""
        self.read.pop(uri, None)
        if self.pending is not None and self.pending[0] == uri:
            self.pending = None
        if uri in self.cursors:
            self.cursors[uri] = self.cursors.pop(uri)  # the most recent last
        while len(self.cursors) > KEPT_CURSORS:
            del self.cursors[next(iter(self.cursors))]

    def postpone(self, now: float) -> None:
        """The engine is busy or not ready: try again after another pause."""
        if self.pending is not None:
            self.pending = (self.pending[0], now + self.pause_s)

    def due(self, now: float, document: Callable[[str], tuple[int, int] | None]) -> tuple[str, int, int] | None:
        """(uri, version, offset) to warm now, or None. ``document(uri)``: (version, text length) of
        an open document, None when it is closed. A target already read is dropped."""
        if self.pending is None or now < self.pending[1]:
            return None
        uri = self.pending[0]
        state = document(uri)
        if state is None:
            self.pending = None
            return None
        version, length = state
        offset = likely_cursor(length, self.cursors.get(uri))
        if self.read.get(uri) == (version, offset):
            self.pending = None
            return None
        return uri, version, offset


async def warm_prompt(completer: "Completer", text: str, offset: int, language: str, **context) -> Generation | None:
    """Prefill the prompt a completion at ``offset`` would read, with its plan and prefix cache.

    ``context``: build_context's tree, neighbours, path and repo, as the real request passes them.
    Returns the last piece's Generation, its cached_tokens those the pieces did not compute, or None
    where no request would be made (an empty context). Raises EngineError; cancelling it aborts the request in the engine.
    """
    ctx = completer.context(text, offset, language, **context)
    if ctx.kind is CompletionKind.EMPTY:
        return None
    engine = completer.engine
    plan = completer.policy.plan(ctx, lambda speculate: engine.prefix_cache(speculate, None))
    plan = warm_plan(replace(plan, stop=plan.stop + completer.fim.stop, stop_token_ids=completer.stop_token_ids))
    generation, computed = Generation(text=""), 0
    for end in piece_ends(ctx.prompt, ctx.prompt_tokens):
        async with aclosing(engine.generate(ctx.prompt[:end], plan, request_id=new_request_id())) as stream:
            async for generation in stream:
                pass
        computed += generation.prompt_tokens - generation.cached_tokens
    # the planner now knows which prefix cache holds this prompt (policy.warm_cache)
    completer.policy.remember(ctx, plan, generation, engine.prefix_cache(plan.speculate, None))
    return replace(generation, cached_tokens=generation.prompt_tokens - computed)


class PromptWarmer:
    """Runs WarmSchedule against the server: one warm request at a time, never beside a real one."""

    def __init__(self, server: "CompleterServer") -> None:
        self.server = server
        self.schedule = WarmSchedule(pause_s=server.settings.warm_prompt_pause_ms / 1000)
        self.started = 0  # warm requests sent to the engine
        self.finished = 0  # ... that read their whole prompt
        self.cancelled = 0  # ... that a real request cancelled
        self.prompt_tokens = 0  # prompt tokens the finished ones computed (not found in the cache)
        self._loop_task: asyncio.Task | None = None
        self._warm_task: asyncio.Task | None = None
        self._warm_uri: str | None = None

    @property
    def enabled(self) -> bool:
        s = self.server.settings
        return s.warm_prompt and s.enable_prefix_caching

    def opened(self, uri: str) -> None:
        self._touch(lambda now: self.schedule.opened(uri, now))

    def edited(self, uri: str, cursor: int | None) -> None:
        self._touch(lambda now: self.schedule.edited(uri, cursor, now))

    def closed(self, uri: str) -> None:
        self.schedule.closed(uri)
        if self._warm_task is not None and self._warm_uri == uri and not self._warm_task.done():
            self._warm_task.cancel()

    def request_started(self, uri: str, offset: int) -> None:
        """A real request: it goes first."""
        self.schedule.requested(uri, offset)
        if self._warm_task is not None and not self._warm_task.done():
            self._warm_task.cancel()
            self.cancelled += 1

    def request_read(self, uri: str, version: int, offset: int) -> None:
        """A real request's prompt reached the engine's cache (it produced a token)."""
        self.schedule.was_read(uri, version, offset)

    def as_dict(self) -> dict:
        """The warm-prompt part of `completer/stats`."""
        return {"warm_prompts_started": self.started, "warm_prompts_finished": self.finished,
                "warm_prompts_cancelled": self.cancelled, "warm_prompt_tokens": self.prompt_tokens}

    def _touch(self, update: Callable[[float], None]) -> None:
        self.schedule.pause_s = self.server.settings.warm_prompt_pause_ms / 1000
        update(time.monotonic())
        if self.enabled and (self._loop_task is None or self._loop_task.done()):
            self._loop_task = asyncio.ensure_future(self._run())

    def _idle(self) -> bool:
        server = self.server
        return server.host.ready and len(server.service.latest) == 0

    def _document(self, uri: str) -> tuple[int, int] | None:
        doc = self.server.documents.get(uri)
        return None if doc is None else (doc.version, len(doc.text))

    async def _run(self) -> None:
        """Wait for the pending target to fall due, then warm it when the engine is idle."""
        schedule = self.schedule
        while schedule.pending is not None and self.enabled:
            await asyncio.sleep(max(0.0, schedule.pending[1] - time.monotonic()))
            now = time.monotonic()
            if schedule.pending is None or now < schedule.pending[1]:
                continue  # closed, or edited again meanwhile
            if not self._idle():
                schedule.postpone(now)
                continue
            target = schedule.due(now, self._document)
            if target is None:
                continue
            self._warm_task, self._warm_uri = asyncio.ensure_future(self._warm(*target)), target[0]
            with contextlib.suppress(asyncio.CancelledError):
                await self._warm_task
            self._warm_task = None

    async def _warm(self, uri: str, version: int, offset: int) -> None:
        server = self.server
        doc = server.documents.get(uri)
        completer = server.host.completer
        if doc is None or doc.version != version or completer is None:
            return
        self.started += 1
        started = time.monotonic()
        try:
            generation = await warm_prompt(completer, doc.text, offset, doc.language,
                                           **server.service.context_inputs(uri, doc, offset))
        except asyncio.CancelledError:
            log.debug("warm prompt at %s:%d cancelled by a request", uri, offset)
            raise
        except Exception as err:  # the real request will meet (and report) the same failure
            log.debug("warm prompt at %s:%d failed: %s", uri, offset, err)
            self.schedule.was_read(uri, version, offset)  # not again for this version
            return
        self.schedule.was_read(uri, version, offset)
        if generation is None:
            return
        self.finished += 1
        self.prompt_tokens += generation.prompt_tokens - generation.cached_tokens
        log.info("warm prompt %s: %d prompt tokens (%d cached) in %.2f s", uri, generation.prompt_tokens,
                 generation.cached_tokens, time.monotonic() - started)
