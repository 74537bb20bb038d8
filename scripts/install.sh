#!/usr/bin/env bash
# Install wikiluigi with everything its tests need, on a fresh Debian 12 machine (as root):
# Debian's chromium for the browser test, nix-bin to parse nix/*.nix, PHP + MediaWiki for the local
# test wiki, and the package with its training and test extras in the project's .venv (scripts/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium nix-bin >/dev/null
bash scripts/install-mediawiki.sh

bash scripts/venv.sh "train,test,torch"
