"""The fetch stage: a chunk's missing pages, from the API or a dump, into raw/ one file per page."""
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from wikiluigi import pagefiles, paths
from wikiluigi.sources.mediawiki import MediaWiki, Revision

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
    answers = source.revisions(todo)
    if isinstance(source, MediaWiki) and todo:
        answers = never_older(source, host, answers)
    with pagefiles.LineLog(paths.revisions_log(host)) as revisions_log:
        for done, (title, revision) in enumerate(answers, start=1):
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


# The newest revisions a refresh fetched, kept outside raw/: the HTTP cache's answers by title are those of
# the first scrape, so after a Refresh a fetch by title (raw/ deleted) may be answered with older text.
def newest_dir(host: str) -> Path:
    """One small file per page a Refresh fetched by revision id: that revision and the request that asked
    for it (cached for good), beside the HTTP cache that holds both."""
    return paths.http_cache().parent / "by-revision" / host


def note_newest(host: str, title: str, revision: Revision) -> None:
    """Record a revision fetched by revision id as the newest known of its page (before the page is written:
    a kill in between leaves a record of a revision still to fetch, never a page without its record)."""
    if revision.asked_with and revision.revision_id is not None:
        pagefiles.write_atomic(newest_dir(host) / f"{paths.title_to_stem(title)}.json", json.dumps(
            {"title": title, "revision_id": revision.revision_id, "asked_with": list(revision.asked_with)},
            ensure_ascii=False))


def _newest(folder: Path, title: str) -> dict | None:
    try:
        entry = json.loads((folder / f"{paths.title_to_stem(title)}.json").read_bytes())
    except (OSError, ValueError):
        return None
    if (not isinstance(entry, dict) or entry.get("title") != title  # a cut or case-folded name: another page
            or not isinstance(entry.get("revision_id"), int) or not isinstance(entry.get("asked_with"), list)
            or not all(isinstance(revision_id, int) for revision_id in entry["asked_with"])):
        return None
    return entry


def never_older(wiki: MediaWiki, host: str, answers: Iterable[tuple[str, Revision | str]]
                ) -> Iterator[tuple[str, Revision | str]]:
    """The answers by title, except that a page answered with a revision older than the newest a Refresh
    fetched comes (after the others) as that revision, by the very request the Refresh sent: from the cache,
    one request per such request when the cache lacks it. Where that revision is gone from the wiki, the
    answer by title stands. One file look-up per page, and none when no page was ever refreshed."""
    folder = newest_dir(host)
    if not folder.is_dir():
        yield from answers
        return
    owed: dict[tuple[int, ...], dict[int, list[tuple[str, Revision]]]] = {}
    for title, revision in answers:
        known = _newest(folder, title) if isinstance(revision, Revision) else None
        if known is None or (revision.revision_id or 0) >= known["revision_id"]:
            yield title, revision
        else:
            owed.setdefault(tuple(known["asked_with"]), {}).setdefault(known["revision_id"], []).append(
                (title, revision))
    for asked_with, wanted in owed.items():
        for revision_id, newer in wiki.revisions_by_id(list(asked_with)):
            for title, older in wanted.pop(revision_id, []):
                yield title, dataclasses.replace(newer, title=title) if isinstance(newer, Revision) else older
        for left in wanted.values():  # a request recorded wrong: the answers by title stand
            yield from left


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
