"""The data layout: where every file of every stage lives, and how a page title becomes a file name."""
import hashlib
import json
import os
import re
import socket
import threading
import unicodedata
from pathlib import Path

from wikiluigi import config
from wikiluigi.errors import WikiluigiError, quote

PACKAGE_MANIFESTS = Path(__file__).resolve().parent / "manifests"

# A file name may hold 255 bytes; keep room for the longest suffix we add (".mediawiki", ".json").
_MAX_STEM_BYTES = 240
_HASH_MARK = "%~"
# A folder named after a host, manifest or run, with room for the suffixes added to it (".failures.tsv").
_MAX_FOLDER_BYTES = 240


def data_dir() -> Path:
    folder = config.setting("wikiluigi", "data_dir", config.DEFAULT_DATA_DIR)
    return Path(folder).expanduser().absolute()


def machine_name() -> str:
    """This machine's name, for the files each machine of a shared data directory keeps to itself:
    [wikiluigi] machine_name, or the host name; anything but letters, digits, '.', '_' and '-' as '_'."""
    name = config.setting("wikiluigi", "machine_name", "") or socket.gethostname()
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:64] or "machine"


def title_to_stem(title: str) -> str:
    """The file name (without suffix) of a page: the title as the wiki spells it, spaces kept.

    Only what a file system cannot hold or would confuse is escaped, with %XX (UTF-8 bytes): '%' itself,
    '/', NUL and a leading dot; an empty title is '%'. A title not in Unicode NFC (which MediaWiki itself
    never has: it comes from a hand-made dump) has every non-ASCII character escaped, and so has a lone
    surrogate: every file name is then in NFC, and two titles that differ only in their normalisation get
    two files even where the file system folds normalisations (macOS). A name longer than a file system
    allows is cut and ends in '%~' plus a hash of the whole title; the whole title then lives in
    raw/.../revisions.jsonl and in the derived manifest.
    """
    if not title:
        return "%"
    stem = title.replace("%", "%25").replace("/", "%2F").replace("\0", "%00")
    if stem.startswith("."):
        stem = "%2E" + stem[1:]
    if not stem.isascii() and (_SURROGATE.search(stem) or not unicodedata.is_normalized("NFC", stem)):
        stem = _NON_ASCII.sub(_escape, stem)
    encoded = stem.encode("utf-8")
    if len(encoded) <= _MAX_STEM_BYTES:
        return stem
    digest = hashlib.sha1(title.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    keep = _MAX_STEM_BYTES - len(_HASH_MARK) - len(digest)
    prefix = encoded[:keep].decode("utf-8", errors="ignore")
    return prefix + _HASH_MARK + digest


def stem_to_title(stem: str) -> str | None:
    """The title a file name stands for, or None for a cut name (look it up in the metadata)."""
    if _HASH_MARK in stem:
        return None
    if stem == "%":
        return ""
    return _ESCAPED.sub(lambda m: bytes.fromhex(m.group(0).replace("%", "")).decode("utf-8", "surrogatepass"), stem)


def _escape(match: re.Match) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group(0).encode("utf-8", "surrogatepass"))


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED = re.compile(r"(?:%[0-9A-F]{2})+")


class PathError(WikiluigiError):
    """A name from a manifest, a dump or a wiki cannot be a folder name inside the data directory."""


def folder_name(name: str, what: str, advice: str = "") -> str:
    """`name` when it can be one folder inside its parent, else a PathError naming `what` (the file and
    key or element it came from). Every folder named after outside input (a wiki's host, a manifest or a
    run) passes here, so that nothing a manifest, a dump or a wiki says can put a file elsewhere."""
    problem = _folder_name_problem(name)
    if problem:
        raise PathError(f"{what}: {quote(name)} cannot be a folder name inside the data directory "
                        f"({problem}).{' ' + advice if advice else ''}")
    return name


def _folder_name_problem(name) -> str | None:
    if not isinstance(name, str):
        return "it is not text"
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return "it names a folder above or the folder itself"
    if name.startswith("."):
        return "it starts with a dot"
    for character, said in (("/", "'/'"), ("\\", "'\\'"), ("\0", "a NUL character")):
        if character in name:
            return f"it holds {said}"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it holds a control character"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeError:
        return "it is not valid Unicode"
    if size > _MAX_FOLDER_BYTES:
        return f"it is {size} bytes long, over {_MAX_FOLDER_BYTES}"
    return None


def case_sensitive(folder: Path) -> bool:
    """Whether the file system holding `folder` tells 'a' from 'A' in file names: Linux's do, macOS's and
    Windows' do not by default. Asked by writing a probe file, since a mount can differ from its parent."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".wikiluigi-case-probe-{os.getpid()}-{threading.get_ident()}-a"
    probe.touch()
    try:
        return not probe.with_name(probe.name[:-1] + "A").exists()
    finally:
        probe.unlink(missing_ok=True)


# Manifests
def original_manifest_dirs() -> list[Path]:
    """Where manifests are looked up, first match wins: the data directory's, then those shipped."""
    return [data_dir() / "manifests" / "originals", PACKAGE_MANIFESTS]


def derived_manifest(name: str) -> Path:
    return data_dir() / "manifests" / "derived" / f"{folder_name(name, 'manifest name')}.yaml"


# Pages
def raw_dir(host: str) -> Path:
    return data_dir() / "raw" / "mediawiki" / folder_name(host, "the wiki's host")


