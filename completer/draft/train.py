"""`completer draft train`: examples → the target's hidden states → speculators' EAGLE-3 trainer → a head.

Output folder (``out``):

- ``data/``: the examples and the target's hidden states (hidden.py), made once and reused;
- ``checkpoints/``: speculators' checkpoints, one folder per epoch (weights, optimizer, scheduler);
  each epoch's folder is itself a head vLLM loads, and the trainer resumes from the last one;
- ``head/``: the best epoch's ``config.json`` and ``model.safetensors`` (speculators' format,
  ``speculators_config`` included), for ``speculative_config.model`` with method ``eagle3``;
- ``init-head/``: with ``--init-head``, that head made ready to train on (float32, the target's
  embedding, its draft vocabulary as .npy files); a resumed run keeps reading its vocabulary;
- ``completer-draft.json``: the target, the files trained on and held out, the run's figures.

The training itself is the `speculators` library's; this module only builds its inputs and
arguments. Its trainer assumes an accelerator; on a CPU (tests, tiny targets) cpu_shim.py points
it at the CPU.
"""

from __future__ import annotations

import gc
import json
import os
import random
import shutil
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from completer.context import languages
from completer.context.prompt import QWEN
from completer.draft import examples as ex
from completer.draft import hidden
from completer.draft.heads import (HeadError, InitHead, epoch_curve, export_head, last_checkpoint, prepare_init_head,
                                   resumed_init)

MANIFEST = "completer-draft.json"
CPU_TINY_BYTES = 256 << 20  # targets up to this size train on a CPU without --allow-cpu (tests)
HEAD_DIR, DATA_DIR, CKPT_DIR, INIT_DIR = "head", "data", "checkpoints", "init-head"


# "completion": only the text after the cursor; "all": every token. The head's loss is against the
# target's own next-token distribution at each position (speculators' EAGLE-3 trainer), so the
# prompt's positions teach it as well: 6x the signal per example on the H200 run's data (878 k tokens
# against 145 k under the completion mask), where a head trained on completions alone reached an
# acceptance length of 1.26 (docs/benchmarks/gpu/real-weights).
LOSS_ON = ("all", "completion")


def with_loss_on(rows: list, loss_on: str) -> list:
    """(ids, loss mask) rows with the mask ``loss_on`` asks for. Raises ValueError for another value."""
    if loss_on not in LOSS_ON:
        raise ValueError(f"loss_on must be one of {LOSS_ON}, not {loss_on!r}")
    if loss_on == "completion":
        return rows
    return [(ids, [1] * len(ids)) for ids, _ in rows]


class TrainError(Exception):
    """Training cannot start or go on; the message says what to do."""


@dataclass
class TrainOptions:
    code_dir: Path
    out: Path
    target_dir: Path  # a local folder with config.json, weights and tokenizer.json
    epochs: int = 3
    max_steps: int | None = None
    resume: bool = False
    allow_cpu: bool = False
    per_file: int = 8  # examples per source file
    max_examples: int = 4000
    context_tokens: int = 768  # the prompts' budget (completer's context builder)
    prefix_share: float = 0.75
    max_completion_tokens: int = 128
    held_out: float = 0.1  # share of the files kept out of training (evaluation's)
    seed: int = 0
    draft_vocab_size: int = 32000
    total_seq_len: int = 8192  # tokens packed into one training step
    lr: float = 3e-4
    num_workers: int = 2
    target_completions: bool = False  # completions written by the target (vLLM, greedy), not the files' text
    loss_on: str = "all"  # LOSS_ON: the tokens the head learns at
    init_head: Path | None = None  # start from this head's weights and draft vocabulary (a new run)
    extra_args: list[str] = field(default_factory=list)  # more `speculators train` flags, passed as given


# ------------------------------------------------------------------ checks


def device_kind(torch_module) -> str:
    """'cuda' when a CUDA GPU is usable, else 'cpu'."""
    return "cuda" if torch_module.cuda.is_available() else "cpu"


