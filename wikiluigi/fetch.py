"""The fetch stage: a chunk's missing pages, from the API or a dump, into raw/ one file per page."""
import json
from dataclasses import dataclass, field
from itertools import islice
from typing import Callable

from wikiluigi import pagefiles, paths

RAW_SUFFIX = ".mediawiki"
BATCH = 50  # pages written per revisions.jsonl append and per progress report


@dataclass
class FetchReport:
    fetched: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def pages_to_fetch(host: str, titles: list[str]) -> list[str]:
    return pagefiles.todo(paths.raw_dir(host), RAW_SUFFIX, titles)


def fetch_pages(source, host: str, titles: list[str],
                progress: Callable[[int, int], None] | None = None) -> FetchReport:
    """Write each title's wikitext, as the source returns it, to raw/; a page the source does not have
    gets a failure record with the reason instead. Pages already on disk are not fetched again.
    Each page's revision id and timestamp go to raw/.../revisions.jsonl, before the page itself."""
    report = FetchReport()
    stage_dir = paths.raw_dir(host)
    todo = pages_to_fetch(host, titles)
    failed_before = {record["title"] for record in pagefiles.failures(stage_dir, todo)}
    revisions = iter(source.revisions(todo))
    done = 0
    while batch := list(islice(revisions, BATCH)):
        found = [(title, revision) for title, revision in batch if not isinstance(revision, str)]
        if found:
            pagefiles.append_lines(paths.revisions_log(host), [json.dumps(
                {"title": title, "revision_id": revision.revision_id, "timestamp": revision.timestamp},
                ensure_ascii=False) for title, revision in found])
        for title, revision in batch:
            if isinstance(revision, str):
                pagefiles.record_failure(stage_dir, title, "fetch", revision)
                report.failed[title] = revision
                continue
            pagefiles.write_atomic(paths.raw_page(host, title), revision.text)
            if title in failed_before:
                pagefiles.clear_failure(stage_dir, title)
            report.fetched += 1
        done += len(batch)
        if progress:
            progress(done, len(todo))
    return report


def read_revisions(host: str) -> dict[str, dict]:
    """Title -> {"revision_id", "timestamp"} of the last fetch of each page of a wiki."""
    try:
        lines = paths.revisions_log(host).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    latest = {}
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill
        latest[entry["title"]] = entry
    return latest
