"""The convert stage as Luigi tasks: ProcessPages (a chunk), ProcessPage (one), Convert and Wikipedia (all)."""
from pathlib import Path

import luigi

from wikiluigi import durable, pagefiles, paths
from wikiluigi.config import convert as convert_config, pandoc as pandoc_config
from wikiluigi.convert import summary
from wikiluigi.convert.stage import pages_to_process, process_pages, processed_folder
from wikiluigi.errors import WikiluigiError
from wikiluigi.sources import derived, wikifolder
from wikiluigi.sources.fetch import pages_to_fetch
from wikiluigi.sources.manifest import source_of
from wikiluigi.sources.source import host_of
from wikiluigi.tasks.base import ManifestTask
from wikiluigi.tasks.scrape import AllChunks, ChunkTask, DeriveManifest, FetchPage, FetchPages


def convert_options(manifest):
    from wikiluigi.convert.pandoc import ConvertOptions
    return ConvertOptions.from_manifest(manifest)


def convert_budget():
    """The per-page budget of luigi.cfg's [convert] and [pandoc] sections."""
    from wikiluigi.convert.pandoc import Budget
    settings = convert_config()
    return Budget(page_seconds=settings.page_timeout or None, memory_mb=settings.page_memory or None,
                  batch_seconds=pandoc_config().timeout or None)


class ProcessPages(ChunkTask):
    """Convert a chunk's pages to Markdown with one pandoc process; only pages without Markdown are done."""

    def pages_left(self, host: str, titles: list[str]) -> list[str]:
        return pages_to_process(self.stage_dir(host), titles)

    def stage_dir(self, host: str):
        """The manifest's processed folder: one per wiki and set of conversion options."""
        return processed_folder(self.load_manifest(), host)

    def requires(self):
        return FetchPages(manifest=self.manifest, chunk=self.chunk)

    def complete(self):
        """Not while a page of the chunk is missing from raw/ (deleted to fetch it again)."""
        return super().complete() and self.requires().complete()

    def run(self):
        host = derived.load(self.manifest).host
        with durable.batch():  # pages published in synced groups: one syncfs per group, not a fsync each
            result = process_pages(host, self.titles(), convert_options(self.load_manifest()), convert_budget(),
                                   progress=lambda done, total: self.report(
                                       done, total, f"converted {done} of {total} pages of chunk {self.chunk}"))
        self.report(1, 1, f"chunk {self.chunk}: {result.converted} converted ({result.fast} by the fast path, "
                          f"{len(result.pandoc)} by pandoc), {len(result.failed)} failed")
        self.check_done()


class ProcessPage(ManifestTask):
    """Convert one page: `luigi --module wikiluigi ProcessPage --manifest X --title "Y"`; fetches it first
    when its raw file is missing, and touches no other page."""

    title = luigi.Parameter(description="The page title as the wiki spells it.")

    def requires(self):
        return FetchPage(manifest=self.manifest, title=self.title)

    def output(self):
        return luigi.LocalTarget(paths.processed_file(processed_folder(self.load_manifest()), self.title))

    def complete(self):
        return pagefiles.is_filled(Path(self.output().path))  # an empty page (a power cut) is done again

    def run(self):
        manifest = self.load_manifest()
        host = host_of(manifest)
        wikifolder.claim(host, source_of(manifest), manifest.path)  # its raw page may be another wiki's
        pagefiles.clear_failure(processed_folder(manifest, host), self.title)  # asked for by name: try again
        result = process_pages(host, [self.title], convert_options(manifest), convert_budget())
        if result.failed:
            raise WikiluigiError(f"{manifest.name}: {self.title!r} could not be converted: {result.failed[self.title]}")


class Convert(AllChunks):
    """Every page of a manifest fetched and converted (failed pages recorded); what TrainingSet needs."""

    chunk_task = ProcessPages

    def complete(self):
        """Every page converted in the manifest's processed folder (its conversion options changed: another
        folder, converted anew), and none deleted from raw/ (to fetch and convert it again)."""
        if not DeriveManifest(manifest=self.manifest).complete():
            return False
        meta = derived.load(self.manifest)
        titles = list(meta.titles)
        return (not pages_to_process(processed_folder(self.load_manifest(), meta.host), titles)
                and not pages_to_fetch(meta.host, titles))

    def stage_dirs(self, host: str):
        """Its chunks fetch pages as well (`Wikipedia` runs no Scrape)."""
        return [paths.raw_dir(host), processed_folder(self.load_manifest(), host)]


class Wikipedia(ManifestTask):
    """Everything of one manifest, raw and processed, then the summary:
    `luigi --module wikiluigi Wikipedia --manifest startrek`. Fails (exit code) while pages have failed."""

    def requires(self):
        return Convert(manifest=self.manifest)

    def complete(self):
        return self.requires().complete() and not summary.failed(self.manifest, "convert")

    def run(self):
        summary.finish(self.manifest)
