"""A real int8 conversion of a tiny random Qwen2 model: the conversion venv, llmcompressor, the manifest.

Creates the conversion venv when it is missing (as `completer models fetch` would).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from completer.engine import quantize

CODE = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i * i)\n",
        "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n"] * 20


def tiny_model(folder: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel()
    tok.train_from_iterator(CODE, trainers.BpeTrainer(vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(folder)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    return folder


@pytest.fixture
def texts(monkeypatch):
    # the tiny model's tokenizer knows only CODE; calibration and the check read it, not the project
    monkeypatch.setattr(quantize, "code_texts", lambda: {"calibration": CODE, "heldout": CODE[::-1]})


def test_tiny_model_converts(tmp_path, texts):
    src = tiny_model(tmp_path / "converted" / "tiny")
    recipe = quantize.Recipe(samples=8, seq_len=16, heldout=4, min_agreement=0.0)  # random weights: the gate
    # is test_quantize's
    stages = []
    done = quantize.convert(src, recipe=recipe, progress=lambda msg, frac: stages.append(msg))
    out = quantize.int8_dir(src, recipe)
    assert done.precision == "int8" and done.folder == str(out) and 0.0 <= done.agreement <= 1.0
    assert any("quantizing tiny" in s for s in stages)
    assert quantize.check_manifest(out, hashes=True) is None
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors" and config["ignore"] == ["lm_head"]
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        dtypes = {name: f.get_tensor(name).dtype for name in f.keys()}
    import torch

    assert dtypes["model.layers.0.mlp.down_proj.weight"] == torch.int8
    assert dtypes["lm_head.weight"] == torch.bfloat16
