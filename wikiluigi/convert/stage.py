"""The convert stage: a chunk's raw pages through pandoc and the filters into processed/, one file each."""
import contextlib
import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Collection

from wikiluigi import pagefiles, paths

PROCESSED_SUFFIX = ".md"
# Pages per pandoc process: big enough that starting pandoc costs little, small enough for progress.
PANDOC_BATCH = 100
# With the fast path, a batch (one child process: about 10 ms to start) takes pages until it holds
# PANDOC_BATCH of them and FAST_BATCH_CHARS characters of wikitext, or FAST_BATCH_PAGES: small pages
# (a Fandom wiki's 1-2 KB) then start one child a thousand, not a hundred (which cost them a third more CPU).
FAST_BATCH_CHARS = 2_000_000
FAST_BATCH_PAGES = 1000


@dataclass
class ProcessReport:
    converted: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    folder: Path | None = None  # the processed folder the pages went to
    fast: int = 0  # of `converted`, the pages the fast path wrote
    pandoc: dict[str, str] = field(default_factory=dict)  # the others: title -> why pandoc wrote it


# Which engine wrote each page: one JSON line per batch, {"fast": [titles], "pandoc": {title: why}},
# appended (pagefiles.LineLog, synced before the batch's pages are renamed into place) to
# <processed folder>/.engines/<machine>.jsonl. The summary counts the manifest's converted pages by it.
ENGINES_FOLDER = ".engines"
ENGINE_PANDOC = "engine = pandoc"  # the reason recorded when luigi.cfg sent every page to pandoc


def engines_log(folder: Path) -> Path:
    """This machine's log of which engine wrote each page of a processed folder."""
    return folder / ENGINES_FOLDER / f"{paths.machine_name()}.jsonl"


def reason_group(reason: str) -> str:
    """The group a fallback reason is counted in: the reason, less an exception's message."""
    head, _, rest = reason.partition(": ")
    if rest and head == "the fast path failed":
        return f"{head}: {rest.partition(':')[0]}"
    return reason


@dataclass
class EngineCounts:
    """The converted pages of a manifest by the engine that wrote them (read from the engines logs)."""
    fast: int = 0
    pandoc: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # grouped reason -> pages, most first
    examples: dict[str, list[str]] = field(default_factory=dict)  # grouped reason -> a few titles
    unrecorded: int = 0  # converted before engines were recorded (or by another tool)


def engine_counts(folder: Path, converted: Collection[str], examples: int = 3) -> EngineCounts:
    """How the `converted` titles of a processed folder were written: the last entry of each title in
    the folder's engines logs (every machine's), in one pass over them; one listing of .engines/ only."""
    wanted = set(converted)
    written: dict[str, str | None] = {}  # title -> None (fast) or its grouped reason
    log_folder = folder / ENGINES_FOLDER
    try:
        names = sorted(os.listdir(log_folder))
    except FileNotFoundError:
        names = []
    for name in names:
        if not name.endswith(".jsonl"):
            continue
        for entry in pagefiles.read_json_lines(log_folder / name):
            fast, slow = entry.get("fast"), entry.get("pandoc")
            for title in fast if isinstance(fast, list) else ():
                if title in wanted:
                    written[title] = None
            for title, why in (slow.items() if isinstance(slow, dict) else ()):
                if title in wanted:
                    written[title] = reason_group(str(why))
    counts = EngineCounts(unrecorded=len(wanted) - len(written))
    groups: dict[str, int] = {}
    for title, group in written.items():
        if group is None:
            counts.fast += 1
            continue
        counts.pandoc += 1
        groups[group] = groups.get(group, 0) + 1
        titles = counts.examples.setdefault(group, [])
        if len(titles) < examples:
            titles.append(title)
    counts.reasons = dict(sorted(groups.items(), key=lambda item: (-item[1], item[0])))
    return counts


