"""engine/quantize.py: precision defaults, the int8 manifest, folder selection, conversion outcomes."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from completer.config import parse_settings
from completer.engine import quantize
from completer.engine.models import ModelError


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPLETER_CACHE", str(tmp_path / "cache"))
    quantize._warned.clear()
    return tmp_path / "cache"


def bf16_folder(cache: Path) -> Path:
    folder = cache / "converted" / "model-q4_k_m-123"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def int8_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"quantization_config": {}}')
    (folder / "model.safetensors").write_bytes(b"int8 weights")


@pytest.mark.parametrize("setting,role,backend,want", [
    ("bf16", "target", "cpu", "bf16"),
    ("int8", "draft", "cuda", "int8"),
    ("auto", "target", "cpu", quantize.DEFAULTS["cpu"]["target"]),
    ("auto", "draft", "cpu", quantize.DEFAULTS["cpu"]["draft"]),
    ("auto", "target", "cuda", "bf16"),
    ("auto", "draft", "rocm", quantize.DEFAULTS["cuda"]["draft"]),
])
def test_precision(setting, role, backend, want):
    assert quantize.precision(setting, role, backend) == want


@pytest.mark.parametrize("setting,dtype,want", [("auto", "float32", "bf16"), ("auto", "float16", "bf16"),
                                                ("int8", "float32", "int8"), ("bf16", "bfloat16", "bf16")])
def test_precision_auto_keeps_other_dtypes(monkeypatch, setting, dtype, want):
    monkeypatch.setitem(quantize.DEFAULTS, "cpu", {"target": "int8", "draft": "int8"})
    assert quantize.precision(setting, "target", "cpu", dtype) == want


@pytest.mark.parametrize("a,b,same", [
    (quantize.Recipe(), quantize.Recipe(), True),
    (quantize.Recipe(ignore=("lm_head", "x")), quantize.Recipe(ignore=("x", "lm_head")), True),
    (quantize.Recipe(method="rtn"), quantize.Recipe(), False),
    (quantize.Recipe(ignore=("lm_head", "re:.*down_proj")), quantize.Recipe(), False),
    (quantize.Recipe(samples=128), quantize.Recipe(), False),
    (quantize.Recipe(heldout=4), quantize.Recipe(), True),  # the check's size is not the model's
    (quantize.Recipe(min_agreement=0.5), quantize.Recipe(), True),  # nor the gate
])
def test_recipe_key(a, b, same):
    assert (a.key() == b.key()) is same


def damage_none(folder: Path) -> None:
    pass


def damage_truncate(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"int8")


def damage_flip(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"INT8 weights")  # same size, other bytes


def damage_manifest(folder: Path) -> None:
    (folder / quantize.MANIFEST).write_text("{not json")


def damage_remove_manifest(folder: Path) -> None:
    (folder / quantize.MANIFEST).unlink()


def damage_remove_file(folder: Path) -> None:
    (folder / "config.json").unlink()


@pytest.mark.parametrize("damage,quick_ok,full_ok", [
    (damage_none, True, True),
    (damage_truncate, False, False),
    (damage_flip, True, False),  # sizes only on load; SHA-256 at fetch
    (damage_manifest, False, False),
    (damage_remove_manifest, False, False),
    (damage_remove_file, False, False),
])
def test_manifest_detects_partial_and_corrupt(tmp_path, damage, quick_ok, full_ok):
    folder = tmp_path / "int8"
    int8_files(folder)
    quantize.write_manifest(folder, {"agreement": 0.99})
    assert not (folder / (quantize.MANIFEST + ".tmp")).exists()
    damage(folder)
    assert (quantize.check_manifest(folder, hashes=False) is None) is quick_ok
    assert (quantize.check_manifest(folder, hashes=True) is None) is full_ok


def test_select(cache, caplog):
    bf16 = bf16_folder(cache)
    out = quantize.int8_dir(bf16)
    assert quantize.select(str(bf16), "bf16") == str(bf16)
    with caplog.at_level(logging.WARNING):
        assert quantize.select(str(bf16), "int8") == str(bf16)
        assert quantize.select(str(bf16), "int8") == str(bf16)
    assert len(caplog.records) == 1 and "completer models fetch" in caplog.records[0].getMessage()
    int8_files(out)  # written but never recorded: partial
    assert quantize.select(str(bf16), "int8") == str(bf16)
    quantize.write_manifest(out, {})
    assert quantize.select(str(bf16), "int8") == str(out)
    assert quantize.select("some/repo-id", "int8") == "some/repo-id"


@pytest.mark.parametrize("explicit,warned", [(True, True), (False, False)])
def test_select_leaves_other_folders_alone(tmp_path, caplog, explicit, warned):
    folder = tmp_path / "my-model"
    folder.mkdir()
    int8_files(quantize.int8_dir(folder))  # even a complete-looking sibling is not this model's int8
    quantize.write_manifest(quantize.int8_dir(folder), {})
    with caplog.at_level(logging.WARNING):
        assert quantize.select(str(folder), "int8", explicit=explicit) == str(folder)
    assert bool(caplog.records) is warned


def test_select_says_why_a_conversion_failed(cache, caplog):
    bf16 = bf16_folder(cache)
    out = quantize.int8_dir(bf16)
    out.with_name(out.name + "." + quantize.FAILED).write_text(json.dumps({"reason": "agreement 80% under the gate"}))
    with caplog.at_level(logging.WARNING):
        assert quantize.select(str(bf16), "int8") == str(bf16)
    assert "agreement 80% under the gate" in caplog.text


def fake_worker(agreement=0.99, error=None, calls=None):
    def run(py, src, out, recipe, progress, threads):
        if calls is not None:
            calls.append(out)
        if error:
            raise ModelError(error)
        int8_files(out)
        return {"agreement": agreement, "tokens": 4096, "method": recipe.method}
    return run


@pytest.mark.parametrize("agreement,error,precision,reason", [
    (0.99, None, "int8", ""),
    (0.50, None, "bf16", "under the"),
    (None, "the worker exited with 1", "bf16", "int8 conversion failed: the worker exited with 1"),
])
def test_convert_outcomes(cache, monkeypatch, agreement, error, precision, reason):
    bf16 = bf16_folder(cache)
    monkeypatch.setattr(quantize, "ensure_venv", lambda progress: Path(sys.executable))
    monkeypatch.setattr(quantize, "_run_worker", fake_worker(agreement, error))
    done = quantize.convert(bf16)
    out = quantize.int8_dir(bf16)
    failed = out.with_name(out.name + "." + quantize.FAILED)
    assert done.precision == precision and reason in done.reason
    assert done.folder == (str(out) if precision == "int8" else str(bf16))
    assert (quantize.check_manifest(out, hashes=True) is None) is (precision == "int8")
    assert failed.is_file() is (precision == "bf16")
    assert quantize.select(str(bf16), "int8") == done.folder


def test_convert_is_idempotent_and_rebuilds_corrupt(cache, monkeypatch):
    bf16 = bf16_folder(cache)
    calls: list = []
    monkeypatch.setattr(quantize, "ensure_venv", lambda progress: Path(sys.executable))
    monkeypatch.setattr(quantize, "_run_worker", fake_worker(calls=calls))
    first = quantize.convert(bf16)
    again = quantize.convert(bf16)
    assert len(calls) == 1 and first.folder == again.folder and again.agreement == 0.99
    damage_flip(Path(first.folder))
    messages = []
    rebuilt = quantize.convert(bf16, progress=lambda msg, frac: messages.append(msg))
    assert len(calls) == 2 and rebuilt.precision == "int8"
    assert any("partial or corrupt" in m for m in messages)


WORKER = """
import json, sys
print("(1/4): Calibrating: 100%|#####| 8/8 [00:01<00:00]", file=sys.stderr, flush=True)
print(json.dumps({"stage": "checking"}), flush=True)
print("(4/4): Propagating:  50%|##   | 4/8 [00:01<00:00]\\rCalibrating: 100%|#| 2/2", file=sys.stderr,
      flush=True)
