"""Refresh through the real `luigi` command against a private MediaWiki changed as editors change it."""
import json
import shutil
import time
from pathlib import Path

import pytest

from tests.support.luigi_cli import derived, files, make_data_dir, revisions, run_luigi
from wikiluigi.paths import title_to_stem

pytestmark = pytest.mark.slow


def raw_folder(data_dir: Path, wiki) -> Path:
    return data_dir / "raw" / "mediawiki" / f"127.0.0.1:{wiki.port}"


def processed_folder(data_dir: Path, wiki) -> Path:
    return data_dir / "processed" / "mediawiki" / f"127.0.0.1:{wiki.port}"


def snapshot(*folders: Path) -> dict[str, int]:
    """Every page file's modification time (ns): a file rewritten shows a new one."""
    return {str(p): p.stat().st_mtime_ns for folder in folders for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix in (".mediawiki", ".md", ".json", ".yaml", ".txt")}


def served(wiki, expected: int) -> list:
    """The requests the wiki logged since the mark, once `expected` are in: under load php -S may log the
    last one a moment after its answer went out."""
    deadline = time.monotonic() + 10
    while len(requests := wiki.api_requests()) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return requests


def edit_as_editors_do(wiki) -> None:
    wiki.edit_page("Spock", "Spock later served as an ambassador.\n\n" + wiki.page_text("Spock"))
    wiki.edit_page("Zefram Cochrane", "'''Zefram Cochrane''' invented the [[warp drive]].\n\n[[Category:Humans]]")
    wiki._maint("deleteBatch.php", "-u", "Admin", "-r", "test", stdin=b"Worf\n")
    wiki._maint("moveBatch.php", "-u", "Admin", "-r", "test", stdin="Tuvok|Tuvok (Vulcan)\n".encode())
    wiki._maint("runJobs.php")


