"""The fetch stage: a chunk's missing pages, from the API or a dump, into raw/ one file per page."""
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
    gets a failure record with the reason instead. Pages already on disk are not fetched again."""
    report = FetchReport()
    stage_dir = paths.raw_dir(host)
    todo = pages_to_fetch(host, titles)
    for done, (title, revision) in enumerate(source.revisions(todo), start=1):
        if isinstance(revision, str):
            pagefiles.record_failure(stage_dir, title, "fetch", revision)
            report.failed[title] = revision
        else:
            # Metadata first: a page file never exists without the revision it came from.
            pagefiles.write_json(paths.raw_meta(host, title), {
                "title": title, "revision_id": revision.revision_id, "timestamp": revision.timestamp,
            })
            pagefiles.write_atomic(paths.raw_page(host, title), revision.text)
            pagefiles.clear_failure(stage_dir, title)
            report.fetched += 1
        if progress:
            progress(done, len(todo))
    return report
