"""Refresh: a manifest's pages as the wiki has them now, compared with those on disk by revision id, so that
only what changed is fetched, removed (into an attic) or converted again."""
import dataclasses
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from wikiluigi import pagefiles, paths
from wikiluigi.errors import ApiError, WikiluigiError, quote
from wikiluigi.sources import attic as attic_files, derived, recent
from wikiluigi.sources.fetch import RAW_SUFFIX, note_newest, read_revisions
from wikiluigi.sources.listing import Listing, RevisionsById, list_api, list_dump
from wikiluigi.sources.manifest import Manifest, fingerprint
from wikiluigi.sources.mediawiki import MediaWiki, Revision, Settings
from wikiluigi.sources.source import dump_source_of, dump_stamp

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
    allow_removal: bool = False  # a killed run that was allowed to remove: its rerun finishes the removals


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
    plan.allow_removal = bool(pending.get("allow_removal"))
    return plan


def check_removals(manifest: str, gone: list[str], old_count: int, max_removed: float, allow: bool) -> None:
    if allow or not gone or len(gone) <= max_removed * old_count:
        return
    examples = ", ".join(quote(title) for title in gone[:_EXAMPLES]) + (" ..." if len(gone) > _EXAMPLES else "")
    raise RefreshError(
        f"{manifest}: the refresh would remove {len(gone)} of {old_count} pages ({examples}), more than "
        f"[refresh] max_removed ({max_removed:.0%}); nothing was changed. A category blanked or renamed on the "
        f"wiki? Check the wiki, then run Refresh with --allow-removal to remove them (they go to "
        f"{attic_files.ATTIC}/).")


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
    first, and, when fetched by revision id, noted outside raw/ as the newest (fetch.note_newest); its
    Markdown in every processed folder goes (it is converted again). Returns the failures."""
    failed: dict[str, str] = {}
    stage_dir = paths.raw_dir(host)
    with pagefiles.LineLog(paths.revisions_log(host)) as log:
        for done, (title, revision) in enumerate(source.revisions(list(wanted)), start=1):
            if isinstance(revision, Revision) and not revision.text:
                revision = "the page is empty on the wiki"
            if isinstance(revision, str):
                failed[title] = revision
            else:
                note_newest(host, title, revision)  # a refetch by title (raw/ deleted) then asks for this one
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


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _utc(stamp: float | None = None, form: str = "%Y-%m-%dT%H:%M:%SZ") -> str:
    return datetime.fromtimestamp(stamp or time.time(), timezone.utc).strftime(form)


# The whole refresh
def refresh(manifest: Manifest, host: str, processed_folders: list[Path],
            convert: Callable[[list[str]], dict[str, str] | None] | None = None, allow_removal: bool = False,
            settings: RefreshSettings | None = None, progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Refresh one manifest: list, compare by revision id, fetch what is new or changed, move what left
    to the attic, write the derived manifest, convert the changed pages (`convert(titles)` -> failures, or
    None when it converts nothing), and write the report. A listing that fails deletes nothing. Returns the report."""
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
        old_set = set(old_titles)
        plan.allow_removal = plan.allow_removal or allow_removal
        check_removals(name, [title for title in plan.gone if title in old_set], len(old_titles),
                       settings.max_removed, plan.allow_removal)
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
            plan.attic = plan.attic or str(attic_files.folder(name))
            attic = Path(plan.attic)
            pagefiles.write_json(plan_path(name), dataclasses.asdict(plan))
            if plan.fetch:
                say(0, len(plan.fetch), f"fetching {len(plan.fetch)} new or changed pages")
                fetch_source = dump_source if dump_source is not None else RevisionsById(content, plan.fetch)
                failed.update(fetch_changed(fetch_source, host, plan.fetch, processed_folders, progress=lambda d, t:
                                            say(d, t, f"fetched {d} of {t} new or changed pages")))
            if plan.gone:
                keep = shared_titles(name, host)
                removed = [title for title in plan.gone if title not in keep]
                say(0, 1, f"moving {len(removed)} pages that left the manifest to {attic}")
                attic_files.move_pages(host, removed, attic, processed_folders)
            if not same_manifest:
                attic_files.keep_derived(name, attic)
                _write_derived(manifest, host, listing, sha, stamp, old)
            owed = [title for title in plan.convert if title in now and title not in failed]
            if owed and convert is not None:
                say(0, len(owed), f"converting {len(owed)} new or changed pages")
                for folder in processed_folders:
                    for title in owed:  # a killed run's rerun: Markdown of an older revision may be left
                        _unlink(folder / f"{paths.title_to_stem(title)}.md")
                conversion_failures = convert(owed)
                if conversion_failures is not None:  # None: the manifest was never converted
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
        "listing_requests": listing.listing_requests, "state": listing.state,
    }
    pagefiles.write_json(report_path(name), report)
    pagefiles.write_atomic(report_path(name, "txt"), render(report))
    plan_path(name).unlink(missing_ok=True)
    attic_files.prune(name, settings.attic_days)
    return report


def _list(manifest, lister, previous, old_titles, on_disk, missing_raw, settings, say):
    if manifest.dump:
        say(0, 1, f"reading {manifest.dump.name}")
        return list_dump(manifest, progress=say)
    listing = None
    try:
        if old_titles and recent.usable(manifest, previous, settings.recent_changes_days):
            say(0, 1, f"asking {manifest.api} for its changes since {previous['listed_at']}")
            try:
                listing = recent.list_recent(lister, manifest, previous, old_titles, on_disk, missing_raw)
            except ApiError as error:
                raise ApiError(f"asking for its recent changes (list=recentchanges): {error}") from None
        if listing is None:
            say(0, 1, f"listing the pages of {manifest.api}")
            listing = list_api(lister, manifest, progress=say)
    except ApiError as error:
        raise RefreshError(f"{manifest.name}: listing the pages of {manifest.api} failed, so nothing was changed "
                           f"or removed; {error}") from None
    return listing, None


def _requests(*clients) -> int:
    return sum(client.requests_sent for client in clients if client is not None)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_derived(manifest: Manifest, host: str, listing: Listing, sha: str, stamp: str, old) -> None:
    from wikiluigi import config
    source = dump_source_of(manifest) if manifest.dump else {"api": manifest.api}
    counts = listing.counts or {"pages": len(listing.titles)}
    if old is not None and "recent_changes" in counts:  # the walk's own counts are those of the last walk
        counts = {**old.counts, **counts}
    result = derived.Derived(
        name=manifest.name, host=host, source=source, titles=tuple(listing.titles),
        chunk_size=derived.chunk_size_for(len(listing.titles), config.fetch().chunk_size),
        counts=counts, manifest_sha256=sha, offsets=listing.offsets,
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
