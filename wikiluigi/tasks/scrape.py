"""The fetch stage as Luigi tasks: DeriveManifest, FetchPages (a chunk), FetchPage (one) and Scrape (all)."""
import contextlib
import re
from array import array
from pathlib import Path

import luigi

from wikiluigi import durable, pagefiles, paths
from wikiluigi.config import fetch as fetch_config
from wikiluigi.convert import summary
from wikiluigi.errors import WikiluigiError
from wikiluigi.sources import derived, dumpsplit, wikifolder
from wikiluigi.sources.derive import refuse_shared_files, resolve_manifest
from wikiluigi.sources.dump import is_compressed, multistream_index
from wikiluigi.sources.fetch import fetch_pages, pages_to_fetch
from wikiluigi.sources.manifest import fingerprint, load as load_manifest, source_of
from wikiluigi.sources.source import (dump_stamp, forget_dump_misses, full_source_of, host_of, open_chunk_source,
                                      open_source,
                                      reads_a_plain_dump as plain_dump_recorded, recorded_source_current)
from wikiluigi.tasks.base import ManifestTask


def api_resource(name: str) -> dict:
    """One Luigi resource per wiki host, so `[resources] wiki_api_<host>=N` caps parallel requests to it.
    A resource missing from [resources] counts as 1: serial requests, polite by default."""
    try:
        manifest = load_manifest(name)
    except WikiluigiError:
        return {}  # the task itself then fails with the manifest's error, not the scheduling
    if not manifest.api:
        return {}
    return {"wiki_api_" + re.sub(r"[^A-Za-z0-9]", "_", host_of(manifest)): 1}


class UsesTheApi:
    """Mixed into the tasks that send requests to the wiki: they hold its API resource while they run."""

    @property
    def resources(self):
        return api_resource(self.manifest)


class DeriveManifest(UsesTheApi, ManifestTask):
    """Walk the manifest's categories and write every page title it resolves to."""

    def output(self):
        return luigi.LocalTarget(paths.derived_manifest(self.manifest))

    def complete(self):
        """Done while the derived manifest exists and comes from the manifest (and dump) as they are now."""
        if not self.output().exists():
            return False
        try:
            meta = derived.load(self.manifest)
            if meta.manifest_sha256 != fingerprint(self.manifest):
                return False
            if not recorded_source_current(meta.source, self.load_manifest()):
                return False  # a multistream index appeared or went: chunks would read the dump wrongly
            return "dump" not in meta.source or meta.dump_stamp == dump_stamp(Path(meta.source["dump"]))
        except WikiluigiError:
            return False  # run() then says what is wrong

    def run(self):
        manifest = self.load_manifest()
        source_record = full_source_of(manifest)
        with open_source(source_record) as source:
            with self._spool(manifest, source_record) as spool:
                if spool is not None:
                    source.spool = spool
                resolution = resolve_manifest(source, manifest, progress=self.report)
            titles, offsets = resolution.titles, None
            if source_record.get("index"):
                self.report(0, 1, f"looking up {len(titles)} pages in {source.index.name}")
                # Chunks in the dump's order, not the alphabet's: each stream is then read by one chunk.
                located = sorted(zip(source.stream_offsets(titles), titles))
                titles, offsets = [title for _, title in located], array("q", (offset for offset, _ in located))
        refuse_shared_files(resolution.case_variants, paths.data_dir(), manifest)
        wikifolder.claim(host_of(manifest), source_of(manifest), manifest.path)  # one wiki per folder
        result = derived.Derived(
            name=self.manifest, host=host_of(manifest), source=source_record,
            titles=tuple(titles), counts=resolution.counts,
            chunk_size=derived.chunk_size_for(len(resolution.titles), fetch_config().chunk_size),
            manifest_sha256=fingerprint(self.manifest), offsets=offsets,
            dump_stamp=dump_stamp(manifest.dump) if manifest.dump else "",
        )
        previous = self.recorded_source()
        derived.write(paths.derived_manifest(self.manifest), result, resolution.categories, resolution.warnings)
        if previous and "dump" in previous and previous.get("index") != source_record.get("index"):
            forget_dump_misses(result.host, source_record["dump"])  # read another way now: look them up again
        self.report(1, 1, f"{len(titles)} pages in {result.chunk_count} chunks")

    def _spool(self, manifest, source_record: dict):
        """For an all_pages manifest of a compressed dump read from its start, a spool of the pass's pages
        (SplitDump then reads them instead of decompressing the dump a second time); else no spool (None)."""
        if not (manifest.all_pages and plain_dump_recorded(source_record) and is_compressed(manifest.dump)):
            return contextlib.nullcontext()
        return dumpsplit.Spool(self.manifest, manifest.namespaces, dump_stamp(manifest.dump))

    def recorded_source(self) -> dict | None:
        """The source the derived manifest on disk recorded, if there is one that reads."""
        try:
            return derived.load(self.manifest).source
        except WikiluigiError:
            return None


class ChunkTask(ManifestTask):
    """A task over one chunk of a derived manifest's titles; complete when none of them is left to do."""

    chunk = luigi.IntParameter(description="Chunk number, from 0, of the derived manifest's sorted titles.")

    @staticmethod
    def pages_left(host: str, titles: list[str]) -> list[str]:
        """The titles this stage still has to do (neither a file nor a failure record)."""
        raise NotImplementedError

    @staticmethod
    def stage_dir(host: str) -> Path:
        """The folder this stage writes its pages to."""
        raise NotImplementedError

    def titles(self) -> list[str]:
        return list(derived.load(self.manifest).chunk(self.chunk))

    def todo(self) -> list[str]:
        return self.pages_left(derived.load(self.manifest).host, self.titles())

    def complete(self):
        if not DeriveManifest(manifest=self.manifest).complete():
            return False
        return not self.todo()

    def check_done(self) -> None:
        """Luigi checks outputs after run(); a chunk has none, so it checks itself."""
        left = self.todo()
        if left:
            raise WikiluigiError(f"{self}: {len(left)} pages were not written, e.g. {left[0]!r}.")


