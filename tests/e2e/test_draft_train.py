"""`completer draft train` then `draft eval --head` end to end on the CPU: a tiny random Qwen2 target
with the real Qwen2.5-Coder tokenizer, completions written by the target through vLLM, a few training
steps of speculators' EAGLE-3 trainer, and a head that vLLM loads with method eagle3 whose greedy
output equals the target alone, token for token; then a second run that starts from that head
(`--init-head`), whose head has the same tensors and config as the one vLLM loaded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from completer.engine import models

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]
# real code; at --held-out 0.3 the last two are kept out of training (examples.held_out), for the eval
CODE = ["completer/context/window.py", "completer/context/scope.py", "completer/policy/acceptance.py",
        "completer/documents/positions.py", "completer/policy/steps.py", "completer/postprocess/truncate.py"]


def tiny_target(folder: Path) -> Path:
    """8 layers (EAGLE-3 reads layers 2, 4, 5), hidden 128, head_dim 64 (vLLM's CPU attention needs
    one of its sizes), random weights, and the default target's tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = Path(models.resolve(models.DEFAULT_TARGET))
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=151936, hidden_size=128, intermediate_size=256, num_hidden_layers=8,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151643)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer / name, folder / name)
    return folder


def completer(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "completer", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_a_trained_head_loads_in_vllm_and_keeps_greedy_output(tmp_path):
    target = tiny_target(tmp_path / "target")
    code = tmp_path / "code"
    for rel in CODE:
        (code / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, code / rel)
    out = tmp_path / "run"
    train = completer("draft", "train", str(code), "--out", str(out), "--target", str(target), "--epochs", "1",
                      "--max-examples", "12", "--per-file", "3", "--context-tokens", "256", "--held-out", "0.3",
                      "--draft-vocab-size", "256", "--total-seq-len", "1024", "--target-completions")
    assert train.returncode == 0, train.stderr[-3000:]
    manifest = json.loads((out / "completer-draft.json").read_text())
    assert manifest["examples"] == 12 and manifest["device"] == "cpu" and manifest["aux_layers"] == [2, 4, 5]
    assert manifest["target_completions"] is True  # the target's own greedy completions, from vLLM
    config = json.loads((out / "head" / "config.json").read_text())
    assert config["speculators_model_type"] == "eagle3" and config["draft_vocab_size"] == 256

    again = completer("draft", "train", str(code), "--out", str(out), "--target", str(target))
    assert again.returncode != 0 and "--resume" in again.stderr

    # float32: bit-stable whatever the batch shape, so the two runs must agree token for token
    evaluation = completer("draft", "eval", "--head", str(out / "head"), "--target", str(target), "-n", "4",
                           "-k", "3", "--max-tokens", "24", "--dtype", "float32", "--json", str(code))
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    result = json.loads(evaluation.stdout)
    (row,) = result["rows"]
    assert row["identical"] is True and row["k"] == 3 and row["tokens"] > 0
    assert row["acceptance_rate"] is not None and 1.0 <= row["mean_acceptance_length"] <= 4.0
    assert sorted(manifest["files_held_out"]) == sorted(CODE[-2:]) and result["files_left_out"] == 4

    # a later run goes on from that head (as from one trained in an earlier session) on a fresh sample
    # of the code: its draft vocabulary and weights are the start; the held-out files stay the same
    assert "embed_tokens.weight" not in tensors(out / "head")  # frozen: vLLM shares the target's
    later = tmp_path / "run-2"
    train = completer("draft", "train", str(code), "--out", str(later), "--target", str(target), "--epochs", "1",
                      "--max-examples", "6", "--per-file", "2", "--context-tokens", "256", "--held-out", "0.3",
                      "--total-seq-len", "1024", "--seed", "1", "--init-head", str(out / "head"))
    assert train.returncode == 0, train.stderr[-3000:]
    assert "--from-pretrained=" + str(later / "init-head") in json.loads(
        (later / "completer-draft.json").read_text())["speculators_args"]
    # the same tensors and config as the head vLLM loaded above (loading it again would start two
    # more engines for what these files already show)
    assert json.loads((later / "head" / "config.json").read_text()) == config
    assert tensors(later / "head") == tensors(out / "head")


def tensors(head: Path) -> dict[str, tuple]:
    """Name -> (shape, dtype) of a head's weights."""
    from safetensors import safe_open

    with safe_open(str(head / "model.safetensors"), framework="pt") as f:
        return {name: (tuple(f.get_slice(name).get_shape()), f.get_slice(name).get_dtype()) for name in f.keys()}
