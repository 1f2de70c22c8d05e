import ast
import json
import logging
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from completer.config import (RELOAD_RULES, SECTIONS, Settings, SpeculativeConfig, fields_in, mark_of,
                              needs_reload, parse_settings, reload_causes)


def test_defaults_follow_vllm_names():
    s = Settings()
    assert s.speculative_config.method == "auto"
    assert s.speculative_config.num_speculative_tokens == 5
    assert s.temperature == 0.0 and s.trust_remote_code is False


@pytest.mark.parametrize("data,check,warns", [
    ({"speculative_config": {"num_speculative_tokens": 3}}, lambda s: s.speculative_config.num_speculative_tokens == 3, 0),
    ({"speculativeConfig": {"numSpeculativeTokens": 8}}, lambda s: s.speculative_config.num_speculative_tokens == 8, 0),
    ({"completer": {"max_tokens": 64}}, lambda s: s.max_tokens == 64, 0),
    ({"speculative_config": {"num_speculative_tokens": 9}}, lambda s: s.speculative_config.num_speculative_tokens == 5, 1),
    ({"temperature": "hot", "max_tokens": 10}, lambda s: s.temperature == 0.0 and s.max_tokens == 10, 1),
    ({"no_such_thing": 1}, lambda s: s == Settings(), 1),
    ("not an object", lambda s: s == Settings(), 1),
    (None, lambda s: s == Settings(), 0),
])
def test_parse_settings_applies_valid_fields_and_warns_on_the_rest(data, check, warns):
    settings, warnings = parse_settings(data)
    assert check(settings)
    assert len(warnings) == warns


def test_partial_speculative_config_keeps_other_fields():
    base, _ = parse_settings({"speculative_config": {"model": "/drafts/tiny"}})
    s, _ = parse_settings({"speculative_config": {"num_speculative_tokens": 2}}, base)
    assert s.speculative_config.model == "/drafts/tiny" and s.speculative_config.num_speculative_tokens == 2


# ---------------------------------------------------------------- sections and reloads

ENGINE_PACKAGE = Path(__file__).resolve().parents[2] / "completer" / "engine"
# read where the engine is built, yet carried by each request: the engine's own copy only seeds
# the stream that unseeded requests draw from
READ_BY_THE_ENGINE_PER_REQUEST = {"seed"}
# read where the engine is built to size the CPU KV cache (memory.cpu_kv_tokens), which always holds
# a whole max_model_len: a later change moves only the prefix cache's headroom, not worth a reload
SIZES_THE_KV_CACHE_ONLY = {"context_tokens", "max_tokens"}


def _changed(**fields) -> Settings:
    return Settings().model_copy(update=fields)


# (field, a value other than the default, whether the change needs a new engine from the defaults)
CHANGES = [
    ("model", "/models/other", True),
    ("dtype", "float32", True),
    ("quantization", {"target": "int8", "draft": "auto"}, True),
    ("max_model_len", 2048, True),
    ("max_num_seqs", 2, True),
    ("enable_prefix_caching", False, True),
    ("block_size", 32, True),
    ("max_num_batched_tokens", 256, True),
    ("kv_cache_space_gib", 2.0, True),
    ("gpu_memory_utilization", 0.5, True),
    ("cpu_threads_bind", "0", True),
    ("enforce_eager", False, True),
    ("trust_remote_code", True, True),
    ("engine_url", "http://gpu:8000", True),
    ("engine_api_key_file", "/etc/completer/key", True),
    ("temperature", 0.5, False),  # per_request policy: the plan decides per request
    ("top_p", 0.9, False),
    ("seed", 7, False),
    ("speculative_config", SpeculativeConfig(num_speculative_tokens=3), True),
    ("speculation_policy", "engine", True),
    ("batch_k_limits", {2: 1}, True),
    ("bypass_shares_prefix_cache", True, True),
    ("bypass_max_tokens", 10, False),
    ("adaptive_k", False, False),
    ("draft_cost_ratio", 0.5, False),
    ("warm_cache_plan", False, False),
    ("max_tokens", 64, False),
    ("max_tokens_single_line", 24, False),
    ("context_tokens", 512, False),
    ("prefix_share", 0.5, False),
    ("snippet_share", 0.0, False),
    ("workspace_snippets", False, False),
    ("fim_order", "spm", False),
    ("fim_middle_anchor", "cursor", False),
    ("cut_snap_lines", 8, False),
    ("keystroke_hold_ms", 0, False),
    ("type_ahead", False, False),
    ("warm_prompt", False, False),
    ("warm_prompt_pause_ms", 3000, False),
    ("log_level", "debug", False),
    ("engine_restart_attempts", 1, False),
    ("engine_restart_backoff_s", 0.5, False),
]