def test_refresh_follows_edits_new_pages_deletions_and_moves(tmp_path, local_mediawiki_factory):
    wiki = local_mediawiki_factory()
    data_dir = make_data_dir(tmp_path, {"trek": {"api": wiki.api_url, "include_categories": ["Category:Star Trek"]}})
    run_luigi(data_dir, "Wikipedia", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    raw, processed = raw_folder(data_dir, wiki), processed_folder(data_dir, wiki)
    before = snapshot(raw, processed)
    listed, original = derived(data_dir, "trek")["titles"], revisions(raw)
    edit_as_editors_do(wiki)

    # The wiki down: the listing fails, the task names the wiki, nothing is touched.
    wiki.stop_server()
    failed = run_luigi(data_dir, "Refresh", "--manifest", "trek", "--local-scheduler")
    assert failed.returncode != 0 and wiki.api_url in failed.stderr and "nothing was changed" in failed.stderr
    assert snapshot(raw, processed) == before
    wiki.start()

    wiki.mark_requests()
    run_luigi(data_dir, "Refresh", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    report = json.loads((data_dir / "out" / "reports" / "trek.refresh.json").read_text())
    assert (report["changed_titles"], report["new_titles"], report["gone_titles"]) == (
        ["Spock"], ["Tuvok (Vulcan)", "Zefram Cochrane"], ["Tuvok", "Worf"])
    assert (report["unchanged"], report["pages"], report["converted"]) == (24, 27, 3)
    requests = served(wiki, report["requests"])
    assert report["requests"] == len(requests) <= 16  # 9 categories, the clock, 1 resolve, 1 content
    assert not any(r.params.get("titles") for r in requests if r.params.get("prop") == "revisions")

    assert (raw / "Spock.mediawiki").read_text() == wiki.page_text("Spock")
    assert "ambassador" in (processed / "Spock.md").read_text()
    assert (raw / f"{title_to_stem('Tuvok (Vulcan)')}.mediawiki").read_text() == wiki.page_text("Tuvok (Vulcan)")
    assert "warp drive" in (processed / "Zefram Cochrane.md").read_text()
    for gone in ("Worf", "Tuvok"):
        assert not (raw / f"{gone}.mediawiki").exists() and not (processed / f"{gone}.md").exists()
        assert list((data_dir / "attic" / "trek").glob(f"*/raw/mediawiki/*/{gone}.mediawiki"))
    assert derived(data_dir, "trek")["titles"] == sorted(set(listed) - {"Tuvok", "Worf"} | {"Tuvok (Vulcan)",
                                                                                          "Zefram Cochrane"})
    assert revisions(raw)["Spock"]["revision_id"] > original["Spock"]["revision_id"]
    after = snapshot(raw, processed)
    untouched = [path for path in before if Path(path).stem not in ("Spock", "Worf", "Tuvok")]
    assert len(untouched) >= 2 * 24 and all(after.get(path) == before[path] for path in untouched)

    # Everything is there: Wikipedia asks the wiki for nothing and has nothing to do.
    wiki.mark_requests()
    done = run_luigi(data_dir, "Wikipedia", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    assert "complete ones were encountered" in done.stderr and "ran successfully" not in done.stderr
    assert wiki.api_requests() == []

    # Nothing changed: the listing alone, and nothing rewritten but the report.
    quiet = snapshot(raw, processed, data_dir / "manifests")
    wiki.mark_requests()
    run_luigi(data_dir, "Refresh", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    report = json.loads((data_dir / "out" / "reports" / "trek.refresh.json").read_text())
    assert (report["changed"], report["new"], report["gone"], report["unchanged"]) == (0, 0, 0, 27)
    assert not any(r.params.get("prop") == "revisions" for r in wiki.api_requests())
    assert snapshot(raw, processed, data_dir / "manifests") == quiet

    # A category emptied by a vandal: more than 10% would go, so nothing goes unless allowed.
    wiki._maint("deleteBatch.php", "-u", "Admin", "-r", "test",
                stdin=b"Sarek\nSurak\nT'Pol\nJames T. Kirk\nLeonard McCoy\n")
    refused = run_luigi(data_dir, "Refresh", "--manifest", "trek", "--local-scheduler")
    assert refused.returncode != 0 and "max_removed" in refused.stderr and "--allow-removal" in refused.stderr
    assert (raw / "Sarek.mediawiki").exists()
    run_luigi(data_dir, "Refresh", "--manifest", "trek", "--allow-removal", "--local-scheduler", check_returncode=0)
    assert not (raw / "Sarek.mediawiki").exists() and len(derived(data_dir, "trek")["titles"]) == 22

    status = run_luigi_status(data_dir)
    assert "last refreshed" in status


def run_luigi_status(data_dir: Path) -> str:
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "wikiluigi.cli", "status", "--manifest", "trek"], cwd=data_dir,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


MANIFESTS = {"whole": {"all_pages": True, "namespaces": [0, 14]},
             "trek": {"include_categories": ["Category:Star Trek"]}}


def test_refreshed_again_a_manifest_asks_the_recent_changes_and_ends_as_a_fresh_scrape(tmp_path,
                                                                                        local_mediawiki_factory):
    wiki = local_mediawiki_factory()
    folders = {name: make_data_dir(tmp_path / name, {name: {"api": wiki.api_url, **manifest}})
               for name, manifest in MANIFESTS.items()}
    for name, data_dir in folders.items():
        run_luigi(data_dir, "Scrape", "--manifest", name, "--local-scheduler", check_returncode=0)
        run_luigi(data_dir, "Refresh", "--manifest", name, "--local-scheduler", check_returncode=0)
    edit_as_editors_do(wiki)

    for name, data_dir in folders.items():
        wiki.mark_requests()
        run_luigi(data_dir, "Refresh", "--manifest", name, "--local-scheduler", check_returncode=0)
        report = json.loads((data_dir / "out" / "reports" / f"{name}.refresh.json").read_text())
        assert report["how"].startswith("recent changes since"), name
        assert (report["changed_titles"], report["new_titles"], report["gone_titles"]) == (
            ["Spock"], ["Tuvok (Vulcan)", "Zefram Cochrane"], ["Tuvok", "Worf"]), name
        # The clock, the recent changes, the state of the 6 pages they name, the 3 revisions.
        assert report["requests"] == len(served(wiki, 4)) == 4, name
        assert_as_a_fresh_scrape(tmp_path / f"fresh-{name}", wiki, name, data_dir)

    # A new subcategory: the walk is done again, and finds it.
    wiki.edit_page("Category:Andorians", "Blue. [[Category:Star Trek characters]]")
    wiki.edit_page("Shran", "'''Shran''' is an Andorian.\n\n[[Category:Andorians]]")
    wiki._maint("runJobs.php")
    run_luigi(folders["trek"], "Refresh", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    report = json.loads((folders["trek"] / "out" / "reports" / "trek.refresh.json").read_text())
    assert report["how"] == "the category walk" and report["new_titles"] == ["Shran"]
    assert_as_a_fresh_scrape(tmp_path / "fresh-again", wiki, "trek", folders["trek"])


def assert_as_a_fresh_scrape(folder: Path, wiki, name: str, data_dir: Path) -> None:
    fresh = make_data_dir(folder, {name: {"api": wiki.api_url, **MANIFESTS[name]}})
    run_luigi(fresh, "Scrape", "--manifest", name, "--local-scheduler", check_returncode=0)
    assert derived(data_dir, name)["titles"] == derived(fresh, name)["titles"]
    mine, theirs = raw_folder(data_dir, wiki), raw_folder(fresh, wiki)
    assert {p.name: p.read_bytes() for p in mine.glob("*.mediawiki")} == {
        p.name: p.read_bytes() for p in theirs.glob("*.mediawiki")}


def test_raw_deleted_after_a_refresh_comes_back_from_the_cache_as_refreshed(tmp_path, local_mediawiki_factory):
    wiki = local_mediawiki_factory()
    data_dir = make_data_dir(tmp_path, {"trek": {"api": wiki.api_url, "include_categories": ["Category:Star Trek"]}})
    raw = raw_folder(data_dir, wiki)
    run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    first_spock = (raw / "Spock.mediawiki").read_text()
    wiki.edit_page("Spock", "Spock later served as an ambassador.\n\n" + first_spock)
    run_luigi(data_dir, "Refresh", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    refreshed, refreshed_revisions = files(raw, ".mediawiki"), revisions(raw)
    assert refreshed["Spock.mediawiki"].decode() == wiki.page_text("Spock") != first_spock

    # raw/ deleted: every page comes back from the cache as the Refresh left it, Spock by the Refresh's own
    # request by revision id; the wiki is asked for nothing.
    shutil.rmtree(data_dir / "raw")
    wiki.mark_requests()
    run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    assert wiki.api_requests() == []
    assert files(raw, ".mediawiki") == refreshed
    assert revisions(raw)["Spock"]["revision_id"] == refreshed_revisions["Spock"]["revision_id"]

    # Without a Refresh nothing changes: an edit is not seen, deleting raw/ refetches from the cache.
    wiki.edit_page("Leonard McCoy", "'''Leonard McCoy''' is a country doctor.\n\n[[Category:Humans]]")
    shutil.rmtree(data_dir / "raw")
    wiki.mark_requests()
    run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    assert wiki.api_requests() == [] and files(raw, ".mediawiki") == refreshed

    # A new page shifts the batches: the one that holds it is asked for by title (the wiki's text now, the
    # edit of McCoy seen), nothing else; Spock is not asked for again by revision id.
    wiki.edit_page("Odo", "'''Odo''' is a changeling.\n\n[[Category:Star Trek characters]]")
    wiki._maint("runJobs.php")
    run_luigi(data_dir, "Refresh", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    refreshed = files(raw, ".mediawiki")
    assert "country doctor" in refreshed["Leonard McCoy.mediawiki"].decode() and "Odo.mediawiki" in refreshed
    shutil.rmtree(data_dir / "raw")
    wiki.mark_requests()
    run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    requests = wiki.api_requests()
    assert [sorted(r.titles) for r in requests] == [derived(data_dir, "trek")["titles"]]
    assert all(r.params.get("prop") == "revisions" and "revids" not in r.params for r in requests)
    assert files(raw, ".mediawiki") == refreshed
