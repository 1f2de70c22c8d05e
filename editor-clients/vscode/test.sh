#!/usr/bin/env bash
# Build and test the VS Code extension: unit tests, the .vsix, and the end-to-end test in a real
# VS Code (code-server) driven by headless Chromium against the real completer server.
# Idempotent: what is installed already (apt packages, node_modules, code-server) is kept.
#
#   editor-clients/vscode/test.sh            everything
#   editor-clients/vscode/test.sh --unit     unit tests and the .vsix only
#   editor-clients/vscode/test.sh --setup    everything but the end-to-end test
#
# Environment: COMPLETER_PYTHON (the Python with completer; default: the repository's .venv),
# COMPLETER_VSCODE_CACHE (where code-server is installed; default ~/.cache/completer-vscode),
# COMPLETER_ENGINE_LOCK (a file to flock(1) around the end-to-end test, so that engines never
# run at once on a small machine; unset: no lock).
set -euo pipefail
cd "$(dirname "$0")"
log() { echo "vscode: $*" >&2; }
mode="${1:-all}"
case "$mode" in all|--unit|--setup) ;; *) echo "usage: $0 [--unit|--setup]" >&2; exit 2 ;; esac

# code-server 4.100.3 (VS Code 1.100.3) is the last release that runs on Node 20.
CODE_SERVER_VERSION=4.100.3
cache="${COMPLETER_VSCODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/completer-vscode}"
cs_dir="$cache/code-server-$CODE_SERVER_VERSION"
code_server="$cs_dir/node_modules/.bin/code-server"

# System packages: Chromium for the browser; a C++ toolchain, Kerberos headers and ripgrep for
# code-server's native modules (its npm package builds them; prebuilt downloads are not used).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/rg ] || missing+=(ripgrep)
command -v g++ >/dev/null && command -v make >/dev/null || missing+=(build-essential)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -f /usr/include/gssapi/gssapi.h ] || missing+=(libkrb5-dev)
if [ "$mode" != --unit ] && [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The extension: dependencies from the lock file, compile, unit tests, package.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
npm test
npx vsce package --skip-license --allow-missing-repository -o completer.vsix >/dev/null
log "packaged completer.vsix"
[ "$mode" = --unit ] && exit 0

# code-server, installed once into the cache. Its postinstall would download ripgrep from GitHub,
# which is not reachable, so the scripts run by hand with Debian's rg in place of the download.
if [ ! -f "$cs_dir/.installed" ]; then
  log "installing code-server $CODE_SERVER_VERSION into $cs_dir"
  rm -rf "$cs_dir" && mkdir -p "$cs_dir"
  (
    cd "$cs_dir"
    export npm_config_yes=true npm_config_unsafe_perm=true  # node-pty runs `npx node-gyp`; root
    npm=(npm --no-audit --no-fund --loglevel=error)
    echo '{"private": true}' > package.json
    "${npm[@]}" install --ignore-scripts "code-server@$CODE_SERVER_VERSION"
    cd node_modules/code-server/lib/vscode
    "${npm[@]}" install --omit=dev --ignore-scripts
    mkdir -p node_modules/@vscode/ripgrep/bin && ln -sf /usr/bin/rg node_modules/@vscode/ripgrep/bin/rg
    "${npm[@]}" rebuild                  # VS Code's native modules (node-pty, spdlog, watchers ...)
    cd "$cs_dir" && "${npm[@]}" rebuild  # argon2, and code-server's own postinstall
  )
  "$code_server" --version >/dev/null
  touch "$cs_dir/.installed"
fi

[ "$mode" = --setup ] && exit 0

# The end-to-end test: the real server, in code-server, in Chromium.
e2e=(node test/e2e.mjs --vsix completer.vsix --code-server "$code_server")
if [ -n "${COMPLETER_ENGINE_LOCK:-}" ]; then e2e=(flock "$COMPLETER_ENGINE_LOCK" "${e2e[@]}"); fi
"${e2e[@]}"
