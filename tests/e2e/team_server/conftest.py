"""One `completer server` with the real pair and an API key for the modules of this package (its
start costs one to two minutes on a CPU); it stops after the package's last test.

test_remote_engine runs first (pytest's file order): its in-process reference engine runs and
stops before the server starts (one engine at a time on a small machine), and its tests that kill
the server start it again, so the server is up whenever a test asks for it.
"""

import pytest

from completer.config import Settings
from completer.engine.vllm_server import start_server
from tests.e2e.team_server import KEY, SERVER_READY_S


@pytest.fixture(scope="package")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "key"
    path.write_text(KEY + "\n")
    return path


@pytest.fixture(scope="package")
def settings(key_file) -> Settings:
    return Settings(engine_api_key_file=str(key_file))


@pytest.fixture(scope="package")
def server(settings, tmp_path_factory):
    """A holder: ``proc`` (the running server; a test that kills it puts the new one here) and ``log``."""
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    holder = {"proc": start_server(settings, api_key=KEY, log_path=log), "log": log}
    try:
        holder["proc"].wait_ready(timeout_s=SERVER_READY_S)
        yield holder
    finally:
        holder["proc"].stop()
