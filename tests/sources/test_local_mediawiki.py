"""The local MediaWiki test fixtures themselves (tests/support/mediawiki.py, wiki_fixtures.py).

Observed on Debian 12's MediaWiki 1.39.17, PHP 8.2, SQLite:
* importDump.php stores the dump's text byte for byte: no pre-save transform, so the trailing
  "\\n" every startrek page ends with is kept (an edit through edit.php or the API would strip it).
* Titles keep the dump's spelling, but a prefix naming a local namespace wins: that is why the wiki
  is named after the dump's <sitename> ("Test Wiki"); named "Star Trek", its Project namespace
  would turn "Star Trek: Voyager" into "Star Trek:Voyager" in namespace 4.
* Categories need no category page: list=categorymembers lists the members of any category linked
  from a page (all 826 categories of the enwiki sample have no page), a category nobody links to
  gives an empty list, and a title outside namespace 14 gives error "invalidcategory".
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.parse
import urllib.request

import pytest

from tests.support.mediawiki import parse_dump, port_is_free
from tests.support.wiki_fixtures import ENWIKI_DUMP, STARTREK_DUMP


def _category_members(wiki, category: str) -> list[str]:
    titles: list[str] = []
    params = {"list": "categorymembers", "cmtitle": category, "cmlimit": "max", "cmtype": "page|subcat"}
    while True:
        result = wiki.api(**params)
        titles += [m["title"] for m in result["query"]["categorymembers"]]
        if "continue" not in result:
            return titles
        params.update(result["continue"])


def test_siteinfo_answers_on_loopback(startrek_wiki):
    assert startrek_wiki.api_url == f"http://127.0.0.1:{startrek_wiki.port}/api.php"
    general = startrek_wiki.api(meta="siteinfo")["query"]["general"]
    assert general["generator"].startswith("MediaWiki 1.39")
    assert general["server"] == f"http://127.0.0.1:{startrek_wiki.port}"
    assert general["sitename"] == "Test Wiki"  # the dump's <sitename>
    assert general["dbtype"] == "sqlite"


def test_every_page_has_the_dumps_wikitext_byte_for_byte(startrek_wiki):
    dump = parse_dump(STARTREK_DUMP)
    assert len(dump) == 49
    # Every page of this dump ends with "\n": importDump keeps trailing whitespace.
    assert dump["Spock"].endswith("\n")
    assert {title: startrek_wiki.page_text(title) for title in dump} == dump
    # The wiki holds exactly the dump's pages (install.php's "Main Page" is deleted).
    assert startrek_wiki.page_titles() == sorted(dump)
    # The same bytes through api.php (formatversion=2: content under slots.main.content).
    result = startrek_wiki.api(prop="revisions", rvprop="content", rvslots="main",
                               titles="Spock|Star Trek: Voyager|Template:Infobox character")
    pages = {p["title"]: p["revisions"][0]["slots"]["main"]["content"] for p in result["query"]["pages"]}
    assert pages == {t: dump[t] for t in ("Spock", "Star Trek: Voyager", "Template:Infobox character")}
    assert "normalized" not in result["query"]
    assert startrek_wiki.page_text("spock") == dump["Spock"]  # first letter case-insensitive
    assert startrek_wiki.page_text("Mr. Spock").startswith("#REDIRECT")
    assert startrek_wiki.page_text("Mr. Spock", follow_redirects=True) == dump["Spock"]
    assert startrek_wiki.page_text("No such page") is None


def test_categorymembers(startrek_wiki):
    assert sorted(_category_members(startrek_wiki, "Category:Vulcans")) == sorted(
        ["Spock", "Sarek", "Tuvok", "T'Pol", "Surak", "Vulcan (planet)"])
    characters = _category_members(startrek_wiki, "Category:Star Trek characters")
    assert {"Category:Vulcans", "Category:Humans", "Category:Klingons"} <= set(characters)
    assert "James T. Kirk" in characters
    # A category nobody links to: empty, no error. A non-category title: invalidcategory.
    assert _category_members(startrek_wiki, "Category:No such category") == []
    assert startrek_wiki.api(list="categorymembers", cmtitle="Spock")["error"]["code"] == "invalidcategory"
    # The local parser adds tracking categories that have no page (no images here).
    assert "Spock" in _category_members(startrek_wiki, "Category:Pages with broken file links")


def test_requests_are_counted_with_their_titles(startrek_wiki):
    startrek_wiki.mark_requests()
    startrek_wiki.api(prop="revisions", rvprop="content", rvslots="main", titles="Spock|Worf")
    body = urllib.parse.urlencode({"action": "query", "titles": "Sarek", "format": "json"}).encode()
    with urllib.request.urlopen(startrek_wiki.api_url, body) as response:  # a POST
        json.load(response)
    startrek_wiki.page_text("Tuvok")  # read from SQLite: not a request
    lines = startrek_wiki.served_requests()
    assert len(lines) == 2
    assert lines[0].startswith("GET /api.php?") and "titles=Spock%7CWorf" in lines[0]
    assert lines[1] == "POST /api.php"  # php -S does not log bodies ...
    assert startrek_wiki.requested_titles() == ["Spock", "Worf", "Sarek"]  # ... the request log does
    assert [r.status for r in startrek_wiki.api_requests()] == [200, 200]
    startrek_wiki.mark_requests()
    assert startrek_wiki.served_requests() == [] and startrek_wiki.api_requests() == []


def test_a_second_wiki_beside_the_first_restart_edit_and_stop(startrek_wiki, local_mediawiki_factory):
    wiki = local_mediawiki_factory(STARTREK_DUMP, workers=2)
    assert wiki.port != startrek_wiki.port and wiki.dir != startrek_wiki.dir
    wiki.edit_page("Spock", "Edited.  \n")
    assert wiki.page_text("Spock") == "Edited."  # edits get the pre-save transform (rstrip)
    assert startrek_wiki.page_text("Spock") != "Edited."  # each wiki has its own settings and DB

    wiki.mark_requests()
    wiki.restart()
    assert wiki.served_requests() == []  # the readiness probe is not counted
    assert wiki.api(prop="revisions", rvprop="content", rvslots="main", titles="Spock")[
        "query"]["pages"][0]["revisions"][0]["slots"]["main"]["content"] == "Edited."
    assert len(wiki.served_requests("/api.php")) == 1

    port, folder, pid = wiki.port, wiki.dir, wiki.pid
    wiki.stop()
    assert not wiki.running and wiki.dir is None and not folder.exists()
    assert port_is_free(port)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(ProcessLookupError):  # php -S and its workers (same process group) are gone
        os.killpg(pid, 0)


def test_the_enwiki_sample_imports_cleanly(enwiki_wiki):
    dump = parse_dump(ENWIKI_DUMP)
    assert len(dump) == 206
    assert {title: enwiki_wiki.page_text(title) for title in dump} == dump
    assert enwiki_wiki.page_titles() == sorted(dump)
    # Its categories have no pages, yet list their members.
    anarchism = dump["Anarchism"]
    category = "Category:" + re.search(r"\[\[Category:([^|\]]+)", anarchism).group(1).strip()
    assert enwiki_wiki.api(titles=category)["query"]["pages"][0].get("missing") is True
    assert "Anarchism" in _category_members(enwiki_wiki, category)


def test_an_explicit_port_that_is_taken_fails_at_once(startrek_wiki):
    from tests.support.mediawiki import LocalMediaWiki

    with pytest.raises(RuntimeError, match=f"port {startrek_wiki.port} .* already in use"):
        LocalMediaWiki(STARTREK_DUMP, port=startrek_wiki.port)
