"""Helpers for end-to-end tests: the real server, over stdio, with the real engine and models."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

SERVER = [sys.executable, "-m", "completer", "serve"]
READY_TIMEOUT_S = 300
# VLLM_CPU_OMP_THREADS_BIND for the exactness tests' engines: every core. The default leaves one
# core free for the editor; a test engine runs alone and decodes ~1.5x faster on 2 cores than on 1.
ALL_CORES = f"0-{os.cpu_count() - 1}" if (os.cpu_count() or 1) > 1 else "0"


async def start_client(init_options: dict | None = None, root: Path | None = None) -> LanguageClient:
    """Start `completer serve`, initialize a session as VS Code would."""
    client = await ClientServerConfig(server_command=SERVER).start()
    root = root or Path(__file__).parent
    await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=root.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="tests")],
        # the warm prompt's own engine requests would move the counters tests compare; its test turns it on
        initialization_options={"warm_prompt": False, **(init_options or {})},
    ))
    return client


async def stats(client: LanguageClient) -> dict:
    return as_dict(await client.protocol.send_request_async("completer/stats", {}))


async def wait_ready(client: LanguageClient, timeout: float = READY_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = await stats(client)
        state = s["engine"]
        if state == "ready":
            return s
        if state == "failed":
            raise AssertionError(f"engine failed to load: {s['error']}")
        await asyncio.sleep(1)
    raise AssertionError("engine did not become ready in time")


def open_doc(client: LanguageClient, uri: str, text: str, language: str = "python", version: int = 1) -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id=language, version=version, text=text)))


async def complete_detail(client: LanguageClient, uri: str, line: int, character: int, raw: bool = False) -> dict:
    result = await client.protocol.send_request_async("completer/complete", {
        "textDocument": {"uri": uri}, "position": {"line": line, "character": character}, "raw": raw})
    return as_dict(result)


def as_dict(obj) -> dict:
    """Custom requests come back as dicts or as pygls objects, depending on the version."""
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "_asdict"):  # pygls turns unknown results into named tuples
        return obj._asdict()
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


FIB = '''"""Numbers."""


def fibonacci(n):
    """Return the n-th Fibonacci number."""
    

if __name__ == "__main__":
    print([fibonacci(i) for i in range(10)])
'''
FIB_URI = "file:///workspace/fib.py"


def inline_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
    )




async def send_raw(client: LanguageClient, method: str, params) -> object:
    """Send a request as raw JSON, past the client's own type checks, and await its answer."""
    import json
    import uuid

    msg_id = str(uuid.uuid4())
    future = asyncio.get_running_loop().create_future()
    client.protocol._request_futures[msg_id] = future
    body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
    client.protocol.writer.write(f"Content-Length: {len(body.encode())}\r\n\r\n{body}".encode())
    return await asyncio.wait_for(future, timeout=30)
