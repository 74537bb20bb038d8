"""Refresh: a manifest's pages as the wiki has them now, compared with those on disk by revision id, so that
only what changed is fetched, removed (into an attic) or converted again."""
import dataclasses
import json
import logging
import os
import shutil
import time
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from wikiluigi import pagefiles, paths
from wikiluigi.errors import ApiError, WikiluigiError, quote
from wikiluigi.sources import derived
from wikiluigi.sources.derive import case_variants, resolve_manifest
from wikiluigi.sources.fetch import RAW_SUFFIX, read_revisions
from wikiluigi.sources.manifest import Manifest, fingerprint
from wikiluigi.sources.mediawiki import MediaWiki, Revision, Settings
from wikiluigi.sources.source import DumpSource, dump_source_of, dump_stamp

logger = logging.getLogger("wikiluigi")

ATTIC = "attic"
_STAMP = "%Y-%m-%dT%H-%M-%SZ"
_EXAMPLES = 5


class RefreshError(WikiluigiError):
    """A refresh that stopped before changing anything: a listing that failed, or too many removals."""


@dataclass(frozen=True)
class RefreshSettings:
    """luigi.cfg's [refresh] section as plain values."""
    max_removed: float = 0.1
    attic_days: float = 30.0
    recent_changes_days: float = 30.0

    @classmethod
    def from_config(cls) -> "RefreshSettings":
        from wikiluigi import config
        section = config.refresh()
        return cls(max_removed=section.max_removed, attic_days=section.attic_days,
                   recent_changes_days=section.recent_changes_days)


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


# Reports and the plan of a refresh under way
def report_path(manifest: str, suffix: str = "json") -> Path:
    return paths.out_dir() / "reports" / f"{paths.folder_name(manifest, 'manifest name')}.refresh.{suffix}"


def plan_path(manifest: str) -> Path:
    """What a refresh under way has found and still owes (conversions, removals): a killed one's rerun
    takes it up, so that it ends as an uninterrupted one does."""
    return report_path(manifest, "plan.json")


