"""What every wikiluigi task shares: progress reports to the scheduler and the manifest parameter."""
import sys
import time

import luigi

from wikiluigi.errors import WikiluigiError
from wikiluigi.sources import manifest as manifests


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

    def on_failure(self, exception):
        """What luigid shows for a failed task: our errors speak for themselves, without a traceback."""
        if isinstance(exception, WikiluigiError):
            return str(exception)
        return super().on_failure(exception)


class ManifestTask(Reporting):
    manifest = luigi.Parameter(description="Name of a manifest in manifests/originals/, e.g. 'demo'.")

    def load_manifest(self):
        return manifests.load(self.manifest)


@luigi.Task.event_handler(luigi.Event.FAILURE)
@luigi.Task.event_handler(luigi.Event.BROKEN_TASK)
def say_what_went_wrong(task, exception):
    """Luigi logs a traceback; our own errors also get one plain line that says what to do."""
    if isinstance(exception, WikiluigiError):
        print(f"wikiluigi: {task.task_family} failed: {exception}", file=sys.stderr, flush=True)
