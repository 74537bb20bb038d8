"""Resolve a manifest to its page titles: walk categories (cycle-safe), resolve redirects, apply exclusions."""
import gc
import itertools
import logging
import re
import unicodedata
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

from wikiluigi import paths
from wikiluigi.errors import ManifestError, quote
from wikiluigi.sources.manifest import Manifest

logger = logging.getLogger("wikiluigi")

CATEGORY_NS = 14
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LOGGED_WARNINGS = 20
_TITLE_QUOTE = 300  # MediaWiki's titles hold at most 255 bytes: quoted whole, a hostile one cut
_PROGRESS_EVERY = 10_000


class CategorySource(Protocol):
    """What a wiki (API or dump) offers the walk."""

    def category_members(self, category: str) -> Iterator[tuple[str, int]]: ...

    def all_pages(self, namespace: int) -> Iterator[str]: ...

    def resolve(self, titles: Iterable[str]) -> dict[str, tuple[str, int] | None]: ...


@dataclass
class Resolution:
    titles: list[str]
    categories: list[str]
    counts: dict
    warnings: list[str] = field(default_factory=list)
    case_variants: list[list[str]] = field(default_factory=list)


def walk(source: CategorySource, roots: Iterable[str], max_depth: int | None, namespaces: Iterable[int],
         skip: set[str] = frozenset(), progress: Callable[[int, int, str], None] | None = None,
         warnings: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Breadth first from the roots: (member titles in the namespaces, categories walked).
    `progress(done, known, message)` hears of each category.

    A category is walked once however many paths lead to it, so cycles end; `skip` names categories
    not to enter. max_depth 0 takes the roots' own members only.
    """
    namespaces = set(namespaces)
    queue = deque((root, 0) for root in roots if root not in skip)
    seen = {root for root, _ in queue}
    walked: list[str] = []
    members: list[str] = []
    while queue:
        category, depth = queue.popleft()
        walked.append(category)
        if progress:
            known = len(walked) + len(queue)
            progress(len(walked), known, f"walking categories: {len(walked)} of {known} known, now {category}")
        count = 0
        for title, ns in source.category_members(category):
            count += 1
            if ns == CATEGORY_NS and title not in seen and title not in skip and (max_depth is None or depth < max_depth):
                seen.add(title)
                queue.append((title, depth + 1))
            if ns in namespaces:
                members.append(title)
        if count == 0 and warnings is not None:
            warnings.append(f"{category} has no pages or subcategories: check its spelling in the manifest.")
    return members, walked


def resolve_manifest(source: CategorySource, manifest: Manifest,
                     progress: Callable[[int, int, str], None] | None = None) -> Resolution:
    """The manifest's page titles: every page of its namespaces (all_pages), the members of its categories
    and its single pages, redirects resolved, duplicates and exclusions removed. Sets and dicts all
    through: time and memory grow linearly with the wiki, a million titles included."""
    with _cycle_collector_paused():
        return _resolve(source, manifest, progress)


@contextmanager
def _cycle_collector_paused():
    """Python's cycle collector off while millions of long-lived titles, sets and dicts are built (a dump's
    index among them): each of its full passes walks them all, which doubled the time at a million titles.
    Reference counting still frees everything; nothing built here makes cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _resolve(source: CategorySource, manifest: Manifest, progress: Callable[[int, int, str], None] | None
             ) -> Resolution:
    warnings: list[str] = []
    namespaces = set(manifest.namespaces)
    include_pages = set(manifest.include_pages)
    listed, categories = walk(source, manifest.include_categories, manifest.max_depth, manifest.namespaces,
                              skip=set(manifest.exclude_categories), progress=progress, warnings=warnings)
    # Pages of excluded categories go, with those of their subcategories.
    excluded_members, _ = walk(source, manifest.exclude_categories, manifest.max_depth, manifest.namespaces)
    # The titles start as every page of the namespaces (all_pages), and every title in the set is a page as
    # the wiki spells it: neither resolved again nor copied (a million titles are ~100 MB).
    titles: set[str] = all_pages(source, manifest.namespaces, progress) if manifest.all_pages else set()
    listed_everything = len(titles)
    candidates = dict.fromkeys(itertools.chain(listed, manifest.include_pages))
    asked = dict.fromkeys(title for title in itertools.chain(candidates, manifest.exclude_pages, excluded_members)
                          if title not in titles)
    resolved = source.resolve(list(asked))

    def final(title: str) -> tuple[str, int | None] | None:
        return (title, None) if title in titles else resolved.get(title)

    for title in manifest.include_pages:
        if final(title) is None:
            warnings.append(f"include_pages: {quote(title)} does not exist on the wiki; it is left out.")
    redirects = missing = 0
    duplicates = len(listed) + len(manifest.include_pages) - len(candidates)
    for title in candidates:
        found = final(title)
        if found is None:
            missing += 1
            continue
        final_title, ns = found
        redirects += final_title != title
        if final_title in titles:
            duplicates += 1
        elif ns in namespaces or title in include_pages:
            titles.add(final_title)
    excluded = {found[0] for title in itertools.chain(manifest.exclude_pages, excluded_members)
                if (found := final(title)) is not None}
    excluded &= titles
    titles -= excluded
    titles -= _unusable(titles, warnings)
    variants = case_variants(titles)
    warnings += ["titles that differ only in case or Unicode normalisation: "
                 + ", ".join(quote(title, _TITLE_QUOTE) for title in group)
                 + ": they share one file on a case-insensitive file system (macOS, Windows)" for group in variants]
    _log(manifest.name, warnings)
    if not titles:
        raise ManifestError(
            f"{manifest.path}: the manifest resolves to no pages (categories walked: {len(categories)}"
            f"{'; ' + ' '.join(warnings[:_LOGGED_WARNINGS]) if warnings else ''}). Check all_pages, "
            f"include_categories and include_pages."
        )
    counts = {
        "categories_walked": len(categories),
        "members_listed": len(listed),
        "all_pages_listed": listed_everything,
        "redirects_resolved": redirects,
        "duplicates_removed": duplicates,
        "missing": missing,
        "excluded": len(excluded),
        "case_variants": sum(map(len, variants)),
        "pages": len(titles),
    }
    return Resolution(titles=sorted(titles), categories=categories, counts=counts, warnings=warnings,
                      case_variants=variants)


