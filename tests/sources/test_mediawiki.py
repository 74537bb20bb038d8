"""The API client against faults a real wiki can't produce on demand (a scripted server, and a proxy in
front of the real wiki, see tests/support/faultserver.py); everything else about it is tested against
the real MediaWiki."""
import email.utils
import json
import socket
import time

import pytest

from tests.support.faultserver import FaultProxy, FaultServer
from wikiluigi.errors import ApiError
from wikiluigi.sources.mediawiki import MediaWiki, Revision, Settings

OK = (200, {}, {"batchcomplete": True, "query": {"pages": [
    {"pageid": 1, "ns": 0, "title": "Spock", "revisions": [
        {"revid": 7, "timestamp": "2020-01-01T00:00:00Z", "slots": {"main": {"content": "Vulcan."}}}]}]}})
MAXLAG = (200, {"Retry-After": "2"}, {"error": {"code": "maxlag", "info": "Waiting for a database server: 7 seconds lagged."}})


def client(url, tmp_path=None, retries=3, cache=False, timeout=5):
    waits = []
    settings = Settings(user_agent="wikiluigi-tests (tests@example.invalid)", retries=retries, timeout=timeout,
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


# Bodies cut short, timeouts, loops and long requests.

OK_BODY = json.dumps(OK[2]).encode()


def test_a_body_cut_short_is_retried():
    # The server promises the whole length and sends half: requests raises ChunkedEncodingError.
    with FaultServer([(200, {}, OK_BODY, len(OK_BODY) // 2), OK]) as server:
        wiki, waits = client(server.api_url)
        assert fetch_spock(wiki).text == "Vulcan."
    assert len(server.requests) == 2 and waits == [0.5]


def test_json_cut_halfway_is_retried_and_never_cached(tmp_path):
    # A complete HTTP answer whose JSON stops halfway: requests-cache would store it before anyone
    # parses it, and replay it at every retry.
    with FaultServer([(200, {}, OK_BODY[:len(OK_BODY) // 2]), OK]) as server:
        wiki, waits = client(server.api_url, tmp_path, cache=True)
        assert fetch_spock(wiki).text == "Vulcan."
        again, _ = client(server.api_url, tmp_path, cache=True)
        assert fetch_spock(again).text == "Vulcan."  # from the cache: the good answer
    assert len(server.requests) == 2 and len(waits) == 1


def test_json_cut_every_time_gives_up_saying_so():
    with FaultServer([(200, {}, OK_BODY[:40])]) as server:
        wiki, waits = client(server.api_url, retries=2)
        with pytest.raises(ApiError, match=r"kept failing \(an answer cut short .*\) after 3 tries"):
            fetch_spock(wiki)
    assert len(server.requests) == 3


def test_an_answer_slower_than_the_timeout_is_retried():
    def slow(query):
        time.sleep(1.5)
        return OK

    with FaultServer([slow, OK]) as server:
        wiki, waits = client(server.api_url, timeout=0.5)
        assert fetch_spock(wiki).text == "Vulcan."
    assert len(waits) == 1


def test_retry_after_as_an_http_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    with FaultServer([(503, {"Retry-After": when}, b"busy"), OK]) as server:
        wiki, waits = client(server.api_url)
        assert fetch_spock(wiki).text == "Vulcan."
    assert 25 <= waits[0] <= 31


def test_a_repeating_continue_is_an_error_naming_the_wiki():
    looping = (200, {}, {"continue": {"cmcontinue": "page|X|1", "continue": "-||"},
                         "query": {"categorymembers": [{"ns": 0, "title": "Again"}]}})
    with FaultServer([looping]) as server:
        wiki, _ = client(server.api_url)
        with pytest.raises(ApiError, match="sent the same 'continue' twice") as error:
            list(wiki.category_members("Category:Loop"))
    assert server.api_url in str(error.value) and "Category%3ALoop" in str(error.value)
    assert len(server.requests) == 2


def test_414_is_not_reported_as_a_wrong_api_url():
    page = (414, {"Content-Type": "text/html"}, b"<html><h1>414 Request-URI Too Long</h1></html>")
    with FaultServer([page]) as server:
        wiki, waits = client(server.api_url)
        with pytest.raises(ApiError, match="too long") as error:
            fetch_spock(wiki)
    assert "titles_per_request" in str(error.value) and "fix 'api'" not in str(error.value)


def test_fifty_long_non_latin_titles_go_as_post_through_a_server_that_refuses_long_urls(tmp_path, startrek_wiki):
    # 50 Greek titles of 120 letters: about 36 KB of URL, far past the 8 KB many servers take.
    titles = [f"Ἀλκυόνη {i:02d} " + "ἀρχιπέλαγος " * 9 for i in range(49)] + ["Spock"]
    with FaultProxy(startrek_wiki.api_url, max_query_bytes=8192) as proxy:
        wiki, waits = client(proxy.api_url, tmp_path, cache=True)
        result = dict(wiki.revisions(titles))
        again, _ = client(proxy.api_url, tmp_path, cache=True)
        assert dict(again.revisions(titles)) == result  # POST answers are cached too
    assert result["Spock"].text == startrek_wiki.page_text("Spock")
    assert all(result[t] == "the page does not exist on the wiki" for t in titles[:-1])
    assert [(method, fault) for method, _, fault in proxy.log] == [("POST", None)] and waits == []
