"""The Refresh task: a manifest scraped before brought up to date with its wiki, asking only for what changed."""
import luigi

from wikiluigi import paths
from wikiluigi.convert.stage import process_pages, processed_folder
from wikiluigi.sources import refresh
from wikiluigi.sources.source import host_of
from wikiluigi.tasks.base import ManifestTask
from wikiluigi.tasks.scrape import UsesTheApi


class Refresh(UsesTheApi, ManifestTask):
    """List the manifest's pages as the wiki has them now, fetch the new and changed ones (by revision id),
    move those that left to attic/, convert the changed ones again, and write the derived manifest and
    out/reports/<manifest>.refresh.{json,txt}. Runs whenever asked."""

    allow_removal = luigi.BoolParameter(default=False, description=(
        "Remove the pages that left the manifest even when they are more than [refresh] max_removed of it."))
    _refreshed = False

    def output(self):
        return luigi.LocalTarget(refresh.report_path(self.manifest))

    def complete(self):
        return self._refreshed

    def run(self):
        from wikiluigi.tasks.process import convert_budget, convert_options

        manifest = self.load_manifest()
        host = host_of(manifest)
        options = convert_options(manifest)

        def convert(titles):
            if not processed_folder(manifest, host).is_dir():
                return None  # never converted: Convert does it when asked
            result = process_pages(host, titles, options, convert_budget(), progress=lambda done, total: self.report(
                done, total, f"converted {done} of {total} new or changed pages"))
            return dict(result.failed)

        report = refresh.refresh(manifest, host, paths.processed_dirs(host), convert=convert,
                                 allow_removal=self.allow_removal, settings=refresh.RefreshSettings.from_config(),
                                 progress=self.report)
        self._refreshed = True
        self.report(1, 1, f"{report['changed']} changed, {report['new']} new, {report['gone']} gone, "
                          f"{report['unchanged']} unchanged; {report['requests']} requests")
