"""Keystrokes straight into the engine, without the server: where a typing request's time goes.

A cold ~2,000-token request, then one request per typed character every 100 ms, each cancelling
the one before, then the last one's wait, then one more request alone.

    flock /tmp/completer-engine.lock .venv/bin/python scripts/keystroke_burst.py [MAX_NUM_BATCHED_TOKENS|0] [spec]
"""

import asyncio
import sys
import sysconfig
import time
from pathlib import Path

from completer.config import Settings

async def main():
    from completer.engine import start_engine
    from completer.types import GenerationPlan
    from completer.context.prompt import QWEN
    s = Settings(**({"max_num_batched_tokens": int(sys.argv[1])} if len(sys.argv) > 1 and sys.argv[1] != "0" else {}))
    speculate = len(sys.argv) > 2 and sys.argv[2] == "spec"
    src = (Path(sysconfig.get_paths()["stdlib"]) / "calendar.py").read_text()
    prefix, suffix = src[:6000], src[6000:8000]
    engine = await asyncio.to_thread(start_engine, s)
    plan = GenerationPlan(max_tokens=16, stop=("\n",), speculate=speculate, num_speculative_tokens=5 if speculate else 0)
    try:
        t = time.monotonic(); g = await engine.complete(QWEN.render(prefix, suffix), plan)
        print("cold", round(time.monotonic() - t, 2), "prompt", g.prompt_tokens, "cached", g.cached_tokens, flush=True)
        typed = "    def extra(self):\n        return self.firstweekday + 1"
        task = None
        for n in range(1, len(typed)):
            if task: task.cancel()
            p = QWEN.render(prefix + typed[:n], suffix)
            task = asyncio.ensure_future(engine.complete(p, plan))
            await asyncio.sleep(0.1)
        t = time.monotonic()
        g = await task
        print("last after burst: waited", round(time.monotonic() - t, 2), "latency", round(g.latency_s, 2), "ttft", g.first_token_s, "prompt", g.prompt_tokens, "cached", g.cached_tokens, flush=True)
        t = time.monotonic(); g = await engine.complete(QWEN.render(prefix + typed + "\n", suffix), plan)
        print("one more alone", round(time.monotonic() - t, 2), "cached", g.cached_tokens, flush=True)
    finally:
        engine.shutdown()

if __name__ == "__main__":
    asyncio.run(main())
