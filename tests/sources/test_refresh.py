"""Refresh's plain functions: a dump replaced by a newer one, by revision id, kill-safe, never deleting past
max_removed; a listing cut short part way changes nothing."""
import itertools
import json
from pathlib import Path

import luigi.configuration
import pytest

from tests.support import synthetic_wiki
from tests.support.faultserver import FaultProxy
from wikiluigi import paths
from wikiluigi.convert.pandoc import ConvertOptions
from wikiluigi.convert.stage import process_pages
from wikiluigi.sources import derived, manifest as manifests
from wikiluigi.sources.refresh import RefreshError, RefreshSettings, refresh
from wikiluigi.sources.source import dump_stamp, host_of

HOST = "synthetic.example.invalid"


def write_dump(path: Path, pages: dict[str, tuple[int, str]]) -> None:
    """A plain export of pages title -> (revision id, text), all in Category:Things."""
    with open(path, "w", encoding="utf-8") as out:
        out.write(synthetic_wiki.HEAD)
        for page_id, (title, (revision, text)) in enumerate(sorted(pages.items()), start=1):
            xml = synthetic_wiki._page_xml(title, 0, page_id, f"{text}\n\n[[Category:Things]]")
            out.write(xml.replace(f"<id>{page_id + 1_000_000}</id>", f"<id>{revision}</id>"))
        out.write(synthetic_wiki.TAIL)


def pages(count: int) -> dict[str, tuple[int, str]]:
    return {f"Thing {n:02d}": (100 + n, f"'''Thing {n:02d}''' is thing number {n}.") for n in range(count)}


def run_refresh(name: str, convert=None, **kwargs) -> dict:
    manifest = manifests.load(name)
    host = host_of(manifest)
    if convert is None:
        def convert(titles):
            return process_pages(host, titles, ConvertOptions.from_manifest(manifest)).failed
    return refresh(manifest, host, [paths.processed_dir(host)], convert=convert, **kwargs)


@pytest.fixture
def dump_manifest(data_dir):
    originals = data_dir / "manifests" / "originals"
    originals.mkdir(parents=True)
    (originals / "things.yaml").write_text("dump: things.xml\ninclude_categories: [Things]\n")
    write_dump(originals / "things.xml", pages(12))
    paths.processed_dir(HOST).mkdir(parents=True)  # converted before: Refresh converts again what changed
    first = run_refresh("things")
    assert (first["new"], first["pages"], first["converted"]) == (12, 12, 12)
    return originals / "things.xml"


def mtimes(*folders: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for folder in folders for p in folder.glob("Thing*.*")}


def test_a_newer_dump_rewrites_the_changed_pages_and_removes_the_gone_even_after_a_kill(data_dir, dump_manifest):
    raw, processed = paths.raw_dir(HOST), paths.processed_dir(HOST)
    newer = pages(12)
    newer["Thing 03"] = (503, "'''Thing 03''' was rewritten in the newer dump.")
    del newer["Thing 07"]
    newer["Thing 99"] = (599, "'''Thing 99''' is new in the newer dump.")
    write_dump(dump_manifest, newer)
    before = mtimes(raw, processed)

    def killed(titles):
        raise KeyboardInterrupt  # killed while converting: fetched, removed, not converted
    with pytest.raises(KeyboardInterrupt):
        run_refresh("things", convert=killed)
    report = run_refresh("things")

    assert (report["changed_titles"], report["new_titles"], report["gone_titles"]) == (
        ["Thing 03"], ["Thing 99"], ["Thing 07"])
    assert (report["unchanged"], report["converted"], report["requests"]) == (10, 2, 0)
    assert "rewritten" in (raw / "Thing 03.mediawiki").read_text()
    assert "rewritten" in (processed / "Thing 03.md").read_text()
    assert "new in the newer dump" in (processed / "Thing 99.md").read_text()
    assert not (raw / "Thing 07.mediawiki").exists() and not (processed / "Thing 07.md").exists()
    [attic] = (data_dir / "attic" / "things").iterdir()
    assert (attic / "raw" / "mediawiki" / HOST / "Thing 07.mediawiki").exists()
    assert (attic / "processed" / "mediawiki" / HOST / "Thing 07.md").exists()
    after = mtimes(raw, processed)
    unchanged = [p for p in before if "Thing 03" not in p and "Thing 07" not in p]
    assert len(unchanged) == 2 * 10 and all(after[p] == before[p] for p in unchanged)
    meta = derived.load("things")
    assert "Thing 99" in meta.titles and "Thing 07" not in meta.titles
    assert meta.dump_stamp == dump_stamp(dump_manifest)  # DeriveManifest (and Wikipedia) complete at once
    assert not (data_dir / "out" / "reports" / "things.refresh.plan.json").exists()

    quiet = run_refresh("things")  # nothing changed: nothing rewritten but the report
    assert (quiet["changed"], quiet["new"], quiet["gone"]) == (0, 0, 0)
    assert mtimes(raw, processed) == after


