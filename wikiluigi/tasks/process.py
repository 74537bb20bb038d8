"""The convert stage as Luigi tasks: ProcessPages (a chunk), ProcessPage (one), Convert and Wikipedia (all)."""
import luigi

from wikiluigi import pagefiles, paths
from wikiluigi.config import convert as convert_config, pandoc as pandoc_config
from wikiluigi.convert import summary
from wikiluigi.convert.stage import options_current, pages_to_process, process_pages
from wikiluigi.errors import WikiluigiError
from wikiluigi.sources import derived
from wikiluigi.sources.fetch import pages_to_fetch
from wikiluigi.sources.source import host_of
from wikiluigi.tasks.base import ManifestTask
from wikiluigi.tasks.scrape import AllChunks, ChunkTask, FetchPage, FetchPages


def convert_options(manifest):
    from wikiluigi.convert.pandoc import ConvertOptions
    return ConvertOptions.from_manifest(manifest)


def converted_with_its_options(task: ManifestTask, host: str) -> bool:
    """Whether the host's Markdown was made with the manifest's conversion options; the manifest is
    read only when the host records options at all."""
    return options_current(host, lambda: convert_options(task.load_manifest()))


def convert_budget():
    """The per-page budget of luigi.cfg's [convert] and [pandoc] sections."""
    from wikiluigi.convert.pandoc import Budget
    settings = convert_config()
    return Budget(page_seconds=settings.page_timeout or None, memory_mb=settings.page_memory or None,
                  batch_seconds=pandoc_config().timeout or None)


class ProcessPages(ChunkTask):
    """Convert a chunk's pages to Markdown with one pandoc process; only pages without Markdown are done."""

    pages_left = staticmethod(pages_to_process)
    stage_dir = staticmethod(paths.processed_dir)

    def requires(self):
        return FetchPages(manifest=self.manifest, chunk=self.chunk)

    def complete(self):
        """Not while a page of the chunk is missing from raw/ (deleted to fetch it again), nor while
        the host's Markdown was made with other conversion options than the manifest's."""
        return super().complete() and self.requires().complete() and converted_with_its_options(
            self, derived.load(self.manifest).host)

    def run(self):
        host = derived.load(self.manifest).host
        result = process_pages(host, self.titles(), convert_options(self.load_manifest()), convert_budget(),
                               progress=lambda done, total: self.report(
                                   done, total, f"converted {done} of {total} pages of chunk {self.chunk}"))
        self.report(1, 1, f"chunk {self.chunk}: {result.converted} converted, {len(result.failed)} failed")
        self.check_done()


class ProcessPage(ManifestTask):
    """Convert one page: `luigi --module wikiluigi ProcessPage --manifest X --title "Y"`; fetches it first
    when its raw file is missing, and touches no other page."""

    title = luigi.Parameter(description="The page title as the wiki spells it.")

    def requires(self):
        return FetchPage(manifest=self.manifest, title=self.title)

    def output(self):
        return luigi.LocalTarget(paths.processed_page(host_of(self.load_manifest()), self.title))

    def complete(self):
        return super().complete() and converted_with_its_options(self, host_of(self.load_manifest()))

    def run(self):
        manifest = self.load_manifest()
        host = host_of(manifest)
        pagefiles.clear_failure(paths.processed_dir(host), self.title)  # asked for by name: try again
        result = process_pages(host, [self.title], convert_options(manifest), convert_budget())
        if result.failed:
            raise WikiluigiError(f"{manifest.name}: {self.title!r} could not be converted: {result.failed[self.title]}")


class Convert(AllChunks):
    """Every page of a manifest fetched and converted (failed pages recorded); what TrainingSet needs."""

    chunk_task = ProcessPages

    def complete(self):
        if not super().complete():
            return False
        meta = derived.load(self.manifest)
        if not converted_with_its_options(self, meta.host):
            return False  # the manifest's conversion options changed: convert again
        return not pages_to_fetch(meta.host, list(meta.titles))  # a raw page deleted: fetch and convert it

    def stage_dirs(self, host: str):
        """Its chunks fetch pages as well (`Wikipedia` runs no Scrape)."""
        return [paths.raw_dir(host), paths.processed_dir(host)]


class Wikipedia(ManifestTask):
    """Everything of one manifest, raw and processed, then the summary:
    `luigi --module wikiluigi Wikipedia --manifest startrek`. Fails (exit code) while pages have failed."""

    def requires(self):
        return Convert(manifest=self.manifest)

    def complete(self):
        return self.requires().complete() and not summary.failed(self.manifest, "convert")

    def run(self):
        summary.finish(self.manifest)
