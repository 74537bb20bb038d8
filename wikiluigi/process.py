"""The convert stage: a chunk's raw pages through pandoc and the filters into processed/, one file each."""
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


def process_pages(host: str, titles: list[str], options, timeout: float | None = None,
                  progress: Callable[[int, int], None] | None = None) -> ProcessReport:
    """Convert each title's raw page that has no Markdown yet. A page that cannot be converted, or was
    not fetched, gets a failure record with the reason; the others go on."""
    from wikiluigi.convert import convert_pages  # starts pandoc: only when there is work

    report = ProcessReport()
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
    batch_titles = list(pages)
    for start in range(0, len(batch_titles), PANDOC_BATCH):
        batch = {t: pages[t] for t in batch_titles[start:start + PANDOC_BATCH]}
        for title, result in convert_pages(batch, options, timeout=timeout).items():
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
