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


def fetch_pages(source, host: str, titles: list[str],
                progress: Callable[[int, int], None] | None = None) -> FetchReport:
    """Write each title's wikitext, as the source returns it, to raw/; a page the source does not have
    gets a failure record with the reason instead. Pages already on disk are not fetched again.
    Each page's revision id and timestamp go to raw/.../revisions.jsonl, before the page itself."""
    report = FetchReport()
    stage_dir = paths.raw_dir(host)
    todo = pages_to_fetch(host, titles)
    failed_before = {record["title"] for record in pagefiles.failures(stage_dir, todo)}
    with pagefiles.LineLog(paths.revisions_log(host)) as revisions_log:
        for done, (title, revision) in enumerate(source.revisions(todo), start=1):
            if isinstance(revision, str):
                pagefiles.record_failure(stage_dir, title, "fetch", revision)
                report.failed[title] = revision
            else:
                revisions_log.write(json.dumps({"title": title, "revision_id": revision.revision_id,
                                                "timestamp": revision.timestamp}, ensure_ascii=False))
                pagefiles.write_atomic(paths.raw_page(host, title), revision.text)
                if title in failed_before:
                    pagefiles.clear_failure(stage_dir, title)
                report.fetched += 1
            if progress:
                progress(done, len(todo))
    return report
