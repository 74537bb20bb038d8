#!/usr/bin/env bash
# Install a private, unpacked MediaWiki (Debian 12's 1.39) for the test suite.
#
#   bash scripts/install-mediawiki.sh
#
# * installs the PHP CLI and the few extensions MediaWiki needs (no web server, no database server);
# * downloads the `mediawiki` and `mediawiki-classes` .debs (never installs them: `mediawiki` depends
#   on apache2) and unpacks them with `dpkg-deb -x`;
# * leaves MediaWiki's code folder (the one holding api.php) at $WIKILUIGI_MEDIAWIKI_ROOT, by default
#   $HOME/.cache/wikiluigi/mediawiki, with the package's absolute symlinks into /var/lib and /etc
#   replaced: extensions -> extensions-core, images/ and cache/ as real folders, no config/ and no
#   LocalSettings.php (each test wiki brings its own, see tests/support/mediawiki.py).
#
# Idempotent: work already done is skipped. Needs root (or sudo) for apt-get only.
set -euo pipefail

ROOT="${WIKILUIGI_MEDIAWIKI_ROOT:-$HOME/.cache/wikiluigi/mediawiki}"
PHP_PACKAGES=(php-cli php-sqlite3 php-intl php-mbstring php-xml)
MARKER="$ROOT/.wikiluigi-mediawiki-installed"

log() { printf 'install-mediawiki: %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    fi
fi

# --- 1. PHP ---------------------------------------------------------------------------------------
missing=()
for p in "${PHP_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" apt-get install -y --no-install-recommends "${PHP_PACKAGES[@]}"
else
    log "PHP packages already installed"
fi
php -r 'foreach (["pdo_sqlite","intl","mbstring","xml"] as $e) if (!extension_loaded($e)) { fwrite(STDERR, "missing PHP extension $e\n"); exit(1); }'

# --- 2. MediaWiki code ----------------------------------------------------------------------------
if [ -f "$MARKER" ] && [ -f "$ROOT/api.php" ] && [ -f "$ROOT/maintenance/install.php" ]; then
    log "MediaWiki already unpacked at $ROOT ($(cat "$MARKER"))"
    exit 0
fi

mkdir -p "$(dirname "$ROOT")"
# Unpack beside $ROOT (same filesystem: the final mv is a rename); download under /tmp, where the
# unprivileged _apt user that apt-get download switches to can write (no "unsandboxed" warning).
WORK="$(mktemp -d "$(dirname "$ROOT")/.mediawiki-install.XXXXXX")"
DEBS="$(mktemp -d "${TMPDIR:-/tmp}/wikiluigi-mediawiki-debs.XXXXXX")"
trap 'rm -rf "$WORK" "$DEBS"' EXIT
chmod 0777 "$DEBS"
mkdir "$WORK/tree"

log "downloading mediawiki and mediawiki-classes (about 38 MB)"
if ! (cd "$DEBS" && apt-get download mediawiki mediawiki-classes); then
    # A fresh machine may not have package lists yet.
    "${SUDO[@]}" apt-get update
    (cd "$DEBS" && apt-get download mediawiki mediawiki-classes)
fi
for deb in "$DEBS"/*.deb; do
    dpkg-deb -x "$deb" "$WORK/tree"
done

CODE="$WORK/tree/usr/share/mediawiki"
[ -f "$CODE/api.php" ] || { log "unexpected package layout: no $CODE/api.php"; exit 1; }

# The package's absolute symlinks point into /var/lib/mediawiki and /etc/mediawiki: replace them.
rm -f "$CODE/extensions" "$CODE/config" "$CODE/images" "$CODE/LocalSettings.php"
ln -s extensions-core "$CODE/extensions"
mkdir -p "$CODE/images" "$CODE/cache"
for ext in Cite ParserFunctions CategoryTree; do
    [ -f "$CODE/extensions/$ext/extension.json" ] || { log "extension $ext missing"; exit 1; }
done
# Any other absolute symlink left would point outside the private folder.
if find "$CODE" -type l -lname '/*' | grep -q .; then
    log "absolute symlinks left in $CODE:"
    find "$CODE" -type l -lname '/*' >&2
    exit 1
fi

version="$(sed -n "s/.*define( *'MW_VERSION', *'\([^']*\)'.*/\1/p" "$CODE/includes/Defines.php" | head -n1)"
echo "MediaWiki ${version:-unknown} from $(cd "$DEBS" && echo *.deb)" > "$CODE/.wikiluigi-mediawiki-installed"

# Swap in atomically-ish: a half-unpacked tree never sits at $ROOT with a marker.
if [ -e "$ROOT" ]; then
    # Only ever replace an earlier (partial) unpacking or an empty folder, never anything else.
    if [ -f "$ROOT/api.php" ] || [ -z "$(ls -A "$ROOT" 2>/dev/null)" ]; then
        rm -rf "$ROOT"
    else
        log "$ROOT exists and is not a MediaWiki folder: not touching it"
        exit 1
    fi
fi
mv "$CODE" "$ROOT"
log "MediaWiki ${version:-?} unpacked at $ROOT"
