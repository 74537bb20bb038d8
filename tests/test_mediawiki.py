"""The API client against faults a real wiki can't produce on demand (a scripted server, see
tests/support/faultserver.py); everything else about it is tested against the real MediaWiki."""
import socket

import pytest

from tests.support.faultserver import FaultServer
from wikiluigi.errors import ApiError
from wikiluigi.mediawiki import MediaWiki, Revision, Settings

OK = (200, {}, {"batchcomplete": True, "query": {"pages": [
    {"pageid": 1, "ns": 0, "title": "Spock", "revisions": [
        {"revid": 7, "timestamp": "2020-01-01T00:00:00Z", "slots": {"main": {"content": "Vulcan."}}}]}]}})
MAXLAG = (200, {"Retry-After": "2"}, {"error": {"code": "maxlag", "info": "Waiting for a database server: 7 seconds lagged."}})


def client(url, tmp_path=None, retries=3, cache=False):
    waits = []
    settings = Settings(user_agent="wikiluigi-tests (tests@example.invalid)", retries=retries, timeout=5,
                        backoff=0.5, cache_path=tmp_path / "cache.sqlite" if cache else None)
    return MediaWiki(url, settings, sleep=waits.append), waits


def fetch_spock(wiki):
    return dict(wiki.revisions(["Spock"]))["Spock"]


def test_429_and_503_are_retried_honouring_retry_after():
    with FaultServer([(429, {"Retry-After": "7"}, b"slow down"), (503, {}, b"busy"), OK]) as server:
        wiki, waits = client(server.api_url)
        assert fetch_spock(wiki) == Revision("Spock", "Vulcan.", 7, "2020-01-01T00:00:00Z")
    assert waits == [7.0, 1.0]  # Retry-After first, then the doubled backoff
    assert len(server.requests) == 3


def test_dropped_connections_are_retried():
    with FaultServer([("drop",), ("drop",), OK]) as server:
        wiki, waits = client(server.api_url)
        assert fetch_spock(wiki).text == "Vulcan."
    assert len(waits) == 2


def test_maxlag_is_sent_retried_and_never_cached(tmp_path):
    with FaultServer([MAXLAG, OK]) as server:
        wiki, waits = client(server.api_url, tmp_path, cache=True)
        assert fetch_spock(wiki).text == "Vulcan."
        assert server.requests[0]["maxlag"] == "5"
        assert waits == [2.0]
        # Cached now: a second client gets it without a request; the maxlag answer was not kept.
        again, _ = client(server.api_url, tmp_path, cache=True)
        assert fetch_spock(again).text == "Vulcan."
    assert len(server.requests) == 2


def test_errors_are_not_cached(tmp_path):
    refusal = (200, {}, {"error": {"code": "toomanyvalues", "info": "Too many values supplied"}})
    with FaultServer([refusal, OK]) as server:
        wiki, _ = client(server.api_url, tmp_path, cache=True)
        with pytest.raises(ApiError, match="toomanyvalues"):
            fetch_spock(wiki)
        assert fetch_spock(wiki).text == "Vulcan."


def test_giving_up_names_the_url_and_the_reason():
    with FaultServer([(503, {}, b"busy")]) as server:
        wiki, waits = client(server.api_url, retries=2)
        with pytest.raises(ApiError) as error:
            fetch_spock(wiki)
    assert "HTTP 503" in str(error.value) and "3 tries" in str(error.value)
    assert server.api_url in str(error.value)


def test_html_instead_of_the_api_is_a_clear_error():
    page = (200, {"Content-Type": "text/html; charset=utf-8"}, b"<!DOCTYPE html><html>Main Page</html>")
    with FaultServer([page]) as server:
        wiki, waits = client(server.api_url)
        with pytest.raises(ApiError, match=r"answered text/html \(HTTP 200\), not the MediaWiki API") as error:
            fetch_spock(wiki)
    assert waits == []  # not worth retrying
    assert "api.php" in str(error.value)


def test_a_url_that_does_not_answer():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once this closes
    wiki, waits = client(f"http://127.0.0.1:{port}/api.php", retries=1)
    with pytest.raises(ApiError, match="does not answer.*Check the 'api' URL"):
        fetch_spock(wiki)
    assert len(waits) == 1


def test_legacy_response_shape_of_older_wikis():
    legacy = (200, {}, {"query": {
        "normalized": [{"from": "spock", "to": "Spock"}],
        "pages": {"12": {"pageid": 12, "ns": 0, "title": "Spock", "revisions": [
            {"revid": 3, "timestamp": "t", "contentformat": "text/x-wiki", "*": "Old shape."}]},
            "-1": {"ns": 0, "title": "Nobody", "missing": ""}}}})
    with FaultServer([legacy]) as server:
        wiki, _ = client(server.api_url)
        result = dict(wiki.revisions(["spock", "Nobody"]))
    assert result["spock"] == Revision("spock", "Old shape.", 3, "t")
    assert result["Nobody"] == "the page does not exist on the wiki"


def test_a_response_cut_by_the_size_limit_is_continued():
    first = (200, {}, {"continue": {"rvcontinue": "2|9", "continue": "||"}, "query": {"pages": [
        {"pageid": 1, "ns": 0, "title": "A", "revisions": [{"revid": 1, "slots": {"main": {"content": "a"}}}]},
        {"pageid": 2, "ns": 0, "title": "B"}]}})
    second = (200, {}, {"batchcomplete": True, "query": {"pages": [
        {"pageid": 1, "ns": 0, "title": "A"},
        {"pageid": 2, "ns": 0, "title": "B", "revisions": [{"revid": 2, "slots": {"main": {"content": "b"}}}]}]}})
    with FaultServer([first, second]) as server:
        wiki, _ = client(server.api_url)
        result = dict(wiki.revisions(["A", "B"]))
    assert result["A"].text == "a" and result["B"].text == "b"
    assert server.requests[1]["rvcontinue"] == "2|9"


def test_category_members_follow_continue_to_the_end():
    # The original project ignored `continue` and lost every member past the first 500.
    def page(query):
        start = int(query.get("cmcontinue", "0"))
        members = [{"ns": 0, "title": f"Page {i}"} for i in range(start, min(start + 500, 1234))]
        body = {"query": {"categorymembers": members}}
        if start + 500 < 1234:
            body["continue"] = {"cmcontinue": str(start + 500), "continue": "-||"}
        return 200, {}, body

    with FaultServer([page]) as server:
        wiki, _ = client(server.api_url)
        members = list(wiki.category_members("Category:Big"))
    assert len(members) == 1234 and members[-1] == ("Page 1233", 0)
    assert [r.get("cmcontinue") for r in server.requests] == [None, "500", "1000"]
    assert all(r["continue"] == "-||" for r in server.requests[1:])  # the whole object echoed back
