"""One settings tree with defaults. Names follow vLLM's where vLLM has one.

Settings arrive from the editor (initializationOptions, workspace/didChangeConfiguration)
or the command line. Unknown or invalid values produce a warning and the defaults,
never a crash.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from completer.engine.models import DEFAULT_DRAFT, DEFAULT_TARGET

log = logging.getLogger(__name__)


class SpeculativeConfig(BaseModel):
    """Mirrors vLLM's ``speculative_config``."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["draft_model", "ngram", "none"] = "draft_model"
    """`draft_model` speculates with a smaller model of the same tokenizer; `ngram` looks drafts up
    in the prompt (no draft memory); `none` runs the target alone."""
    model: str = DEFAULT_DRAFT
    """The draft model: catalogue name, local folder, .gguf file or Hugging Face repo id."""
    num_speculative_tokens: int = Field(5, ge=1, le=8)
    """Draft tokens proposed per step (k)."""
    prompt_lookup_max: int = Field(4, ge=1, le=16)
    """ngram: longest n-gram matched in the prompt."""
    prompt_lookup_min: int = Field(2, ge=1, le=16)
    """ngram: shortest n-gram matched in the prompt."""


class Settings(BaseModel):
    """Everything completer can be told. Each field says why it exists."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = DEFAULT_TARGET
    """The target model: catalogue name, local folder, .gguf file or Hugging Face repo id."""
    speculative_config: SpeculativeConfig = Field(default_factory=SpeculativeConfig)
    dtype: Literal["bfloat16", "float16", "float32", "auto"] = "bfloat16"
    """Weights and activations; float32 doubles memory but is bit-stable across batch shapes."""
    max_model_len: int = Field(4096, ge=256)
    """Longest prompt + completion the engine accepts."""
    max_num_seqs: int = Field(4, ge=1, le=256)
    """Requests the engine runs at once (an editor rarely needs more than a few)."""
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    """0 is greedy. On the CPU backend a sampled request runs without speculation."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None
    max_tokens: int = Field(128, ge=1, le=2048)
    """Most tokens for a multi-line completion (and for a line that grows into a block)."""
    max_tokens_single_line: int = Field(48, ge=1, le=512)
    """Most tokens for a single-line completion with text after the cursor, or in a comment or string."""
    context_tokens: int = Field(1536, ge=64)
    """Token budget for the prompt (prefix + suffix)."""
    prefix_share: float = Field(0.75, gt=0.0, lt=1.0)
    """Share of context_tokens given to the text before the cursor."""
    snippet_share: float = Field(0.25, ge=0.0, lt=1.0)
    """Share of context_tokens that snippets of other open or recently edited documents may take."""
    fim_order: Literal["psm", "spm"] = "psm"
    """Prompt order: prefix-suffix-middle (as the Qwen2.5-Coder models were trained) or suffix-prefix-middle
    (everything but the cursor's end of the prefix stays cached while typing)."""
    fim_middle_anchor: Literal["auto", "cursor", "line", "block", "indentation"] = "auto"
    """Where the FIM prefix ends: at the cursor, or at the start of the cursor's line or block of
    cut_snap_lines lines, the text typed since then starting the middle. The suffix follows the prefix,
    so its tokens stay cached only while the prefix does not change. auto: the block's start where the
    middle can end on a whole token (the cursor's line holds only indentation, or ends in a space or an
    opening bracket, which the model writes again), the cursor elsewhere (a middle that ends inside a
    word costs quality); indentation: the block's start only where the line holds only indentation."""
    cut_snap_lines: int = Field(16, ge=1, le=256)
    """The prompt's first line and the suffix's length move in steps of this many lines, so that one
    keystroke does not shift the whole cut (and the prefix cache keeps serving it)."""
    enable_prefix_caching: bool = True
    """vLLM's prefix cache: consecutive keystrokes re-read only what changed."""
    block_size: int | None = Field(None, ge=16, le=512)
    """vLLM's KV-cache block size: the prefix cache keeps only whole blocks, so a smaller one re-reads fewer
    tokens per keystroke (vLLM's CPU default is 128; 32 measured 3 points more cache while typing,
    docs/benchmarks/typing.md); vLLM's default when unset."""
    max_num_batched_tokens: int | None = Field(None, ge=64, le=65536)
    """vLLM's token budget per engine step: a step cannot be interrupted, so a smaller one lets the
    newest keystroke's request start sooner; vLLM's default when unset."""
    keystroke_hold_ms: int = Field(200, ge=0, le=5000)
    """Every completion request the model answers waits this many ms before it reaches the engine,
    so that the next keystroke replaces it at no cost (an engine step cannot be interrupted; type-ahead
    answers do not wait); 0: never wait, for editors that debounce themselves."""
    type_ahead: bool = True
    """Answer at once, without the model, while the user types what the last suggestion says."""
    speculation_policy: Literal["per_request", "engine"] = "per_request"
    """`per_request`: each request gets its own k, short ones none (inside one engine);
    `engine`: vLLM's stock behaviour, the same k for every request."""
    bypass_max_tokens: int = Field(50, ge=0)
    """Requests expected to be at most this long (single-line) skip speculation."""
    adaptive_k: bool = True
    """Choose k from the live acceptance rate of recent requests in the same language."""
    draft_cost_ratio: float = Field(0.31, gt=0.0, le=2.0)
    """Cost of one draft step relative to one target step (measured 0.31 for 0.5B vs 1.5B on a CPU)."""
    batch_k_limits: dict[int, int] = Field(default_factory=lambda: {4: 0})
    """When at least N requests run at once, k is capped at the value (0 stops speculation).
    Default from `completer bench batch` on a 2-core CPU: drafting gained 10-12 % with 2-3 long
    completions at once and lost 6-9 % with 4 (docs/benchmarks/batch.md)."""
    bypass_shares_prefix_cache: bool = False
    """Requests that skip speculation still run the draft model over their prompt (about 0.3 of the
    target's prefill), so that speculating requests can reuse their cached blocks. Off, they keep a
    prefix cache of their own: the draft model never wrote those blocks' KV."""
    warm_cache_plan: bool = True
    """A request takes the other plan (bypass or speculation) where that plan's prefix cache holds
    enough more of its prompt that reading it again would cost more than the planned one saves (costs
    measured on recent requests). While typing, the plan then follows the cache the previous request
    warmed."""
    kv_cache_space_gib: float | None = Field(None, gt=0)
    """CPU KV-cache size; planned from the model sizes and free memory when unset."""
    gpu_memory_utilization: float | None = Field(None, gt=0, le=0.98)
    """GPU memory share; planned from the model sizes when unset."""
    cpu_threads_bind: str | None = None
    """VLLM_CPU_OMP_THREADS_BIND; unset means all cores, bound explicitly."""
    enforce_eager: bool = True
    """Skip torch.compile: start in seconds rather than half a minute on the CPU."""
    trust_remote_code: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    engine_restart_attempts: int = Field(5, ge=0, le=100)
    """Times a failed or dead engine is restarted (with exponential backoff) before giving up."""
    engine_restart_backoff_s: float = Field(2.0, ge=0.0, le=600.0)
    """Wait before the first restart; it doubles for each further attempt (at most 5 minutes)."""


