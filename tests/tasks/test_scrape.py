"""The fetch stage through the real `luigi` command against a real MediaWiki loaded from the fixtures."""
import json
import shutil
from pathlib import Path

from tests.support.luigi_cli import derived, files, make_data_dir, revisions, run_luigi
from wikiluigi.paths import PACKAGE_MANIFESTS, title_to_stem

DEMO_DUMP = PACKAGE_MANIFESTS / "demo-wiki.xml"

# Every article under Category:Star Trek in startrek-dump.xml, subcategories included. The redirect
# "Mr. Spock" is a member too and resolves to Spock; "Vulcan (planet)" sits in two categories.
STAR_TREK_ARTICLES = sorted([
    "Spock", "Sarek", "Tuvok", "T'Pol", "Surak", "James T. Kirk", "Leonard McCoy", "Montgomery Scott",
    "Nyota Uhura", "Hikaru Sulu", "Jean-Luc Picard", "Kathryn Janeway", "Worf", "Kahless the Unforgettable",
    "USS Enterprise (NCC-1701)", "USS Enterprise (NCC-1701-D)", "USS Voyager", "USS Defiant",
    "Star Trek: The Original Series", "Star Trek: The Next Generation", "Star Trek: Voyager",
    "Star Trek: Enterprise", "Star Trek", "Vulcan (planet)", "Starfleet", "United Federation of Planets",
    "Warp drive",
])
STAR_TREK_CATEGORIES = {
    "Category:Star Trek", "Category:Star Trek characters", "Category:Vulcans", "Category:Humans",
    "Category:Klingons", "Category:Starships", "Category:Federation starships", "Category:Star Trek series",
    "Category:Planets",
}


def trek_manifest(wiki, **extra):
    return {"api": wiki.api_url, "include_categories": ["Category:Star Trek"], **extra}


def raw_folder(data_dir: Path, wiki) -> Path:
    return data_dir / "raw" / "mediawiki" / f"127.0.0.1:{wiki.port}"


def test_scrape_fetches_the_whole_category_tree_byte_for_byte(tmp_path, startrek_wiki):
    data_dir = make_data_dir(tmp_path, {"trek": trek_manifest(startrek_wiki)})
    startrek_wiki.mark_requests()
    run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)

    resolved = derived(data_dir, "trek")
    assert resolved["titles"] == STAR_TREK_ARTICLES
    assert set(resolved["categories"]) == STAR_TREK_CATEGORIES
    assert resolved["counts"]["pages"] == 27
    assert resolved["counts"]["redirects_resolved"] == 1  # Mr. Spock -> Spock
    assert resolved["counts"]["duplicates_removed"] >= 2  # Spock again, Vulcan (planet) twice

    folder = raw_folder(data_dir, startrek_wiki)
    written = files(folder, ".mediawiki")
    assert sorted(written) == sorted(f"{title_to_stem(t)}.mediawiki" for t in STAR_TREK_ARTICLES)
    fetched = revisions(folder)
    for title in STAR_TREK_ARTICLES:
        assert written[f"{title_to_stem(title)}.mediawiki"].decode("utf-8") == startrek_wiki.page_text(title)
        assert fetched[title]["revision_id"] > 0 and fetched[title]["timestamp"].startswith("20")

    # 27 titles need one content request: the API takes 50 titles at a time.
    content_requests = [r for r in startrek_wiki.api_requests() if r.params.get("prop") == "revisions"]
    assert len(content_requests) == 1 and len(content_requests[0].titles) == 27