def training_bytes(target_cfg: dict, draft_vocab_size: int, total_seq_len: int, ttt_steps: int = 3) -> int:
    """A rough upper bound of the accelerator memory training needs, in bytes: the target's
    weights in bf16 (hidden states are made first, with the target alone), or the head's
    training state (fp32 weights, gradients and AdamW moments) plus the logits of a packed
    step (target vocabulary for the verifier's distribution, draft vocabulary per
    test-time-training step, fp32, with their gradients), whichever is larger."""
    h, vocab = int(target_cfg["hidden_size"]), int(target_cfg["vocab_size"])
    inter = int(target_cfg.get("intermediate_size", 4 * h))
    layers = int(target_cfg.get("num_hidden_layers", 1))
    target = 2 * (2 * vocab * h + layers * (4 * h * h + 3 * h * inter))
    head_params = 3 * h * h + 4 * h * h + 3 * h * inter + draft_vocab_size * h + vocab * h
    head_state = 16 * head_params
    logits = 4 * total_seq_len * (vocab + 2 * ttt_steps * draft_vocab_size)
    activations = 4 * total_seq_len * h * 24 * ttt_steps
    return max(target, head_state + logits + activations)


def check_resources(device: str, target_dir: Path, opts: TrainOptions, free_bytes: int) -> None:
    """Refuse to start where training cannot finish: a CPU without --allow-cpu for a target
    that is not tiny, or less free memory than training_bytes. Raises TrainError."""
    from completer.engine import models

    info = models.read_info(str(target_dir))
    if device == "cpu" and info.weight_bytes > CPU_TINY_BYTES and not opts.allow_cpu:
        raise TrainError(f"no CUDA GPU here: training a head for a {info.weight_bytes / 2**30:.1f} GiB target "
                         "on a CPU takes days. Train on a GPU machine (scripts/gpu/README.md), or pass "
                         "--allow-cpu to try anyway.")
    cfg = json.loads((target_dir / "config.json").read_text())
    need = training_bytes(cfg, opts.draft_vocab_size, opts.total_seq_len)
    if need > free_bytes:
        where = "GPU" if device == "cuda" else "RAM"
        raise TrainError(f"training needs about {need / 2**30:.1f} GiB of {where}, {free_bytes / 2**30:.1f} GiB "
                         f"are free: lower --total-seq-len (now {opts.total_seq_len}) or --draft-vocab-size "
                         f"(now {opts.draft_vocab_size}), or free memory")


def free_memory(device: str) -> int:
    import psutil
    import torch

    if device == "cuda":
        return torch.cuda.mem_get_info()[0]
    return psutil.virtual_memory().available


def check_library() -> None:
    """Raise TrainError when the training library is not installed."""
    try:
        import datasets  # noqa: F401
        import speculators.train.cli  # noqa: F401
    except ImportError as err:
        raise TrainError(f"the training library is missing ({err}): run ./setup.sh draft "
                         "(installs speculators 0.9 and datasets into completer's environment)") from err


# ------------------------------------------------------------------ examples


def collect_examples(opts: TrainOptions, counter, end_ids: list[int],
                     progress: Callable[[int, str], object] | None = None) -> tuple[list, dict]:
    """(rows of (ids, loss mask), manifest part: files trained on and held out)."""
    root = opts.code_dir.resolve()
    files = ex.source_files(root)
    if not files:
        raise TrainError(f"no source files of a known language under {opts.code_dir}")
    # a seeded order, so that --max-examples samples every corner of a large folder, not its first names
    random.Random(opts.seed).shuffle(files)
    rows, trained, kept = [], [], []
    bar = progress(len(files), "examples") if progress else None
    for path in files:
        rel = str(path.relative_to(root))
        if bar is not None:
            bar.update(1)
        if ex.held_out(rel, opts.held_out):
            kept.append(rel)
            continue
        if len(rows) >= opts.max_examples:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        language = languages.detect(None, path.name)
        build = ex.prompt_builder(counter, QWEN, language, opts.context_tokens, opts.prefix_share)
        file_rows = [ex.tokenize(e, counter.encode, opts.max_completion_tokens, end_ids)
                     for e in ex.file_examples(text, rel, language, build, opts.seed, opts.per_file)]
        rows += [r for r in file_rows if sum(r[1])][:opts.max_examples - len(rows)]
        trained.append(rel)
    if bar is not None:
        bar.close()
    if len(rows) < 2:
        raise TrainError(f"{len(rows)} training examples from {opts.code_dir}: it needs more code")
    return rows, {"files_trained": trained, "files_held_out": kept}


# ------------------------------------------------------------------ the run


def _tqdm(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="it")