def last_report(manifest: str) -> dict | None:
    try:
        report = json.loads(report_path(manifest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


# Listing an API wiki
class _ListingSource:
    """The derive walk's source over an uncached API, keeping every page record it sees (with `lastrevid`),
    so that a page listed once needs no second request to resolve it."""

    def __init__(self, wiki: MediaWiki):
        self.wiki = wiki
        self.pages: dict[str, dict] = {}
        self.asking = "the listing"

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
    listed_at = wiki.server_time()
    source = _ListingSource(wiki)
    resolution = resolve_manifest(source, manifest, progress=progress)
    latest = {}
    for title in resolution.titles:
        page = source.pages.get(title)
        if page is None or "lastrevid" not in page:
            raise RefreshError(f"{wiki.api_url}: the listing gave no revision id for {quote(title)}; nothing "
                               f"was changed. Run Refresh again; if it persists, report it.")
        latest[title] = int(page["lastrevid"])
    how = "every page (all_pages)" if manifest.all_pages else "the category walk"
    return Listing(titles=resolution.titles, latest=latest, how=how, listed_at=listed_at,
                   categories=resolution.categories, counts=resolution.counts, warnings=resolution.warnings)


def recent_changes_usable(manifest: Manifest, previous: dict | None, settings: RefreshSettings,
                          now: float | None = None) -> bool:
    """Whether the wiki's recent changes can say what changed since the last listing: an all_pages manifest
    with no categories or single pages to resolve, unchanged since, listed within recent_changes_days."""
    if not (manifest.all_pages and settings.recent_changes_days > 0 and previous):
        return False
    if manifest.include_categories or manifest.exclude_categories or manifest.include_pages or manifest.exclude_pages:
        return False
    if previous.get("manifest_sha256") != fingerprint(manifest.name) or not previous.get("listed_at"):
        return False
    try:
        since = datetime.fromisoformat(str(previous["listed_at"]).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return (now or time.time()) - since < settings.recent_changes_days * 86400


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


# Comparing
@dataclass
class Plan:
    changed: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    fetch: dict[str, int | None] = field(default_factory=dict)   # title -> revision to fetch
    convert: list[str] = field(default_factory=list)              # titles whose Markdown is owed
    requests: int = 0
    attic: str = ""
    started: str = ""


def compare(listing: Listing, old_titles: Iterable[str], on_disk: dict[str, dict], missing_raw: set[str]) -> Plan:
    """What differs between the listing and the pages on disk: by revision id, never by content."""
    plan = Plan()
    old = set(old_titles)
    for title in listing.titles:
        latest = listing.latest.get(title)
        known = (on_disk.get(title) or {}).get("revision_id")
        stale = title in missing_raw or (latest is not None and known != latest)
        if title not in old:
            plan.new.append(title)
        elif stale:
            plan.changed.append(title)
        if stale:
            plan.fetch[title] = latest
    now = set(listing.titles)
    plan.gone = sorted(title for title in old if title not in now)
    plan.convert = sorted(plan.fetch)
    return plan


def merge_pending(plan: Plan, pending: dict | None, now: set[str]) -> Plan:
    """A killed refresh's plan taken up: what it found changed, new or gone still counts, and what it owed
    (conversions) is still owed; the listing made now decides what is in the manifest."""
    if not pending:
        return plan
    changed = set(plan.changed) | {t for t in pending.get("changed", []) if t in now}
    new = set(plan.new) | {t for t in pending.get("new", []) if t in now}
    plan.changed = sorted(changed - new)
    plan.new = sorted(new)
    plan.gone = sorted(set(plan.gone) | {t for t in pending.get("gone", []) if t not in now})
    plan.convert = sorted(set(plan.convert) | {t for t in pending.get("convert", []) if t in now})
    plan.requests += int(pending.get("requests", 0))
    plan.attic = pending.get("attic", "")
    plan.started = pending.get("started", "")
    return plan


def check_removals(manifest: str, gone: list[str], old_count: int, max_removed: float, allow: bool) -> None:
    if allow or not gone or len(gone) <= max_removed * old_count:
        return
    examples = ", ".join(quote(title) for title in gone[:_EXAMPLES]) + (" ..." if len(gone) > _EXAMPLES else "")
    raise RefreshError(
        f"{manifest}: the refresh would remove {len(gone)} of {old_count} pages ({examples}), more than "
        f"[refresh] max_removed ({max_removed:.0%}); nothing was changed. A category blanked or renamed on the "
        f"wiki? Check the wiki, then run Refresh with --allow-removal to remove them (they go to {ATTIC}/).")


# Acting on disk
def shared_titles(name: str, host: str) -> set[str]:
    """Titles other manifests of the same wiki hold: their files stay when this manifest drops them."""
    held: set[str] = set()
    folder = paths.derived_manifest(name).parent
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        if path.stem == name:
            continue
        try:
            other = derived.load(path.stem)
        except (WikiluigiError, OSError, ValueError):
            continue
        if other.host == host:
            held |= other.title_set
    return held


def fetch_changed(source, host: str, wanted: dict[str, int | None], stale_folders: list[Path],
                  progress: Callable[[int, int], None] | None = None) -> dict[str, str]:
    """Each wanted page's latest revision written over its raw file (atomically), its revision logged
    first; its Markdown in every processed folder goes (it is converted again). Returns the failures."""
    failed: dict[str, str] = {}
    stage_dir = paths.raw_dir(host)
    with pagefiles.LineLog(paths.revisions_log(host)) as log:
        for done, (title, revision) in enumerate(source.revisions(list(wanted)), start=1):
            if isinstance(revision, Revision) and not revision.text:
                revision = "the page is empty on the wiki"
            if isinstance(revision, str):
                failed[title] = revision
            else:
                log.write(json.dumps({"title": title, "revision_id": revision.revision_id,
                                      "timestamp": revision.timestamp}, ensure_ascii=False))
                pagefiles.write_atomic(paths.raw_page(host, title), revision.text)
                pagefiles.clear_failure(stage_dir, title)
                for folder in stale_folders:
                    _unlink(paths.failure_record(folder, title))
                    _unlink(folder / f"{paths.title_to_stem(title)}.md")
            if progress:
                progress(done, len(wanted))
    return failed


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


def move_to_attic(host: str, titles: Iterable[str], attic: Path, folders: list[Path]) -> int:
    """Each page's raw file, Markdown (in every processed folder) and failure records renamed into the
    attic, under the same path as in the data directory: copying the attic back undoes it."""
    root = paths.data_dir()
    moved = 0
    raw = paths.raw_dir(host)
    for title in titles:
        stem = paths.title_to_stem(title)
        files = [raw / f"{stem}{RAW_SUFFIX}", paths.failure_record(raw, title)]
        for folder in folders:
            files += [folder / f"{stem}.md", paths.failure_record(folder, title)]
        for path in files:
            target = attic / path.relative_to(root)
            try:
                os.replace(path, target)
            except FileNotFoundError:
                if not path.exists():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
            moved += 1
    return moved


def prune_attic(manifest: str, days: float, now: float | None = None) -> None:
    """Attic folders of a manifest older than `days` go (0 keeps them)."""
    folder = paths.data_dir() / ATTIC / manifest
    if days <= 0 or not folder.is_dir():
        return
    for entry in folder.iterdir():
        try:
            made = datetime.strptime(entry.name, _STAMP).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
        if (now or time.time()) - made > days * 86400:
            shutil.rmtree(entry, ignore_errors=True)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _utc(stamp: float | None = None, form: str = "%Y-%m-%dT%H:%M:%SZ") -> str:
    return datetime.fromtimestamp(stamp or time.time(), timezone.utc).strftime(form)


# The whole refresh
def refresh(manifest: Manifest, host: str, processed_folders: list[Path],
            convert: Callable[[list[str]], dict[str, str]] | None = None, allow_removal: bool = False,
            settings: RefreshSettings | None = None, progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Refresh one manifest: list, compare by revision id, fetch what is new or changed, move what left
    to the attic, write the derived manifest, convert the changed pages (`convert(titles)` -> failures),
    and write the report. A listing that fails deletes nothing. Returns the report."""
    settings = settings or RefreshSettings()
    started = time.monotonic()
    say = progress or (lambda done, total, message: None)
    name = manifest.name
    try:
        old = derived.load(name)
        old_titles = list(old.titles)
    except WikiluigiError:
        old, old_titles = None, []
    on_disk = read_revisions(host)
    missing_raw = set(pagefiles.todo(paths.raw_dir(host), RAW_SUFFIX, old_titles,
                                     failed_count_as_done=False))
    previous = last_report(name)
    pending = _read_json(plan_path(name))
    lister = content = None
    if manifest.api:
        http = Settings.from_config(cache_path=paths.http_cache())
        lister = MediaWiki(manifest.api, dataclasses.replace(http, cache_path=None))  # never from the cache
        content = MediaWiki(manifest.api, http)  # by revision id: cached for good
    try:
        listing, dump_source = _list(manifest, lister, previous, old_titles, on_disk, missing_raw, settings, say)
        now = set(listing.titles)
        missing_raw = set(pagefiles.todo(paths.raw_dir(host), RAW_SUFFIX, listing.titles, failed_count_as_done=False))
        plan = merge_pending(compare(listing, old_titles, on_disk, missing_raw), pending, now)
        check_removals(name, [t for t in plan.gone if t in set(old_titles)], len(old_titles),
                       settings.max_removed, allow_removal)
        earlier_requests = plan.requests  # a killed run's
        plan.requests = earlier_requests + _requests(lister, content)
        plan.started = plan.started or _utc()
        sha = fingerprint(name)
        stamp = dump_stamp(manifest.dump) if manifest.dump else ""
        same_manifest = (old is not None and list(old.titles) == listing.titles and old.manifest_sha256 == sha
                         and old.dump_stamp == stamp)
        failed: dict[str, str] = {}
        converted = 0
        attic = None
        if plan.fetch or plan.gone or plan.convert or not same_manifest:
            plan.attic = plan.attic or str(paths.data_dir() / ATTIC / name / _utc(form=_STAMP))
            attic = Path(plan.attic)
            pagefiles.write_json(plan_path(name), dataclasses.asdict(plan))
            if plan.fetch:
                say(0, len(plan.fetch), f"fetching {len(plan.fetch)} new or changed pages")
                fetch_source = dump_source if dump_source is not None else RevisionsById(content, plan.fetch)
                failed.update(fetch_changed(fetch_source, host, plan.fetch, processed_folders, progress=lambda d, t: say(
                    d, t, f"fetched {d} of {t} new or changed pages")))
            if plan.gone:
                keep = shared_titles(name, host)
                removed = [title for title in plan.gone if title not in keep]
                say(0, 1, f"moving {len(removed)} pages that left the manifest to {attic}")
                move_to_attic(host, removed, attic, processed_folders)
            if not same_manifest:
                _keep_old_derived(name, attic)
                _write_derived(manifest, host, listing, sha, stamp, old)
            owed = [title for title in plan.convert if title in now and title not in failed]
            if owed and convert is not None:
                say(0, len(owed), f"converting {len(owed)} new or changed pages")
                for folder in processed_folders:
                    for title in owed:  # a killed run's rerun: Markdown of an older revision may be left
                        if title in plan.fetch:
                            _unlink(folder / f"{paths.title_to_stem(title)}.md")
                conversion_failures = convert(owed)
                converted = len(owed) - len(conversion_failures)
                failed.update(conversion_failures)
        plan.requests = earlier_requests + _requests(lister, content)
    except ApiError as error:
        raise RefreshError(f"{name}: the refresh stopped, nothing was removed: {error}") from None
    finally:
        for client in (lister, content):
            if client is not None:
                client.close()
    report = {
        "manifest": name, "wiki": manifest.api or str(manifest.dump), "when": _utc(), "how": listing.how,
        "listed_at": listing.listed_at, "manifest_sha256": sha, "pages": len(listing.titles),
        "unchanged": len(listing.titles) - len(plan.changed) - len(plan.new), "changed": len(plan.changed),
        "new": len(plan.new), "gone": len(plan.gone), "requests": plan.requests,
        "seconds": round(time.monotonic() - started, 3), "converted": converted, "failed": failed,
        "attic": str(attic) if attic is not None and plan.gone else None,
        "changed_titles": plan.changed, "new_titles": plan.new, "gone_titles": plan.gone,
    }
    pagefiles.write_json(report_path(name), report)
    pagefiles.write_atomic(report_path(name, "txt"), render(report))
    plan_path(name).unlink(missing_ok=True)
    prune_attic(name, settings.attic_days)
    return report


def _list(manifest, lister, previous, old_titles, on_disk, missing_raw, settings, say):
    if manifest.dump:
        say(0, 1, f"reading {manifest.dump.name}")
        return list_dump(manifest, progress=say)
    listing = None
    source = None
    try:
        if old_titles and recent_changes_usable(manifest, previous, settings):
            say(0, 1, f"asking {manifest.api} for its changes since {previous['listed_at']}")
            source = "list=recentchanges"
            listing = list_recent(lister, manifest, previous["listed_at"], old_titles, on_disk, missing_raw)
        if listing is None:
            say(0, 1, f"listing the pages of {manifest.api}")
            source = "the listing"
            listing = list_api(lister, manifest, progress=say)
    except ApiError as error:
        raise RefreshError(f"{manifest.name}: listing the pages of {manifest.api} failed while asking for "
                           f"{source}; nothing was changed or removed: {error}") from None
    return listing, None


def _requests(*clients) -> int:
    return sum(client.requests_sent for client in clients if client is not None)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _keep_old_derived(name: str, attic: Path) -> None:
    """The derived manifest as it was, copied to the attic beside the pages removed."""
    path = paths.derived_manifest(name)
    for old in (path, derived.titles_file(path), derived.offsets_file(path)):
        if old.exists():
            target = attic / old.relative_to(paths.data_dir())
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(old, target)


def _write_derived(manifest: Manifest, host: str, listing: Listing, sha: str, stamp: str, old) -> None:
    from wikiluigi import config
    source = dump_source_of(manifest) if manifest.dump else {"api": manifest.api}
    result = derived.Derived(
        name=manifest.name, host=host, source=source, titles=tuple(listing.titles),
        chunk_size=derived.chunk_size_for(len(listing.titles), config.fetch().chunk_size),
        counts=listing.counts or {"pages": len(listing.titles)}, manifest_sha256=sha, offsets=listing.offsets,
        dump_stamp=stamp)
    derived.write(paths.derived_manifest(manifest.name), result, listing.categories, listing.warnings)


def render(report: dict) -> str:
    lines = [f"wikiluigi refresh of manifest {report['manifest']!r} ({report['wiki']}), {report['when']}:",
             f"  listed by       {report['how']}",
             f"  pages           {report['pages']}",
             f"  unchanged       {report['unchanged']}",
             f"  changed         {report['changed']}",
             f"  new             {report['new']}",
             f"  gone            {report['gone']}" + (f" (moved to {report['attic']})" if report.get("attic") else ""),
             f"  converted       {report['converted']}",
             f"  failed          {len(report['failed'])}",
             f"  requests        {report['requests']}",
             f"  time taken      {report['seconds']:.1f} s"]
    for title, reason in list(report["failed"].items())[:10]:
        lines.append(f"    {title}: {reason}")
    return "\n".join(lines) + "\n"
