#!/usr/bin/env bash
# On the GPU machine, after setup.sh (a head carried in with pack.py --with-head) and `models fetch`
# of the target: a team's server under load with real weights and an EAGLE-3 head
# (scripts/gpu/README.md, "A team's server under load"). Meant to run under `background.sh start`.
# Steps, each skipped when its result exists (so the script can run again after a stop):
#   1. `completer bench load`: N editors (EDITORS) typing at once against one `completer server`,
#      then against vLLM's stock server with fixed k (the same target and head)
#   2. the latency table on real weights with HumanEval's one-line tasks among the long ones:
#      target alone, the head at k = 5, the policy, the bypass (LATENCY=0 skips it)
# Results (JSON, Markdown, plots, logs) in $R; progress lines in $R/progress.txt.
set -u
. /tmp/completer-gpu/env.sh
# completer from this script's own checkout: a long job started from a copy (`git archive`) is not
# changed under it by later calls, which bring the working tree anew
SRC=$(cd "$(dirname "$0")/../.." && pwd); cd "$SRC"
export PYTHONPATH=/tmp/completer-gpu/site:$SRC
HEAD_DIR=${HEAD_DIR:?HEAD_DIR: the EAGLE-3 head folder, e.g. /tmp/completer-gpu/heads/run3}
R=${R:-/tmp/load/results}; mkdir -p "$R"
EDITORS=${EDITORS:-1 2 4 8 16}; CHARS=${CHARS:-240}; CPS=${CPS:-10}; LATENCY=${LATENCY:-1}
# MAX_WAIT: seconds a typist waits for a suggestion; REPEATS: rounds, the servers' order alternating
MAX_WAIT=${MAX_WAIT:-30}; REPEATS=${REPEATS:-1}
# requests the server runs at once: room for every editor (the setting's default is one editor's)
MAX_NUM_SEQS=${MAX_NUM_SEQS:-16}
BENCH_DATA=${BENCH_DATA:-/tmp/bench-data}   # HumanEval-infilling's files (heldout batch)
step() { echo "$(date -u +%FT%TZ) $*" | tee -a "$R/progress.txt"; }
converted() { ls -d "$COMPLETER_CACHE"/converted/qwen2.5-coder-$1-* 2>/dev/null | grep -v '\.partial$' | head -1; }
exec 9>"${COMPLETER_GPU_BG:-/tmp/completer-gpu/bg}/gpu.lock"; flock 9   # one GPU job at a time
T=$(converted 1.5b)
[ -n "$T" ] || { step "no converted 1.5B target in $COMPLETER_CACHE: run models fetch first"; exit 1; }

if [ ! -s "$R/load/load.json" ]; then
  step "1 load: editors $EDITORS, $CHARS characters at $CPS a second, $REPEATS round(s), head $HEAD_DIR"
  settings=$(python3 -c 'import json, sys; print(json.dumps({"speculative_config": {"model": sys.argv[1]},
                                                             "max_num_seqs": int(sys.argv[2])}))' "$HEAD_DIR" "$MAX_NUM_SEQS")
  # a server that does not start: load-failed.json, and the next run of this script tries again
  python3 -m completer bench load $(printf -- '--editors %s ' $EDITORS) --chars "$CHARS" --cps "$CPS" \
    --max-wait "$MAX_WAIT" --repeats "$REPEATS" --settings "$settings" --out "$R/load" > "$R/load.log" 2>&1
  step "1 load: exit $?"
fi

if [ "$LATENCY" = 1 ] && [ ! -s "$R/real/gpu-latency.json" ]; then
  step "2 latency table, real weights, one-line tasks from $BENCH_DATA"
  COMPLETER_BENCH_DATA=$BENCH_DATA python3 -m completer -v bench latency --gpu --real-target "$T" \
    --real-head "$HEAD_DIR" --engine target --engine eagle3 --out "$R/real" > "$R/latency.log" 2>&1
  step "2 latency: exit $?"
fi
step "done"
