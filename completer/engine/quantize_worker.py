"""Quantize a bf16 checkpoint to compressed-tensors W8A8 int8 with llmcompressor.

Runs inside the conversion venv (``completer.engine.quantize`` creates it): llmcompressor pins
versions of compressed-tensors and transformers that vLLM's own venv cannot share. So this file
imports nothing from completer and talks to its caller only through its arguments, a JSON file of
texts, JSON lines on stdout and llmcompressor's progress bars on stderr.

    python quantize_worker.py --src BF16_DIR --out OUT_DIR --texts TEXTS.json --method gptq \
        [--ignore lm_head --ignore re:.*down_proj] [--samples 256] [--seq-len 256] [--no-save]

TEXTS.json: {"calibration": [str, ...], "heldout": [str, ...]}. Prints one JSON line per stage
({"stage": ...}) and a last one {"result": {"agreement": float, "tokens": int, ...}}: teacher-forced
top-1 agreement of the quantized model (simulated int8, as llmcompressor leaves it) with the bf16
model on the held-out windows.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

METHODS = ("rtn", "smoothquant", "gptq", "smoothquant+gptq")
# SmoothQuant's default pairs, plus up_proj -> down_proj: down_proj's input (act(gate) * up) carries the
# largest activation outliers, which per-token int8 quantizes worst; scaling up_proj's output channels
# down and down_proj's input channels up by the same factors leaves the bf16 function unchanged.
SMOOTH_MAPPINGS = [
    [["re:.*q_proj", "re:.*k_proj", "re:.*v_proj"], "re:.*input_layernorm"],
    [["re:.*gate_proj", "re:.*up_proj"], "re:.*post_attention_layernorm"],
    [["re:.*down_proj"], "re:.*up_proj"],
]


def say(**record) -> None:
    print(json.dumps(record), flush=True)


def windows(tokenizer, texts: list[str], seq_len: int, limit: int) -> list[list[int]]:
    """Cut the concatenated token stream of ``texts`` into at most ``limit`` windows of ``seq_len``."""
    stream: list[int] = []
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(stream) >= seq_len * limit:
            break
    return [stream[i:i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len)][:limit]


def top1(model, batches: list[list[int]]):
    import torch

    out = []
    with torch.no_grad():
        for ids in batches:
            logits = model(torch.tensor([ids])).logits[0]
            out.append(logits.argmax(-1))
    return out


def recipe(method: str, ignore: list[str], smoothing: float):
    from llmcompressor.modifiers.gptq import GPTQModifier
    from llmcompressor.modifiers.quantization import QuantizationModifier

    quant = GPTQModifier(targets="Linear", scheme="W8A8", ignore=ignore) if "gptq" in method else \
        QuantizationModifier(targets="Linear", scheme="W8A8", ignore=ignore)
    if not method.startswith("smoothquant"):
        return [quant]
    from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier

    return [SmoothQuantModifier(smoothing_strength=smoothing, mappings=SMOOTH_MAPPINGS, ignore=ignore), quant]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--method", choices=METHODS, default="gptq")
    ap.add_argument("--ignore", action="append", default=[])
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--heldout", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--smoothing", type=float, default=0.8)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)

    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = json.loads(Path(args.texts).read_text())
    start = time.monotonic()
    say(stage="loading")
    tokenizer = AutoTokenizer.from_pretrained(args.src)
    model = AutoModelForCausalLM.from_pretrained(args.src, dtype=torch.bfloat16)
    model.eval()
    heldout = windows(tokenizer, texts["heldout"], args.seq_len, args.heldout)
    say(stage="reference")
    reference = top1(model, heldout)

    dataset = None
    if args.method != "rtn":
        calib = windows(tokenizer, texts["calibration"], args.seq_len, args.samples)
        dataset = Dataset.from_dict({"input_ids": calib, "attention_mask": [[1] * len(c) for c in calib]})
    say(stage="quantizing", method=args.method, samples=len(dataset) if dataset is not None else 0)
    oneshot(model=model, dataset=dataset, recipe=recipe(args.method, args.ignore, args.smoothing),
            num_calibration_samples=len(dataset) if dataset is not None else 0, max_seq_length=args.seq_len,
            shuffle_calibration_samples=False,
            # SmoothQuant needs only the bf16 activations' ranges: one pass of the whole model per
            # sample, not GPTQ's two passes per layer
            pipeline="sequential" if "gptq" in args.method else "basic" if dataset is not None else "datafree")
    say(stage="checking")
    quantized = top1(model, heldout)
    agree = sum(int((a == b).sum()) for a, b in zip(reference, quantized))
    tokens = sum(len(a) for a in reference)
    result = {"agreement": agree / max(tokens, 1), "tokens": tokens, "method": args.method,
              "ignore": args.ignore, "samples": len(dataset) if dataset is not None else 0,
              "seq_len": args.seq_len, "seconds": round(time.monotonic() - start, 1)}
    if not args.no_save:
        say(stage="saving")
        out = Path(args.out)
        if out.exists():
            shutil.rmtree(out)
        model.save_pretrained(out, save_compressed=True)
        tokenizer.save_pretrained(out)
        for name in ("generation_config.json", "chat_template.jinja"):
            if (Path(args.src) / name).is_file() and not (out / name).is_file():
                shutil.copy2(Path(args.src) / name, out / name)
    say(result=result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
