"""What a manifest's pages are now, each with its latest revision id: the category walk or every page of
an API wiki asked without the cache (or only its recent changes), or a dump; and content by revision id."""
import dataclasses
import time
from array import array
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator

from wikiluigi.errors import ApiError, quote
from wikiluigi.sources.derive import case_variants, resolve_manifest
from wikiluigi.sources.manifest import Manifest, fingerprint
from wikiluigi.sources.mediawiki import MediaWiki, Revision
from wikiluigi.sources.source import DumpSource, dump_source_of


@dataclass
class Listing:
    """The manifest's pages as the wiki (or the new dump) has them now, with each one's latest revision."""
    titles: list[str]
    latest: dict[str, int | None]
    how: str
    listed_at: str = ""           # the wiki's clock when the listing began: the next one may start there
    categories: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    offsets: array | None = None  # a multistream dump's stream of each title


# Listing an API wiki
class _ListingSource:
    """The derive walk's source over an uncached API, keeping every page record it sees (with `lastrevid`),
    so that a page listed once needs no second request to resolve it."""

    def __init__(self, wiki: MediaWiki):
        self.wiki = wiki
        self.pages: dict[str, dict] = {}
        self.asking = "the wiki's clock (curtimestamp)"

    def _keep(self, page: dict | None) -> dict | None:
        if page and "title" in page:
            self.pages[page["title"]] = page
        return page

    def category_members(self, category: str) -> Iterator[tuple[str, int]]:
        self.asking = f"the members of {category} (generator=categorymembers)"
        for page in self.wiki.category_members_info(category):
            self._keep(page)
            yield page["title"], int(page.get("ns", 0))

    def all_pages(self, namespace: int) -> Iterator[str]:
        self.asking = f"every page of namespace {namespace} (generator=allpages)"
        for page in self.wiki.all_pages_info(namespace):
            self._keep(page)
            yield page["title"]

    def resolve(self, titles: Iterable[str]) -> dict[str, tuple[str, int] | None]:
        resolved: dict[str, tuple[str, int] | None] = {}
        ask = []
        for title in titles:
            page = self.pages.get(title)
            if page is not None and not page.get("redirect"):
                resolved[title] = (title, int(page.get("ns", 0)))
            else:
                ask.append(title)
        self.asking = f"the state of {len(ask)} pages (prop=info)"
        for title, page in self.wiki.pages_info(ask):
            page = self._keep(page)
            resolved[title] = None if page is None else (page["title"], int(page.get("ns", 0)))
        return resolved


def list_api(wiki: MediaWiki, manifest: Manifest, progress=None) -> Listing:
    """Every page of the manifest as the wiki has it now, through the category walk or all_pages with
    prop=info (the latest revision id comes with each page, 500 pages a request)."""
    source = _ListingSource(wiki)
    try:
        listed_at = wiki.server_time()
        resolution = resolve_manifest(source, manifest, progress=progress)
    except ApiError as error:
        raise ApiError(f"asking for {source.asking}: {error}") from None
    latest = {}
    for title in resolution.titles:
        page = source.pages.get(title)
        if page is None or "lastrevid" not in page:
            raise ApiError(f"{wiki.api_url}: the listing gave no revision id for {quote(title)}. Run Refresh "
                           f"again; if it persists, report it.")
        latest[title] = int(page["lastrevid"])
    how = "every page (all_pages)" if manifest.all_pages else "the category walk"
    return Listing(titles=resolution.titles, latest=latest, how=how, listed_at=listed_at,
                   categories=resolution.categories, counts=resolution.counts, warnings=resolution.warnings)


