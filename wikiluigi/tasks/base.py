"""What every wikiluigi task shares: progress reports to the scheduler and the manifest parameter."""
import time

import luigi

from wikiluigi import manifest as manifests


class Reporting(luigi.Task):
    """A task that tells luigid how far it is (progress bar) and what it is doing (status message)."""

    _REPORT_EVERY_SECONDS = 0.5
    _last_report = 0.0

    def report(self, done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if done < total and now - self._last_report < self._REPORT_EVERY_SECONDS:
            return  # each report is a request to luigid: a few a second is enough for a progress bar
        self._last_report = now
        self.set_progress_percentage(round(100 * done / total) if total else 100)
        self.set_status_message(message)


class ManifestTask(Reporting):
    manifest = luigi.Parameter(description="Name of a manifest in manifests/originals/, e.g. 'demo'.")

    def load_manifest(self):
        return manifests.load(self.manifest)
