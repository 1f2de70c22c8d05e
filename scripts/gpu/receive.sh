#!/usr/bin/env bash
# On the GPU machine, in the repository root: take the chunks of one carried batch
# (e.g. .gpu/batch-02) into ${COMPLETER_GPU_ROOT:-/tmp/completer-gpu}/chunks/ and say what is there.
set -u
[ $# -eq 1 ] || { echo "usage: scripts/gpu/receive.sh BATCH_DIR" >&2; exit 2; }
exec "${PYTHON:-python3}" "$(dirname "$0")/unpack.py" receive "$1"