def prepare_data(opts: TrainOptions, device: str, progress=_tqdm) -> tuple[Path, dict, list[int]]:
    """Make (or reuse, on --resume) the examples and their hidden states. Returns (data folder,
    manifest part, auxiliary layers)."""
    import torch
    from transformers import AutoModelForCausalLM

    from completer.context.tokens import HFTokenCounter, stop_token_ids

    data = opts.out / DATA_DIR
    cfg = json.loads((opts.target_dir / "config.json").read_text())
    layers = hidden.default_layers(int(cfg["num_hidden_layers"]))
    stamp = data / "completer-examples.json"
    if stamp.exists():
        part = json.loads(stamp.read_text())
        import datasets

        ds = datasets.load_from_disk(str(data)).with_format(None)
        rows = list(zip(ds["input_ids"], ds["loss_mask"]))
    else:
        counter = HFTokenCounter(str(opts.target_dir))
        stops = stop_token_ids(counter, QWEN.stop)
        rows, part = collect_examples(opts, counter, stops[:1], progress)
        if opts.target_completions:
            from completer.engine import regenerate

            completions = regenerate.generate(opts.target_dir, rows, opts.max_completion_tokens, stops, opts.out)
            rows = regenerate.with_completions(rows, completions)
            if len(rows) < 2:
                raise TrainError("the target wrote (almost) nothing for the training prompts")
            part = {**part, "target_completions": True}
        completion_tokens = sum(sum(r[1]) for r in rows)
        rows = with_loss_on(rows, opts.loss_on)
        if data.exists():
            shutil.rmtree(data)
        data.mkdir(parents=True)
        hidden.write_dataset(data, rows)
        part = {**part, "examples": len(rows), "tokens": sum(len(r[0]) for r in rows),
                "completion_tokens": completion_tokens, "loss_on": opts.loss_on,
                "loss_tokens": sum(sum(r[1]) for r in rows)}
        stamp.write_text(json.dumps(part, indent=1))
    todo = hidden.missing(data, len(rows))
    if todo:
        need = hidden.stored_bytes(sum(len(rows[i][0]) for i in todo), len(layers), int(cfg["hidden_size"]))
        free = shutil.disk_usage(data).free
        if need > free:
            raise TrainError(f"the target's hidden states need {need / 2**30:.1f} GiB on disk, {free / 2**30:.1f} GiB "
                             f"are free under {data}: lower --max-examples or --context-tokens, or choose another --out")
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(str(opts.target_dir), dtype=dtype).to(device).eval()
        hidden.record(data, rows, hidden.HiddenStateRecorder(model, layers), progress)
        del model
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    return data, part, layers


def speculators_args(opts: TrainOptions, data: Path, layers: list[int], device: str,
                     init: InitHead | None = None, resumed: bool = False) -> list[str]:
    """`speculators train` flags for an EAGLE-3 head of one llama layer over ``layers``; with ``init``,
    that head's draft vocabulary (its size replaces ``opts.draft_vocab_size``) and, unless the run is
    ``resumed`` from its own checkpoint, its weights."""
    args = [f"--verifier-name-or-path={opts.target_dir}", f"--data-path={data}", "--speculator-type=eagle3",
            f"--save-path={opts.out / CKPT_DIR}", f"--log-dir={opts.out / 'logs'}", f"--epochs={opts.epochs}",
            f"--draft-vocab-size={init.draft_vocab_size if init else opts.draft_vocab_size}",
            "--target-layer-ids", *map(str, layers),
            f"--total-seq-len={opts.total_seq_len}", f"--lr={opts.lr}", f"--seed={opts.seed}",
            "--train-data-ratio=0.9", f"--num-workers={opts.num_workers}"]
    if opts.max_steps is not None:
        args.append(f"--max-steps={opts.max_steps}")
    if init is not None:  # its draft vocabulary, so that the lm_head rows keep their tokens
        args += [f"--d2t-path={init.d2t}", f"--t2d-path={init.t2d}"]
    if init is not None and not resumed:  # the head defines the decoder: speculators refuses the shaping flags beside it
        args.append(f"--from-pretrained={init.folder}")
    else:  # a fresh head, or a resumed run (its last checkpoint holds the weights)
        args += ["--num-layers=1", "--draft-arch=llama", "--full-attention-indices", "0"]
    # speculators' fused loss is a Triton kernel that torch 2.11's compiler rejects on a GPU
    # ("ListVariable ... is already tracked for mutation", H200), and that does not run on a CPU
    args.append("--loss-implementation=eager")
    if device == "cpu":  # flex attention compiles for GPUs
        args += ["--draft-attn-impl=sdpa", "--hidden-states-dtype=float32", "--num-workers=0"]
    return args + list(opts.extra_args)


class _Stopped(BaseException):
    """A termination signal arrived while the trainer ran (a BaseException, as KeyboardInterrupt is,
    so that the trainer's own ``except Exception`` blocks do not swallow it)."""


