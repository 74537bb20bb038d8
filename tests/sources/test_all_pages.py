"""`all_pages: true`: every page of a wiki, from the real local MediaWiki's list=allpages and from the dump
it was loaded from, compared with what the wiki itself holds (its database, its siteinfo statistics)."""
import os
import sqlite3

import pytest

from tests.support import synthetic_wiki
from tests.support.luigi_cli import derived, make_data_dir, run_luigi
from tests.support.wiki_fixtures import ENWIKI_DUMP, STARTREK_DUMP
from wikiluigi.sources import dump
from wikiluigi.sources.derive import resolve_manifest
from wikiluigi.sources.manifest import parse
from wikiluigi.sources.mediawiki import MediaWiki, Settings
from wikiluigi.sources.source import DumpSource

SETTINGS = Settings(user_agent="wikiluigi-tests (tests@example.invalid)", retries=1, timeout=30)


def pages_in_the_database(wiki, namespace: int) -> list[str]:
    """The wiki's own answer: its page table, redirects left out."""
    con = sqlite3.connect(f"file:{wiki.db_file}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT page_title FROM page WHERE page_namespace = ? AND page_is_redirect = 0",
                           (namespace,)).fetchall()
    finally:
        con.close()
    prefix = wiki.api(meta="siteinfo", siprop="namespaces")["query"]["namespaces"][str(namespace)]["name"]
    titles = [(row[0].decode() if isinstance(row[0], bytes) else row[0]).replace("_", " ") for row in rows]
    return sorted(f"{prefix}:{t}" if prefix else t for t in titles)


def statistics(wiki) -> dict:
    return wiki.api(meta="siteinfo", siprop="statistics")["query"]["statistics"]


def resolve(tmp_path, source, text: str):
    return resolve_manifest(source, parse(text, tmp_path / "whole.yaml", "whole"))


def test_every_page_of_the_startrek_wiki_through_the_api_and_its_dump(tmp_path, startrek_wiki):
    wiki = MediaWiki(startrek_wiki.api_url, SETTINGS)
    try:
        namespaces = (0, 10, 14)
        result = resolve(tmp_path, wiki, f"api: {startrek_wiki.api_url}\nall_pages: true\nnamespaces: {list(namespaces)}\n")
    finally:
        wiki.close()
    expected = sorted(t for ns in namespaces for t in pages_in_the_database(startrek_wiki, ns))
    assert result.titles == expected and len(expected) == 45
    # Every page the wiki counts: these 45 and its 4 redirects.
    redirects = len(startrek_wiki.page_titles()) - len(expected)
    assert redirects == 4 and statistics(startrek_wiki)["pages"] == len(expected) + redirects
    # The dump the wiki was loaded from gives the same titles in one pass.
    from_dump = resolve(tmp_path, DumpSource(STARTREK_DUMP),
                        f"dump: {STARTREK_DUMP}\nall_pages: true\nnamespaces: {list(namespaces)}\n")
    assert from_dump.titles == result.titles


def test_every_article_of_the_enwiki_sample_equals_the_wikis_article_count(tmp_path, enwiki_wiki):
    wiki = MediaWiki(enwiki_wiki.api_url, SETTINGS)
    try:
        result = resolve(tmp_path, wiki, f"api: {enwiki_wiki.api_url}\nall_pages: true\n")
    finally:
        wiki.close()
    assert result.titles == pages_in_the_database(enwiki_wiki, 0)
    assert len(result.titles) == statistics(enwiki_wiki)["articles"] == 106  # of 206 pages, 99 redirects
    assert resolve(tmp_path, DumpSource(ENWIKI_DUMP), f"dump: {ENWIKI_DUMP}\nall_pages: true\n").titles == result.titles


def test_every_article_of_a_multistream_dump_read_by_two_processes(tmp_path, monkeypatch):
    wiki = synthetic_wiki.write_multistream(tmp_path, 430, paragraphs=1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})  # the pass split over two processes
    result = resolve(tmp_path, DumpSource(wiki.dump, wiki.index), f"dump: {wiki.dump}\nall_pages: true\n")
    assert result.titles == sorted(wiki.articles) and len(result.titles) == 430
    # The dump's own index lists every page; the articles are those of namespace 0 that are no redirect.
    assert len(list(dump.iter_index(wiki.index))) == wiki.pages > 430
    assert resolve(tmp_path, DumpSource(wiki.dump), f"dump: {wiki.dump}\nall_pages: true\n").titles == result.titles


def test_allpages_follows_continue(startrek_wiki):
    wiki = MediaWiki(startrek_wiki.api_url, SETTINGS)
    startrek_wiki.mark_requests()
    try:
        titles = list(wiki.all_pages(0, limit=5))
    finally:
        wiki.close()
    assert sorted(titles) == pages_in_the_database(startrek_wiki, 0) and len(titles) == 27
    requests = [r for r in startrek_wiki.api_requests() if r.params.get("list") == "allpages"]
    assert len(requests) == 6  # 27 titles, 5 a request
    assert all(r.params["apfilterredir"] == "nonredirects" and r.params["apnamespace"] == "0" for r in requests)


def test_exclusions_apply_to_all_pages_on_the_real_wiki(tmp_path, startrek_wiki):
    data_dir = make_data_dir(tmp_path, {"whole": {
        "api": startrek_wiki.api_url, "all_pages": True,
        "exclude_categories": ["Star Trek characters"], "exclude_pages": ["Mr. Spock", "Warp drive"],
    }})
    run_luigi(data_dir, "DeriveManifest", "--manifest", "whole", "--local-scheduler", check_returncode=0)
    result = derived(data_dir, "whole")
    characters = [m["title"] for m in startrek_wiki.api(list="categorymembers", cmlimit="max",
                                                        cmtitle="Category:Vulcans")["query"]["categorymembers"]]
    assert "Spock" in characters and "Spock" not in result["titles"]  # a subcategory's member, and a redirect's target
    assert "Warp drive" not in result["titles"] and "Worf" not in result["titles"]
    assert "Starfleet" in result["titles"] and "USS Voyager" in result["titles"]
    assert result["counts"]["all_pages_listed"] == 27
    assert result["counts"]["pages"] == 27 - result["counts"]["excluded"] == len(result["titles"])


@pytest.mark.parametrize("dbname, base, element", [
    ("../../../escaped", "", "<dbname>"),
    ("testwiki", "http://../wiki/Main_Page", "<base>'s host"),
])
def test_a_hostile_dump_writes_nothing_outside_the_data_directory(tmp_path, dbname, base, element):
    text = STARTREK_DUMP.read_text(encoding="utf-8")
    text = text.replace("<dbname>testwiki</dbname>", f"<dbname>{dbname}</dbname>")
    text = text.replace("<base>http://127.0.0.1:8080/index.php/Main_Page</base>", f"<base>{base}</base>")
    dump = tmp_path / "dumps" / "third-party.xml"
    dump.parent.mkdir()
    dump.write_text(text, encoding="utf-8")
    data_dir = make_data_dir(tmp_path / "deep" / "data", {"evil": {"dump": str(dump), "all_pages": True}})
    before = sorted(tmp_path.rglob("*"))
    result = run_luigi(data_dir, "Scrape", "--manifest", "evil", "--local-scheduler")
    assert result.returncode != 0
    assert "wikiluigi: " in result.stderr and element in result.stderr and "'host' key" in result.stderr
    assert sorted(p for p in tmp_path.rglob("*") if data_dir not in p.parents) == \
        sorted(p for p in before if data_dir not in p.parents)  # nothing new beside the data directory
    assert not list(data_dir.rglob("*.mediawiki"))