def test_workers_8_give_the_same_files(tmp_path, startrek_wiki):
    one = make_data_dir(tmp_path / "one", {"trek": trek_manifest(startrek_wiki)})
    eight = make_data_dir(tmp_path / "eight", {"trek": trek_manifest(startrek_wiki)}, config=(
        "[fetch]\nchunk_size = 5\n[http]\nretries = 1\n"))
    run_luigi(one, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    result = run_luigi(eight, "Scrape", "--manifest", "trek", "--local-scheduler", "--workers", "8",
                       check_returncode=0)
    assert "FetchPages" in result.stderr
    assert derived(eight, "trek")["titles"] == derived(one, "trek")["titles"]
    assert files(raw_folder(eight, startrek_wiki), ".mediawiki") == files(raw_folder(one, startrek_wiki), ".mediawiki")


def test_deleted_raw_pages_come_back_from_the_cache_with_the_wiki_down(tmp_path, startrek_wiki):
    data_dir = make_data_dir(tmp_path, {"trek": trek_manifest(startrek_wiki)})
    run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    folder = raw_folder(data_dir, startrek_wiki)
    before = files(folder, ".mediawiki")
    shutil.rmtree(data_dir / "raw")
    startrek_wiki.stop_server()  # the wiki is down; its data stays
    try:
        run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    finally:
        startrek_wiki.start()
    assert files(folder, ".mediawiki") == before


def test_deleting_one_page_refetches_that_page_only(tmp_path, startrek_wiki):
    data_dir = make_data_dir(tmp_path, {"trek": trek_manifest(startrek_wiki)}, config="[http]\ncache = false\n")
    run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    (raw_folder(data_dir, startrek_wiki) / "Worf.mediawiki").unlink()
    startrek_wiki.mark_requests()
    run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    assert startrek_wiki.requested_titles() == ["Worf"]
    assert (raw_folder(data_dir, startrek_wiki) / "Worf.mediawiki").read_text() == startrek_wiki.page_text("Worf")


def test_max_depth_exclusions_and_single_pages(tmp_path, startrek_wiki):
    data_dir = make_data_dir(tmp_path, {
        "top": trek_manifest(startrek_wiki, max_depth=0, exclude_pages=["Starfleet"], include_pages=["Kirk", "Worf"]),
        "no_ships": trek_manifest(startrek_wiki, exclude_categories=["Category:Starships"]),
    })
    for name in ("top", "no_ships"):
        run_luigi(data_dir, "DeriveManifest", "--manifest", name, "--local-scheduler", check_returncode=0)
    # Depth 0: the root's own members (Mr. Spock is a redirect to Spock), Kirk one to James T. Kirk.
    assert derived(data_dir, "top")["titles"] == sorted(
        ["Star Trek", "United Federation of Planets", "Warp drive", "Spock", "James T. Kirk", "Worf"])
    no_ships = derived(data_dir, "no_ships")
    assert no_ships["titles"] == [t for t in STAR_TREK_ARTICLES if not t.startswith("USS ")]
    assert "Category:Federation starships" not in no_ships["categories"]


def test_real_wikipedia_pages_and_their_redirects(tmp_path, enwiki_wiki):
    some = enwiki_wiki.page_titles(namespace=0)[:40]
    data_dir = make_data_dir(tmp_path, {"enwiki": {"api": enwiki_wiki.api_url, "include_pages": some}})
    run_luigi(data_dir, "Scrape", "--manifest", "enwiki", "--local-scheduler", check_returncode=0)
    resolved = derived(data_dir, "enwiki")["titles"]
    # Redirects resolved, redirects to pages outside the excerpt left out, nothing else lost.
    answers = [enwiki_wiki.api(titles=t, redirects=1)["query"]["pages"][0] for t in some]
    assert resolved == sorted({page["title"] for page in answers if "missing" not in page})
    folder = data_dir / "raw" / "mediawiki" / f"127.0.0.1:{enwiki_wiki.port}"
    for title in resolved:
        assert (folder / f"{title_to_stem(title)}.mediawiki").read_text(encoding="utf-8") == enwiki_wiki.page_text(title)


def test_awkward_titles_are_all_kept(tmp_path, local_mediawiki_factory):
    # The demo wiki served by a real MediaWiki: titles with '/', '&', Norwegian and Greek letters.
    wiki = local_mediawiki_factory(DEMO_DUMP)
    data_dir = make_data_dir(tmp_path, {"myrling": {"api": wiki.api_url, "include_categories": ["Myrling Isles"]}})
    run_luigi(data_dir, "Scrape", "--manifest", "myrling", "--local-scheduler", check_returncode=0)
    titles = derived(data_dir, "myrling")["titles"]
    assert {"Ferry timetable/Winter", "Salt & Tar Inn", "Ørnvåg", "Αλκυόνη"} <= set(titles)
    folder = data_dir / "raw" / "mediawiki" / f"127.0.0.1:{wiki.port}"
    assert (folder / "Ferry timetable%2FWinter.mediawiki").read_text() == wiki.page_text("Ferry timetable/Winter")
    assert len(files(folder, ".mediawiki")) == len(titles) == len(wiki.page_titles(namespace=0)) - 4  # no redirects, no Main Page


# Bad input: one clear message, a non-zero exit, nothing fetched before is lost.

def test_unknown_manifest_lists_the_known_ones(tmp_path):
    data_dir = make_data_dir(tmp_path, {"mine": "api: http://127.0.0.1:9/api.php\ninclude_pages: [A]\n"})
    result = run_luigi(data_dir, "Scrape", "--manifest", "startrak", "--local-scheduler")
    assert result.returncode != 0
    assert "No manifest named 'startrak'" in result.stderr
    assert "mine" in result.stderr and "startrek" in result.stderr


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    data_dir = make_data_dir(tmp_path, {"broken": "api: http://127.0.0.1:9/api.php\ninclude_pages: [A, B\n"})
    result = run_luigi(data_dir, "Scrape", "--manifest", "broken", "--local-scheduler")
    assert result.returncode != 0
    assert "broken.yaml: line 3" in result.stderr and "not valid YAML" in result.stderr


def test_unknown_key_is_named(tmp_path):
    data_dir = make_data_dir(tmp_path, {"typo": "api: http://127.0.0.1:9/api.php\ninclude_page: [A]\n"})
    result = run_luigi(data_dir, "Scrape", "--manifest", "typo", "--local-scheduler")
    assert result.returncode != 0
    assert "typo.yaml: unknown key 'include_page'" in result.stderr


def test_an_api_that_does_not_answer(tmp_path, startrek_wiki):
    data_dir = make_data_dir(tmp_path, {"down": {"api": "http://127.0.0.1:9/api.php", "include_pages": ["Spock"]}})
    result = run_luigi(data_dir, "Scrape", "--manifest", "down", "--local-scheduler")
    assert result.returncode != 0
    assert "http://127.0.0.1:9/api.php does not answer" in result.stderr


def test_an_api_url_that_answers_html(tmp_path, startrek_wiki):
    html_url = startrek_wiki.api_url.replace("api.php", "index.php")
    data_dir = make_data_dir(tmp_path, {"html": {"api": html_url, "include_pages": ["Spock"]}})
    result = run_luigi(data_dir, "Scrape", "--manifest", "html", "--local-scheduler")
    assert result.returncode != 0
    assert f"{html_url} answered text/html (HTTP 404), not the MediaWiki API's JSON" in result.stderr


def test_a_missing_category_warns_and_the_rest_goes_on(tmp_path, startrek_wiki):
    data_dir = make_data_dir(tmp_path, {"trek": {"api": startrek_wiki.api_url,
                                                 "include_categories": ["Category:Klingons", "Category:Romulans"]}})
    result = run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    assert "Category:Romulans has no pages or subcategories" in result.stderr
    assert derived(data_dir, "trek")["titles"] == ["Kahless the Unforgettable", "Worf"]


def test_a_manifest_that_resolves_to_no_pages(tmp_path, startrek_wiki):
    data_dir = make_data_dir(tmp_path, {"none": {"api": startrek_wiki.api_url,
                                                 "include_categories": ["Category:Romulans"]}})
    result = run_luigi(data_dir, "Scrape", "--manifest", "none", "--local-scheduler")
    assert result.returncode != 0
    assert "none.yaml: the manifest resolves to no pages" in result.stderr


def test_a_failing_run_keeps_what_was_fetched(tmp_path, startrek_wiki):
    data_dir = make_data_dir(tmp_path, {"trek": trek_manifest(startrek_wiki)})
    run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    folder = raw_folder(data_dir, startrek_wiki)
    before = files(folder, ".mediawiki")
    # The wiki moves away and the manifest is broken: runs fail, the pages stay as they were.
    (data_dir / "manifests" / "originals" / "trek.yaml").write_text(
        "api: http://127.0.0.1:9/api.php\ninclude_categories: [Category:Star Trek]\n")
    shutil.rmtree(data_dir / "manifests" / "derived")
    assert run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler").returncode != 0
    (data_dir / "manifests" / "originals" / "trek.yaml").write_text("api: [\n")
    assert run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler").returncode != 0
    assert files(folder, ".mediawiki") == before


def test_editing_the_manifest_derives_it_again(tmp_path, startrek_wiki):
    data_dir = make_data_dir(tmp_path, {"trek": {"api": startrek_wiki.api_url, "include_categories": ["Klingons"]}})
    run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    assert derived(data_dir, "trek")["titles"] == ["Kahless the Unforgettable", "Worf"]
    make_data_dir(data_dir, {"trek": {"api": startrek_wiki.api_url, "include_categories": ["Klingons", "Vulcans"]}})
    run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    titles = derived(data_dir, "trek")["titles"]
    assert "Spock" in titles and "Worf" in titles
    assert (raw_folder(data_dir, startrek_wiki) / "Spock.mediawiki").exists()


# Retrying a page that failed.

def test_fetch_page_retries_a_page_that_failed(tmp_path, local_mediawiki_factory):
    wiki = local_mediawiki_factory(DEMO_DUMP)
    data_dir = make_data_dir(tmp_path, {"isles": {"api": wiki.api_url, "include_pages": ["Ørnvåg"]}},
                             config="[http]\ncache = false\nretries = 0\n")
    folder = data_dir / "raw" / "mediawiki" / f"127.0.0.1:{wiki.port}"
    first = run_luigi(data_dir, "FetchPage", "--manifest", "isles", "--title", "Late page", "--local-scheduler")
    assert first.returncode != 0 and "'Late page' could not be fetched: the page does not exist" in first.stderr
    assert (folder / ".failed" / "Late page.json").exists()

    wiki.edit_page("Late page", "The page written after the first try.")
    run_luigi(data_dir, "FetchPage", "--manifest", "isles", "--title", "Late page", "--local-scheduler",
              check_returncode=0)
    assert (folder / "Late page.mediawiki").read_text(encoding="utf-8") == wiki.page_text("Late page")
    assert not (folder / ".failed" / "Late page.json").exists()
    run_luigi(data_dir, "ProcessPage", "--manifest", "isles", "--title", "Late page", "--local-scheduler",
              check_returncode=0)
    processed = data_dir / "processed" / "mediawiki" / f"127.0.0.1:{wiki.port}"
    assert "written after the first try" in (processed / "Late page.md").read_text(encoding="utf-8")


def test_a_page_fetched_again_loses_its_stale_convert_failure(tmp_path, local_mediawiki_factory):
    wiki = local_mediawiki_factory(DEMO_DUMP)
    wiki.edit_page("Template only", "{{Infobox island\n| name = Nothing here\n}}")
    data_dir = make_data_dir(tmp_path, {"isles": {"api": wiki.api_url, "include_pages": ["Ørnvåg", "Template only"]}},
                             config="[http]\ncache = false\n")
    assert run_luigi(data_dir, "Wikipedia", "--manifest", "isles", "--local-scheduler").returncode != 0
    processed = data_dir / "processed" / "mediawiki" / f"127.0.0.1:{wiki.port}"
    assert (processed / ".failed" / "Template only.json").exists()

    # The page is fixed on the wiki; deleting its raw file fetches it again, and it is converted again.
    wiki.edit_page("Template only", "Now a sentence about the isles.")
    (data_dir / "raw" / "mediawiki" / f"127.0.0.1:{wiki.port}" / "Template only.mediawiki").unlink()
    run_luigi(data_dir, "Wikipedia", "--manifest", "isles", "--local-scheduler", check_returncode=0)
    assert "a sentence about the isles" in (processed / "Template only.md").read_text(encoding="utf-8")
    assert not list((processed / ".failed").glob("*.json"))


# A multistream index that arrives, or goes, after the manifest was derived.

def test_a_multistream_index_that_arrives_or_goes_later_derives_the_manifest_again(tmp_path):
    from tests.support import synthetic_wiki
    wiki = synthetic_wiki.write_multistream(tmp_path / "dumps", 250, paragraphs=1)
    data_dir = make_data_dir(tmp_path / "data", {"synth": {"dump": str(wiki.dump), "all_pages": True}},
                             config="[fetch]\nchunk_size = 100\n")
    aside = wiki.index.with_name("index-aside.txt.bz2")
    wiki.index.rename(aside)                             # derived while the index is not there yet
    run_luigi(data_dir, "DeriveManifest", "--manifest", "synth", "--local-scheduler", check_returncode=0)
    assert "index" not in derived(data_dir, "synth")["source"]
    raw = data_dir / "raw" / "mediawiki" / "synthetic.example.invalid"
    # What an earlier wikiluigi left when the index arrived here: pages failed as "not in the dump".
    (raw / ".failed").mkdir(parents=True)
    for title in wiki.articles[:3]:
        (raw / ".failed" / f"{title_to_stem(title)}.json").write_text(json.dumps(
            {"title": title, "stage": "fetch", "reason": f"the page is not in {wiki.dump.name}"}))
    aside.rename(wiki.index)                             # then it arrives
    run_luigi(data_dir, "Scrape", "--manifest", "synth", "--local-scheduler", check_returncode=0)
    assert derived(data_dir, "synth")["source"]["index"] == str(wiki.index)
    assert len(files(raw, ".mediawiki")) == 250 and not list((raw / ".failed").iterdir())

    wiki.index.rename(aside)                             # and goes again: derived anew, the split read once
    (raw / f"{title_to_stem(wiki.articles[7])}.mediawiki").unlink()
    run_luigi(data_dir, "Scrape", "--manifest", "synth", "--local-scheduler", check_returncode=0)
    assert "index" not in derived(data_dir, "synth")["source"]
    assert (data_dir / ".cache" / "dump-chunks" / "synth" / "split.json").exists()
    assert len(files(raw, ".mediawiki")) == 250 and not list((raw / ".failed").iterdir())


def test_an_empty_page_is_a_failure_with_its_reason_not_an_empty_file(tmp_path):
    from tests.sources.test_dump import export, page
    dump = tmp_path / "isles.xml"
    dump.write_text(export([page("Blank", (1, "2024-01-01T00:00:00Z", ""), page_id=1),
                            page("Full", (2, "2024-01-01T00:00:00Z", "Some text."), page_id=2)]), encoding="utf-8")
    data_dir = make_data_dir(tmp_path / "data", {"isles": {"dump": str(dump), "include_pages": ["Blank", "Full"]}})
    result = run_luigi(data_dir, "Scrape", "--manifest", "isles", "--local-scheduler")
    raw = data_dir / "raw" / "mediawiki" / "inseln.example"
    assert result.returncode != 0 and "pages were not written" not in result.stderr
    assert sorted(p.name for p in raw.glob("*.mediawiki")) == ["Full.mediawiki"]
    record = json.loads((raw / ".failed" / "Blank.json").read_text(encoding="utf-8"))
    assert record["reason"] == "the page is empty on the wiki"


def test_a_page_emptied_by_a_power_cut_is_fetched_again(tmp_path):
    from tests.sources.test_dump import export, page
    dump = tmp_path / "isles.xml"
    dump.write_text(export([page("Full", (2, "2024-01-01T00:00:00Z", "Some text."), page_id=2)]), encoding="utf-8")
    data_dir = make_data_dir(tmp_path / "data", {"isles": {"dump": str(dump), "include_pages": ["Full"]}})
    run_luigi(data_dir, "Scrape", "--manifest", "isles", "--local-scheduler", check_returncode=0)
    raw_page = data_dir / "raw" / "mediawiki" / "inseln.example" / "Full.mediawiki"
    for task in ("Scrape", "FetchPage"):
        raw_page.write_bytes(b"")            # renamed into place, its data lost: an empty file
        run_luigi(data_dir, task, "--manifest", "isles", *(["--title", "Full"] if task == "FetchPage" else []),
                  "--local-scheduler", check_returncode=0)
        assert raw_page.read_text(encoding="utf-8") == "Some text.", task


def test_a_compressed_dump_is_decompressed_once_derive_s_pass_feeds_the_split(tmp_path):
    """An all_pages manifest of a .bz2 dump: DeriveManifest keeps the pages it reads in a spool, SplitDump cuts
    the chunks from it (the dump is not read again) and removes it; the pages are the dump's, byte for byte."""
    import gzip
    from tests.support import synthetic_wiki
    wiki = synthetic_wiki.write_plain(tmp_path / "dumps" / "synth.xml.bz2", 120, paragraphs=1)
    data_dir = make_data_dir(tmp_path / "data", {"synth": {"dump": str(wiki.dump), "all_pages": True}},
                             config="[fetch]\nchunk_size = 50\n")
    chunks = data_dir / ".cache" / "dump-chunks" / "synth"
    run_luigi(data_dir, "DeriveManifest", "--manifest", "synth", "--local-scheduler", check_returncode=0)
    assert sorted(p.name for p in chunks.iterdir()) == ["spool.json", "spool.jsonl.gz"]
    # One page marked in the spool: its raw file then shows where the split read it.
    spool = chunks / "spool.jsonl.gz"
    lines = gzip.decompress(spool.read_bytes()).splitlines(keepends=True)
    marked = json.loads(lines[0])
    lines[0] = json.dumps({**marked, "text": "Read from the spool."}).encode() + b"\n"
    spool.write_bytes(gzip.compress(b"".join(lines)))
    record = json.loads((chunks / "spool.json").read_text())
    (chunks / "spool.json").write_text(json.dumps({**record, "size": spool.stat().st_size}))
    run_luigi(data_dir, "Scrape", "--manifest", "synth", "--local-scheduler", check_returncode=0)
    assert sorted(p.name for p in chunks.iterdir()) == ["chunk-00000.jsonl.gz", "chunk-00001.jsonl.gz",
                                                      "chunk-00002.jsonl.gz", "split.json"]
    raw = data_dir / "raw" / "mediawiki" / "synthetic.example.invalid"
    written = {title: text for title, ns, page_id, text, redirect in synthetic_wiki.iter_pages(120, paragraphs=1)}
    written[marked["title"]] = "Read from the spool."
    assert {name: (raw / name).read_text(encoding="utf-8") for name in files(raw, ".mediawiki")} == \
        {f"{title_to_stem(t)}.mediawiki": written[t] for t in wiki.articles}
