#!/usr/bin/env bash
# Install wikiluigi with everything its tests need, on a fresh Debian 12 machine (as root):
# the package with its training extra, pytest and Playwright (pip), Debian's chromium for the
# browser test, nix-bin to parse nix/*.nix, and PHP + MediaWiki for the local test wiki.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium nix-bin >/dev/null
bash scripts/install-mediawiki.sh

python3 -m pip install -q --disable-pip-version-check -e ".[train,test]"
