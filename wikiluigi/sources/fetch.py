"""The fetch stage: a chunk's missing pages, from the API or a dump, into raw/ one file per page."""
import json
from dataclasses import dataclass, field
from typing import Callable

from wikiluigi import pagefiles, paths

RAW_SUFFIX = ".mediawiki"


@dataclass
class FetchReport:
    fetched: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def pages_to_fetch(host: str, titles: list[str]) -> list[str]:
    return pagefiles.todo(paths.raw_dir(host), RAW_SUFFIX, titles)


def fetch_pages(source, host: str, titles: list[str], progress: Callable[[int, int], None] | None = None,
                retry_failed: bool = False) -> FetchReport:
    """Write each title's wikitext, as the source returns it, to raw/; a page the source does not have
    gets a failure record with the reason instead. Pages already on disk are not fetched again, nor pages
    with a failure record unless `retry_failed`. Each page's revision id and timestamp go to this
    machine's revisions log, before the page itself. A page fetched anew clears its failure records, the
    convert stage's too (that one was about the page missing or older)."""
    report = FetchReport()
    stage_dir = paths.raw_dir(host)
    if retry_failed:
        todo = pagefiles.todo(stage_dir, RAW_SUFFIX, titles, failed_count_as_done=False)
    else:
        todo = pages_to_fetch(host, titles)
    failed_before = {record["title"] for record in pagefiles.failures(stage_dir, todo)}
    # The convert stage's failure records, in each processed folder of the wiki (one per set of options).
    convert_failed = {folder: {record["title"] for record in pagefiles.failures(folder, todo)}
                      for folder in paths.processed_dirs(host)}
    with pagefiles.LineLog(paths.revisions_log(host)) as revisions_log:
        for done, (title, revision) in enumerate(source.revisions(todo), start=1):
            if not isinstance(revision, str) and not revision.text:
                revision = "the page is empty on the wiki"  # an empty file would count as missing (pagefiles.todo)
            if isinstance(revision, str):
                pagefiles.record_failure(stage_dir, title, "fetch", revision)
                report.failed[title] = revision
            else:
                revisions_log.write(json.dumps({"title": title, "revision_id": revision.revision_id,
                                                "timestamp": revision.timestamp}, ensure_ascii=False))
                pagefiles.write_atomic(paths.raw_page(host, title), revision.text)
                if title in failed_before:
                    pagefiles.clear_failure(stage_dir, title)
                for folder, titles_failed in convert_failed.items():
                    if title in titles_failed:
                        pagefiles.clear_failure(folder, title)
                report.fetched += 1
            if progress:
                progress(done, len(todo))
    return report


def read_revisions(host: str) -> dict[str, dict]:
    """title -> {title, revision_id, timestamp} of the page on disk, from every machine's revisions log.
    Within a log the last line of a title wins; across logs the newest revision (a torn line is skipped)."""
    current: dict[str, dict] = {}
    for log in paths.revisions_logs(host):
        for entry in pagefiles.read_json_lines(log):
            title = entry.get("title")
            if not isinstance(title, str):
                continue
            known = current.get(title)
            if known is None or _revision_order(entry) >= _revision_order(known) or known.get("_log") == log:
                current[title] = {**entry, "_log": log}
    return {title: {k: v for k, v in entry.items() if k != "_log"} for title, entry in current.items()}


def _revision_order(entry: dict) -> tuple:
    return (entry.get("revision_id") or 0, entry.get("timestamp") or "")
