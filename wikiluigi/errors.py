"""Every error wikiluigi raises on purpose: one root, each carrying what went wrong and what to do."""


class WikiluigiError(Exception):
    """Root of wikiluigi's errors: catch this to catch them all."""


class ManifestError(WikiluigiError):
    """A manifest is missing, malformed or names something that does not exist."""


class ApiError(WikiluigiError):
    """A MediaWiki API did not answer, or answered something that is not the API."""


class DumpError(WikiluigiError):
    """An XML export cannot be read."""


class ConvertError(WikiluigiError):
    """pandoc or a filter failed on a page."""


class ModelError(WikiluigiError):
    """A base model, training run or generation request cannot go ahead."""


class PagesFailedError(WikiluigiError):
    """Some pages of a run failed; the others are done. Raised at the end, so the exit code says so."""
