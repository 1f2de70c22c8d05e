"""Under greedy decoding, speculative output equals the target alone, token for token."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from lsprotocol import types

from tests.e2e.helpers import ALL_CORES, complete_detail, open_doc, start_client, stats, wait_ready

pytestmark = pytest.mark.engine

# HumanEval multi-line infilling, shipped with the tests
DATA = Path(__file__).resolve().parents[1] / "data" / "humaneval-infilling"


def tasks(n: int = 8) -> list[tuple[str, str]]:
    """(prefix, suffix) pairs from HumanEval multi-line infilling, spread over the set."""
    rows = [json.loads(line) for line in gzip.open(DATA / "HumanEval-MultiLineInfilling.jsonl.gz", "rt")]
    step = max(len(rows) // n, 1)
    return [(r["prompt"], r["suffix"]) for r in rows[::step][:n]]


async def collect(client, n: int = 6) -> list[list[int]]:
    outputs = []
    for i, (prefix, suffix) in enumerate(tasks()[:n]):
        uri = f"file:///workspace/task{i}.py"
        open_doc(client, uri, prefix + suffix)
        lines = prefix.split("\n")
        detail = await complete_detail(client, uri, len(lines) - 1, len(lines[-1]), raw=True)
        outputs.append(detail["token_ids"])
    return outputs


# float32: a token then never depends on the shape of the step that computed it. In bf16,
# verifying k+1 tokens at once rounds differently from one at a time and can flip a near-tie.
# A float32 prompt reads slowly on a CPU (no bf16 matrix units): prompts of at most 384 tokens.
SETTINGS = {"max_tokens": 48, "max_tokens_single_line": 48, "dtype": "float32", "context_tokens": 384,
            "cpu_threads_bind": ALL_CORES}
SAMPLED = {"temperature": 0.8, "seed": 7}


async def test_speculative_output_is_token_identical_to_target_alone():
    # streams stop early in chunks of up to k+1 tokens under speculation; compare whole runs
    # bypass_max_tokens 0: every request speculates, however short its plan
    spec_client = await start_client({**SETTINGS, "bypass_max_tokens": 0})
    try:
        await wait_ready(spec_client)
        with_draft = await collect(spec_client)
        # sampled requests on the CPU never speculate, so with a seed they equal the target alone's
        spec_client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=SAMPLED))
        sampled_with_draft = await collect(spec_client, 2)
        assert (await stats(spec_client))["requests_speculated"] >= 5
    finally:
        await spec_client.shutdown_session()
    alone_client = await start_client({**SETTINGS, "speculative_config": {"method": "none"}})
    try:
        await wait_ready(alone_client)
        alone = await collect(alone_client)
        alone_client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=SAMPLED))
        sampled_alone = await collect(alone_client, 2)
    finally:
        await alone_client.shutdown_session()
    assert len(with_draft) == len(alone) >= 6
    assert sum(len(t) for t in alone) > 100, "too few tokens to compare"
    mismatches = [i for i, (a, b) in enumerate(zip(with_draft, alone)) if a != b]
    detail = {i: (with_draft[i], alone[i]) for i in mismatches}
    assert not mismatches, f"outputs differ on prompts {mismatches}: {detail}"
    assert sampled_with_draft == sampled_alone, "sampled requests differ from the target alone"
    assert sampled_alone != alone[:2], "sampling had no effect: the comparison would prove nothing"