def _unusable(titles: set[str], warnings: list[str]) -> set[str]:
    """Titles no wiki can have (a line break, NUL: a damaged dump), each named in a warning."""
    unusable = {title for title in titles if _CONTROL.search(title)}
    warnings += [f"{quote(title, _TITLE_QUOTE)} holds a control character (a line break, NUL): no wiki has such "
                 f"a title, so the source is damaged; it is left out." for title in sorted(unusable)]
    return unusable


def _log(name: str, warnings: list[str]) -> None:
    for warning in warnings[:_LOGGED_WARNINGS]:
        logger.warning("%s: %s", name, warning)
    if len(warnings) > _LOGGED_WARNINGS:
        logger.warning("%s: ... and %d more warnings (the derived manifest lists them all)", name,
                       len(warnings) - _LOGGED_WARNINGS)


def all_pages(source: CategorySource, namespaces: Iterable[int],
              progress: Callable[[int, int, str], None] | None = None) -> set[str]:
    """Every page title of the namespaces, redirects left out."""
    found: set[str] = set()
    for namespace in namespaces:
        for title in source.all_pages(namespace):
            found.add(title)
            if progress and len(found) % _PROGRESS_EVERY == 0:
                progress(0, 1, f"listing every page: {len(found)} titles so far, namespace {namespace}")
    return found


def case_variants(titles: Iterable[str]) -> list[list[str]]:
    """Groups of titles that differ only in case or Unicode normalisation ('US' and 'Us'): different pages
    on the wiki, but one file where the file system folds case (macOS, Windows) or normalisation."""
    # Two passes, so that memory holds a hash per title and keys only for the few that may clash.
    seen: set[int] = set()
    clashing: set[int] = set()
    for title in titles:
        key = hash(_fold(title))
        if key in seen:
            clashing.add(key)
        seen.add(key)
    del seen
    groups: dict[str, list[str]] = {}
    for title in titles:
        if hash(key := _fold(title)) in clashing:
            groups.setdefault(key, []).append(title)
    return sorted(sorted(group) for group in groups.values() if len(group) > 1)


def _fold(title: str) -> str:
    return title.lower() if title.isascii() else unicodedata.normalize("NFC", title).casefold()


def refuse_shared_files(variants: list[list[str]], folder: Path, manifest: Manifest) -> None:
    """A ManifestError when `folder` is on a file system that folds case and titles would share a file."""
    variants = [group for group in variants  # those a reversible escape does not already keep apart
                if len({paths.title_to_stem(title).casefold() for title in group}) < len(group)]
    if not variants or paths.case_sensitive(folder):
        return
    shown = "; ".join(" / ".join(quote(title) for title in group) for group in variants[:5])
    raise ManifestError(
        f"{manifest.path}: {sum(map(len, variants))} titles differ only in case or Unicode normalisation "
        f"({shown}{' ...' if len(variants) > 5 else ''}), and {folder} is on a case-insensitive file "
        f"system, where each group would share one file. Use a data directory on a case-sensitive file "
        f"system, or list all but one title of each group in exclude_pages."
    )
