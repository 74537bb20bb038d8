"""Where a manifest's pages come from, a live API or an XML dump, behind one interface for derive and fetch."""
import multiprocessing
import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping
from urllib.parse import urlsplit

from wikiluigi import durable, pagefiles, paths
from wikiluigi.errors import DumpError
from wikiluigi.sources import dump
from wikiluigi.sources.mediawiki import MediaWiki, Revision, Settings

MAX_REDIRECT_HOPS = 10


@contextmanager
def open_source(source: dict):
    """`source` is a manifest's {"api": url} or {"dump": path}, as the derived manifest records it."""
    if "api" in source:
        wiki = MediaWiki(source["api"], Settings.from_config(cache_path=paths.http_cache()))
        try:
            yield wiki
        finally:
            wiki.close()
    else:
        yield DumpSource(Path(source["dump"]), Path(source["index"]) if source.get("index") else None)


@contextmanager
def open_chunk_source(meta, chunk: int):
    """Where one chunk of a derived manifest reads its pages: the API; its own streams of a multistream
    dump (offsets from the derived manifest); or its own file of a plain dump split once (dumpsplit)."""
    if "api" in meta.source:
        with open_source(meta.source) as source:
            yield source
    elif meta.offsets is not None:
        yield MultistreamChunk(Path(meta.source["dump"]), dict(zip(meta.chunk(chunk), meta.chunk_offsets(chunk))))
    else:
        from wikiluigi.sources import dumpsplit
        if not dumpsplit.is_split(meta, chunk):  # else every page of the chunk would look absent from the dump
            raise DumpError(f"{meta.name}: the dump {meta.source['dump']} is not split for this derived manifest "
                            f"(chunk {chunk}'s file is not the one {dumpsplit.folder(meta.name) / 'split.json'} "
                            f"records): run Scrape, or SplitDump --manifest {meta.name}, which cuts it again.")
        yield dumpsplit.SplitChunk(dumpsplit.chunk_file(meta.name, chunk), Path(meta.source["dump"]).name)


def full_source_of(manifest) -> dict:
    """A manifest's source with what a dump needs to be read fast (its multistream index)."""
    if not manifest.dump:
        return {"api": manifest.api}
    return dump_source_of(manifest)


def dump_source_of(manifest) -> dict:
    """What the derived manifest records of a dump: its path, and its index when it is a multistream dump."""
    index = dump.multistream_index(manifest.dump)
    return {"dump": str(manifest.dump), **({"index": str(index)} if index else {})}


def recorded_source_current(recorded: dict, manifest) -> bool:
    """Whether the source a derived manifest recorded is how the manifest's source reads now: the same api
    or dump, the dump unchanged, and its multistream index still there or still absent (an index that
    appears or goes changes how every chunk reads its pages: the manifest is derived again)."""
    if not manifest.dump:
        return recorded.get("api") == manifest.api
    return "dump" in recorded and recorded.get("index") == dump_source_of(manifest).get("index")


def forget_dump_misses(host: str, dump_path: str) -> int:
    """Clear the fetch failures "the page is not in <dump>": after the way the dump is read changed (its
    multistream index appeared or went), they may say more about the old way than about the dump, and
    each page is looked up again. Returns how many were cleared."""
    reason = f"the page is not in {Path(dump_path).name}"
    stage_dir = paths.raw_dir(host)
    stale = [record["title"] for record in pagefiles.failures(stage_dir)
             if record.get("reason") == reason and isinstance(record.get("title"), str)]
    with durable.batch():
        for title in stale:
            pagefiles.clear_failure(stage_dir, title)
    return len(stale)


def reads_a_plain_dump(recorded: dict) -> bool:
    """Whether a derived manifest's chunks read a dump that can only be read from its start (split once)."""
    return "dump" in recorded and not recorded.get("index")


def dump_stamp(path: Path) -> str:
    """Size and modification time of a dump: derived offsets and split chunks hold while it is unchanged."""
    try:
        stat = Path(path).stat()
    except OSError:
        return ""
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def canonical_title(title: str, prefixes: Mapping[str, str] | None = None, capitalize: bool = True) -> str:
    """MediaWiki's spelling of a title: underscores are spaces, runs of spaces one, no fragment, first
    letter upper case (unless the wiki is case-sensitive), after the namespace prefix when the part
    before ':' is one of `prefixes` (lower-case name -> the site's name)."""
    title = " ".join(title.replace("_", " ").split("#", 1)[0].split())
    first = _upper_first if capitalize else str
    prefix, colon, rest = title.partition(":")
    if colon and prefixes and prefix.strip().lower() in prefixes:
        return f"{prefixes[prefix.strip().lower()]}:{first(rest.strip())}"
    return first(title)


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass
class _DumpIndex:
    namespace_of: dict[str, int]               # every title in the dump -> its namespace
    redirects: dict[str, str]                   # redirect title -> target title
    members: dict[str, list[tuple[str, int]]]   # category name without prefix -> (title, namespace)
    prefixes: dict[str, str]                    # lower-case namespace name or alias -> the site's name
    capitalize: bool

    def category_key(self, category: str) -> str:
        """A category's name without its namespace prefix, which dumps may localise ('Kategorie:X')."""
        return canonical_title(category.split(":", 1)[-1], capitalize=self.capitalize)


