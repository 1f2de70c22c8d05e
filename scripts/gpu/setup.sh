#!/usr/bin/env bash
# On the GPU machine, in the repository root, once the vLLM+deps batches were received:
# check, reassemble and install them under ${COMPLETER_GPU_ROOT:-/tmp/completer-gpu}, reassemble
# the GGUF when all its chunks are there, write env.sh. Quick when already done.
# Exit codes: 2 no manifest, 3 missing chunks, 4 sha mismatch, 5 install failed.
set -u
PY="${PYTHON:-python3}"
ROOT="${COMPLETER_GPU_ROOT:-/tmp/completer-gpu}"
"$PY" "$(dirname "$0")/unpack.py" setup || exit $?
. "$ROOT/env.sh"
echo "vllm: $("$PY" -c 'import vllm; print(vllm.__version__)' 2>&1 | tail -1)"
if "$PY" -c 'import completer.cli' 2>/dev/null; then echo "import completer.cli: ok"
else echo "import completer.cli: FAILED ($("$PY" -c 'import completer.cli' 2>&1 | tail -1))"; fi
