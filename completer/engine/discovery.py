"""Finding a local `completer server`: the record it publishes while it runs, and the check a client
makes before completing through it instead of loading an engine of its own.

The record is a small JSON file per server, ``<runtime dir>/completer/servers/<port>.json``:
``{"url", "models", "pid", "key_required", "started"}``, never the key. The runtime dir is
$XDG_RUNTIME_DIR where the session has one (per user, mode 0700, on tmpfs: a reboot or logout clears
what a killed server left), else completer's cache dir (~/.cache/completer/run), which is per user too.
A record whose pid is gone is stale: it is ignored and removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from completer.engine.interface import EngineError

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 2.0  # a local server that is up answers /v1/models in milliseconds


@dataclass(frozen=True)
class ServerRecord:
    url: str  # where this machine reaches the server
    models: list[str]  # the names /v1/models lists (the configured name and the target's folder)
    pid: int  # vLLM's server process
    key_required: bool
    started: float = field(default=0.0)  # time.time() when it was ready


def runtime_dir(environ=os.environ) -> Path:
    """The folder of the records: $XDG_RUNTIME_DIR/completer/servers, else <cache>/run/servers."""
    if environ.get("XDG_RUNTIME_DIR"):
        return Path(environ["XDG_RUNTIME_DIR"]) / "completer" / "servers"
    from completer.engine.models import cache_dir

    return cache_dir() / "run" / "servers"


def write_record(record: ServerRecord, folder: Path) -> Path:
    """Write ``record`` as ``<port>.json`` in ``folder`` (made 0700), atomically. Returns its path."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{record.url.rsplit(':', 1)[-1].strip('/')}.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(record)))
    os.replace(tmp, path)
    return path


def parse_record(text: str) -> ServerRecord | None:
    """A record from its file's text, or None when it is not one."""
    try:
        data = json.loads(text)
        record = ServerRecord(url=str(data["url"]), models=[str(m) for m in data["models"]],
                              pid=int(data["pid"]), key_required=bool(data["key_required"]),
                              started=float(data.get("started", 0.0)))
    except (ValueError, KeyError, TypeError):
        return None
    return record if record.url.startswith(("http://", "https://")) and record.pid > 0 else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive (its record would not be in this user's folder)
    return True


def read_records(folder: Path, alive: Callable[[int], bool] = pid_alive) -> list[ServerRecord]:
    """The live servers' records, newest first; stale (dead pid) and unreadable records are removed."""
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            record = parse_record(path.read_text())
        except OSError:
            continue
        if record is None or not alive(record.pid):
            path.unlink(missing_ok=True)
            continue
        records.append(record)
    return sorted(records, key=lambda r: -r.started)


def candidates(records: list[ServerRecord], model: str, local_dir: str | None) -> list[ServerRecord]:
    """The records whose servers list ``model`` (by name, folder, or the folder's last part)."""
    from completer.engine.remote_protocol import served_match

    return [r for r in records if served_match([{"id": m} for m in r.models], model, local_dir) is not None]


def choose(records: list[ServerRecord], model: str, local_dir: str | None, have_key: bool,
           probe: Callable[[ServerRecord], str | None]) -> tuple[ServerRecord | None, str]:
    """The first server that serves ``model`` and answers ``probe`` (None: it does; else why not),
    with what was found; or None and why none is used."""
    if not records:
        return None, "no completer server is running"
    matching = candidates(records, model, local_dir)
    if not matching:
        return None, f"the running completer server serves {', '.join(records[0].models[:1])}, not {model}"
    reasons = []
    for record in matching:
        if record.key_required and not have_key:
            reasons.append(f"{record.url} requires a key and none is set (--engine-api-key-file or "
                           f"$COMPLETER_ENGINE_API_KEY)")
            continue
        why = probe(record)
        if why is None:
            return record, f"completer server at {record.url}"
        reasons.append(why)
    return None, "; ".join(reasons)


def probe_models(record: ServerRecord, key: str | None, model: str, local_dir: str | None,
                 timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when the server answers ``GET /v1/models`` within ``timeout_s`` listing ``model``; else why not."""
    import httpx

    from completer.engine.remote_protocol import http_error, served_match, transport_error

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        answer = httpx.get(f"{record.url}/v1/models", headers=headers, timeout=timeout_s)
    except httpx.HTTPError as err:
        return transport_error(err, record.url)
    if answer.status_code != 200:
        return http_error(answer.status_code, None, record.url)
    try:
        served = answer.json().get("data") or []
    except (ValueError, AttributeError):
        return f"{record.url}/v1/models did not answer vLLM's JSON"
    if served_match(served, model, local_dir) is None:
        return f"the server at {record.url} does not serve {model}"
    return None


def find_server(settings, environ=os.environ, folder: Path | None = None) -> tuple[str | None, str]:
    """(url, what was found) of a local completer server serving settings.model that answers now, or
    (None, why none is used). Never raises for a missing or broken server."""
    from completer.engine.remote import local_model_dir
    from completer.engine.remote_protocol import read_api_key

    try:
        key = read_api_key(settings, environ)
    except EngineError as err:
        return None, str(err)
    local_dir = local_model_dir(settings.model)
    record, why = choose(read_records(folder or runtime_dir(environ)), settings.model, local_dir, key is not None,
                         lambda r: probe_models(r, key, settings.model, local_dir))
    return (record.url if record else None), why


@contextlib.contextmanager
def published(record: ServerRecord, folder: Path | None = None) -> Iterator[Path | None]:
    """The record written for the duration of the block (its path; None, and a warning, where it could
    not be written: the server runs undiscovered), removed when it ends (an exception or SystemExit
    too; a killed process leaves it, and its dead pid makes it stale)."""
    try:
        path = write_record(record, folder or runtime_dir())
    except OSError as err:
        log.warning("cannot publish the server for local clients: %s", err)
        yield None
        return
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            # another server on the same port since (this one's gone): its record is not ours to remove
            if parse_record(path.read_text()) == record:
                path.unlink()


def record_for(url: str, models: list[str], pid: int, key_required: bool) -> ServerRecord:
    return ServerRecord(url=url, models=list(dict.fromkeys(models)), pid=pid, key_required=key_required,
                        started=time.time())
