"""The MediaWiki Action API client: one session, an HTTP cache, batching, continuation, retries, etiquette."""
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import requests

from wikiluigi.errors import ApiError

logger = logging.getLogger("wikiluigi")

RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_REDIRECT_HOPS = 10


@dataclass(frozen=True)
class Settings:
    """What the client needs of luigi.cfg's [http] section, as plain values (testable without Luigi)."""
    user_agent: str
    timeout: float = 60.0
    retries: int = 6
    backoff: float = 1.0
    max_backoff: float = 120.0
    maxlag: int = 5
    titles_per_request: int = 50
    cache_path: Path | None = None

    @classmethod
    def from_config(cls, cache_path: Path | None = None) -> "Settings":
        from wikiluigi import config
        section = config.http()
        return cls(
            user_agent=section.user_agent, timeout=section.timeout, retries=section.retries,
            backoff=section.backoff, max_backoff=section.max_backoff, maxlag=section.maxlag,
            titles_per_request=section.titles_per_request,
            cache_path=cache_path if section.cache else None,
        )


@dataclass(frozen=True)
class Revision:
    """One page's current wikitext, as the API returned it."""
    title: str
    text: str
    revision_id: int | None
    timestamp: str | None


def _cacheable(response: requests.Response) -> bool:
    """Only real answers are cached: never API errors such as maxlag or toomanyvalues, never HTML."""
    if "json" not in response.headers.get("Content-Type", ""):
        return False
    return not response.content.lstrip()[:12].startswith(b'{"error"')


def open_session(settings: Settings) -> requests.Session:
    """A session for one process: SQLite connections must not cross the fork of a Luigi worker."""
    if settings.cache_path is None:
        session = requests.Session()
    else:
        import requests_cache
        settings.cache_path.parent.mkdir(parents=True, exist_ok=True)
        # WAL and a busy timeout let eight worker processes share one cache file.
        backend = requests_cache.SQLiteCache(settings.cache_path, wal=True, busy_timeout=60_000)
        session = requests_cache.CachedSession(
            backend=backend, expire_after=-1, allowable_codes=(200,), allowable_methods=("GET",),
            filter_fn=_cacheable,
        )
    session.headers["User-Agent"] = settings.user_agent
    return session


