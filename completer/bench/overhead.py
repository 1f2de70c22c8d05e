"""`completer bench overhead`: what completer adds to each request besides the model, while typing.

A 5,000-line Python file is open (with a second, smaller module as cross-file
context); text is typed into the middle of it one character per edit, through the
same DocumentStore the server uses, and after every edit a request builds the
context (re-parse of the statements around the cursor, or of the file when that would
not do; budget cuts in real tokens, retained signatures, snippets) and post-processes
a canned completion. No engine runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

from completer.bench.report import percentile, write_results
from completer.config import Settings
from completer.context.builder import build_context
from completer.context.prompt import QWEN
from completer.context.tokens import CharEstimateCounter, HFTokenCounter
from completer.documents.positions import offset_at
from completer.documents.store import DocumentStore
from completer.postprocess.pipeline import postprocess
from completer.types import CompletionKind

TYPED = "        if value > limit:\n            total += self.scale(value, factor)\n        return total\n"
# what the model "answers": multi-line ones run past the block and end in a syntax error, to exercise every cut
CANNED = {CompletionKind.SINGLE_LINE: "value, factor)  # scaled\nmore",
          CompletionKind.MULTI_LINE: "    total = 0\n        for item in items:\n            total += item\n"
                                     "        return total\n\n    def broken(self:\n        pass\n"}


def synthetic_module(lines: int, name: str = "Model") -> str:
    """A deterministic module of ``lines`` lines: imports, then classes of small methods."""
    out = ["import math", "import os", "from dataclasses import dataclass", "from typing import Any", ""]
    n = 0
    while len(out) < lines:
        out += [f"class {name}{n}:", f'    """Container number {n}."""', ""]
        for m in range(8):
            out += [f"    def method_{m}(self, value: int, factor: float = {m}.5) -> float:",
                    f"        total = value * factor + {n}",
                    f"        for step in range({m + 2}):",
                    "            total += math.sqrt(step + value)",
                    "        return total", ""]
        n += 1
    return "\n".join(out[:lines]) + "\n"


def _counter():
    try:
        from completer.engine import models

        return HFTokenCounter(models.resolve(Settings().model)), "Qwen2.5-Coder tokenizer"
    except Exception:
        return CharEstimateCounter(), "character estimate (no tokenizer in the cache)"


def _insert(line: int, character: int, text: str):
    pos = SimpleNamespace(line=line, character=character)
    return SimpleNamespace(range=SimpleNamespace(start=pos, end=pos), text=text)


def run(keystrokes: int, lines: int, out: Path | None) -> dict:
    settings = Settings()
    counter, counter_name = _counter()
    store = DocumentStore()
    uri, other = "file:///project/models.py", "file:///project/helpers.py"
    doc = store.open(uri, synthetic_module(lines), "python")
    store.open(other, synthetic_module(400, "Helper"), "python")
    doc.current_tree()
    # type into the middle: a fresh line after a method's `return`
    start_line = next(i for i in range(lines // 2, lines) if doc.text.split("\n")[i].strip() == "return total") + 1
    line, col = start_line, 0
    store.change(uri, [_insert(line, 0, "\n")])
    edit_ms, request_ms, kinds, full_parses = [], [], {k.value: 0 for k in CompletionKind}, 0
    typed = (TYPED * (keystrokes // len(TYPED) + 1))[:keystrokes]
    for ch in typed:
        t0 = time.perf_counter()
        store.change(uri, [_insert(line, col, ch)])
        t1 = time.perf_counter()
        line, col = (line + 1, 0) if ch == "\n" else (line, col + 1)
        offset = offset_at(doc.text, line, col)  # as the server does for a request
        tree = doc.tree_near(offset)
        full_parses += tree is doc.tree
        neighbours = [("helpers.py", d.windows()) for d in store.neighbours(uri)]
        ctx = build_context(doc.text, offset, "python", counter, QWEN, settings.context_tokens, settings.prefix_share,
                            tree=tree, neighbours=neighbours, path="models.py", repo="project",
                            snippet_share=settings.snippet_share, order=settings.fim_order,
                            snap_lines=settings.cut_snap_lines, anchor=settings.fim_middle_anchor)
        postprocess(CANNED.get(ctx.kind, ""), ctx)
        t2 = time.perf_counter()
        edit_ms.append((t1 - t0) * 1e3)
        request_ms.append((t2 - t1) * 1e3)
        kinds[ctx.kind.value] += 1
    result = {
        "file_lines": lines, "keystrokes": keystrokes, "tokenizer": counter_name, "kinds": kinds,
        "full_parses": full_parses,
        "request_ms": {"p50": percentile(request_ms, 50), "p95": percentile(request_ms, 95),
                       "max": max(request_ms)},
        "edit_ms": {"p50": percentile(edit_ms, 50), "p95": percentile(edit_ms, 95), "max": max(edit_ms)},
        "samples_ms": [round(x, 3) for x in request_ms],
    }
    if out is not None:
        write_results(out, "overhead", result, markdown(result), lambda path: plot(request_ms, path))
    return result


def markdown(result: dict) -> str:
    r, e = result["request_ms"], result["edit_ms"]
    return ("# Overhead: context building + post-processing per request\n\n"
            f"{result['keystrokes']} keystrokes typed into a {result['file_lines']}-line Python file (one other "
            f"document open), one request after each; tokens counted with the {result['tokenizer']}; "
            f"request kinds {result['kinds']}. A request re-parses only what the context reads: the imports and "
            "the top-level statements around the cursor and the edits; "
            f"{result.get('full_parses', 0)} requests re-parsed the whole file instead.\n\n"
            "| step | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|\n"
            f"| context + post-processing (re-parse included) | {r['p50']:.2f} | {r['p95']:.2f} "
            f"| {r['max']:.2f} |\n"
            f"| applying the edit (didChange: text + tree.edit) | {e['p50']:.2f} | {e['p95']:.2f} | {e['max']:.2f} |\n")


def plot(samples: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(samples, lw=0.8)
    ax.axhline(percentile(samples, 95), color="tab:red", ls="--", lw=0.8, label="p95")
    ax.axhline(5.0, color="black", ls=":", lw=0.8, label="5 ms target")
    ax.set_xlabel("keystroke")
    ax.set_ylabel("ms per request")
    ax.set_title("context + post-processing while typing (5,000-line file)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
