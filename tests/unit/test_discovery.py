"""Finding a local completer server: its record, stale records, which server serves the model, the probe."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import httpx
import pytest

from completer.config import Settings
from completer.engine import discovery
from completer.engine.discovery import ServerRecord

TARGET = "/cache/converted/qwen2.5-coder-1.5b"
RECORD = ServerRecord("http://127.0.0.1:8000", ["qwen-1.5b", TARGET], pid=os.getpid(), key_required=False, started=2.0)


@pytest.mark.parametrize("text, expected", [
    (json.dumps(asdict(RECORD)), RECORD),
    (json.dumps({**asdict(RECORD), "started": None}), None),
    (json.dumps({k: v for k, v in asdict(RECORD).items() if k != "started"}),
     ServerRecord(RECORD.url, RECORD.models, RECORD.pid, False, 0.0)),
    (json.dumps({**asdict(RECORD), "pid": 0}), None),
    (json.dumps({**asdict(RECORD), "url": "127.0.0.1:8000"}), None),
    (json.dumps({k: v for k, v in asdict(RECORD).items() if k != "models"}), None),
    ("[1, 2]", None),
    ("{not json", None),
], ids=["full", "bad time", "no time", "no pid", "no scheme", "no models", "a list", "not json"])
def test_parse_record(text, expected):
    assert discovery.parse_record(text) == expected


@pytest.mark.parametrize("environ, expected", [
    ({"XDG_RUNTIME_DIR": "/run/user/7"}, "/run/user/7/completer/servers"),
    ({"COMPLETER_CACHE": "/c"}, "/c/run/servers"),
    ({"XDG_RUNTIME_DIR": "", "COMPLETER_CACHE": "/c"}, "/c/run/servers"),
])
def test_runtime_dir(environ, expected, monkeypatch):
    monkeypatch.delenv("COMPLETER_CACHE", raising=False)
    if "COMPLETER_CACHE" in environ:
        monkeypatch.setenv("COMPLETER_CACHE", environ["COMPLETER_CACHE"])
    assert str(discovery.runtime_dir(environ)) == expected


def test_stale_and_unreadable_records_are_removed_and_the_newest_comes_first(tmp_path):
    newer = ServerRecord("http://127.0.0.1:8001", ["m"], pid=11, key_required=True, started=5.0)
    dead = ServerRecord("http://127.0.0.1:8002", ["m"], pid=12, key_required=False, started=9.0)
    for record in (RECORD, newer, dead):
        discovery.write_record(record, tmp_path)
    (tmp_path / "8003.json").write_text("{cut sh")
    assert discovery.read_records(tmp_path, alive=lambda pid: pid != 12) == [newer, RECORD]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["8000.json", "8001.json"]
    assert discovery.read_records(tmp_path / "none") == []


def answers(reasons: dict[str, str | None]):
    return lambda record: reasons.get(record.url)


OTHER = ServerRecord("http://127.0.0.1:9000", ["starcoder"], pid=1, key_required=False)
KEYED = ServerRecord("http://127.0.0.1:9001", ["/elsewhere/qwen2.5-coder-1.5b"], pid=1, key_required=True)


@pytest.mark.parametrize("records, model, have_key, probe, url, why", [
    ([], "qwen-1.5b", False, answers({}), None, "no completer server is running"),
    ([OTHER], "qwen-1.5b", False, answers({}), None, "serves starcoder, not qwen-1.5b"),
    ([RECORD], "qwen-1.5b", False, answers({}), RECORD.url, "completer server at http://127.0.0.1:8000"),
    ([RECORD], TARGET, False, answers({}), RECORD.url, "completer server at"),  # by folder
    ([RECORD], "qwen-1.5b", False, answers({RECORD.url: "no engine server at x"}), None, "no engine server at x"),
    ([KEYED], "qwen-1.5b", False, answers({}), None, "requires a key and none is set"),
    ([KEYED], "qwen-1.5b", True, answers({}), KEYED.url, "completer server at"),  # the folder's last part
    ([OTHER, RECORD], "qwen-1.5b", False, answers({}), RECORD.url, ""),
    ([KEYED, RECORD], "qwen-1.5b", True, answers({KEYED.url: "refused"}), RECORD.url, ""),
], ids=["none", "another model", "by name", "by folder", "not answering", "key missing", "key set",
        "the one serving it", "the next that answers"])
def test_choose(records, model, have_key, probe, url, why):
    local_dir = TARGET if model == "qwen-1.5b" else None
    record, reason = discovery.choose(records, model, local_dir, have_key, probe)
    assert (record.url if record else None) == url
    assert why in reason


def fake_get(answer):
    def get(url, headers, timeout):
        fake_get.seen = (url, headers, timeout)
        if isinstance(answer, Exception):
            raise answer
        return answer
    return get


@pytest.mark.parametrize("answer, why", [
    (httpx.Response(200, json={"data": [{"id": "qwen-1.5b", "root": TARGET}]}), None),
    (httpx.Response(200, json={"data": [{"id": "starcoder", "root": "/m/starcoder"}]}), "does not serve qwen-1.5b"),
    (httpx.Response(401, json={"error": "Unauthorized"}), "refused the API key"),
    (httpx.Response(500, text="boom"), "answered HTTP 500"),
    (httpx.Response(200, text="<html>"), "did not answer vLLM's JSON"),
    (httpx.ConnectError("refused"), "no engine server at"),
    (httpx.ReadTimeout("slow"), "sent nothing"),
], ids=["serves it", "another model", "key refused", "error", "not vLLM", "not listening", "hangs"])
def test_probe(answer, why, monkeypatch):
    monkeypatch.setattr(httpx, "get", fake_get(answer))
    got = discovery.probe_models(RECORD, "sekrit", "qwen-1.5b", TARGET)
    assert got is None if why is None else why in got
    url, headers, timeout = fake_get.seen
    assert url == f"{RECORD.url}/v1/models" and headers == {"Authorization": "Bearer sekrit"}
    assert timeout == discovery.PROBE_TIMEOUT_S


def test_find_server_reads_the_key_and_probes_the_live_records(tmp_path, monkeypatch):
    (tmp_path / "key").write_text("sekrit\n")
    discovery.write_record(ServerRecord(RECORD.url, RECORD.models, os.getpid(), key_required=True), tmp_path)
    monkeypatch.setattr(httpx, "get", fake_get(httpx.Response(200, json={"data": [{"id": "qwen-1.5b"}]})))
    settings = Settings(model="qwen-1.5b", engine_api_key_file=str(tmp_path / "key"))
    assert discovery.find_server(settings, environ={}, folder=tmp_path) == (RECORD.url, f"completer server at {RECORD.url}")
    assert fake_get.seen[1] == {"Authorization": "Bearer sekrit"}
    url, why = discovery.find_server(Settings(model="qwen-1.5b"), environ={}, folder=tmp_path)
    assert url is None and "requires a key" in why
    url, why = discovery.find_server(settings.model_copy(update={"engine_api_key_file": str(tmp_path / "none")}),
                                     environ={}, folder=tmp_path)
    assert url is None and "cannot read engine_api_key_file" in why


def test_a_published_record_lives_as_long_as_its_block(tmp_path):
    folder = tmp_path / "servers"
    with discovery.published(RECORD, folder) as path:
        assert discovery.read_records(folder) == [RECORD]
        assert folder.stat().st_mode & 0o077 == 0  # this user's only
        assert set(json.loads(path.read_text())) == {"url", "models", "pid", "key_required", "started"}
    assert not path.exists()
    with pytest.raises(SystemExit):
        with discovery.published(RECORD, folder):
            raise SystemExit(143)
    assert discovery.read_records(folder) == []


def test_a_record_since_replaced_by_another_servers_is_left_alone(tmp_path):
    other = ServerRecord(RECORD.url, ["m"], pid=os.getpid(), key_required=True, started=3.0)
    with discovery.published(RECORD, tmp_path):
        discovery.write_record(other, tmp_path)  # a new server on the same port
    assert discovery.read_records(tmp_path) == [other]


def test_a_folder_that_cannot_be_written_leaves_the_server_undiscovered(tmp_path):
    (tmp_path / "file").write_text("")
    with discovery.published(RECORD, tmp_path / "file" / "servers") as path:
        assert path is None