class MediaWiki:
    """One wiki's api.php. Requests are serial; the retry loop and its waits live in `call`."""

    def __init__(self, api_url: str, settings: Settings, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.api_url = api_url
        self.settings = settings
        self.session = session or open_session(settings)
        self.sleep = sleep
        self.requests_sent = 0

    def close(self) -> None:
        self.session.close()

    # The one boundary where HTTP errors become ApiError.
    def call(self, **params) -> dict:
        params = {"format": "json", "formatversion": "2", **params}
        if self.settings.maxlag:
            params["maxlag"] = str(self.settings.maxlag)
        delay = self.settings.backoff
        for attempt in range(self.settings.retries + 1):
            last = attempt == self.settings.retries
            try:
                response = self.session.get(self.api_url, params=params, timeout=self.settings.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last:
                    raise ApiError(
                        f"{self.api_url} does not answer ({type(exc).__name__}: {exc}) after "
                        f"{self.settings.retries + 1} tries. Check the 'api' URL in the manifest and the network."
                    ) from None
                reason, wait = f"{type(exc).__name__}", delay
            else:
                if not getattr(response, "from_cache", False):
                    self.requests_sent += 1
                result = self._read(response)
                if result is not None:
                    return result
                if last:
                    raise ApiError(f"{response.url} kept failing ({self._why(response)}) after "
                                   f"{self.settings.retries + 1} tries; try again later.")
                reason, wait = self._why(response), _retry_after(response, delay)
            wait = min(wait, self.settings.max_backoff)
            logger.warning("%s: %s; retrying in %.1f s (%d/%d)", self.api_url, reason, wait,
                           attempt + 1, self.settings.retries)
            self.sleep(wait)
            delay = min(delay * 2, self.settings.max_backoff)
        raise AssertionError("unreachable")

    def _read(self, response: requests.Response) -> dict | None:
        """The answer's JSON, None when it is worth retrying, ApiError when it never will be."""
        if response.status_code in RETRY_STATUSES:
            return None
        try:
            data = response.json() if response.status_code == 200 else None
        except ValueError:
            data = None
        if data is None:
            kind = response.headers.get("Content-Type", "content of no type").split(";")[0]
            raise ApiError(f"{self.api_url} answered {kind} (HTTP {response.status_code}), not the MediaWiki "
                           "API's JSON. Is it the wiki's api.php? The wiki's Special:Version page gives its "
                           "address; fix 'api' in the manifest.")
        if not isinstance(data, dict):
            raise ApiError(f"{self.api_url} answered JSON that is not the MediaWiki API's.")
        error = data.get("error")
        if error:
            if error.get("code") == "maxlag":
                return None
            raise ApiError(f"{self.api_url}: the API refused the request: {error.get('code')}: "
                           f"{error.get('info', '')}")
        return data

    @staticmethod
    def _why(response: requests.Response) -> str:
        if response.status_code == 200:
            return "the database is lagging (maxlag)"
        return f"HTTP {response.status_code}"

    def query_all(self, **params) -> Iterator[dict]:
        """Every response of a query, echoing the whole `continue` object back until there is none."""
        params = {"action": "query", **params}
        extra: dict = {}
        while True:
            data = self.call(**params, **extra)
            yield data
            if "continue" not in data:
                return
            extra = data["continue"]

    # Categories
    def category_members(self, category: str) -> Iterator[tuple[str, int]]:
        """(title, namespace) of every member of a category: subcategories, pages, files."""
        for data in self.query_all(list="categorymembers", cmtitle=category, cmlimit="max",
                                   cmprop="title|type", cmtype="subcat|page|file"):
            for member in data.get("query", {}).get("categorymembers", []):
                yield member["title"], int(member.get("ns", 0))

    # Titles and content
    def batches(self, titles: Iterable[str]) -> Iterator[list[str]]:
        batch: list[str] = []
        for title in titles:
            batch.append(title)
            if len(batch) == self.settings.titles_per_request:
                yield batch
                batch = []
        if batch:
            yield batch

    def resolve(self, titles: Iterable[str]) -> dict[str, tuple[str, int] | None]:
        """Each title -> (its final title after normalising and following redirects, namespace), or None
        when the page does not exist or the title is invalid."""
        resolved: dict[str, tuple[str, int] | None] = {}
        for batch in self.batches(titles):
            query = self.call(action="query", titles="|".join(batch), redirects="1").get("query", {})
            pages = _pages_by_title(query)
            for title in batch:
                page = pages.get(_follow(title, query))
                resolved[title] = None if _absent(page) else (page["title"], int(page.get("ns", 0)))
        return resolved

    def revisions(self, titles: list[str]) -> Iterator[tuple[str, Revision | str]]:
        """(title, Revision) for each title, or (title, reason) when it cannot be had. One request per
        50 titles; a response cut short by the API's size limit is continued.

        The next batch is requested while the caller writes the current one: requests stay serial
        (one at a time per wiki), but the wiki's work overlaps ours.
        """
        batches = self.batches(titles)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wikiluigi-fetch") as pool:
            batch = next(batches, None)
            pending = pool.submit(self._revision_batch, batch) if batch else None
            while pending is not None:
                batch, found, query = pending.result()
                upcoming = next(batches, None)
                pending = pool.submit(self._revision_batch, upcoming) if upcoming else None
                for title in batch:
                    yield title, _revision(title, found.get(_follow(title, query)))

    def _revision_batch(self, batch: list[str]) -> tuple[list[str], dict[str, dict], dict]:
        found: dict[str, dict] = {}
        query: dict = {}
        for data in self.query_all(prop="revisions", rvprop="content|ids|timestamp", rvslots="main",
                                   titles="|".join(batch), redirects="1"):
            part = data.get("query", {})
            for key in ("normalized", "redirects"):
                query.setdefault(key, []).extend(part.get(key, []))
            for page in _page_list(part):
                if page.get("revisions") or page["title"] not in found:
                    found[page["title"]] = page
        return batch, found, query


def _retry_after(response: requests.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.strip().isdigit() else default


def _page_list(query: dict) -> list[dict]:
    pages = query.get("pages", [])
    return list(pages.values()) if isinstance(pages, dict) else pages  # formatversion 1 keys pages by id


def _pages_by_title(query: dict) -> dict[str, dict]:
    return {page["title"]: page for page in _page_list(query) if "title" in page}


def _follow(title: str, query: dict) -> str:
    """Where the API took a requested title: through `normalized`, then the chain of `redirects`."""
    normalized = {n["from"]: n["to"] for n in query.get("normalized", [])}
    redirects = {r["from"]: r["to"] for r in query.get("redirects", [])}
    title = normalized.get(title, title)
    for _ in range(MAX_REDIRECT_HOPS):
        if title not in redirects:
            break
        title = redirects[title]
    return title


def _absent(page: dict | None) -> bool:
    return page is None or "missing" in page or "invalid" in page


def _revision(title: str, page: dict | None) -> Revision | str:
    if page is None:
        return "the API did not return this page"
    if "invalid" in page:
        return f"invalid title: {page.get('invalidreason', 'the wiki rejects it')}"
    if "missing" in page:
        return "the page does not exist on the wiki"
    revisions = page.get("revisions") or []
    if not revisions:
        return "the API returned no revision for this page"
    revision = revisions[0]
    slot = revision.get("slots", {}).get("main", revision)  # older wikis have no slots
    text = slot.get("content", slot.get("*"))
    if text is None:
        return "the revision's content is hidden or missing"
    return Revision(title=title, text=text, revision_id=revision.get("revid"),
                    timestamp=revision.get("timestamp"))
