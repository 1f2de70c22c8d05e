"""Which speculation method an engine loads: the configured one, or for `auto` the fastest measured
on the backend with the models at hand."""

from __future__ import annotations

import json
from pathlib import Path

from completer.engine.interface import EngineError

# EAGLE-3 checkpoints name one of these architectures in their config.json (vLLM 0.26's registry)
EAGLE3_ARCHITECTURES = ("LlamaForCausalLMEagle3", "Eagle3LlamaForCausalLM", "Eagle3Qwen2ForCausalLM",
                        "Eagle3Speculator")

# `auto` without an EAGLE-3 head, by backend:
# - cpu: the draft model (docs/benchmarks/latency.md: 1.30x on long completions; ngram's 1.36x came
#   from a separate engine on a slower host, and EAGLE-3 needs a head the default install lacks);
# - cuda: the target alone. The 0.5B draft drops vLLM to its V1 runner without asynchronous
#   scheduling and measured 0.55x on the 1.5B target on an H200; ngram_gpu pays only where code
#   repeats its prompt (docs/benchmarks/gpu/README.md).
AUTO_WITHOUT_HEAD = {"cpu": "draft_model", "cuda": None}


def is_eagle3_head(folder: str | None) -> bool:
    """Whether ``folder`` holds an EAGLE-3 head (its config.json names an EAGLE-3 architecture)."""
    if not folder:
        return False
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    architectures = config.get("architectures") or []
    # `speculators` checkpoints (completer draft train) name their own class and say eagle3 here
    return (any(a in EAGLE3_ARCHITECTURES for a in architectures) or "eagle_config" in config
            or config.get("speculators_model_type") == "eagle3")


def resolve_method(configured: str, backend: str, supported: tuple[str, ...], head_folder: str | None) -> str | None:
    """vLLM's speculative_config.method for the setting ``configured`` (None: the target alone).

    ``head_folder``: the local folder ``speculative_config.model`` names, when it is one. Raises
    EngineError for a method the backend does not run, or eagle3 without a head."""
    if configured == "none":
        return None
    if configured == "auto":
        return "eagle3" if is_eagle3_head(head_folder) and "eagle3" in supported else AUTO_WITHOUT_HEAD[backend]
    if configured not in supported:
        raise EngineError(f"speculative_config.method {configured!r} does not run on {backend} "
                          f"(it runs: {', '.join(supported)}, none)")
    if configured == "eagle3" and not is_eagle3_head(head_folder):
        raise EngineError(f"speculative_config.method 'eagle3' needs an EAGLE-3 head folder in "
                          f"speculative_config.model; {head_folder or 'that model'} is not one "
                          "(or use method 'auto')")
    return configured


# batch_k_limits when unset, by backend (config.py says where each comes from)
DEFAULT_BATCH_K_LIMITS = {"cpu": {4: 0}, "cuda": {}}


def batch_k_limits(configured: dict[int, int] | None, backend: str) -> dict[int, int]:
    """The batch caps an engine applies: as set, else the backend's measured default."""
    return dict(DEFAULT_BATCH_K_LIMITS[backend] if configured is None else configured)
