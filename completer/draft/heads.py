"""Heads on disk: the trainer's checkpoints, the head exported from them, a head made ready to train on.

A checkpoint folder (``checkpoints/N``, speculators' layout) holds ``config.json``, ``model.safetensors``
(the head's weights in speculators' names, its draft vocabulary ``d2t``/``t2d`` included), the optimizer's
state and ``val_metrics.json``. A head (``head/``) holds the first two only: what vLLM's ``eagle3`` reads.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

HEAD_FILES = ("config.json", "model.safetensors")


class HeadError(Exception):
    """A folder that is not the head it should be."""


def last_checkpoint(ckpt: Path) -> Path | None:
    """The best epoch's folder (speculators' checkpoint_best link), else the highest epoch's."""
    best = ckpt / "checkpoint_best"
    if best.exists() and all((best / f).exists() for f in HEAD_FILES):
        return best.resolve()
    epochs = sorted((int(p.name), p) for p in ckpt.glob("[0-9]*") if p.name.isdigit()
                    and all((p / f).exists() for f in HEAD_FILES))
    return epochs[-1][1] if epochs else None


def epoch_curve(ckpt: Path) -> list[dict]:
    """The validation figures of each epoch that improved the validation loss (speculators writes
    ``N/val_metrics.json`` then), oldest first: ``epoch``, ``val_loss``, ``full_acc`` (per draft
    position i, the share of validation positions where drafts 0..i all match the target's greedy
    token: greedy acceptance of a prefix of i + 1 drafts), ``acceptance_length`` (1 + their sum: the
    expected tokens per step at k = len(full_acc)) and ``written`` (UTC, the file's time: the curve's
    time axis across resumed calls)."""
    curve = []
    for folder in sorted((p for p in ckpt.glob("[0-9]*") if p.name.isdigit()), key=lambda p: int(p.name)):
        path = folder / "val_metrics.json"
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        full = [metrics[f"full_acc_{i}_epoch"] for i in range(16) if f"full_acc_{i}_epoch" in metrics]
        curve.append({"epoch": int(folder.name), "val_loss": metrics.get("loss_epoch"), "full_acc": full,
                      "acceptance_length": round(1 + sum(full), 3),
                      "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(path.stat().st_mtime))})
    return curve


EMBED = "embed_tokens.weight"


def export_head(checkpoint: Path, head: Path) -> None:
    """Copy a checkpoint's config and weights into ``head`` (what vLLM reads; no optimizer state).

    A frozen embedding (``embed_requires_grad`` false: a copy of the target's) is left out: vLLM then
    shares the target's (vLLM 0.26 `v1/worker/gpu/spec_decode/eagle/utils.py`, `_should_share`; the
    CPU's V1 proposer likewise), and the head is a third of the size for the 1.5B (233 M of its
    ~340 M parameters), which matters where heads travel in pieces of a few MiB.

    Each file is written under a temporary name and renamed, the weights last: a stop mid-write never
    leaves a ``model.safetensors`` that is not whole (the GPU pipeline takes one as a finished head)."""
    from safetensors.torch import load_file, save_file

    head.mkdir(parents=True, exist_ok=True)
    config = json.loads((checkpoint / "config.json").read_text())
    tensors = load_file(str(checkpoint / "model.safetensors"))
    if not config.get("embed_requires_grad", False):
        tensors.pop(EMBED, None)
    shutil.copy2(checkpoint / "config.json", head / "config.json.tmp")
    save_file(tensors, str(head / "model.safetensors.tmp"), metadata={"format": "pt"})
    os.replace(head / "config.json.tmp", head / "config.json")
    os.replace(head / "model.safetensors.tmp", head / "model.safetensors")


@dataclass(frozen=True)
class InitHead:
    """A head prepared as the starting point of a run: ``folder`` (speculators' --from-pretrained),
    its draft vocabulary as .npy files (``d2t``, ``t2d``) and size."""

    folder: Path
    d2t: Path
    t2d: Path
    draft_vocab_size: int


def _target_tensor(target_dir: Path, name: str):
    """One tensor of the target's safetensors (single file or an index of shards)."""
    from safetensors import safe_open

    index = target_dir / "model.safetensors.index.json"
    file = (target_dir / json.loads(index.read_text())["weight_map"][name]) if index.exists() \
        else target_dir / "model.safetensors"
    with safe_open(str(file), framework="pt") as f:
        return f.get_tensor(name)


def prepare_init_head(head: Path, target_dir: Path, dest: Path) -> InitHead:
    """Make ``dest`` a copy of ``head`` that speculators can go on training for ``target_dir``: its
    verifier set to this target, the embedding put back where the head left it out (the target's),
    and its draft vocabulary (d2t, t2d) as the files --d2t-path/--t2d-path read, so that its lm_head
    rows keep their tokens whatever the new data's frequencies. Raises HeadError for a folder that
    is not such a head."""
    import numpy as np
    from safetensors.torch import load_file, save_file

    try:
        config = json.loads((head / "config.json").read_text())
        tensors = load_file(str(head / "model.safetensors"))
    except Exception as err:  # absent, unreadable, not JSON, not safetensors (SafetensorError)
        raise HeadError(f"--init-head {head}: not an EAGLE-3 head folder ({err})") from err
    if config.get("speculators_model_type") != "eagle3" or not {"d2t", "t2d"} <= tensors.keys():
        raise HeadError(f"--init-head {head}: not a speculators EAGLE-3 head with a draft vocabulary (d2t, t2d)")
    target = json.loads((target_dir / "config.json").read_text())
    if tensors["t2d"].shape[0] != target.get("vocab_size"):
        raise HeadError(f"--init-head {head}: made for a vocabulary of {tensors['t2d'].shape[0]} tokens, "
                        f"the target {target_dir} has {target.get('vocab_size')}")
    config.setdefault("speculators_config", {}).setdefault("verifier", {})["name_or_path"] = str(target_dir)
    if EMBED not in tensors:
        try:
            tensors[EMBED] = _target_tensor(target_dir, "model.embed_tokens.weight")
        except (KeyError, OSError) as err:
            raise HeadError(f"--init-head {head}: the target {target_dir} has no model.embed_tokens.weight "
                            f"to put back ({err})") from err
    # float32, as a fresh head starts: speculators builds the model in the config's dtype, and a bf16
    # head beside float32 hidden states (the CPU's) fails in its first matmul
    tensors = {k: t.float() if t.is_floating_point() else t for k, t in tensors.items()}
    config["dtype"] = "float32"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.json").write_text(json.dumps(config, indent=1))
    save_file(tensors, str(dest / "model.safetensors"), metadata={"format": "pt"})
    np.save(dest / "d2t.npy", tensors["d2t"].numpy())
    np.save(dest / "t2d.npy", tensors["t2d"].numpy())
    return resumed_init(dest)


def resumed_init(dest: Path) -> InitHead:
    """The InitHead that prepare_init_head made in ``dest`` (a run resumed after starting from it keeps
    its draft vocabulary)."""
    import numpy as np

    return InitHead(dest, dest / "d2t.npy", dest / "t2d.npy", int(np.load(dest / "d2t.npy").shape[0]))
