"""The data layout: where every file of every stage lives, and how a page title becomes a file name."""
import hashlib
import re
import socket
from pathlib import Path

import luigi.configuration

from wikiluigi import config

PACKAGE_MANIFESTS = Path(__file__).resolve().parent / "manifests"

# A file name may hold 255 bytes; keep room for the longest suffix we add (".mediawiki", ".json").
_MAX_STEM_BYTES = 240
_HASH_MARK = "%~"


def data_dir() -> Path:
    # Read straight from the parser: making a luigi.Config object costs ~0.4 ms, and every path asks.
    folder = luigi.configuration.get_config().get("wikiluigi", "data_dir", config.DEFAULT_DATA_DIR)
    return Path(folder).expanduser().absolute()


def machine_name() -> str:
    """This machine's name, for the files each machine of a shared data directory keeps to itself:
    [wikiluigi] machine_name, or the host name; anything but letters, digits, '.', '_' and '-' as '_'."""
    name = luigi.configuration.get_config().get("wikiluigi", "machine_name", "") or socket.gethostname()
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:64] or "machine"


def title_to_stem(title: str) -> str:
    """The file name (without suffix) of a page: the title as the wiki spells it, spaces kept.

    Only what a file system cannot hold is escaped, with %XX: '%' itself, '/', NUL and a leading dot.
    A name longer than a file system allows is cut and ends in '%~' plus a hash of the whole title;
    the whole title then lives in raw/.../revisions.jsonl and in the derived manifest.
    """
    stem = title.replace("%", "%25").replace("/", "%2F").replace("\0", "%00")
    if stem.startswith("."):
        stem = "%2E" + stem[1:]
    encoded = stem.encode("utf-8")
    if len(encoded) <= _MAX_STEM_BYTES:
        return stem
    digest = hashlib.sha1(title.encode("utf-8")).hexdigest()[:16]
    keep = _MAX_STEM_BYTES - len(_HASH_MARK) - len(digest)
    prefix = encoded[:keep].decode("utf-8", errors="ignore")
    return prefix + _HASH_MARK + digest


def stem_to_title(stem: str) -> str | None:
    """The title a file name stands for, or None for a cut name (look it up in the metadata)."""
    if _HASH_MARK in stem:
        return None
    if stem.startswith("%2E"):
        stem = "." + stem[3:]
    return _ESCAPE.sub(lambda m: _UNESCAPED[m.group(0)], stem)


_UNESCAPED = {"%25": "%", "%2F": "/", "%00": "\0"}
_ESCAPE = re.compile("|".join(_UNESCAPED))


# Manifests
def original_manifest_dirs() -> list[Path]:
    """Where manifests are looked up, first match wins: the data directory's, then those shipped."""
    return [data_dir() / "manifests" / "originals", PACKAGE_MANIFESTS]


def derived_manifest(name: str) -> Path:
    return data_dir() / "manifests" / "derived" / f"{name}.yaml"


# Pages
def raw_dir(host: str) -> Path:
    return data_dir() / "raw" / "mediawiki" / host


def raw_page(host: str, title: str) -> Path:
    return raw_dir(host) / f"{title_to_stem(title)}.mediawiki"


def revisions_log(host: str) -> Path:
    """One JSON line per page this machine fetched: title, revision id, timestamp. Each machine sharing the
    data directory appends to its own; readers merge them (fetch.read_revisions)."""
    return raw_dir(host) / f"revisions-{machine_name()}.jsonl"


def revisions_logs(host: str) -> list[Path]:
    """Every machine's revisions log of a wiki (and revisions.jsonl, as earlier versions wrote it)."""
    return sorted(raw_dir(host).glob("revisions*.jsonl"))


def processed_dir(host: str) -> Path:
    return data_dir() / "processed" / "mediawiki" / host


def processed_page(host: str, title: str) -> Path:
    return processed_dir(host) / f"{title_to_stem(title)}.md"


def failure_dir(stage_dir: Path) -> Path:
    """Pages a stage could not make are recorded here, one JSON file each, with the reason."""
    return stage_dir / ".failed"


def failure_record(stage_dir: Path, title: str) -> Path:
    return failure_dir(stage_dir) / f"{title_to_stem(title)}.json"


# Outputs
def out_dir() -> Path:
    return data_dir() / "out"


def trainingset() -> Path:
    return out_dir() / "trainingset.txt"


def trainingset_stats() -> Path:
    return out_dir() / "trainingset.stats.json"


def model_dir(name: str) -> Path:
    return out_dir() / "model" / name


def checkpoint_dir(run_name: str) -> Path:
    return out_dir() / "checkpoint" / run_name


def generated_dir(run_name: str) -> Path:
    return out_dir() / "gen" / run_name


def report(manifest: str) -> Path:
    """The end-of-run summary of one manifest."""
    return out_dir() / "reports" / f"{manifest}.txt"


def failures_report(manifest: str) -> Path:
    """Every failed page of one manifest with its reason, one per line (title, stage, reason)."""
    return out_dir() / "reports" / f"{manifest}.failures.tsv"


def http_cache() -> Path:
    """This machine's HTTP cache (an SQLite file, '.sqlite' added): SQLite's locks do not work across
    the machines sharing a data directory over a network file system, so each has its own."""
    return data_dir() / ".cache" / "http" / machine_name()
