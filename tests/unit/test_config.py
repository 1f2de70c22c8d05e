import pytest

from completer.config import Settings, parse_settings


def test_defaults_follow_vllm_names():
    s = Settings()
    assert s.speculative_config.method == "draft_model"
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
