"""Resolve a manifest to its page titles: walk categories (cycle-safe), resolve redirects, apply exclusions."""
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol

from wikiluigi.errors import ManifestError
from wikiluigi.manifest import Manifest

logger = logging.getLogger("wikiluigi")

CATEGORY_NS = 14


class CategorySource(Protocol):
    """What a wiki (API or dump) offers the walk."""

    def category_members(self, category: str) -> Iterator[tuple[str, int]]: ...

    def resolve(self, titles: Iterable[str]) -> dict[str, tuple[str, int] | None]: ...


@dataclass
class Resolution:
    titles: list[str]
    categories: list[str]
    counts: dict
    warnings: list[str] = field(default_factory=list)


def walk(source: CategorySource, roots: Iterable[str], max_depth: int | None, namespaces: Iterable[int],
         skip: set[str] = frozenset(), progress: Callable[[int, int, str], None] | None = None,
         warnings: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Breadth first from the roots: (member titles in the namespaces, categories walked).

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
            progress(len(walked), len(walked) + len(queue), category)
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
    warnings: list[str] = []
    excluded_categories = set(manifest.exclude_categories)
    listed, categories = walk(source, manifest.include_categories, manifest.max_depth, manifest.namespaces,
                              skip=excluded_categories, progress=progress, warnings=warnings)
    # Pages of excluded categories go, with those of their subcategories.
    excluded_members, _ = walk(source, manifest.exclude_categories, manifest.max_depth, manifest.namespaces)
    candidates = list(dict.fromkeys(listed + list(manifest.include_pages)))
    resolved = source.resolve(candidates + [t for t in manifest.exclude_pages if t not in candidates]
                              + [t for t in excluded_members if t not in candidates])
    for title in manifest.include_pages:
        if resolved.get(title) is None:
            warnings.append(f"include_pages: {title!r} does not exist on the wiki; it is left out.")
    excluded = {final[0] for t in list(manifest.exclude_pages) + excluded_members
                if (final := resolved.get(t)) is not None}
    titles: set[str] = set()
    redirects = missing = 0
    duplicates = len(listed) + len(manifest.include_pages) - len(candidates)
    for title in candidates:
        final = resolved.get(title)
        if final is None:
            missing += 1
            continue
        final_title, ns = final
        redirects += final_title != title
        if final_title in titles:
            duplicates += 1
        elif ns in manifest.namespaces or title in manifest.include_pages:
            titles.add(final_title)
    excluded &= titles
    titles -= excluded
    for warning in warnings:
        logger.warning("%s: %s", manifest.name, warning)
    if not titles:
        raise ManifestError(
            f"{manifest.path}: the manifest resolves to no pages (categories walked: {len(categories)}"
            f"{'; ' + ' '.join(warnings) if warnings else ''}). Check include_categories and include_pages."
        )
    counts = {
        "categories_walked": len(categories),
        "members_listed": len(listed),
        "redirects_resolved": redirects,
        "duplicates_removed": duplicates,
        "missing": missing,
        "excluded": len(excluded),
        "pages": len(titles),
    }
    return Resolution(titles=sorted(titles), categories=categories, counts=counts, warnings=warnings)
