#!/usr/bin/env bash
# On the GPU machine: run work that outlives one `run` call (it keeps running while later calls
# carry more batches), and report on it.
#   scripts/gpu/background.sh start NAME COMMAND   COMMAND (one string, bash) in a new session;
#                                                  its output in $BG/NAME.log, its exit status in $BG/NAME.rc
#   scripts/gpu/background.sh status [LINES]       each job: running or its exit status, and its log's last lines
#   scripts/gpu/background.sh wait NAME [SECONDS]  until NAME has ended (or SECONDS passed); its exit status
# Jobs that use the GPU take $BG/gpu.lock (flock), so they run one after the other.
set -u
BG="${COMPLETER_GPU_BG:-/tmp/completer-gpu/bg}"
mkdir -p "$BG"
case "${1:-}" in
  start)
    name=$2; shift 2
    rm -f "$BG/$name.rc"
    setsid nohup bash -c "( $* ); echo \$? > '$BG/$name.rc'" > "$BG/$name.log" 2>&1 < /dev/null &
    echo "started $name (pid $!)";;
  status)
    for log in "$BG"/*.log; do
      [ -e "$log" ] || { echo "no jobs"; break; }
      name=$(basename "$log" .log)
      if [ -e "$BG/$name.rc" ]; then state="exit $(cat "$BG/$name.rc")"; else state=running; fi
      echo "== $name: $state"
      tail -n "${2:-5}" "$log" | tr '\r' '\n' | tail -n "${2:-5}" | cut -c1-300
    done;;
  wait)
    end=$(( $(date +%s) + ${3:-540} ))
    while [ ! -e "$BG/$2.rc" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 5; done
    if [ -e "$BG/$2.rc" ]; then exit "$(cat "$BG/$2.rc")"; else echo "$2 still running"; exit 124; fi;;
  *) sed -n 2,10p "$0"; exit 2;;
esac
