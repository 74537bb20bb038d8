"""The MediaWiki Action API client: one session, an HTTP cache, batching, continuation, retries, etiquette."""
import dataclasses
import email.utils
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator
from urllib.parse import urlencode

import requests

from wikiluigi.errors import ApiError, shorten

logger = logging.getLogger("wikiluigi")

RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_REDIRECT_HOPS = 10
# A query string longer than this goes as a POST: servers and proxies refuse long URLs (HTTP 414), some
# at 8 KB, and 50 long non-Latin titles, percent-encoded, pass that.
MAX_GET_QUERY_BYTES = 6000
# Faults of the connection or of a body cut short: worth another try.
TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError)


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
    """One page's wikitext, as the API returned it; `asked_with`: the revision ids of the request that
    asked for it by revision id (empty when asked by title), so that the same request, cached, can be
    sent again."""
    title: str
    text: str
    revision_id: int | None
    timestamp: str | None
    asked_with: tuple[int, ...] = ()


def _cacheable(response: requests.Response) -> bool:
    """Only real answers are cached: never API errors such as maxlag or toomanyvalues, never HTML, never a
    body cut short (requests-cache stores a response before the caller has read it)."""
    if "json" not in response.headers.get("Content-Type", ""):
        return False
    try:
        data = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(data, dict) and "error" not in data


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
            backend=backend, expire_after=-1, allowable_codes=(200,), allowable_methods=("GET", "POST"),
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
        """One API request, retried on faults (a dropped or cut-short answer, a timeout, 429, 5xx, maxlag)
        within [http] retries; an answer that will never be better is an ApiError at once."""
        params = {"format": "json", "formatversion": "2", **params}
        if self.settings.maxlag:
            params["maxlag"] = str(self.settings.maxlag)
        tries = self.settings.retries + 1
        delay = self.settings.backoff
        for attempt in range(tries):
            try:
                response = self._send(params)
            except TRANSIENT_ERRORS as exc:
                cut_short = isinstance(exc, (requests.exceptions.ChunkedEncodingError,
                                             requests.exceptions.ContentDecodingError))
                fault = _Retry(f"{type(exc).__name__}: {shorten(exc)}", delay, answered=cut_short)
            else:
                if not getattr(response, "from_cache", False):
                    self.requests_sent += 1
                try:
                    return self._read(response)
                except _Retry as retry:
                    fault = retry if retry.wait is not None else _Retry(retry.reason, delay)
            if attempt == tries - 1:
                if not fault.answered:
                    raise ApiError(f"{self.api_url} does not answer ({fault.reason}) after {tries} tries. "
                                   "Check the 'api' URL in the manifest and the network.")
                raise ApiError(f"{self.api_url} kept failing ({fault.reason}) after {tries} tries; "
                               "try again later.")
            wait = min(fault.wait, self.settings.max_backoff)
            logger.warning("%s: %s; retrying in %.1f s (%d/%d)", self.api_url, fault.reason, wait,
                           attempt + 1, self.settings.retries)
            self.sleep(wait)
            delay = min(delay * 2, self.settings.max_backoff)
        raise AssertionError("unreachable")

    def _send(self, params: dict) -> requests.Response:
        """GET, or POST when the query string is too long for a URL (the API takes both for queries)."""
        if len(urlencode(params)) > MAX_GET_QUERY_BYTES:
            return self.session.post(self.api_url, data=params, timeout=self.settings.timeout)
        return self.session.get(self.api_url, params=params, timeout=self.settings.timeout)

    def _read(self, response: requests.Response) -> dict:
        """The answer's JSON; _Retry when another try may do better, ApiError when it never will."""
        status = response.status_code
        if status in RETRY_STATUSES:
            raise _Retry(f"HTTP {status}", _retry_after(response))
        if status == 414:
            raise ApiError(f"{self.api_url} refused a request as too long (HTTP 414) although long ones go "
                           "as POST; lower [http] titles_per_request in luigi.cfg.")
        kind = response.headers.get("Content-Type", "content of no type").split(";")[0]
        if status != 200 or "json" not in kind:
            raise ApiError(f"{self.api_url} answered {kind} (HTTP {status}), not the MediaWiki "
                           "API's JSON. Is it the wiki's api.php? The wiki's Special:Version page gives its "
                           "address; fix 'api' in the manifest.")
        try:
            data = response.json()
        except ValueError:
            raise _Retry(f"an answer cut short ({len(response.content)} bytes of JSON that does not parse)",
                         None) from None
        if not isinstance(data, dict):
            raise ApiError(f"{self.api_url} answered JSON that is not the MediaWiki API's.")
        error = data.get("error")
        if error:
            if error.get("code") == "maxlag":
                raise _Retry("the database is lagging (maxlag)", _retry_after(response))
            raise ApiError(f"{self.api_url}: the API refused the request: {error.get('code')}: "
                           f"{shorten(error.get('info', ''))}")
        return data

    def query_all(self, **params) -> Iterator[dict]:
        """Every response of a query, echoing the whole `continue` object back until there is none."""
        params = {"action": "query", **params}
        extra: dict = {}
        seen: set[str] = set()
        while True:
            data = self.call(**params, **extra)
            yield data
            if "continue" not in data:
                return
            extra = data["continue"]
            key = json.dumps(extra, sort_keys=True)
            if key in seen:  # the server would send the same pages again, for ever
                raise ApiError(f"{self.api_url} sent the same 'continue' twice ({shorten(key)}) for "
                               f"{shorten(urlencode(params))}: the wiki's server is looping. Report it to the "
                               "wiki, or leave the page or category out of the manifest.")
            seen.add(key)

    # Categories
    def category_members(self, category: str) -> Iterator[tuple[str, int]]:
        """(title, namespace) of every member of a category: subcategories, pages, files."""
        for data in self.query_all(list="categorymembers", cmtitle=category, cmlimit="max",
                                   cmprop="title|type", cmtype="subcat|page|file"):
            for member in data.get("query", {}).get("categorymembers", []):
                yield member["title"], int(member.get("ns", 0))

    def all_pages(self, namespace: int, limit: int | str = "max") -> Iterator[str]:
        """Every page title of one namespace, redirects left out (list=allpages), `limit` per request
        (500 for anonymous users with "max")."""
        for data in self.query_all(list="allpages", apnamespace=str(namespace), aplimit=str(limit),
                                   apfilterredir="nonredirects"):
            for page in data.get("query", {}).get("allpages", []):
                yield page["title"]

    # Listings with each page's latest revision id (prop=info), for a refresh: the caller gives them a
    # client without the cache, since a listing must say what the wiki holds now.
    def category_members_info(self, category: str) -> Iterator[dict]:
        """The page record (title, ns, lastrevid, redirect) of every member of a category, 500 a request."""
        for data in self.query_all(generator="categorymembers", gcmtitle=category, gcmlimit="max",
                                   gcmtype="subcat|page|file", prop="info"):
            yield from _page_list(data.get("query", {}))

    def all_pages_info(self, namespace: int) -> Iterator[dict]:
        """The page record of every page of one namespace, redirects left out, 500 a request."""
        for data in self.query_all(generator="allpages", gapnamespace=str(namespace), gaplimit="max",
                                   gapfilterredir="nonredirects", prop="info"):
            yield from _page_list(data.get("query", {}))

    def pages_info(self, titles: Iterable[str], follow_redirects: bool = True
                   ) -> Iterator[tuple[str, dict | None]]:
        """(title, the record of the page it leads to, or None when there is none), 50 titles a request;
        with follow_redirects False a redirect's own record (with `redirect`)."""
        for batch in self.batches(titles):
            extra = {"redirects": "1"} if follow_redirects else {}
            query = self.call(action="query", titles="|".join(batch), prop="info", **extra).get("query", {})
            pages = _pages_by_title(query)
            for title in batch:
                page = pages.get(_follow(title, query))
                yield title, None if _absent(page) else page

    def pages_categories(self, titles: Iterable[str]) -> Iterator[tuple[str, dict | None]]:
        """(title, its own record with `lastrevid`, `redirect` and `categories`, a list of category titles;
        None when the page does not exist), 50 titles a request, redirects not followed."""
        for batch in self.batches(titles):
            pages: dict[str, dict] = {}
            query: dict = {}
            for data in self.query_all(titles="|".join(batch), prop="info|categories", cllimit="max"):
                part = data.get("query", {})
                query.setdefault("normalized", []).extend(part.get("normalized", []))
                for page in _page_list(part):
                    known = pages.setdefault(page["title"], {"categories": []})
                    categories = known["categories"] + [c["title"] for c in page.get("categories", [])]
                    known.update(page)
                    known["categories"] = categories
            for title in batch:
                page = pages.get(_follow(title, query))
                yield title, None if _absent(page) else page

    def recent_changes(self, since: str) -> Iterator[dict]:
        """Every entry of list=recentchanges from `since` (an ISO timestamp) on, oldest first, 500 a request:
        edits, new pages and log entries (deletions, moves with their target in `logparams`)."""
        for data in self.query_all(list="recentchanges", rcstart=since, rcdir="newer", rclimit="max",
                                   rcprop="title|ids|timestamp|loginfo", rctype="edit|new|log"):
            yield from data.get("query", {}).get("recentchanges", [])

    def server_time(self) -> str:
        """The wiki's clock (ISO 8601), one small request."""
        return str(self.call(action="query", curtimestamp="1").get("curtimestamp", ""))

    def revisions_by_id(self, revision_ids: list[int]) -> Iterator[tuple[int, Revision | str]]:
        """(revision id, Revision) for each id, or (id, reason) when it cannot be had, 50 a request. A
        revision never changes, so these answers may be cached for good."""
        ids = [str(revision_id) for revision_id in revision_ids]
        for batch in self.batches(ids):
            found: dict[int, dict] = {}
            for data in self.query_all(prop="revisions", rvprop="content|ids|timestamp", rvslots="main",
                                       revids="|".join(batch)):
                for page in _page_list(data.get("query", {})):
                    for revision in page.get("revisions") or []:
                        found[int(revision["revid"])] = {**page, "revisions": [revision]}
            asked_with = tuple(map(int, batch))
            for revision_id in asked_with:
                page = found.get(revision_id)
                revision = (_revision(page["title"], page) if page else
                            "the revision is gone from the wiki (deleted meanwhile?)")
                if isinstance(revision, Revision):
                    revision = dataclasses.replace(revision, asked_with=asked_with)
                yield revision_id, revision

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


class _Retry(Exception):
    """A fault worth another try: why, how long the server asked us to wait (None: our own backoff), and
    whether the server answered at all."""

    def __init__(self, reason: str, wait: float | None, answered: bool = True):
        super().__init__(reason)
        self.reason, self.wait, self.answered = reason, wait, answered


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds, given as a number or an HTTP date; None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


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
