"""Model folders at the real Qwen2.5-Coder shapes with no weights, for GPU benchmarks.

vLLM loads them with ``load_format="dummy"`` (random weights), so every kernel runs at its real
size while no weights need to reach the machine. Each folder gets the real tokenizer, copied from a
model folder that has one (completer's converted target), so prompts are completer's own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

VOCAB = 151936  # Qwen2.5-Coder's embedding rows (1.5B and 0.5B; 7B pads to 152064, kept equal here
#                 so that the 0.5B draft serves both targets)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

# the published configs' sizes (Qwen2.5-Coder-0.5B/1.5B/7B-Instruct)
SHAPES = {
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, tie_word_embeddings=False),
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, tie_word_embeddings=True),
}


def qwen2_config(shape: dict) -> dict:
    return {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": VOCAB,
            "max_position_embeddings": 32768, "rope_theta": 1e6, "rms_norm_eps": 1e-6, "hidden_act": "silu",
            "bos_token_id": 151643, "eos_token_id": 151645, "torch_dtype": "bfloat16", "use_sliding_window": False,
            **shape}


def eagle3_head_config(target: dict) -> dict:
    """One Llama decoder layer at the target's width, as vLLM's llama_eagle3.py loads it: its fc
    joins three of the target's hidden states (vLLM picks layers 2, L/2 and L-3 of a Qwen2 target),
    32k-token draft vocabulary; embeddings come from the target."""
    return {"architectures": ["LlamaForCausalLMEagle3"], "model_type": "llama", "vocab_size": VOCAB,
            "hidden_size": target["hidden_size"], "intermediate_size": target["intermediate_size"],
            "num_hidden_layers": 1, "num_attention_heads": target["num_attention_heads"],
            "num_key_value_heads": target["num_key_value_heads"], "head_dim": 128,
            "max_position_embeddings": 32768, "rope_theta": 1e6, "rms_norm_eps": 1e-6, "hidden_act": "silu",
            "tie_word_embeddings": False, "draft_vocab_size": 32000, "torch_dtype": "bfloat16"}


def write_folder(folder: Path, config: dict, tokenizer_dir: Path | None) -> Path:
    """``folder`` with ``config`` as config.json and the tokenizer files (idempotent)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    for name in TOKENIZER_FILES if tokenizer_dir is not None else ():
        source = tokenizer_dir / name
        if source.is_file() and not (folder / name).is_file():
            shutil.copy(source, folder / name)
    return folder


def shape_folders(root: Path, tokenizer_dir: Path) -> dict[str, Path]:
    """Folders for each target shape, the 0.5B draft, and an EAGLE-3 head per target:
    {"1.5b", "7b", "0.5b", "eagle3-1.5b", "eagle3-7b"} -> folder. Raises FileNotFoundError when
    ``tokenizer_dir`` has no tokenizer.json."""
    if not (tokenizer_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer.json in {tokenizer_dir}")
    folders = {name: write_folder(root / f"qwen2.5-coder-{name}-shape", qwen2_config(shape), tokenizer_dir)
               for name, shape in SHAPES.items()}
    for name in ("1.5b", "7b"):
        folders[f"eagle3-{name}"] = write_folder(root / f"eagle3-head-{name}-shape",
                                                 eagle3_head_config(SHAPES[name]), None)
    return folders