def raw_page(host: str, title: str) -> Path:
    return raw_dir(host) / f"{title_to_stem(title)}.mediawiki"


def revisions_log(host: str) -> Path:
    """One JSON line per page this machine fetched: title, revision id, timestamp. Each machine sharing the
    data directory appends to its own; readers merge them (fetch.read_revisions)."""
    return raw_dir(host) / f"revisions-{machine_name()}.jsonl"


def revisions_logs(host: str) -> list[Path]:
    """Every machine's revisions log of a wiki (and revisions.jsonl, as earlier versions wrote it)."""
    return sorted(raw_dir(host).glob("revisions*.jsonl"))


# processed/mediawiki/<host>~<this many hex digits of the options' fingerprint>: pages made with other
# conversion options than the defaults.
OPTIONS_KEY_LENGTH = 12
_OPTIONS_FOLDER = re.compile(r"~[0-9a-f]{%d}" % OPTIONS_KEY_LENGTH)


def processed_root() -> Path:
    return data_dir() / "processed" / "mediawiki"


def processed_dir(host: str, options_key: str = "") -> Path:
    """A processed folder of wiki `host`: <host>/ holds the pages made with the default conversion
    options, <host>~<options_key>/ those made with others. Which one a manifest reads is
    convert.stage.processed_folder's to say; the default one alone is processed_dir(host)."""
    folder = folder_name(host, "the wiki's host")
    if "~" in folder:
        raise PathError(f"the wiki's host: {quote(host)} holds '~', which separates a wiki's folder from its "
                        f"conversion options in processed/: name the folder with the manifest's 'host' key.")
    if options_key:
        if not _OPTIONS_FOLDER.fullmatch("~" + options_key):
            raise PathError(f"{quote(options_key)} is not an options fingerprint ({OPTIONS_KEY_LENGTH} hex digits).")
        folder += "~" + options_key
    return processed_root() / folder


def processed_dirs(host: str) -> list[Path]:
    """Every processed folder of wiki `host`, the default one first: one per set of conversion options its
    pages were converted with (a page's stale failure records are in each). One listing of processed/."""
    default = processed_dir(host)
    try:
        names = os.listdir(default.parent)
    except FileNotFoundError:
        return [default]
    others = sorted(default.parent / name for name in names
                    if name.startswith(default.name + "~") and _OPTIONS_FOLDER.fullmatch(name[len(default.name):]))
    return [default, *others]


_VALIDATION_ENDING = re.compile(r"-val(?:[0-9.]|inf|nan)[0-9.e+-]*\Z", re.IGNORECASE)


def manifest_name_problem(name: str) -> str | None:
    """What keeps `name` from being a manifest's name in the folders named after manifest sets, or None:
    '+' joins the names of a set, and a '-val<N>' ending is a training set's validation split."""
    if "+" in name:
        return "it holds '+', which joins the names of several manifests in a training set's folder"
    if _VALIDATION_ENDING.search(name):
        return "it ends like '-val0.2', which names a training set's validation split"
    return None


def manifest_set_name(manifests) -> str:
    """One name for a list of manifest names, in folder names (training sets, scratch models): the names
    joined by '+', or '+' and a hash of the list when that would be long or hold other characters. A
    manifest's name never holds '+' (sources.manifest refuses it), so two lists never share a name."""
    for name in manifests:
        problem = manifest_name_problem(name)
        if problem:
            raise PathError(f"manifest name {quote(name)}: {problem}. Rename the manifest's file.")
    names = "+".join(manifests)
    if len(names) > 60 or not re.fullmatch(r"[A-Za-z0-9_.-]+(\+[A-Za-z0-9_.-]+)*", names):
        names = "+" + hashlib.sha1(json.dumps(list(manifests)).encode("utf-8")).hexdigest()[:12]
    return names


def processed_page(host: str, title: str) -> Path:
    """A page's Markdown made with the default conversion options."""
    return processed_file(processed_dir(host), title)


def processed_file(folder: Path, title: str) -> Path:
    """A page's Markdown in a processed folder (convert.stage.processed_folder gives a manifest's)."""
    return folder / f"{title_to_stem(title)}.md"


def failure_dir(stage_dir: Path) -> Path:
    """Pages a stage could not make are recorded here, one JSON file each, with the reason."""
    return stage_dir / ".failed"


def failure_record(stage_dir: Path, title: str) -> Path:
    return failure_dir(stage_dir) / f"{title_to_stem(title)}.json"


# Outputs
def out_dir() -> Path:
    return data_dir() / "out"


def model_dir(name: str) -> Path:
    return out_dir() / "model" / folder_name(name, "model name")


def checkpoint_dir(run_name: str) -> Path:
    return out_dir() / "checkpoint" / folder_name(run_name, "run name")


def generated_dir(run_name: str) -> Path:
    return out_dir() / "gen" / folder_name(run_name, "run name")


def report(manifest: str) -> Path:
    """The end-of-run summary of one manifest."""
    return out_dir() / "reports" / f"{folder_name(manifest, 'manifest name')}.txt"


def failures_report(manifest: str) -> Path:
    """Every failed page of one manifest with its reason, one per line (title, stage, reason)."""
    return out_dir() / "reports" / f"{folder_name(manifest, 'manifest name')}.failures.tsv"


def http_cache() -> Path:
    """This machine's HTTP cache (an SQLite file, '.sqlite' added): SQLite's locks do not work across
    the machines sharing a data directory over a network file system, so each has its own."""
    return data_dir() / ".cache" / "http" / machine_name()
