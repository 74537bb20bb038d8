#!/usr/bin/env bash
# Make the project's virtual environment, .venv, and install wikiluigi into it (editable) with extras:
#
#   bash scripts/venv.sh train          # what the demo needs
#   bash scripts/venv.sh train,test,torch   # ... the torch backend and the tests (scripts/install.sh does this)
#
# Why a venv: Debian 12's own Python refuses `pip install` outside one (PEP 668, "externally managed"),
# even as root. A minimal Debian 12 may lack the venv module (python3-venv, which brings ensurepip):
# it is installed with apt-get then (as root, or through sudo). Idempotent: an existing .venv is reused,
# a broken one (no pip in it, e.g. left by a venv made without ensurepip) is made again.
set -euo pipefail
cd "$(dirname "$0")/.."

EXTRAS="${1:-train}"
PYTHON="${PYTHON:-python3}"
log() { printf 'venv: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else log "run as root (or install sudo) to let apt-get install $*"; exit 1
    fi
}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "no $PYTHON: installing Debian's python3"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { log "$PYTHON is older than 3.11: set PYTHON=python3.11 (or newer)"; exit 1; }

if [ -x .venv/bin/python ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    log "removing a broken .venv (it has no pip)"
    rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        version=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        log "$PYTHON has no venv module: installing python$version-venv"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$version-venv" >/dev/null
    fi
    log "making .venv with $("$PYTHON" -c 'import sys; print(sys.executable)')"
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
log "wikiluigi is installed in $(pwd)/.venv (activate it with: . .venv/bin/activate)"