def pages_to_process(folder: Path, titles: list[str]) -> list[str]:
    """The titles without Markdown (nor a failure record) in `folder`, a processed folder."""
    return pagefiles.todo(folder, PROCESSED_SUFFIX, titles)


# Pages are kept per set of conversion options (drop_sections, keep_tables, template_rules): those made
# with the defaults in processed/mediawiki/<host>/, others in <host>~<fingerprint>/, each folder recording
# its options here. Any number of manifests with any options share a wiki; no folder is ever deleted.
OPTIONS_FILE = ".options.json"


def options_record(options) -> dict:
    """The options (a convert.ConvertOptions, or a Manifest) as recorded, with their fingerprint."""
    settings = {"drop_sections": list(options.drop_sections), "keep_tables": bool(options.keep_tables),
                "template_rules": dict(options.template_rules)}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    return {"fingerprint": digest, "options": settings}


def _default_fingerprint() -> str:
    from wikiluigi.sources.manifest import DEFAULT_DROP_SECTIONS
    return options_record(SimpleNamespace(drop_sections=DEFAULT_DROP_SECTIONS, keep_tables=False,
                                          template_rules={}))["fingerprint"]


DEFAULT_FINGERPRINT = _default_fingerprint()


def options_folder(host: str, options) -> Path:
    """The processed folder of wiki `host`'s pages converted with `options` (a ConvertOptions or a
    Manifest): <host>/ for the default options, <host>~<fingerprint> for others. A <host>/ left by an
    earlier version with other options recorded is first renamed to the folder of those options."""
    fingerprint = options_record(options)["fingerprint"]
    _move_legacy_folder(host)
    if fingerprint == DEFAULT_FINGERPRINT:
        return paths.processed_dir(host)
    return paths.processed_dir(host, fingerprint[:paths.OPTIONS_KEY_LENGTH])


def processed_folder(manifest, host: str | None = None) -> Path:
    """THE processed folder of a manifest (a Manifest, or its name): where its pages are converted to and
    read from. `host`: its wiki's folder when the caller knows it (the derived manifest's host)."""
    from wikiluigi.sources import manifest as manifests
    from wikiluigi.sources.source import host_of
    if isinstance(manifest, str):
        manifest = manifests.load(manifest)
    return options_folder(host if host is not None else host_of(manifest), manifest)


