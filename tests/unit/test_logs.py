"""completer.logs: the engine's output in a log file, completer's own messages on stderr."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from completer import logs


def test_default_log_file_is_per_command_and_process(tmp_path):
    path = logs.default_log_file("complete", tmp_path, pid=4242)
    assert path.parent == tmp_path
    assert path.name.startswith("complete-") and path.name.endswith("-4242.log")
    assert logs.default_log_file(None, tmp_path, pid=1).name.startswith("completer-")


@pytest.mark.parametrize("existing, keep, kept", [
    (0, 3, 0),
    (2, 3, 2),
    (5, 3, 3),
    (5, 0, 0),
])
def test_prune_keeps_the_newest_logs_and_their_vllm_configs(tmp_path, existing, keep, kept):
    for i in range(existing):
        log = tmp_path / f"serve-{i}.log"
        log.write_text("x")
        log.with_suffix(logs.VLLM_CONFIG_SUFFIX).write_text("{}")
        os.utime(log, (1000 + i, 1000 + i))
    (tmp_path / "notes.txt").write_text("not a log")
    removed = logs.prune(tmp_path, keep)
    left = sorted(p.name for p in tmp_path.glob("*.log"))
    assert left == [f"serve-{i}.log" for i in range(existing - kept, existing)]
    assert len(removed) == existing - kept
    assert sorted(p.name for p in tmp_path.glob("*" + logs.VLLM_CONFIG_SUFFIX)) == \
        [f"serve-{i}{logs.VLLM_CONFIG_SUFFIX}" for i in range(existing - kept, existing)]
    assert (tmp_path / "notes.txt").exists()


def test_vllm_logging_config_appends_vllm_records_to_the_file_only(tmp_path):
    path = tmp_path / "engine.log"
    config = logs.vllm_logging_config(path, "INFO")
    json.dumps(config)  # vLLM reads it from a JSON file
    logging.config.dictConfig(config)
    try:
        logging.getLogger("vllm.engine").info("engine started")
        logging.getLogger("vllm.engine").debug("not at INFO")
        assert logging.getLogger("vllm").propagate is False
    finally:
        for handler in logging.getLogger("vllm").handlers:
            handler.close()
        logging.getLogger("vllm").handlers.clear()
        logging.getLogger("vllm").propagate = True
    text = path.read_text()
    assert "engine started" in text and "not at INFO" not in text


@pytest.mark.parametrize("name, passes", [
    ("completer", True),
    ("completer.server.app", True),
    ("root", True),
    ("completerx", False),
    ("vllm", False),
    ("py.warnings", False),
    ("transformers.tokenization_utils", False),
])
def test_own_records_filter(name, passes):
    record = logging.LogRecord(name, logging.WARNING, __file__, 1, "m", None, None)
    assert logs.OwnRecords().filter(record) is passes


# A program as the command line runs it: configure() first, then an engine-like child process
# and libraries that write to stderr in every way they do.
PROGRAM = textwrap.dedent("""
    import logging, os, subprocess, sys, warnings
    from completer import logs
    path = logs.configure({verbose}, {command!r})
    print(path)
    logging.getLogger("completer.cli").warning("own warning")
    logging.getLogger("completer.cli").info("own info")
    logging.getLogger("transformers").warning("library warning")
    warnings.warn("a python warning")
    os.write(2, b"native write to fd 2\\n")
    subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child stderr\\\\n')"], check=True)
    sys.stderr.write("progress bar\\n")
""")


def run_program(tmp_path: Path, verbose: bool, command: str) -> tuple[str, str, Path | None]:
    env = {**os.environ, "COMPLETER_CACHE": str(tmp_path)}
    for name in ("VLLM_LOGGING_CONFIG_PATH", "VLLM_CONFIGURE_LOGGING", "VLLM_LOGGING_LEVEL"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", PROGRAM.format(verbose=verbose, command=command)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip()
    return done.stdout, done.stderr, None if printed == "None" else Path(printed)


def test_quiet_sends_everything_but_own_warnings_to_the_log_file(tmp_path):
    stdout, stderr, path = run_program(tmp_path, False, "complete")
    assert stderr.splitlines()[0].endswith("WARNING completer.cli: own warning")
    assert stderr.splitlines()[1:] == ["progress bar"], stderr
    assert path.parent == tmp_path / "logs"
    text = path.read_text()
    for line in ("own info", "library warning", "a python warning", "native write to fd 2", "child stderr"):
        assert line in text, text
    config = json.loads(path.with_suffix(logs.VLLM_CONFIG_SUFFIX).read_text())
    assert config["handlers"]["file"]["filename"] == str(path.resolve())


def test_quiet_turns_transformers_progress_bars_off(tmp_path):
    program = ("import os, sys; from completer import logs; logs.configure(False, 'models'); "
               "print(os.environ.get('HF_HUB_DISABLE_PROGRESS_BARS'), os.environ.get('TQDM_DISABLE'), "
               "os.environ.get('VLLM_LOGGING_CONFIG_PATH'))")
    names = ("HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE", "VLLM_LOGGING_CONFIG_PATH")
    env = {k: v for k, v in os.environ.items() if k not in names}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
                          env={**env, "COMPLETER_CACHE": str(tmp_path)})
    hub_bars, tqdm_bars, config = done.stdout.split()
    assert hub_bars == "1" and tqdm_bars == "1" and Path(config).is_file(), done.stderr


def test_completer_progress_is_drawn_where_other_bars_are_off(monkeypatch):
    import io

    from completer.cli import TqdmProgress

    monkeypatch.setenv("TQDM_DISABLE", "1")
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    progress = TqdmProgress()
    progress("dequantizing model.gguf", 0.5)
    progress("dequantizing model.gguf", 1.0)
    assert "dequantizing model.gguf" in err.getvalue()


def test_serve_keeps_its_info_records_on_stderr(tmp_path):
    _, stderr, path = run_program(tmp_path, False, "serve")
    assert "own info" in stderr and "library warning" not in stderr
    assert "child stderr" in path.read_text()


def test_verbose_leaves_everything_on_stderr(tmp_path):
    _, stderr, path = run_program(tmp_path, True, "complete")
    assert path is None
    for line in ("own warning", "own info", "library warning", "native write to fd 2", "child stderr"):
        assert line in stderr, stderr
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("level, on_stderr, not_on_stderr", [
    ("debug", ("own debug", "own info"), ()),
    ("warning", (), ("own debug", "own info")),
    (None, ("own info",), ("own debug",)),  # unset: serve's own default (INFO)
])
def test_the_editors_log_level_reaches_stderr(tmp_path, level, on_stderr, not_on_stderr):
    program = textwrap.dedent(f"""
        import logging
        from completer import logs
        logs.configure(False, "serve")
        logs.set_own_level({level!r})
        logging.getLogger("completer.server").debug("own debug")
        logging.getLogger("completer.server").info("own info")
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_LOGGING")}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
                          env={**env, "COMPLETER_CACHE": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    for line in on_stderr:
        assert line in done.stderr, done.stderr
    for line in not_on_stderr:
        assert line not in done.stderr, done.stderr
