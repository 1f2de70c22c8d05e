"""Prefill and decode speed of the 1.5B target in one dtype on this CPU, straight through vLLM.

  .venv/bin/python scripts/cpu_dtype_probe.py float32|bfloat16

Prints one RESULT line: a prompt of about 700 tokens (the start of completer/engine/vllm_engine.py) then 40
greedy tokens. Run it under flock /tmp/completer-engine.lock, with the TCMalloc LD_PRELOAD and
VLLM_CPU_OMP_THREADS_BIND=0-1 as the engine gets them. It decided environment.engine_dtype.
"""
import sys
import time
from pathlib import Path
from vllm import LLM, SamplingParams
def main():
    dtype = sys.argv[1]
    m = str(next(p for p in (Path.home() / ".cache/completer/converted").glob("qwen2.5-coder-1.5b-*") if not p.name.endswith(".partial")))
    llm = LLM(model=m, dtype=dtype, max_model_len=2048, enforce_eager=True, enable_prefix_caching=False, max_num_batched_tokens=1024, max_num_seqs=4)
    prompt = open(Path(__file__).resolve().parents[1] / "completer/engine/vllm_engine.py").read()[:3000]
    sp = SamplingParams(max_tokens=1, temperature=0)
    t = time.perf_counter(); out = llm.generate([prompt], sp); pre = time.perf_counter() - t
    n = len(out[0].prompt_token_ids)
    sp = SamplingParams(max_tokens=40, min_tokens=40, temperature=0)
    t = time.perf_counter(); llm.generate(["def fib(n):"], sp); dec = time.perf_counter() - t
    print(f"RESULT {dtype}: prefill {n} tokens {pre:.2f}s ({n/pre:.0f} tok/s); decode 40 tokens {dec:.2f}s ({dec/40*1000:.0f} ms/token)", flush=True)

if __name__ == "__main__":
    main()