print("not json")
print(json.dumps({"result": {"agreement": 0.97}}), flush=True)
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("rc", [0, 3])
def test_follow_worker(tmp_path, rc):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    seen = []
    log = tmp_path / "w.log"
    cmd = [sys.executable, str(script), str(rc)]
    if rc:
        with pytest.raises(ModelError, match="exited with 3"):
            quantize._follow(cmd, log, "m", lambda msg, frac: seen.append((msg, frac)))
        return
    assert quantize._follow(cmd, log, "m", lambda msg, frac: seen.append((msg, frac))) == {"agreement": 0.97}
    assert ("quantizing m: checking", None) in seen
    assert ("quantizing m, calibrating on code samples", 0.25) in seen
    assert ("quantizing m, propagating on code samples", 0.875) in seen  # group 4 of 4, half done
    assert ("quantizing m, calibrating on code samples", 1.0) in seen  # the basic pipeline: one bar
    assert "Calibrating" in log.read_text()


def test_code_texts_split(tmp_path):
    for i in range(20):
        (tmp_path / f"m{i}.py").write_text(f"x = {i}\n")
    (tmp_path / "notes.txt").write_text("prose")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "h.py").write_text("secret = 1\n")
    texts = quantize.code_texts(tmp_path)
    assert len(texts["calibration"]) + len(texts["heldout"]) == 20 and texts["heldout"]
    assert not set(texts["calibration"]) & set(texts["heldout"])
    assert texts == quantize.code_texts(tmp_path)
    assert not any("secret" in t or "prose" in t for t in texts["calibration"] + texts["heldout"])


@pytest.mark.parametrize("data,target,draft,warned", [
    ({}, "auto", "auto", False),
    ({"quantization": {"target": "int8"}}, "int8", "auto", False),
    ({"quantization": {"draft": "bf16"}}, "auto", "bf16", False),
    ({"quantization": {"target": "int4"}}, "auto", "auto", True),
    ({"quantization": {"model": "int8"}}, "auto", "auto", True),
])
def test_quantization_setting(data, target, draft, warned):
    settings, warnings = parse_settings(data)
    assert (settings.quantization.target, settings.quantization.draft) == (target, draft)
    assert bool(warnings) is warned