def recorded_fingerprint(folder: Path) -> str | None:
    """The fingerprint of the options a processed folder's Markdown was made with: one small file read;
    None when none is recorded or the record is unreadable."""
    try:
        recorded = json.loads((folder / OPTIONS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fingerprint = recorded.get("fingerprint") if isinstance(recorded, dict) else None
    return fingerprint if isinstance(fingerprint, str) and fingerprint else None


def _move_legacy_folder(host: str) -> None:
    """Earlier versions kept one folder per wiki, <host>/, with the options of its last run recorded:
    when those are not the defaults, the folder is renamed (one rename, under a lock) to the folder of its
    options. Pages the target already has stay as they are; the legacy ones fill in the rest."""
    folder = paths.processed_dir(host)
    fingerprint = recorded_fingerprint(folder)
    if fingerprint is None or fingerprint == DEFAULT_FINGERPRINT:
        return
    with _folder_lock(host):
        fingerprint = recorded_fingerprint(folder)
        if fingerprint is None or fingerprint == DEFAULT_FINGERPRINT:
            return  # another process moved it first
        target = paths.processed_dir(host, fingerprint[:paths.OPTIONS_KEY_LENGTH])
        try:
            os.rename(folder, target)  # fails when the target exists and is not empty
            return
        except OSError:
            pass
        _merge_into(folder, target)
        aside = folder.parent / f".legacy-{folder.name}-{fingerprint[:paths.OPTIONS_KEY_LENGTH]}-{os.getpid()}"
        os.rename(folder, aside)  # what the target had already: kept aside, never deleted


def _merge_into(source: Path, target: Path) -> None:
    """Each page and failure record of `source` that `target` lacks, renamed into it."""
    for sub in ("", paths.failure_dir(source).name):
        (target / sub).mkdir(parents=True, exist_ok=True)
        try:
            names = os.listdir(source / sub)
        except FileNotFoundError:
            continue
        present = set(os.listdir(target / sub))
        for name in names:
            if name not in present and (source / sub / name).is_file() and name != OPTIONS_FILE:
                os.rename(source / sub / name, target / sub / name)


@contextmanager
def _folder_lock(host: str):
    root = paths.processed_root()
    root.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(host.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    with open(root / f".options-{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def use_options(host: str, options) -> Path:
    """Before converting with `options`: their folder, made when missing, with its options recorded
    (written atomically, once)."""
    folder = options_folder(host, options)
    if recorded_fingerprint(folder) != options_record(options)["fingerprint"]:
        folder.mkdir(parents=True, exist_ok=True)
        pagefiles.write_json(folder / OPTIONS_FILE, options_record(options))
    return folder


def convert_batches(pages: dict[str, str], engine: str):
    """The pages in batches of PANDOC_BATCH (engine "pandoc"), or as the fast path's batches grow."""
    batch: dict[str, str] = {}
    size = 0
    for title, text in pages.items():
        batch[title] = text
        size += len(text)
        if len(batch) >= PANDOC_BATCH and (engine == "pandoc" or size >= FAST_BATCH_CHARS
                                           or len(batch) >= FAST_BATCH_PAGES):
            yield batch
            batch, size = {}, 0
    if batch:
        yield batch


def process_pages(host: str, titles: list[str], options, budget=None,
                  progress: Callable[[int, int], None] | None = None) -> ProcessReport:
    """Convert each title's raw page that has no Markdown yet, each under `budget` (a convert.Budget).
    A page that cannot be converted, or was not fetched, gets a failure record with the reason; the
    others go on."""
    from wikiluigi.convert.budget import convert_within_budget  # starts pandoc: only when there is work
    from wikiluigi.convert.pandoc import Budget, engine_setting

    stage_dir = use_options(host, options)
    report = ProcessReport(folder=stage_dir)
    todo = pages_to_process(stage_dir, titles)
    pages = {}
    for title in todo:
        try:
            pages[title] = paths.raw_page(host, title).read_text(encoding="utf-8")
        except FileNotFoundError:
            fetch_failures = pagefiles.failures(paths.raw_dir(host), [title])
            reason = fetch_failures[0]["reason"] if fetch_failures else "the raw page is missing: fetch it first"
            report.failed[title] = f"not fetched: {reason}"
        except UnicodeDecodeError as error:
            report.failed[title] = (f"the raw page is not valid UTF-8 (byte {error.start}): "
                                    "delete it to fetch it again")
    engine, done = engine_setting(), 0
    with pagefiles.LineLog(engines_log(stage_dir)) if pages else contextlib.nullcontext() as engines:
        for batch in convert_batches(pages, engine):
            results = convert_within_budget(batch, options, budget or Budget(), engine)
            done += len(batch)
            fast = [title for title, result in results.items() if result.ok and result.engine == "fast"]
            slow = {title: result.fallback or ENGINE_PANDOC for title, result in results.items()
                    if result.ok and result.engine != "fast"}
            if fast or slow:  # recorded before the pages are published: a kill never leaves one unrecorded
                engines.write(json.dumps({"fast": fast, "pandoc": slow}, ensure_ascii=False))
            for title, result in results.items():
                if result.error is not None:
                    report.failed[title] = result.error
                    continue
                pagefiles.write_atomic(paths.processed_file(stage_dir, title), result.markdown)
                pagefiles.clear_failure(stage_dir, title)
                report.converted += 1
            report.fast += len(fast)
            report.pandoc.update(slow)
            if progress:
                progress(done, len(pages))
    for title, reason in report.failed.items():
        pagefiles.record_failure(stage_dir, title, "convert", reason)
    return report
