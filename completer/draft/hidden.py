"""The target's hidden states over the training examples, stored as `speculators` reads them.

Layout of a data folder (speculators' offline layout, read by its ArrowDataset and FileTransfer):

- the examples as a `datasets` Arrow dataset (``input_ids``, ``loss_mask``, ``seq_len``; torch format);
- ``hidden_states/hs_<i>.safetensors``: ``hidden_states`` [seq_len, len(layers) + 1, hidden] (bf16)
  and ``token_ids`` [seq_len]; the layers are the EAGLE-3 auxiliary ones, then the last layer's
  output before the final norm (the verifier state the trainer's loss reads);
- ``token_freq.pt``: token id → count over the completion tokens (the draft vocabulary's source).

Hidden states come from Hugging Face transformers (same weights as vLLM's, on a GPU or a CPU):
the state *entering* decoder layer i, which is what vLLM's EAGLE-3 auxiliary layer i returns
(the residual stream after i layers), and for i = num_layers the input of the final norm.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

HS_DIR = "hidden_states"
TOKEN_FREQ = "token_freq.pt"


def default_layers(num_layers: int) -> list[int]:
    """vLLM's and speculators' default EAGLE-3 auxiliary layers: (2, L // 2, L - 3).

    Raises ValueError for a target too shallow for three distinct ones."""
    layers = [2, num_layers // 2, num_layers - 3]
    if len(set(layers)) < 3 or min(layers) < 0:
        raise ValueError(f"a target with {num_layers} layers has no three distinct EAGLE-3 layers {layers}")
    return layers


def stored_bytes(tokens: int, num_layers: int, hidden_size: int) -> int:
    """Disk that the hidden states of ``tokens`` tokens take: bf16, the auxiliary layers plus the last."""
    return tokens * (num_layers + 1) * hidden_size * 2


def hs_path(data_dir: Path, index: int) -> Path:
    return Path(data_dir) / HS_DIR / f"hs_{index}.safetensors"


def token_frequencies(rows: Sequence[tuple[list[int], list[int]]]) -> dict[int, int]:
    """Counts of the token ids under a loss mask of 1, over (ids, mask) rows."""
    freq: Counter[int] = Counter()
    for ids, mask in rows:
        freq.update(t for t, m in zip(ids, mask) if m)
    return dict(freq)


def write_dataset(data_dir: Path, rows: Sequence[tuple[list[int], list[int]]]) -> None:
    """The examples as speculators' Arrow dataset, and their token frequencies."""
    import datasets
    import torch

    ds = datasets.Dataset.from_dict({"input_ids": [r[0] for r in rows], "loss_mask": [r[1] for r in rows],
                                     "seq_len": [len(r[0]) for r in rows]})
    ds.set_format(type="torch")
    ds.save_to_disk(str(data_dir))
    torch.save(token_frequencies(rows), Path(data_dir) / TOKEN_FREQ)


def missing(data_dir: Path, count: int) -> list[int]:
    """Indices of examples whose hidden-state file is absent or unreadable (a run stopped mid-write)."""
    from safetensors import safe_open

    out = []
    for i in range(count):
        path = hs_path(data_dir, i)
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception:  # absent, truncated or not safetensors: make it again
            out.append(i)
    return out


class HiddenStateRecorder:
    """Runs the target (a transformers causal LM) and returns the recorded states of one sequence.

    ``layers``: the auxiliary layers; the final norm's input is recorded after them."""

    def __init__(self, model, layers: Sequence[int]):
        self.model = model
        self.layers = list(layers)
        self._seen: dict[int, object] = {}
        base = model.model
        for i in self.layers:
            base.layers[i].register_forward_pre_hook(self._hook(i), with_kwargs=True)
        base.norm.register_forward_pre_hook(self._hook(len(base.layers)), with_kwargs=True)
        self._order = self.layers + [len(base.layers)]

    def _hook(self, key: int):
        def hook(_module, args, kwargs):
            self._seen[key] = (args[0] if args else kwargs["hidden_states"]).detach()
        return hook

    def __call__(self, ids: list[int]):
        """[len(ids), len(layers) + 1, hidden] in bf16, on the CPU."""
        import torch

        self._seen.clear()
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            self.model.model(input_ids=torch.tensor([ids], device=device))  # the base model: no logits needed
        return torch.stack([self._seen[k][0] for k in self._order], dim=1).to(torch.bfloat16).cpu()


def record(data_dir: Path, rows: Sequence[tuple[list[int], list[int]]], recorder: Callable,
           progress: Callable[[int, str], object] | None = None) -> int:
    """Write the hidden-state file of every example that lacks one; returns how many were written.

    Each file is written under a temporary name and renamed, so a stopped run leaves none half-written."""
    import torch
    from safetensors.torch import save_file

    todo = missing(data_dir, len(rows))
    (Path(data_dir) / HS_DIR).mkdir(parents=True, exist_ok=True)
    bar = progress(len(todo), "target hidden states") if progress else None
    for i in todo:
        ids = rows[i][0]
        path = hs_path(data_dir, i)
        tmp = path.with_suffix(".tmp")
        save_file({"hidden_states": recorder(ids).contiguous(), "token_ids": torch.tensor(ids, dtype=torch.long)},
                  str(tmp))
        tmp.replace(path)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return len(todo)
