#!/usr/bin/env bash
# On the GPU machine, after setup.sh, draft-data.sh and `models fetch` of the target: train an
# EAGLE-3 head on $D/train-code and measure it with real weights (scripts/gpu/README.md, "Train an
# EAGLE-3 head"). Meant to run under `background.sh start`, while later calls carry the draft.
# Steps, each skipped when its result exists (so the script can run again after a stop):
#   1. examples, the target's completions and hidden states, then training: TRAIN_S seconds at most
#      for all of it (the data of 3,000 examples take about 200 s on an H200); `timeout`'s SIGTERM
#      ends the training, and the best epoch written so far becomes the head
#   2. the head at k = 3, 5, 8 against the target alone on HumanEval, CUTS positions (evaluations
#      run one after the other: two of these engines starting at once on one H200 failed in vLLM's
#      start-up, 2026-12-02)
#   3. the latency table on real weights: target alone, the head (k = 5, the policy, bypass), and
#      the 0.5B draft when its converted folder appears within DRAFT_WAIT_S s
#   4. the head on held-out packages (networkx, sympy's core), after the table: a lease that ends
#      early still has the table
#   5. each epoch's checkpoint at k = 5 on HumanEval: acceptance against training time (the
#      trainer's own validation curve is in completer-draft.json already)
# LATENCY_FIRST=1 runs step 3 before step 2. STOP_AFTER=train ends it after step 1, STOP_AFTER=humaneval after step 2 (a later run goes on).
# The run folder (data/, checkpoints/, head/) is $RUN: /dev/shm/draft-run when /dev/shm has room
# for the hidden states (written at disk speed under /tmp: 20 examples a second, 2026-12-02).
# Results (JSON, logs) in $R; progress lines in $R/progress.txt.
set -u
. /tmp/completer-gpu/env.sh
# completer from this script's own checkout: a long job started from a copy (`git archive`) is not
# changed under it by later calls, which bring the working tree anew
SRC=$(cd "$(dirname "$0")/../.." && pwd); cd "$SRC"
export PYTHONPATH=/tmp/completer-gpu/site:$SRC
D=${DRAFT_ROOT:-/tmp/draft}; R=${R:-$D/results}; mkdir -p "$R"
TRAIN_S=${TRAIN_S:-540}; EXAMPLES=${EXAMPLES:-3000}; EPOCHS=${EPOCHS:-8}; CUTS=${CUTS:-40}
PER_FILE=${PER_FILE:-4}; LR=${LR:-3e-4}; SEED=${SEED:-0}
# INIT_HEAD: a head carried in (pack.py --with-head) to go on from, e.g. /tmp/completer-gpu/heads/NAME
INIT_HEAD=${INIT_HEAD:-}
DRAFT_WAIT_S=${DRAFT_WAIT_S:-300}
step() { echo "$(date -u +%FT%TZ) $*" | tee -a "$R/progress.txt"; }
converted() { ls -d "$COMPLETER_CACHE"/converted/qwen2.5-coder-$1-* 2>/dev/null | grep -v '\.partial$' | head -1; }
T=$(converted 1.5b)
shm_free_gib=$(df -BG --output=avail /dev/shm 2>/dev/null | tail -1 | tr -dc 0-9)
if [ -z "${RUN:-}" ]; then
  if [ -d /dev/shm/draft-run ] || [ "${shm_free_gib:-0}" -ge "${SHM_MIN_GIB:-48}" ]; then RUN=/dev/shm/draft-run; else RUN=$D/run; fi
fi
ln -sfn "$RUN" "$D/run-dir"   # one path for the calls that copy results or the head out
H=$RUN/head
exec 9>"${COMPLETER_GPU_BG:-/tmp/completer-gpu/bg}/gpu.lock"; flock 9   # one GPU job at a time

if [ ! -e "$H/model.safetensors" ]; then
  resume=$([ -d "$RUN/checkpoints" ] && echo --resume)
  step "1 train: $EXAMPLES examples ($PER_FILE a file, seed $SEED), $EPOCHS epochs, lr $LR, at most $TRAIN_S s, in $RUN $resume${INIT_HEAD:+ from $INIT_HEAD}"
  timeout "$TRAIN_S" python3 -m completer draft train "$D/train-code" --out "$RUN" --epochs "$EPOCHS" \
    --max-examples "$EXAMPLES" --per-file "$PER_FILE" --lr "$LR" --seed "$SEED" \
    ${INIT_HEAD:+--init-head "$INIT_HEAD"} --target-completions $resume -- --checkpoint-freq=0.25 > "$R/train.log" 2>&1
  step "1 train: exit $?; $(ls "$RUN/checkpoints" 2>/dev/null | tr '\n' ' ')"
  cp "$RUN/completer-draft.json" "$R/" 2>/dev/null
fi
[ -e "$H/model.safetensors" ] || { step "no head in $H: stopping"; exit 1; }
[ "${STOP_AFTER:-}" = train ] && { step "done (STOP_AFTER=train)"; exit 0; }

latency_table() {
  [ -s "$R/real/gpu-latency.json" ] && return
  end=$(( $(date +%s) + DRAFT_WAIT_S ))
  while [ -z "$(converted 0.5b)" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 5; done
  DR=$(converted 0.5b)
  step "3 latency table, real weights${DR:+, with the draft $DR}"
  # the single-line tasks come from HumanEval-infilling (draft-data.sh); without it every task is long
  COMPLETER_BENCH_DATA=$D/humaneval-infilling python3 -m completer -v bench latency --gpu --real-target "$T" --real-head "$H" ${DR:+--real-draft "$DR"} \
    --engine target --engine eagle3 ${DR:+--engine draft} --out "$R/real" > "$R/latency.log" 2>&1
  step "3 latency: exit $?"
}

eval_head() {  # NAME FOLDER [draft eval flags]
  local name=$1 dir=$2; shift 2
  [ -s "$R/$name.json" ] && return
  step "eval $name"
  # eager engines: acceptance is what these measure, and each of an evaluation's 4 engines skips
  # torch.compile and the CUDA-graph capture at its start; speed is step 3's
  python3 -m completer draft eval --head "$H" -n "$CUTS" --max-tokens 128 --enforce-eager --json "$@" "$dir" \
    > "$R/$name.json" 2> "$R/$name.log"
  step "eval $name: exit $?"
}
# LATENCY_FIRST=1: the table before the HumanEval evaluation (a lease that ends early still has it)
[ "${LATENCY_FIRST:-0}" = 1 ] && latency_table
eval_head eval-humaneval "$D/humaneval"
# STOP_AFTER=humaneval: the head and its HumanEval figures only, the GPU left to the next job
[ "${STOP_AFTER:-}" = humaneval ] && { step "done (STOP_AFTER=humaneval)"; exit 0; }

latency_table

eval_head eval-heldout-code "$D/heldout-code"

for c in "$RUN"/checkpoints/[0-9]*; do
  [ -e "$c/model.safetensors" ] || continue
  H=$c eval_head "eval-k5-epoch$(basename "$c")" "$D/humaneval" -k 5
done
step "done"
