"""Whole-wiki scale: multistream dumps read by seeking, plain dumps read once per stage, a bounded number
of chunks, derived manifests of the old layout, chunk checks that never list the page folder.
Dumps are written by the tests (tests/support/synthetic_wiki.py); the stages run in-process through
luigi.build, so that the passes over a dump can be counted."""
import os
import time

import luigi
import pytest
import yaml

from tests.support import synthetic_wiki
from wikiluigi import pagefiles, paths
from wikiluigi.sources import derived, dump
from wikiluigi.sources.derived import Derived
from wikiluigi.sources.source import DumpSource, MultistreamChunk
from wikiluigi.tasks import Convert, DeriveManifest, FetchPages, ProcessPages, Scrape


@pytest.fixture(scope="module")
def multistream(tmp_path_factory):
    return synthetic_wiki.write_multistream(tmp_path_factory.mktemp("multistream"), 430, paragraphs=1)


def write_manifest(data_dir, name, dump_path, chunk_size=None):
    originals = data_dir / "manifests" / "originals"
    originals.mkdir(parents=True, exist_ok=True)
    (originals / f"{name}.yaml").write_text(yaml.safe_dump({
        "dump": str(dump_path), "host": name, "include_categories": [synthetic_wiki.ROOT_CATEGORY]}))


@pytest.fixture
def small_chunks():
    config = luigi.configuration.get_config()
    config.set("fetch", "chunk_size", "40")
    yield
    config.set("fetch", "chunk_size", "200")


def build(*tasks):
    assert luigi.build(list(tasks), local_scheduler=True, workers=1, log_level="WARNING")


class PassCounter:
    """Counts pages parsed by passes over the whole dump, and streams of a multistream dump read alone."""

    def __init__(self, monkeypatch):
        self.whole, self.streams = 0, []
        events = dump._Reader.events
        counter = self

        def counting_events(reader):
            for event in events(reader):
                if event[0] == "end" and event[3] == 2 and event[2] == "page" and reader.streams is None:
                    counter.whole += 1
                yield event

        def counting_init(reader, path, streams=None):
            init(reader, path, streams)
            if streams is not None:
                counter.streams.extend(range(*streams) if streams[1] - streams[0] == 1 else [streams])
        init = dump._Reader.__init__
        monkeypatch.setattr(dump._Reader, "events", counting_events)
        monkeypatch.setattr(dump._Reader, "__init__", counting_init)


def test_multistream_chunk_reads_equal_a_full_read(multistream, monkeypatch):
    full = {page.title: page for page in dump.iter_pages(multistream.dump)}
    index = list(dump.iter_index(multistream.index))
    assert [title for _, _, title in index] == list(full)   # the index lists every page, in dump order
    offsets = {title: offset for offset, _, title in index}
    counter = PassCounter(monkeypatch)
    wanted = multistream.articles[150:260]
    chunk = dict(MultistreamChunk(multistream.dump, offsets).revisions(wanted))
    assert {t: (r.text, r.revision_id, r.timestamp) for t, r in chunk.items()} == {
        t: (full[t].text, full[t].revision_id, full[t].timestamp) for t in wanted}
    assert counter.whole == 0                                   # no pass over the dump
    assert sorted(counter.streams) == sorted({offsets[t] for t in wanted})  # each stream needed, once
    assert len(counter.streams) <= 3


def test_the_category_index_of_a_multistream_dump_read_by_two_processes_equals_one_pass(multistream, monkeypatch):
    one_pass = DumpSource(multistream.dump)._build_index()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    by_streams = DumpSource(multistream.dump, multistream.index)._build_index()
    assert list(by_streams.namespace_of.items()) == list(one_pass.namespace_of.items())
    assert by_streams.redirects == one_pass.redirects and len(one_pass.redirects) == 21
    assert by_streams.members == one_pass.members and len(one_pass.members) == 111


def test_a_multistream_dump_scrapes_by_stream_and_matches_the_plain_dump(data_dir, multistream, monkeypatch,
                                                                        small_chunks, tmp_path):
    plain = synthetic_wiki.write_plain(tmp_path / "plain.xml.bz2", 430, paragraphs=1)
    write_manifest(data_dir, "ms", multistream.dump)
    write_manifest(data_dir, "plain", plain.dump)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})  # two cores, even on one
    counter = PassCounter(monkeypatch)
    build(Scrape(manifest="ms"))
    meta = derived.load("ms")
    assert meta.source["index"] == str(multistream.index) and meta.chunk_count == 11
    assert counter.whole == 0      # derive read runs of streams in processes of its own, fetch single streams
    # Chunks follow the dump's order: a stream is read again only where a chunk boundary cuts it.
    assert len(counter.streams) <= len(set(counter.streams)) + meta.chunk_count - 1
    build(Scrape(manifest="plain"))
    ms_files = {p.name: p.read_bytes() for p in paths.raw_dir("ms").glob("*.mediawiki")}
    assert len(ms_files) == len(multistream.articles)
    assert ms_files == {p.name: p.read_bytes() for p in paths.raw_dir("plain").glob("*.mediawiki")}


