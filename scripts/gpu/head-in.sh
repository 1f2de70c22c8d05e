#!/usr/bin/env bash
# Here: rebuild a head folder from the files head-out.sh sent back in several calls.
#   scripts/gpu/head-in.sh DEST DIR...    DIR: each call's files (e.g. /work/.device/N)
# Checks every piece against SHA256SUMS and that none is missing, then unpacks into DEST.
set -euo pipefail
dest=$1; shift
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for d in "$@"; do cp "$d"/head.tar.* "$work/" 2>/dev/null || true; cp "$d/SHA256SUMS" "$work/"; done
(cd "$work" && sha256sum --quiet -c SHA256SUMS) || { echo "head-in: a piece is missing or damaged" >&2; exit 1; }
mkdir -p "$dest"
(cd "$work" && awk '{print $2}' SHA256SUMS | xargs cat) | tar -xf - -C "$dest"
ls -la "$dest"