def recent_changes_usable(manifest: Manifest, previous: dict | None, days: float, now: float | None = None) -> bool:
    """Whether the wiki's recent changes can say what changed since the last listing: an all_pages manifest
    with no categories or single pages to resolve, unchanged since, listed within `days` ([refresh] recent_changes_days)."""
    if not (manifest.all_pages and days > 0 and previous):
        return False
    if manifest.include_categories or manifest.exclude_categories or manifest.include_pages or manifest.exclude_pages:
        return False
    if previous.get("manifest_sha256") != fingerprint(manifest.name) or not previous.get("listed_at"):
        return False
    try:
        since = datetime.fromisoformat(str(previous["listed_at"]).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return (now or time.time()) - since < days * 86400


def list_recent(wiki: MediaWiki, manifest: Manifest, since: str, old_titles: list[str], on_disk: dict[str, dict],
                missing_raw: set[str]) -> Listing | None:
    """The pages now, from the old ones and what list=recentchanges says changed since `since` (edits,
    new pages, deletions, moves with their targets, in every namespace); None when so much changed that
    listing every page is cheaper."""
    listed_at = wiki.server_time()
    namespaces = set(manifest.namespaces)
    touched: dict[str, None] = dict.fromkeys(missing_raw)
    for change in wiki.recent_changes(since):
        if int(change.get("ns", -1)) in namespaces and "title" in change:
            touched[change["title"]] = None
        target = (change.get("logparams") or {})
        if isinstance(target, dict) and "target_title" in target and int(target.get("target_ns", -1)) in namespaces:
            touched[target["target_title"]] = None
        if len(touched) > max(len(old_titles), 1) // 10 + 50:
            return None  # asking 50 titles a request would cost more than listing 500 a request
    titles = set(old_titles)
    latest = {title: (on_disk.get(title) or {}).get("revision_id") for title in old_titles}
    for title, page in wiki.pages_info(list(touched), follow_redirects=False):
        if page is None or page.get("redirect") or int(page.get("ns", -1)) not in namespaces:
            titles.discard(title)
            continue
        titles.add(page["title"])
        latest[page["title"]] = int(page["lastrevid"])
    titles = sorted(titles)
    variants = case_variants(titles)
    counts = {"pages": len(titles), "all_pages_listed": len(titles), "recent_changes": len(touched),
              "case_variants": sum(map(len, variants))}
    warnings = [f"titles that differ only in case: {', '.join(group)}" for group in variants]
    return Listing(titles=titles, latest={title: latest.get(title) for title in titles},
                   how=f"recent changes since {since}", listed_at=listed_at, counts=counts, warnings=warnings)


# Listing a dump
def list_dump(manifest: Manifest, progress=None) -> tuple[Listing, DumpSource]:
    """The manifest's pages in its dump as it is now (a newer dump replaces the old file), with the
    revision id of each."""
    record = dump_source_of(manifest)
    source = DumpSource(Path(record["dump"]), Path(record["index"]) if record.get("index") else None)
    resolution = resolve_manifest(source, manifest, progress=progress)
    latest = {title: (revision.revision_id if isinstance(revision, Revision) else None)
              for title, revision in source.revisions(resolution.titles)}
    titles, offsets = resolution.titles, None
    if record.get("index"):
        located = sorted(zip(source.stream_offsets(titles), titles))
        titles, offsets = [title for _, title in located], array("q", (offset for offset, _ in located))
    return Listing(titles=list(titles), latest=latest, how=f"the dump {Path(record['dump']).name}",
                   categories=resolution.categories, counts=resolution.counts, warnings=resolution.warnings,
                   offsets=offsets), source


class RevisionsById:
    """The fetch source of a refresh: each page's listed revision, asked for by revision id."""

    def __init__(self, wiki: MediaWiki, wanted: dict[str, int | None]):
        self.wiki, self.wanted = wiki, wanted

    def revisions(self, titles: list[str]) -> Iterator[tuple[str, Revision | str]]:
        by_id = {self.wanted[title]: title for title in titles if self.wanted.get(title) is not None}
        for title in titles:
            if self.wanted.get(title) is None:
                yield title, "the wiki gave no revision id for this page"
        for revision_id, revision in self.wiki.revisions_by_id(list(by_id)):
            title = by_id[revision_id]
            yield title, (dataclasses.replace(revision, title=title) if isinstance(revision, Revision) else revision)