def test_a_plain_dump_is_read_once_per_stage(data_dir, tmp_path, monkeypatch, small_chunks):
    wiki = synthetic_wiki.write_plain(tmp_path / "wiki.xml", 230, paragraphs=1)
    write_manifest(data_dir, "plain", wiki.dump)
    counter = PassCounter(monkeypatch)
    build(DeriveManifest(manifest="plain"))
    assert counter.whole == wiki.pages                          # derive: one pass
    build(Scrape(manifest="plain"))
    assert derived.load("plain").chunk_count == 6
    assert counter.whole == 2 * wiki.pages                      # fetch: one more pass, not one per chunk
    raw = paths.raw_dir("plain")
    assert sorted(p.name for p in raw.glob("*.mediawiki")) == sorted(
        f"{paths.title_to_stem(t)}.mediawiki" for t in wiki.articles)
    victim = raw / f"{paths.title_to_stem(wiki.articles[100])}.mediawiki"
    text = victim.read_text(encoding="utf-8")
    victim.unlink()
    build(Scrape(manifest="plain"))
    assert victim.read_text(encoding="utf-8") == text           # from its chunk's file, no new pass
    assert counter.whole == 2 * wiki.pages


def test_chunks_stay_bounded_however_many_titles(data_dir):
    titles = tuple(f"Page {i:07d}" for i in range(1_000_000))
    meta = Derived(name="big", host="big.example.invalid", source={"api": "http://127.0.0.1:9/api.php"},
                   titles=titles, chunk_size=derived.chunk_size_for(len(titles), 200), counts={"pages": len(titles)})
    assert derived.chunk_size_for(1000, 200) == 200             # chunk_size stays the floor
    assert meta.chunk_count <= derived.MAX_CHUNKS
    assert sum(len(meta.chunk(i)) for i in range(meta.chunk_count)) == len(titles)
    derived.write(paths.derived_manifest("big"), meta, [], [])
    document = yaml.safe_load(paths.derived_manifest("big").read_text())
    assert "titles" not in document and document["counts"] == {"pages": 1_000_000}   # readable, small
    loaded = derived.load("big")
    assert loaded.titles == titles and loaded.chunk_count == meta.chunk_count
    tasks = Scrape(manifest="big").chunk_tasks()
    assert len(tasks) == meta.chunk_count and len(Convert(manifest="big").chunk_tasks()) == len(tasks)


def test_a_data_directory_of_the_old_layout_is_taken_over(data_dir, tmp_path, monkeypatch):
    """A derived manifest with its titles inside the YAML (chunks of 5) and pages already fetched: they
    are used as they are; a dump source is derived again into the new layout, nothing is fetched again."""
    wiki = synthetic_wiki.write_plain(tmp_path / "wiki.xml", 30, paragraphs=1)
    write_manifest(data_dir, "old", wiki.dump)
    titles = sorted(wiki.articles)
    old = paths.derived_manifest("old")
    old.parent.mkdir(parents=True)
    old.write_text(yaml.safe_dump({"manifest": "old", "manifest_sha256": "", "host": "old",
                                   "source": {"dump": str(wiki.dump)}, "chunk_size": 5, "counts": {},
                                   "warnings": [], "categories": [], "titles": titles}))
    assert derived.load("old").titles == tuple(titles) and derived.load("old").chunk_count == 6
    for title in titles:
        pagefiles.write_atomic(paths.raw_page("old", title), f"kept: {title}")
    assert all(FetchPages(manifest="old", chunk=i).todo() == [] for i in range(6))
    build(Scrape(manifest="old"))
    document = yaml.safe_load(old.read_text())
    assert "titles" not in document and derived.load("old").titles == tuple(titles)
    assert all(paths.raw_page("old", t).read_text() == f"kept: {t}" for t in titles)


def test_a_chunk_knows_it_is_done_without_listing_the_folder(data_dir, monkeypatch):
    titles = tuple(f"Title {i}" for i in range(12))
    meta = Derived(name="quiet", host="quiet", source={"api": "http://127.0.0.1:9/api.php"}, titles=titles,
                   chunk_size=5, counts={})
    derived.write(paths.derived_manifest("quiet"), meta, [], [])
    originals = paths.original_manifest_dirs()[0]
    originals.mkdir(parents=True, exist_ok=True)
    (originals / "quiet.yaml").write_text("api: http://127.0.0.1:9/api.php\nhost: quiet\nall_pages: true\n")
    monkeypatch.setattr(DeriveManifest, "complete", lambda self: True)
    for title in titles:
        pagefiles.write_atomic(paths.raw_page("quiet", title), "text")
        pagefiles.write_atomic(paths.processed_page("quiet", title), "markdown")
    pagefiles.write_atomic(paths.raw_dir("quiet") / "unrelated.mediawiki", "another manifest's page")

    def no_listing(*args):
        raise AssertionError("a chunk listed a whole folder")
    monkeypatch.setattr(os, "listdir", no_listing)
    monkeypatch.setattr(os, "scandir", no_listing)
    assert all(FetchPages(manifest="quiet", chunk=i).complete() for i in range(3))
    assert all(ProcessPages(manifest="quiet", chunk=i).complete() for i in range(3))
    paths.processed_page("quiet", "Title 7").unlink()
    time.sleep(0.01)
    assert [ProcessPages(manifest="quiet", chunk=i).todo() for i in range(3)] == [[], ["Title 7"], []]
    pagefiles.record_failure(paths.processed_dir("quiet"), "Title 7", "convert", "pandoc said no")
    assert ProcessPages(manifest="quiet", chunk=1).complete()