def _normalise_keys(data: Any) -> Any:
    """Accept camelCase from editors as well as vLLM's snake_case."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            snake = "".join("_" + c.lower() if c.isupper() else c for c in str(key))
            out[snake] = _normalise_keys(value)
        return out
    return data


def parse_settings(data: Any, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Merge editor-supplied settings over ``base``.

    Returns the settings and a list of warnings. An invalid field keeps its
    previous value; everything valid is applied.
    """
    base = base or Settings()
    if data is None:
        return base, []
    if not isinstance(data, dict):
        return base, [f"settings must be an object, got {type(data).__name__}; keeping the current ones"]
    data = _normalise_keys(data)
    data = data.get("completer", data)  # editors often nest under the section name
    merged = base.model_dump()
    warnings: list[str] = []
    for key, value in data.items():
        if key not in Settings.model_fields:
            warnings.append(f"unknown setting {key!r} ignored")
            continue
        if key == "speculative_config" and isinstance(value, dict):
            value = {**merged["speculative_config"], **value}
        candidate = {**merged, key: value}
        try:
            Settings.model_validate(candidate)
        except ValidationError as err:
            first = err.errors()[0]
            warnings.append(f"setting {key!r} ignored: {first['msg']}")
            continue
        merged = candidate
    return Settings.model_validate(merged), warnings
