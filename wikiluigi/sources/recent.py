"""A manifest's pages now, from the wiki's recent changes since its last listing: where listing every page
would cost more requests, only the pages edited, created, deleted or moved since are asked about."""
import time
from datetime import datetime
from typing import Iterator

from wikiluigi.sources.derive import case_variants
from wikiluigi.sources.listing import Listing
from wikiluigi.sources.manifest import Manifest, fingerprint
from wikiluigi.sources.mediawiki import MediaWiki

# A change in these namespaces can change what the category walk finds without an entry for the pages
# it moves in or out (a category page, a template or module that adds categories, a system message):
# a category manifest is then listed again.
TREE_NAMESPACES = frozenset({8, 10, 14, 828})
# Listing every page cost at least this many requests (the clock included): below it, asking for the
# recent changes saves nothing.
MIN_LISTING_REQUESTS = 3


def usable(manifest: Manifest, previous: dict | None, days: float, now: float | None = None) -> bool:
    """Whether the recent changes can say what changed since the last refresh's listing: within `days`
    ([refresh] recent_changes_days) of it, the manifest unchanged since, its listing dearer than a few
    requests; an all_pages manifest with nothing else to resolve, or a category manifest with the state
    its last listing recorded."""
    if not (days > 0 and previous and previous.get("listed_at")):
        return False
    if previous.get("manifest_sha256") != fingerprint(manifest.name):
        return False
    if int(previous.get("listing_requests") or 0) < MIN_LISTING_REQUESTS:
        return False
    if manifest.all_pages:
        if (manifest.include_categories or manifest.exclude_categories or manifest.include_pages
                or manifest.exclude_pages):
            return False
    elif not isinstance(previous.get("state"), dict):
        return False
    try:
        since = datetime.fromisoformat(str(previous["listed_at"]).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return (now or time.time()) - since < days * 86400


def _titles_of(change: dict) -> Iterator[tuple[str, int]]:
    """The pages a recent change names: its own, and a move's target."""
    if "title" in change:
        yield change["title"], int(change.get("ns", -1))
    params = change.get("logparams")
    if isinstance(params, dict) and "target_title" in params:
        yield params["target_title"], int(params.get("target_ns", -1))


def list_recent(wiki: MediaWiki, manifest: Manifest, previous: dict, old_titles: list[str],
                on_disk: dict[str, dict], missing_raw: set[str]) -> Listing | None:
    """The pages now: the old ones, with what list=recentchanges says changed since the last listing asked
    about (50 a request). None when listing every page is needed (a category or template changed) or
    cheaper (too many changes)."""
    listed_at = wiki.server_time()
    state = None if manifest.all_pages else previous["state"]
    namespaces = set(manifest.namespaces)
    touched: dict[str, None] = dict.fromkeys(missing_raw)
    single = set(state["include_pages"]) if state else set()  # single pages may be of any namespace
    budget = max(int(previous.get("listing_requests") or 0) - 2, 1) * 50  # titles a listing's cost would ask
    for change in wiki.recent_changes(str(previous["listed_at"])):
        for title, ns in _titles_of(change):
            if ns in namespaces or title in single:
                touched[title] = None
            elif state is not None and ns in TREE_NAMESPACES:
                return None
        if len(touched) > budget:
            return None
    if state is not None and not touched.keys().isdisjoint(
            {*state["redirect_members"], *manifest.include_pages, *manifest.exclude_pages}):
        return None  # a redirect member or a single page changed: let the walk resolve it
    titles = set(old_titles)
    latest = {title: (on_disk.get(title) or {}).get("revision_id") for title in old_titles}
    walked, walked_out = set(state["walked"]) if state else set(), set(state["excluded_walked"]) if state else set()
    included, excluded = (set(state["include_pages"]), set(state["excluded_pages"])) if state else (set(), set())
    targets = set(state["redirect_targets"]) if state else set()  # in the manifest through a redirect member
    pages = wiki.pages_categories(list(touched)) if state else wiki.pages_info(list(touched), follow_redirects=False)
    for title, page in pages:
        if page is None:
            titles.discard(title)
            continue
        categories = set(page.get("categories", ()))
        if page.get("redirect"):
            if categories & (walked | walked_out):
                return None  # a new redirect among the members: its target joins (or is left out)
            titles.discard(title)
            continue
        if state is None:
            member = int(page.get("ns", -1)) in namespaces
        else:
            member = page["title"] not in excluded and not categories & walked_out and (
                page["title"] in included or (int(page.get("ns", -1)) in namespaces and (
                    bool(categories & walked) or page["title"] in targets)))
        if member:
            titles.add(page["title"])
            latest[page["title"]] = int(page["lastrevid"])
        else:
            titles.discard(page["title"])
    titles = sorted(titles)
    variants = case_variants(titles)
    counts = {"pages": len(titles), "recent_changes": len(touched), "case_variants": sum(map(len, variants))}
    warnings = [f"titles that differ only in case: {', '.join(group)}" for group in variants]
    return Listing(titles=titles, latest={title: latest.get(title) for title in titles},
                   how=f"recent changes since {previous['listed_at']}", listed_at=listed_at, counts=counts,
                   warnings=warnings, categories=list(state["walked"]) if state else [], state=state,
                   listing_requests=int(previous.get("listing_requests") or 0))
