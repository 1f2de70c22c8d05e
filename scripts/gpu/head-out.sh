#!/usr/bin/env bash
# On the GPU machine: bring a trained head back through $OUT, whose files come back at most 64 MiB a
# call (8 files of <= 16 MiB). The head (config.json, model.safetensors) is cut once into 15 MiB
# pieces of one tar; each call copies the next 4 of them, with their SHA256SUMS.
#   scripts/gpu/head-out.sh HEAD_DIR PART     PART = 0, 1, 2, ...; prints how many parts there are
# Here: scripts/gpu/head-in.sh DEST /work/.device/N ... rebuilds the folder from the calls' files.
set -eu
head=$1; part=$2
S=${COMPLETER_GPU_ROOT:-/tmp/completer-gpu}/head-out
if [ "$(cat "$S/.source" 2>/dev/null)" != "$(readlink -f "$head")" ]; then
  rm -rf "$S"; mkdir -p "$S"
  tar -cf - -C "$(readlink -f "$head")" config.json model.safetensors | split -b 15M -d -a 3 - "$S/head.tar."
  (cd "$S" && sha256sum head.tar.* > SHA256SUMS)
  readlink -f "$head" > "$S/.source"
fi
n=$(ls "$S"/head.tar.* | wc -l)
echo "head $(cat "$S/.source"): $n pieces, parts 0..$(( (n - 1) / 4 )); this is part $part"
ls "$S"/head.tar.* | sed -n "$(( part * 4 + 1 )),$(( part * 4 + 4 ))p" | xargs -r -I{} cp {} "${OUT:?}/"
cp "$S/SHA256SUMS" "$OUT/"
