"""The convert stage: a chunk's raw pages through pandoc and the filters into processed/, one file each."""
import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Callable

from wikiluigi import pagefiles, paths

PROCESSED_SUFFIX = ".md"
# Pages per pandoc process: big enough that starting pandoc costs little, small enough for progress.
PANDOC_BATCH = 100


@dataclass
class ProcessReport:
    converted: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def pages_to_process(host: str, titles: list[str]) -> list[str]:
    return pagefiles.todo(paths.processed_dir(host), PROCESSED_SUFFIX, titles)


# The conversion options the Markdown of a host's folder was made with (drop_sections, keep_tables,
# template_rules): a manifest whose options changed has its pages converted again.
OPTIONS_FILE = ".options.json"


def options_record(options) -> dict:
    """The options (a convert.ConvertOptions) as recorded, with their fingerprint."""
    settings = {"drop_sections": list(options.drop_sections), "keep_tables": bool(options.keep_tables),
                "template_rules": dict(options.template_rules)}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    return {"fingerprint": digest, "options": settings}


def recorded_fingerprint(host: str) -> str | None:
    """The fingerprint of the options the host's Markdown was made with: one small file read, no page
    touched; None when none is recorded (pages from before options were, which count as made with the
    options of their next run), "" when the record is unreadable."""
    try:
        recorded = json.loads((paths.processed_dir(host) / OPTIONS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return ""
    return str(recorded.get("fingerprint", "")) if isinstance(recorded, dict) else ""


def options_current(host: str, options_of: Callable[[], object]) -> bool:
    """Whether the host's Markdown was made with the options `options_of()` returns (see
    recorded_fingerprint); it is called only when the host records options (it may load a manifest)."""
    recorded = recorded_fingerprint(host)
    return recorded is None or recorded == options_record(options_of())["fingerprint"]


def use_options(host: str, options) -> None:
    """Before converting with `options`: when the host's pages were made with other options, they and
    their failure records are stale and go; the options are recorded. Under a lock, so that the chunks
    of one run starting together clear the folder once."""
    folder = paths.processed_dir(host)
    if (folder / OPTIONS_FILE).exists() and options_current(host, lambda: options):
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock_path = folder.parent / f".{folder.name}.options.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (folder / OPTIONS_FILE).exists():
                if options_current(host, lambda: options):
                    return  # another chunk of the same run got here first
                # Made with other options: stale, the failure records with them.
                stale = folder.parent / f".stale-{folder.name}-{os.getpid()}"
                os.replace(folder, stale)  # one rename: no reader sees half a folder
                shutil.rmtree(stale, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
            pagefiles.write_json(folder / OPTIONS_FILE, options_record(options))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def process_pages(host: str, titles: list[str], options, budget=None,
                  progress: Callable[[int, int], None] | None = None) -> ProcessReport:
    """Convert each title's raw page that has no Markdown yet, each under `budget` (a convert.Budget).
    A page that cannot be converted, or was not fetched, gets a failure record with the reason; the
    others go on."""
    from wikiluigi.convert.budget import convert_within_budget  # starts pandoc: only when there is work
    from wikiluigi.convert.pandoc import Budget

    report = ProcessReport()
    use_options(host, options)
    stage_dir = paths.processed_dir(host)
    todo = pages_to_process(host, titles)
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
    batch_titles = list(pages)
    for start in range(0, len(batch_titles), PANDOC_BATCH):
        batch = {t: pages[t] for t in batch_titles[start:start + PANDOC_BATCH]}
        for title, result in convert_within_budget(batch, options, budget or Budget()).items():
            if result.error is not None:
                report.failed[title] = result.error
                continue
            pagefiles.write_atomic(paths.processed_page(host, title), result.markdown)
            pagefiles.clear_failure(stage_dir, title)
            report.converted += 1
        if progress:
            progress(min(start + PANDOC_BATCH, len(batch_titles)), len(batch_titles))
    for title, reason in report.failed.items():
        pagefiles.record_failure(stage_dir, title, "convert", reason)
    return report
