#!/usr/bin/env bash
# On the GPU machine (no GPU needed): the code folders of scripts/gpu/README.md's "Train an EAGLE-3 head".
# Training: the Python sources of packages installed in the image; evaluation: packages the training
# never sees (networkx, sympy's core) and HumanEval's 164 problems written out as files (prompt +
# canonical solution + suffix, from .gpu/heldout/HumanEval-SingleLineInfilling.jsonl.gz). The
# HumanEval-infilling files themselves are kept in $D/humaneval-infilling: the latency table's
# single-line tasks (draft-pipeline.sh sets COMPLETER_BENCH_DATA to it). Idempotent.
set -eu
D=${DRAFT_ROOT:-/tmp/draft}
[ -e "$D/.data-done" ] && { echo "code folders already in $D"; exit 0; }
S=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf "$D/train-code" "$D/heldout-code" "$D/humaneval" "$D/humaneval-infilling"
mkdir -p "$D/train-code" "$D/heldout-code" "$D/humaneval" "$D/humaneval-infilling"
cp .gpu/heldout/HumanEval-*.jsonl.gz "$D/humaneval-infilling/"
copy() { (cd "$S" && find "$@" -name '*.py' -size +200c 2>/dev/null | tar -cf - -T -) | tar -xf - -C "$DEST"; }
present() { for p in "$@"; do [ -e "$S/$p" ] && echo "$p"; done; }
DEST="$D/train-code" copy $(present transformers accelerate torch/nn torch/optim torch/utils pandas/core scipy/optimize sklearn requests jinja2 click rich)
DEST="$D/heldout-code" copy $(present networkx sympy/core)
python3 - "$D/humaneval" <<'PY'
import gzip, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for t in map(json.loads, gzip.open(".gpu/heldout/HumanEval-SingleLineInfilling.jsonl.gz", "rt")):
    out.joinpath(t["task_id"].split("/")[2] + ".py").write_text(t["prompt"] + t["canonical_solution"] + t["suffix"])
PY
for f in train-code heldout-code humaneval; do echo "$f: $(find "$D/$f" -name '*.py' | wc -l) files"; done
touch "$D/.data-done"