@pytest.mark.parametrize("name,value,reload", CHANGES)
def test_a_change_reloads_the_engine_exactly_when_the_field_says_so(name, value, reload):
    new = _changed(**{name: value})
    assert needs_reload(Settings(), new) is reload
    assert reload_causes(Settings(), new) == ([name] if reload else [])


def test_the_change_table_covers_every_field():
    assert sorted(name for name, _, _ in CHANGES) == sorted(Settings.model_fields)


def test_every_field_has_a_section_and_a_reload_mark():
    # a field declared with a bare Field() would skip reloads unnoticed: declare it with setting()
    for name in Settings.model_fields:
        section, reload = mark_of(name)
        assert section in SECTIONS and isinstance(reload, bool), name


def test_the_sections_split_the_fields_without_overlap():
    listed = [name for section in SECTIONS for name in fields_in(section)]
    assert sorted(listed) == sorted(Settings.model_fields)
    assert "max_num_batched_tokens" in fields_in("engine")
    assert "bypass_shares_prefix_cache" in fields_in("speculation")
    with pytest.raises(ValueError):
        fields_in("sampling")


@pytest.mark.parametrize("name", ["max_num_batched_tokens", "bypass_shares_prefix_cache"])
def test_settings_passed_to_vllm_at_build_need_a_reload(name):
    assert mark_of(name).reload
    value = 512 if name == "max_num_batched_tokens" else True
    assert needs_reload(Settings(), _changed(**{name: value}))


@pytest.mark.parametrize("policy,old_t,new_t,reload", [
    ("engine", 0.0, 0.5, True),  # a CPU engine that samples loads without its draft
    ("engine", 0.5, 0.0, True),  # ... and a greedy one with it
    ("engine", 0.5, 0.8, False),
    ("engine", 0.0, 0.0, False),
    ("per_request", 0.0, 0.5, False),  # each request's plan turns speculation off
    ("per_request", 0.5, 0.0, False),
])
def test_temperature_crossing_zero_reloads_only_under_the_engine_policy(policy, old_t, new_t, reload):
    old = _changed(speculation_policy=policy, temperature=old_t)
    assert needs_reload(old, old.model_copy(update={"temperature": new_t})) is reload
    assert set(RELOAD_RULES) <= set(Settings.model_fields)
    assert not any(mark_of(name).reload for name in RELOAD_RULES)


def test_several_changes_name_every_cause_in_declaration_order():
    new = _changed(max_tokens=64, max_num_seqs=2, model="/models/other", bypass_shares_prefix_cache=True)
    assert reload_causes(Settings(), new) == ["model", "max_num_seqs", "bypass_shares_prefix_cache"]