class SplitDump(ManifestTask):
    """A plain dump read once for the whole fetch stage: each chunk's pages into a file of its own."""

    def requires(self):
        return DeriveManifest(manifest=self.manifest)

    def complete(self):
        return DeriveManifest(manifest=self.manifest).complete() and dumpsplit.is_split(derived.load(self.manifest))

    def run(self):
        meta = derived.load(self.manifest)
        written = dumpsplit.split(meta, progress=lambda done, total: self.report(
            done, total, f"read {done} of {total} pages from {Path(meta.source['dump']).name}"))
        self.report(1, 1, f"{written} pages cut into {meta.chunk_count} chunks")


def reads_a_plain_dump(name: str) -> bool:
    """Whether a manifest's pages come from a dump that can only be read from its start: as the derived
    manifest recorded it while it is current, else as the next DeriveManifest will record it."""
    try:
        if DeriveManifest(manifest=name).complete():
            return plain_dump_recorded(derived.load(name).source)
        manifest = load_manifest(name)
    except WikiluigiError:
        return False  # the task then fails with the manifest's own error
    return bool(manifest.dump) and multistream_index(manifest.dump) is None


class FetchPages(UsesTheApi, ChunkTask):
    """Fetch a chunk's pages: 50 titles a request from an API, its own streams of a multistream dump, or
    its own file of a plain dump read once by SplitDump; only pages missing on disk are asked for."""

    pages_left = staticmethod(pages_to_fetch)
    stage_dir = staticmethod(paths.raw_dir)

    def requires(self):
        derive = DeriveManifest(manifest=self.manifest)
        return [derive, SplitDump(manifest=self.manifest)] if reads_a_plain_dump(self.manifest) else derive

    def run(self):
        meta = derived.load(self.manifest)
        titles = self.titles()
        with open_chunk_source(meta, self.chunk) as source, durable.batch():  # a folder fsync a chunk
            result = fetch_pages(source, meta.host, titles, progress=lambda done, total: self.report(
                done, total, f"fetched {done} of {total} pages of chunk {self.chunk}"))
        self.report(1, 1, f"chunk {self.chunk}: {result.fetched} fetched, {len(result.failed)} failed")
        self.check_done()


class FetchPage(UsesTheApi, ManifestTask):
    """Fetch one page by title: `luigi --module wikiluigi FetchPage --manifest X --title "Y"`."""

    title = luigi.Parameter(description="The page title as the wiki spells it.")

    def output(self):
        return luigi.LocalTarget(paths.raw_page(host_of(self.load_manifest()), self.title))

    def complete(self):
        return pagefiles.is_filled(Path(self.output().path))  # an empty page (a power cut) is done again

    def run(self):
        manifest = self.load_manifest()
        wikifolder.claim(host_of(manifest), source_of(manifest), manifest.path)
        with open_source(full_source_of(manifest)) as source:  # asked for by name: a failed page is tried again
            result = fetch_pages(source, host_of(manifest), [self.title], retry_failed=True)
        if result.failed:
            raise WikiluigiError(f"{manifest.name}: {self.title!r} could not be fetched: {result.failed[self.title]}")
        if not self.output().exists():
            raise WikiluigiError(f"{manifest.name}: {self.title!r} was not written to {self.output().path}.")


class AllChunks(ManifestTask):
    """A stage over every chunk of a manifest. The chunks are only known once the manifest is derived:
    when it is, requires() names them, so the scheduler knows them from the start and every worker (on
    every machine sharing one luigid) can take one; when it is not yet, run() asks for them."""

    chunk_task: type[ChunkTask]

    def chunk_tasks(self) -> list[ChunkTask]:
        count = derived.load(self.manifest).chunk_count
        return [self.chunk_task(manifest=self.manifest, chunk=i) for i in range(count)]

    def complete(self):
        if not DeriveManifest(manifest=self.manifest).complete():
            return False
        meta = derived.load(self.manifest)
        return not self.chunk_task.pages_left(meta.host, meta.titles)

    def requires(self):
        derive = DeriveManifest(manifest=self.manifest)
        return [derive, *self.chunk_tasks()] if derive.complete() else [derive]

    def run(self):
        yield self.chunk_tasks()
        # What killed writes left, cleared once a stage: a chunk must not list a million-page folder.
        for stage_dir in self.stage_dirs(derived.load(self.manifest).host):
            pagefiles.remove_stale_temporaries(stage_dir)
            pagefiles.remove_stale_temporaries(paths.failure_dir(stage_dir))

    def stage_dirs(self, host: str) -> list[Path]:
        """The folders of the pages this stage makes."""
        return [self.chunk_task.stage_dir(host)]


class Scrape(AllChunks):
    """The whole fetch stage of one manifest: `luigi --module wikiluigi Scrape --manifest X`."""

    chunk_task = FetchPages

    def complete(self):
        return super().complete() and not summary.failed(self.manifest, "fetch")

    def run(self):
        yield from super().run()
        summary.finish(self.manifest, stages=("fetch",))
