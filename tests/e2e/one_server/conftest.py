"""One language server with the default pair for the modules of this package (an engine start
costs over a minute on a CPU); it stops after the package's last test."""

import time

import pytest_asyncio

from tests.e2e.helpers import FIB, FIB_URI, inline_params, open_doc, start_client, wait_ready


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def client():
    """The real server over stdio with the default pair (speculation on)."""
    client = await start_client()
    # before the engine is ready a request is answered at once, empty
    open_doc(client, FIB_URI, FIB)
    started = time.monotonic()
    early = await client.text_document_inline_completion_async(inline_params(FIB_URI, 5, 4))
    client.early_answer = (early, time.monotonic() - started)
    await wait_ready(client)
    yield client
    await client.shutdown_session()
