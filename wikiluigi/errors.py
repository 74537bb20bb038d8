"""Every error wikiluigi raises on purpose: one root, each carrying what went wrong and what to do."""

import reprlib

QUOTE_LIMIT = 80

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxtuple, _SHORT.maxset = 2, 4, 4, 4, 4
_SHORT.maxstring, _SHORT.maxlong, _SHORT.maxother = 30, 30, 30


def quote(value, limit: int = QUOTE_LIMIT) -> str:
    """A value as an error message shows it: its repr, cut to about `limit` characters with its size said,
    so that a hostile value (a YAML alias bomb, a megabyte title) never makes a megabyte message. A
    container's repr is never built whole: expanded, it could be exponentially large."""
    if isinstance(value, str):
        text = repr(value[:limit])
        return text if len(value) <= limit else f"{text[:-1]}…{text[-1]} ({len(value)} characters)"
    try:
        text = _SHORT.repr(value)
    except Exception:  # a repr that fails (an int too long to print) must not hide the real error
        text = f"<{type(value).__name__}>"
    if isinstance(value, (list, dict, set, tuple)) and len(value) > 4:
        text += f" ({len(value)} items)"
    return text if len(text) <= 2 * limit else text[:2 * limit] + "…"


def shorten(value, limit: int = 200) -> str:
    """A value's text cut to `limit` characters, with its length said: for text of any size (a server's
    answer, a query) in a message."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


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