def _settings_read_in(folder: Path) -> set[str]:
    """Settings fields read as ``settings.X`` or ``self.settings.X`` in the modules under ``folder``."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute) or node.attr not in Settings.model_fields:
                continue
            owner = node.value
            if (isinstance(owner, ast.Name) and owner.id == "settings") or (
                    isinstance(owner, ast.Attribute) and owner.attr == "settings"):
                names.add(node.attr)
    return names


def test_what_the_engine_reads_is_marked_as_needing_a_reload():
    # the engine is built from the settings it is given and keeps that copy: a field it reads
    # changes nothing until the engine is built again
    read = _settings_read_in(ENGINE_PACKAGE)
    assert "max_num_batched_tokens" in read  # the scan sees what Engine.build passes to vLLM
    unmarked = {n for n in read if not mark_of(n).reload and n not in RELOAD_RULES} - READ_BY_THE_ENGINE_PER_REQUEST \
        - SIZES_THE_KV_CACHE_ONLY
    assert unmarked == set()
    assert {n for n in Settings.model_fields if mark_of(n).reload} <= read


# ---------------------------------------------------------------- the VS Code extension's declarations

VSCODE_PACKAGE = Path(__file__).resolve().parents[2] / "editor-clients" / "vscode" / "package.json"
CLIENT_ONLY = {"pythonPath"}  # read by the extension itself, never sent to the server


def _vscode_categories() -> list[dict]:
    return json.loads(VSCODE_PACKAGE.read_text())["contributes"]["configuration"]


def _server_setting_names() -> dict[str, str]:
    """Each name an editor may set (nested ones dotted) → the Settings field it belongs to."""
    names = {}
    for name, info in Settings.model_fields.items():
        nested = info.annotation if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel) else None
        for sub in (nested.model_fields if nested else [None]):
            names[f"{name}.{sub}" if sub else name] = name
    return names


def _declared() -> dict[str, dict]:
    return {key.removeprefix("completer."): prop for c in _vscode_categories() for key, prop in c["properties"].items()}


def test_vscode_declares_exactly_the_server_settings_with_their_defaults():
    declared = _declared()
    assert sorted(set(declared) - CLIENT_ONLY) == sorted(_server_setting_names())
    defaults = json.loads(Settings().model_dump_json())
    for key in set(declared) - CLIENT_ONLY:
        value = defaults
        for part in key.split("."):
            value = value[part]
        # an empty string is how VS Code offers "unset" in a list of choices; the extension sends null
        assert (None if declared[key]["default"] == "" else declared[key]["default"]) == value, key


def test_vscode_advanced_categories_follow_the_sections_and_say_what_reloads():
    everyday, *advanced = _vscode_categories()
    assert [c["id"] for c in advanced] == [f"completer.{section}" for section in SECTIONS]
    owner = _server_setting_names()
    for category in advanced:
        section = category["id"].removeprefix("completer.")
        assert {owner[k.removeprefix("completer.")] for k in category["properties"]} <= set(fields_in(section))
    for key, prop in _declared().items():
        if key in CLIENT_ONLY:
            continue
        assert ("Changing it reloads the engine." in prop["description"]) is mark_of(owner[key]).reload, key


# ---------------------------------------------------------------- the server applies them

COMPLETER_PACKAGE = Path(__file__).resolve().parents[2] / "completer"


def test_every_setting_is_read_somewhere():
    # a setting that nothing reads is accepted from the editor and silently does nothing
    sources = "\n".join(p.read_text() for p in COMPLETER_PACKAGE.rglob("*.py") if p.name != "config.py")
    assert [name for name in Settings.model_fields if not re.search(rf"\.{name}\b", sources)] == []


@pytest.fixture
def server(monkeypatch):
    from completer.server.app import CompleterServer

    logger = logging.getLogger("completer")
    level = logger.level
    server = CompleterServer()
    monkeypatch.setattr(server, "show", lambda kind, message: None)
    yield server
    logger.setLevel(level)


@pytest.mark.parametrize("data,level", [
    ({"log_level": "debug"}, logging.DEBUG),
    ({"logLevel": "error"}, logging.ERROR),
    ({"log_level": None}, logging.NOTSET),  # unset: the root logger's level, as the command line set it
    ({"max_tokens": 64}, logging.WARNING),  # other settings keep the level
])
def test_log_level_sets_the_level_of_completers_own_logger(server, data, level):
    server.apply_settings({"log_level": "warning"})
    server.apply_settings(data)
    assert logging.getLogger("completer").level == level


@pytest.mark.parametrize("data,reloads", [
    ({"max_num_batched_tokens": 256}, True),
    ({"bypass_shares_prefix_cache": True}, True),
    ({"speculative_config": {"num_speculative_tokens": 3}}, True),
    ({"max_tokens": 64, "bypass_max_tokens": 10}, False),
    ({"temperature": 0.5}, False),
])
def test_the_server_reloads_a_running_engine_when_the_settings_need_it(server, monkeypatch, data, reloads):
    starts = []
    monkeypatch.setattr(server.host, "start", lambda *a, **k: starts.append(1))
    monkeypatch.setattr(server.host, "state", "ready")
    server.apply_settings(data)
    assert bool(starts) is reloads