def _raise_stopped(signum, _frame):
    raise _Stopped(signal.Signals(signum).name)


SIGNAL, ERROR = "signal", "error"


def run_until_stopped(trainer: Callable[[], object]) -> tuple[str, str] | None:
    """Run ``trainer()`` so that a stop ends the training, not the run: the caller can still make a
    head of the epochs written so far. Returns None when the trainer returned, else (SIGNAL, its
    name) or (ERROR, the error it raised).

    speculators' trainer installs its own SIGINT/SIGTERM handler while it trains: a signal there
    makes it save ``checkpoints/interrupted`` and return as if finished (see ``interrupted``). When
    a whole process group is signalled (``timeout`` does that), the SIGTERM also kills its
    DataLoader workers and the trainer fails with "DataLoader worker ... is killed by signal:
    Terminated" (H200, 2026-12-02): an error. Only in the main thread (signals are delivered there)."""
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        trainer()
        return None
    except _Stopped as stop:
        return SIGNAL, str(stop)
    except Exception as err:  # the trainer's own failure, or the one a signal caused
        traceback.print_exc()  # the whole story on stderr; the caller reports the stop
        return ERROR, f"{type(err).__name__}: {err}"
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted(ckpt: Path, since: float) -> bool:
    """Whether speculators saved ``checkpoints/interrupted`` after ``since`` (time.time()): its
    trainer caught a signal and returned early."""
    marker = ckpt / "interrupted"
    return marker.exists() and marker.stat().st_mtime >= since


def train(opts: TrainOptions, progress=_tqdm) -> dict:
    """Run the whole pipeline; returns the manifest written to ``out``. Raises TrainError."""
    check_library()
    import torch

    ckpt = opts.out / CKPT_DIR
    if ckpt.exists() and any(ckpt.iterdir()) and not opts.resume:
        raise TrainError(f"{opts.out} holds a training run: pass --resume to go on with it, or choose another --out")
    device = device_kind(torch)
    check_resources(device, opts.target_dir, opts, free_memory(device))
    opts.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    data, part, layers = prepare_data(opts, device, progress)
    data_s = time.monotonic() - started

    from speculators.train.cli import main as speculators_main
    from speculators.train.config import TrainConfig

    init, prepared, resumed = None, opts.out / INIT_DIR, last_checkpoint(ckpt) is not None
    if opts.init_head is not None and not resumed:
        try:
            init = prepare_init_head(opts.init_head, opts.target_dir, prepared)
        except HeadError as err:
            raise TrainError(str(err)) from err
    elif (prepared / "d2t.npy").exists():  # a resumed run that began from a head keeps its draft vocabulary
        init = resumed_init(prepared)
    args = speculators_args(opts, data, layers, device, init, resumed)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if device == "cpu":
        from completer.draft import cpu_shim

        cpu_shim.install()
    train_started, wall_started = time.monotonic(), time.time()
    # a stop (a signal, an error) ends the training, not the run: the best epoch written so far becomes the head
    stop = run_until_stopped(lambda: speculators_main(TrainConfig.resolve(args)))
    if stop is None and interrupted(ckpt, wall_started):
        stop = (SIGNAL, "a signal (speculators saved checkpoints/interrupted)")
    train_s = time.monotonic() - train_started
    stopped = f"{stop[0]}: {stop[1]}" if stop else None
    best = last_checkpoint(ckpt)
    if best is None:
        raise TrainError(f"the trainer left no checkpoint in {ckpt}" + (f" (stopped by {stopped})" if stopped else ""))
    export_head(best, opts.out / HEAD_DIR)
    # one entry per call, so that a run resumed over several calls keeps its curve of time against epochs
    previous = json.loads((opts.out / MANIFEST).read_text()).get("history", []) if (opts.out / MANIFEST).exists() else []
    history = previous + [{"epochs": opts.epochs, "max_steps": opts.max_steps, "data_seconds": round(data_s, 1),
                           "train_seconds": round(train_s, 1), "checkpoint": best.name, "stopped_by": stopped}]
    manifest = {"target": str(opts.target_dir), "code_dir": str(opts.code_dir.resolve()), "device": device,
                "aux_layers": layers, "checkpoint": best.name, "data_seconds": round(data_s, 1),
                "train_seconds": round(train_s, 1), "speculators_args": args,
                "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
                "stopped_by": stopped, "history": history, "curve": epoch_curve(ckpt), **part}
    (opts.out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest
