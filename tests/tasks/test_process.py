"""The convert stage through the real `luigi` command: Wikipedia, ProcessPage, dumps as a source."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.luigi_cli import derived, files, make_data_dir, run_luigi
from tests.support.wiki_fixtures import STARTREK_DUMP
from tests.tasks.test_scrape import STAR_TREK_ARTICLES
from wikiluigi.paths import title_to_stem

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ["{{", "}}", "<ref", "[[", "Category:", "thumb|", "<div", "<span", "<br", "<a ", "[^"]


def processed_folder(data_dir: Path, host: str) -> Path:
    return data_dir / "processed" / "mediawiki" / host


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.md")}


def test_wikipedia_converts_every_page_of_the_api(tmp_path, startrek_wiki):
    data_dir = make_data_dir(tmp_path, {"trek": {"api": startrek_wiki.api_url, "include_categories": ["Star Trek"]}})
    result = run_luigi(data_dir, "Wikipedia", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    assert "pages listed    27" in result.stdout and "converted       27" in result.stdout

    folder = processed_folder(data_dir, f"127.0.0.1:{startrek_wiki.port}")
    markdown = {name: text.decode() for name, text in files(folder, ".md").items()}
    assert sorted(markdown) == sorted(f"{title_to_stem(t)}.md" for t in STAR_TREK_ARTICLES)
    for name, text in markdown.items():
        assert text.startswith(f"# {name[:-3]}\n"), name
        for forbidden in FORBIDDEN:
            assert forbidden not in text, (name, forbidden)
    spock = markdown["Spock.md"]
    assert "Vulcan" in spock and "## " in spock
    assert "## References" not in spock and "## External links" not in spock
    # Redirects (Kirk, Mr. Spock, ...) never become documents.
    assert not (folder / "Kirk.md").exists() and not (folder / "Mr. Spock.md").exists()
    assert (data_dir / "out" / "reports" / "trek.txt").read_text().startswith("wikiluigi summary")


def test_process_page_redoes_one_page_and_touches_no_other(tmp_path, startrek_wiki):
    data_dir = make_data_dir(tmp_path, {"trek": {"api": startrek_wiki.api_url, "include_categories": ["Star Trek"]}})
    run_luigi(data_dir, "Wikipedia", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    host = f"127.0.0.1:{startrek_wiki.port}"
    folder = processed_folder(data_dir, host)
    before = mtimes(folder)
    spock_before = (folder / "Spock.md").read_text()
    (folder / "Spock.md").unlink()
    (data_dir / "raw" / "mediawiki" / host / "Spock.mediawiki").unlink()  # raw gone too: fetched again
    time.sleep(0.05)

    run_luigi(data_dir, "ProcessPage", "--manifest", "trek", "--title", "Spock", "--local-scheduler",
              check_returncode=0)
    after = mtimes(folder)
    assert (folder / "Spock.md").read_text() == spock_before
    assert after.pop("Spock.md") > before.pop("Spock.md")
    assert after == before  # no other file was rewritten
    assert (data_dir / "raw" / "mediawiki" / host / "Spock.mediawiki").read_text() == startrek_wiki.page_text("Spock")


def test_a_dump_gives_the_same_markdown_as_the_api(tmp_path, startrek_wiki):
    data_dir = make_data_dir(tmp_path, {
        "from_api": {"api": startrek_wiki.api_url, "include_categories": ["Star Trek"]},
        "from_dump": {"dump": str(STARTREK_DUMP), "include_categories": ["Star Trek"], "host": "startrek-dump"},
    })
    for name in ("from_api", "from_dump"):
        run_luigi(data_dir, "Wikipedia", "--manifest", name, "--local-scheduler", check_returncode=0)
    assert derived(data_dir, "from_dump")["titles"] == derived(data_dir, "from_api")["titles"]
    from_dump = files(processed_folder(data_dir, "startrek-dump"), ".md")
    assert from_dump == files(processed_folder(data_dir, f"127.0.0.1:{startrek_wiki.port}"), ".md")
    assert len(from_dump) == 27


DUMP = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="en">
  <siteinfo><sitename>Tiny</sitename><base>https://tiny.example.invalid/wiki/Main_Page</base>
    <namespaces><namespace key="0" case="first-letter" /><namespace key="14" case="first-letter">Category</namespace></namespaces>
  </siteinfo>
{pages}
</mediawiki>
"""
PAGE = """  <page><title>{title}</title><ns>0</ns><id>{id}</id><revision><id>{id}</id>
    <timestamp>2024-01-01T00:00:00Z</timestamp><text xml:space="preserve">{text}</text></revision></page>"""


def write_dump(path: Path, pages: dict[str, str]) -> Path:
    body = "\n".join(PAGE.format(title=t, id=i, text=text) for i, (t, text) in enumerate(pages.items(), start=1))
    path.write_text(DUMP.format(pages=body), encoding="utf-8")
    return path


def test_a_page_that_cannot_be_converted_is_reported_and_the_rest_goes_on(tmp_path):
    dump = write_dump(tmp_path / "tiny.xml", {
        "Good page": "A '''good''' page about boats.\n\n== Hulls ==\nClinker built.\n[[Category:Tiny]]",
        "Only a template": "{{Stub}}\n[[Category:Tiny]]",
        "Another good page": "Sails and oars.\n[[Category:Tiny]]",
    })
    data_dir = make_data_dir(tmp_path / "data", {"tiny": {"dump": str(dump), "include_categories": ["Tiny"]}})
    result = run_luigi(data_dir, "Wikipedia", "--manifest", "tiny", "--local-scheduler")
    assert result.returncode != 0
    assert "failed          1" in result.stdout
    assert "Only a template (convert): empty after filtering" in result.stdout
    failures = (data_dir / "out" / "reports" / "tiny.failures.tsv").read_text().splitlines()
    assert failures == ["title\tstage\treason", "Only a template\tconvert\tempty after filtering"]
    folder = processed_folder(data_dir, "tiny.example.invalid")
    assert sorted(files(folder, ".md")) == ["Another good page.md", "Good page.md"]
    assert "Clinker built." in (folder / "Good page.md").read_text()

    # Run again: still a failure exit, the good pages untouched.
    before = mtimes(folder)
    assert run_luigi(data_dir, "Wikipedia", "--manifest", "tiny", "--local-scheduler").returncode != 0
    assert mtimes(folder) == before


def test_a_killed_run_leaves_whole_files_and_a_rerun_finishes(tmp_path):
    pages = {f"Page {i}": f"Text {i}.\n[[Category:Tiny]]" for i in range(1500)}
    dump = write_dump(tmp_path / "tiny.xml", pages)
    data_dir = make_data_dir(tmp_path / "data", {"tiny": {"dump": str(dump), "include_categories": ["Tiny"]}},
                             config="[fetch]\nchunk_size = 50\n")
    folder = processed_folder(data_dir, "tiny.example.invalid")
    command = [str(Path(sys.executable).with_name("luigi")), "--module", "wikiluigi", "Wikipedia",
               "--manifest", "tiny", "--local-scheduler"]
    run = subprocess.Popen(command, cwd=data_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(folder.glob("*.md"))) < 100:
            time.sleep(0.05)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the process group this test started, and only it
        run.wait()
    written = list(folder.glob("*.md"))
    assert 100 <= len(written) < 1500, "the run should have been killed half-way"
    for path in written:
        assert path.read_text() == f"# {path.stem}\n\nText {path.stem[5:]}.\n"

    run_luigi(data_dir, "Wikipedia", "--manifest", "tiny", "--local-scheduler", check_returncode=0)
    for i in range(1500):
        assert (folder / f"Page {i}.md").read_text() == f"# Page {i}\n\nText {i}.\n"


def test_changed_conversion_options_convert_the_pages_again(tmp_path):
    """Markdown follows the manifest's conversion options: keep_tables, drop_sections or template_rules
    changed, the next run converts the pages again, into a folder of those options, the default folder's
    pages kept; unchanged, or changed back, it touches nothing."""
    dump = write_dump(tmp_path / "tiny.xml", {
        "Boat": "A boat {{Size|big}}.\n\n{|\n| Length || 9 m\n|}\n\n== Trivia ==\nIt floats.\n[[Category:Tiny]]",
        "Oar": "An oar.\n\n== Trivia ==\nIt rows.\n[[Category:Tiny]]",
    })
    manifest = {"dump": str(dump), "include_categories": ["Tiny"]}
    data_dir = make_data_dir(tmp_path / "data", {"tiny": manifest})
    folder = processed_folder(data_dir, "tiny.example.invalid")
    run_luigi(data_dir, "Wikipedia", "--manifest", "tiny", "--local-scheduler", check_returncode=0)
    assert (folder / "Boat.md").read_text() == "# Boat\n\nA boat.\n\n## Trivia\n\nIt floats.\n"
    before = mtimes(folder)
    time.sleep(0.05)
    run_luigi(data_dir, "Wikipedia", "--manifest", "tiny", "--local-scheduler", check_returncode=0)
    assert mtimes(folder) == before  # same options: nothing converted again

    changed = {**manifest, "keep_tables": True, "drop_sections": ["Trivia"], "template_rules": {"Size": "{1}"}}
    make_data_dir(tmp_path / "data", {"tiny": changed})
    run_luigi(data_dir, "Wikipedia", "--manifest", "tiny", "--local-scheduler", check_returncode=0)
    [other] = folder.parent.glob("tiny.example.invalid~*")
    boat = (other / "Boat.md").read_text()
    assert boat.startswith("# Boat\n\nA boat big.\n\n") and "| Length | 9 m |" in boat and "Trivia" not in boat
    assert (other / "Oar.md").read_text() == "# Oar\n\nAn oar.\n"
    assert mtimes(folder) == before  # the default options' pages kept
    recorded = json.loads((other / ".options.json").read_text())["options"]
    assert recorded["keep_tables"] is True and recorded["drop_sections"][-1] == "Trivia"

    make_data_dir(tmp_path / "data", {"tiny": manifest})  # back to the defaults: their pages are there
    run_luigi(data_dir, "Wikipedia", "--manifest", "tiny", "--local-scheduler", check_returncode=0)
    assert mtimes(folder) == before


def test_two_manifests_with_other_options_on_one_wiki_keep_their_pages(tmp_path):
    """Two manifests of one wiki (one folder in raw/) that differ in drop_sections, converted one after the
    other: neither deletes the other's pages, ProcessPage of one wipes nothing of the other's, and the
    training set of both has every page, each as its manifest's options made it."""
    dump = write_dump(tmp_path / "tiny.xml", {
        f"{name} {i}": f"About {name.lower()} {i}.\n\n== Trivia ==\nFact {i}.\n\n== History ==\nOld {i}.\n"
                       f"[[Category:{name}s]]"
        for name in ("Boat", "Oar") for i in range(3)})
    data_dir = make_data_dir(tmp_path / "data", {
        "boats": {"dump": str(dump), "include_categories": ["Boats"], "drop_sections": ["Trivia"]},
        "oars": {"dump": str(dump), "include_categories": ["Oars"], "drop_sections": ["History"]},
    })
    run_luigi(data_dir, "Wikipedia", "--manifest", "boats", "--local-scheduler", check_returncode=0)
    run_luigi(data_dir, "Wikipedia", "--manifest", "oars", "--local-scheduler", check_returncode=0)
    folders = sorted(p for p in processed_folder(data_dir, "tiny.example.invalid").parent.iterdir() if p.is_dir())
    pages = {path.name: path.read_text() for folder in folders for path in folder.glob("*.md")}
    assert len(folders) == 2 and len(pages) == 6
    assert pages["Boat 1.md"] == "# Boat 1\n\nAbout boat 1.\n\n## History\n\nOld 1.\n"
    assert pages["Oar 2.md"] == "# Oar 2\n\nAbout oar 2.\n\n## Trivia\n\nFact 2.\n"
    before = {folder.name: mtimes(folder) for folder in folders}
    status = subprocess.run([sys.executable, "-m", "wikiluigi.cli", "status", "--manifest", "oars"], cwd=data_dir,
                            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    [oars_folder] = [folder for folder in folders if (folder / "Oar 0.md").exists()]
    assert f"pages in {oars_folder})" in status.stdout and "processed  3" in status.stdout

    run_luigi(data_dir, "ProcessPage", "--manifest", "oars", "--title", "Boat 0", "--local-scheduler",
              check_returncode=0)  # a page of the other manifest, with this one's options
    after = {folder.name: mtimes(folder) for folder in folders}
    assert {name: len(found) for name, found in after.items()} == {folder.name: len(before[folder.name]) + (
        "Boat 0.md" not in before[folder.name]) for folder in folders}
    for name, found in before.items():
        assert {page: after[name][page] for page in found} == found  # nothing converted again, nothing gone

    run_luigi(data_dir, "TrainingSet", "--manifests", '["boats", "oars"]', "--local-scheduler",
              check_returncode=0)
    corpus = data_dir / "out" / "trainingset" / "boats+oars"
    records = [json.loads(line) for name in ("train.jsonl", "validation.jsonl")
               for line in (corpus / name).read_text().splitlines()]
    texts = {record["title"]: record["text"] for record in records}
    assert sorted(texts) == [f"{name} {i}" for name in ("Boat", "Oar") for i in range(3)]
    assert "Old 1." in texts["Boat 1"] and "Fact 1." not in texts["Boat 1"]
    assert "Fact 2." in texts["Oar 2"] and "Old 2." not in texts["Oar 2"]


def test_the_summary_counts_the_pages_each_engine_wrote_and_why_pandoc_got_them(tmp_path):
    """A kept table is pandoc's (the fast path leaves it): the summary says how many pages each engine
    wrote, why pandoc got its pages, with examples; a page converted again is counted once."""
    table = "A {title}.\n\n{{|\n| Length || 9 m\n|}}\n[[Category:Tiny]]"
    dump = write_dump(tmp_path / "tiny.xml", {
        "Oar": "An oar.\n\n== Use ==\nIt rows.\n[[Category:Tiny]]",
        "Boat": table.format(title="boat"),
        "Raft": table.format(title="raft"),
    })
    data_dir = make_data_dir(tmp_path / "data", {"tiny": {"dump": str(dump), "include_categories": ["Tiny"],
                                                          "keep_tables": True}})
    result = run_luigi(data_dir, "Wikipedia", "--manifest", "tiny", "--local-scheduler", check_returncode=0)
    expected = ["  engines         converted 3 pages: 1 by the fast path, 2 by pandoc (2 a table)",
                "    by pandoc, a table: 2 (e.g. 'Boat', 'Raft')"]
    report = (data_dir / "out" / "reports" / "tiny.txt").read_text().splitlines()
    for line in expected:
        assert line in result.stdout.splitlines() and line in report, (line, report)
    [folder] = (data_dir / "processed" / "mediawiki").glob("tiny.example.invalid~*")
    assert "| Length | 9 m |" in (folder / "Raft.md").read_text()

    (folder / "Raft.md").unlink()  # converted again by the next run: still one page, by pandoc
    result = run_luigi(data_dir, "Wikipedia", "--manifest", "tiny", "--local-scheduler", check_returncode=0)
    assert expected[0] in result.stdout.splitlines() and expected[1] in result.stdout.splitlines()
    assert (folder / "Raft.md").is_file()
