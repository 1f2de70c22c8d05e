#!/usr/bin/env bash
# On the GPU machine: bring a trained head back through $OUT, whose files come back at most 64 MiB a
# call (8 files of <= 16 MiB). The head (config.json, model.safetensors) is cut once into 15 MiB
# pieces of one tar; each call copies the next 4 of them, with their SHA256SUMS.
#   scripts/gpu/head-out.sh HEAD_DIR PART     PART = 0, 1, 2, ...; prints how many parts there are
# Here: scripts/gpu/head-in.sh DEST /work/.device/N ... rebuilds the folder from the calls' files.
set -euo pipefail
head=$1; part=$2
S=${COMPLETER_GPU_ROOT:-/tmp/completer-gpu}/head-out
# the pieces are cut again when the head changed (a re-export at the same path included)
source="$(readlink -f "$head") $(stat -c '%s %Y' "$head/model.safetensors" "$head/config.json" | tr '\n' ' ')"
if [ "$(cat "$S/.source" 2>/dev/null)" != "$source" ]; then
  rm -rf "$S"; mkdir -p "$S"
  tar -cf - -C "$(readlink -f "$head")" config.json model.safetensors | split -b 15M -d -a 3 - "$S/head.tar."
  (cd "$S" && sha256sum head.tar.* > SHA256SUMS)
  echo "$source" > "$S/.source"
fi
n=$(ls "$S"/head.tar.* | wc -l)
last=$(( (n - 1) / 4 ))
echo "head $head: $n pieces, parts 0..$last; this is part $part"
[ "$part" -le "$last" ] || { echo "head-out: no part $part" >&2; exit 2; }
ls "$S"/head.tar.* | sed -n "$(( part * 4 + 1 )),$(( part * 4 + 4 ))p" | xargs -r -I{} cp {} "${OUT:?}/"
cp "$S/SHA256SUMS" "$OUT/"
