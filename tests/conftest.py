"""Test order: the unit tests first, then the other tests not marked `engine`, then those that are.

A broken change then fails within the first minute of `./setup.sh test` instead of after the
engine tests. The order inside each group is pytest's own (file by file), so a module's fixtures
are set up once.
"""

import os
from pathlib import Path

# The engines tests start run one at a time on an otherwise idle machine, where every core decodes
# ~1.5x faster than the default's one (docs/benchmarks/cpu-runtime.md); every engine completer
# starts, in this process or a child, reads vLLM's variable when its setting is unset.
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{(os.cpu_count() or 1) - 1}")

UNIT = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(session, config, items):
    def group(item) -> int:
        if item.get_closest_marker("engine") is not None:
            return 2
        return 0 if UNIT in Path(item.fspath).parents else 1

    items.sort(key=group)  # stable: pytest's order inside each group