def test_more_removed_than_max_removed_changes_nothing_unless_allowed(data_dir, dump_manifest):
    write_dump(dump_manifest, dict(list(pages(12).items())[:9]))  # 3 of 12 gone: 25%
    with pytest.raises(RefreshError, match=r"remove 3 of 12 pages .*max_removed.*--allow-removal"):
        run_refresh("things", settings=RefreshSettings(max_removed=0.2))
    assert (paths.raw_dir(HOST) / "Thing 11.mediawiki").exists()
    assert len(derived.load("things").titles) == 12
    report = run_refresh("things", allow_removal=True)
    assert report["gone"] == 3 and not (paths.raw_dir(HOST) / "Thing 11.mediawiki").exists()
    saved = json.loads((data_dir / "out" / "reports" / "things.refresh.json").read_text())
    assert saved["gone_titles"] == ["Thing 09", "Thing 10", "Thing 11"]


@pytest.fixture
def impatient_http():
    """Few and quick retries, as a user's luigi.cfg would set them."""
    config = luigi.configuration.get_config()
    for option, value in (("retries", "1"), ("backoff", "0.01"), ("max_backoff", "0.01")):
        config.set("http", option, value)
    yield
    for option in ("retries", "backoff", "max_backoff"):
        config.remove_option("http", option)


def test_a_listing_cut_short_part_way_changes_nothing(data_dir, startrek_wiki, impatient_http):
    originals = data_dir / "manifests" / "originals"
    originals.mkdir(parents=True)
    with FaultProxy(startrek_wiki.api_url) as proxy:
        (originals / "trek.yaml").write_text(f"api: {proxy.api_url}\ninclude_categories: [Category:Star Trek]\n")
        first = run_refresh("trek", convert=lambda titles: None)  # never scraped: every page is new
        assert (first["new"], first["pages"]) == (27, 27)
        host = host_of(manifests.load("trek"))
        before = {p.name: p.read_bytes() for p in paths.raw_dir(host).iterdir()}
        report = (data_dir / "out" / "reports" / "trek.refresh.json").read_text()
        # The clock answers, then every answer is JSON cut short: the recent changes, or the category walk.
        proxy.plan = itertools.chain([None], itertools.repeat("cut_json"))
        with pytest.raises(RefreshError, match=rf"listing the pages of {proxy.api_url} failed, so nothing was "
                                               r"changed or removed; asking for its recent changes .*cut short"):
            run_refresh("trek")
        proxy.plan = itertools.chain([None, None, None], itertools.repeat("cut_json"))
        with pytest.raises(RefreshError, match=rf"listing the pages of {proxy.api_url} failed, so nothing was "
                                               r"changed or removed; asking for the members of Category:.*cut short"):
            run_refresh("trek", settings=RefreshSettings(recent_changes_days=0))
    assert {p.name: p.read_bytes() for p in paths.raw_dir(host).iterdir()} == before
    assert len(derived.load("trek").titles) == 27
    assert (data_dir / "out" / "reports" / "trek.refresh.json").read_text() == report