class DumpSource:
    """An XML export read like an API: categories come from the pages' own category links. With the
    `index` of a multistream dump, a page is read from its own stream instead of from the start."""

    def __init__(self, path: Path, index: Path | None = None):
        self.path = path
        self.index = index
        self._index: _DumpIndex | None = None
        self.spool = None  # a dumpsplit.Spool: the pages of the pass over a plain dump are handed to it

    @property
    def host(self) -> str:
        """The folder of the dump's pages: the host of its <base>, else its <dbname>, else the file's name.
        A dump anyone may have written can say '../..' there: that is an error, not a folder elsewhere."""
        site = dump.read_siteinfo(self.path)
        origin = "<siteinfo> <base>'s host" if urlsplit(site.base_url).netloc else "<siteinfo> <dbname>"
        if not site.host:
            origin = "file name"
        return paths.folder_name(site.host or self.path.name.split(".")[0], f"{self.path}: the dump's {origin}",
                                 advice="Name the folder with the manifest's 'host' key.")

    def _build_index(self) -> _DumpIndex:
        """One streaming pass: namespaces, redirects and category members of every page."""
        if self._index is None:
            site = dump.read_siteinfo(self.path)
            prefixes = {name.lower(): name for name in site.namespaces.values() if name}
            prefixes.update({alias.lower(): site.namespaces.get(key, alias)
                             for alias, key in site.namespace_aliases.items()})
            prefixes.setdefault("category", site.namespaces.get(14, "Category"))
            index = _DumpIndex({}, {}, defaultdict(list), prefixes, capitalize=site.case != "case-sensitive")
            for title, ns, redirect, categories in self._summaries(site.category_names, prefixes, index.capitalize):
                index.namespace_of[title] = ns
                if redirect:
                    index.redirects[title] = redirect
                for category in categories:
                    index.members[category].append((title, ns))
            self._index = index
        return self._index

    def _summaries(self, category_names, prefixes, capitalize) -> Iterator[tuple]:
        """(title, namespace, redirect target, category keys) of every page, in dump order. A multistream
        dump's streams are read by one process per core, each its own run of streams (from the index)."""
        processes = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if self.index is None or processes < 2:
            yield from _iter_summaries(self.path, None, category_names, prefixes, capitalize, self.spool)
            return
        offsets = sorted({offset for offset, _, _ in dump.iter_index(self.index)})
        parts = min(len(offsets), processes * 4)  # a few parts a process: one slow part holds up no one
        bounds = [offsets[len(offsets) * i // parts] for i in range(parts)] + [offsets[-1] + 1]
        ranges = [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i] < bounds[i + 1]]
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
            for part in pool.map(_summarise, *zip(*[(self.path, streams, category_names, prefixes, capitalize)
                                                    for streams in ranges])):
                yield from part

    def category_members(self, category: str) -> Iterator[tuple[str, int]]:
        index = self._build_index()
        yield from index.members.get(index.category_key(category), [])

    def all_pages(self, namespace: int) -> Iterator[str]:
        """Every page title of one namespace, redirects left out, from the same one pass over the dump
        as the categories (no page is read twice)."""
        index = self._build_index()
        for title, ns in index.namespace_of.items():
            if ns == namespace and title not in index.redirects:
                yield title

    def resolve(self, titles: Iterable[str]) -> dict[str, tuple[str, int] | None]:
        index = self._build_index()
        resolved = {}
        for title in titles:
            final = canonical_title(title, index.prefixes, index.capitalize)
            for _ in range(MAX_REDIRECT_HOPS):
                if final not in index.redirects:
                    break
                final = index.redirects[final]
            exists = final in index.namespace_of and final not in index.redirects
            resolved[title] = (final, index.namespace_of[final]) if exists else None
        return resolved

    def stream_offsets(self, titles: Iterable[str]) -> list[int]:
        """The stream of each title in a multistream dump, from one pass over its index (-1: not in it)."""
        wanted = dict.fromkeys(titles, -1)
        for offset, _, title in dump.iter_index(self.index):
            if title in wanted:
                wanted[title] = offset
        return list(wanted.values())

    def revisions(self, titles: list[str]) -> Iterator[tuple[str, Revision | str]]:
        if self.index is not None:
            yield from MultistreamChunk(self.path, dict(zip(titles, self.stream_offsets(titles)))).revisions(titles)
            return
        found = {page.title: page for page in dump.iter_pages(self.path, titles=set(titles))}
        yield from dump.found_or_missing(titles, found, self.path.name)


def _iter_summaries(path: Path, streams: tuple[int, int] | None, category_names, prefixes, capitalize,
                    spool=None) -> Iterator[tuple]:
    """What the category walk needs of each page of a dump (or of a run of its streams); each page also
    handed to `spool` (its `add`), if given."""
    for page in dump.iter_pages(path, streams=streams):
        if spool is not None:
            spool.add(page)
        redirect = canonical_title(page.redirect_target, prefixes, capitalize) if page.redirect_target else None
        categories = [canonical_title(category.split(":", 1)[-1], capitalize=capitalize)
                      for category in dump.category_links(page.text, category_names, capitalize=capitalize)]
        yield page.title, page.ns, redirect, categories


def _summarise(*args) -> list[tuple]:
    return list(_iter_summaries(*args))


class MultistreamChunk:
    """Pages of a multistream dump whose streams are known: each stream needed is read once, nothing else."""

    def __init__(self, path: Path, offsets: Mapping[str, int]):
        self.path = path
        self.offsets = offsets

    def revisions(self, titles: list[str]) -> Iterator[tuple[str, Revision | str]]:
        streams: dict[int, set[str]] = defaultdict(set)
        for title in titles:
            offset = self.offsets.get(title, -1)
            if offset >= 0:
                streams[offset].add(title)
        found = {}
        for offset in sorted(streams):
            found.update((page.title, page) for page in dump.iter_pages(self.path, streams[offset],
                                                                          streams=(offset, offset + 1)))
        yield from dump.found_or_missing(titles, found, self.path.name)


def host_of(manifest) -> str:
    """The folder name of a manifest's wiki: its `host` key, the api's host, or the dump's site."""
    return manifest.host or DumpSource(manifest.dump).host
