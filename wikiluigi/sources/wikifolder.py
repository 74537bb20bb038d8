"""Which wiki a raw/ host folder holds: recorded at its first use, and a manifest of another wiki refused there."""
import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

from wikiluigi import pagefiles, paths
from wikiluigi.errors import ManifestError, quote

# One record per kind of source, each written once (an API's URL, a dump's site): a wiki read both from
# its API and from a dump of it may share its folder, as the default `host` of both is the wiki's host.
RECORDS = {"api": ".wiki-api.json", "dump": ".wiki-dump.json"}


def wiki_of(source: dict) -> tuple[str, str] | None:
    """(kind, the wiki) of a source ({"api": url} or {"dump": path}, as sources.manifest.source_of gives):
    the api URL without its scheme, or a dump's site (<base> up to its last '/', else <dbname>); None for
    a dump that names no site (nothing to compare)."""
    if source.get("api"):
        parts = urlsplit(source["api"])
        return "api", parts.netloc.lower() + parts.path
    from wikiluigi.sources import dump
    site = dump.read_siteinfo(source["dump"])
    if site.base_url:
        parts = urlsplit(site.base_url)
        return "dump", parts.netloc.lower() + parts.path[:parts.path.rfind("/") + 1]
    if site.dbname:
        return "dump", f"database {site.dbname}"
    return None


def claim(host: str, source: dict, manifest_path: Path | str) -> None:
    """Record at first use which wiki raw/mediawiki/<host>/ belongs to; a ManifestError naming both wikis
    and the fix when the manifest at `manifest_path` (its `source`) is of another wiki."""
    wiki = wiki_of(source)
    if wiki is None:
        return
    kind, name = wiki
    folder = paths.raw_dir(host)
    record = folder / RECORDS[kind]
    recorded = _read(record)
    if recorded is None:
        recorded = _write_once(record, {"wiki": name, "manifest": str(manifest_path)})
    if recorded["wiki"] != name:
        what = "api" if kind == "api" else "dump of"
        raise ManifestError(
            f"{manifest_path}: its wiki ({what} {quote(name)}) is not the wiki whose pages are in {folder} "
            f"({quote(recorded['wiki'])}, first used by {recorded.get('manifest', 'another manifest')}): two "
            f"wikis on one host would share their pages. Give this manifest a folder of its own with its "
            f"'host' key, e.g. host: {_suggestion(host, name)}")


def _read(record: Path) -> dict | None:
    """The record, or None when there is none or it is unreadable (then it is written again)."""
    try:
        recorded = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) and isinstance(recorded.get("wiki"), str) else None


def _write_once(record: Path, document: dict) -> dict:
    """Write `document` unless another process wrote its own first (a hard link never replaces a file);
    returns the record that stands."""
    record.parent.mkdir(parents=True, exist_ok=True)
    temporary = record.parent / (f"{pagefiles.TEMPORARY_PREFIX}{os.getpid()}-{threading.get_ident()}-wiki"
                                 f"@{paths.machine_name()}{pagefiles.TEMPORARY_SUFFIX}")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(document, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())  # a power cut leaves the record whole or none
    try:
        try:
            os.link(temporary, record)
        except FileExistsError:
            standing = _read(record)
            if standing is not None:
                return standing
            os.replace(temporary, record)  # an unreadable record (a torn write): replaced
    finally:
        temporary.unlink(missing_ok=True)
    return document


def _suggestion(host: str, wiki: str) -> str:
    path = wiki.split("/", 1)[1] if "/" in wiki else wiki
    path = re.sub(r"(?:api|index)\.php$", "", path)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-") or "2"
    return f"{host.replace('~', '-')}-{slug}"
