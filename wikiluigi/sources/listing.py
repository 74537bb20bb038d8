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
    state: dict | None = None     # what a category manifest's next refresh needs to follow recent changes
    listing_requests: int = 0     # what listing every page cost: recent changes are asked where cheaper


# Listing an API wiki
class _ListingSource:
    """The derive walk's source over an uncached API, keeping every page record it sees (with `lastrevid`),
    so that a page listed once needs no second request to resolve it."""

    def __init__(self, wiki: MediaWiki, exclude_roots: Iterable[str] = ()):
        self.wiki = wiki
        self.pages: dict[str, dict] = {}
        self.finals: dict[str, str | None] = {}  # title asked to resolve -> the page it leads to
        # Members of each category of the manifest's walk, and of the walk of its exclusions (which starts
        # at an excluded root: the manifest's own walk never enters one).
        self.members: dict[str, dict[str, None]] = {}
        self.excluded_members: dict[str, dict[str, None]] = {}
        self.exclude_roots = set(exclude_roots)
        self.excluding = False
        self.asking = "the wiki's clock (curtimestamp)"

    def _keep(self, page: dict | None) -> dict | None:
        if page and "title" in page:
            self.pages[page["title"]] = page
        return page

    def category_members(self, category: str) -> Iterator[tuple[str, int]]:
        self.asking = f"the members of {category} (generator=categorymembers)"
        self.excluding = self.excluding or category in self.exclude_roots
        members = (self.excluded_members if self.excluding else self.members).setdefault(category, {})
        for page in self.wiki.category_members_info(category):
            self._keep(page)
            members[page["title"]] = None
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
            self.finals[title] = None if page is None else page["title"]
        return resolved

    def final(self, title: str) -> str | None:
        page = self.pages.get(title)
        return title if page is not None and not page.get("redirect") else self.finals.get(title)

    def state(self, manifest: Manifest, walked: list[str]) -> dict:
        """What following the recent changes of a category manifest needs: the categories walked (and
        those of its exclusions), the redirects among the members (a change to one means listing again),
        and where the manifest's single pages lead."""
        redirects = {title for members in (*self.members.values(), *self.excluded_members.values())
                     for title in members if (self.pages.get(title) or {}).get("redirect")}
        included_redirects = {t for members in self.members.values() for t in members if t in redirects}
        excluded_redirects = redirects - included_redirects
        return {
            "walked": sorted(walked),
            "excluded_walked": sorted(self.excluded_members),
            "redirect_members": sorted(redirects),
            "redirect_targets": sorted({f for t in included_redirects if (f := self.final(t))}),
            "include_pages": sorted({f for t in manifest.include_pages if (f := self.final(t))}),
            "excluded_pages": sorted({f for t in (*manifest.exclude_pages, *excluded_redirects)
                                      if (f := self.final(t))}),
        }


def list_api(wiki: MediaWiki, manifest: Manifest, progress=None) -> Listing:
    """Every page of the manifest as the wiki has it now, through the category walk or all_pages with
    prop=info (the latest revision id comes with each page, 500 pages a request)."""
    source = _ListingSource(wiki, manifest.exclude_categories)
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
    state = None if manifest.all_pages else source.state(manifest, resolution.categories)
    return Listing(titles=resolution.titles, latest=latest, how=how, listed_at=listed_at,
                   categories=resolution.categories, counts=resolution.counts, warnings=resolution.warnings,
                   state=state, listing_requests=wiki.requests_sent)


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
