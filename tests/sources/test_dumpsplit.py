"""A plain dump cut once into one file per chunk, after kills, a full disk and damaged chunk files."""
import errno
import gzip
import json
import os
import subprocess
import sys

import pytest

from tests.support import synthetic_wiki
from wikiluigi import durable, paths
from wikiluigi.errors import DumpError
from wikiluigi.sources import dump, dumpsplit
from wikiluigi.sources.derived import Derived
from wikiluigi.sources.source import dump_stamp, open_chunk_source


@pytest.fixture
def plain(data_dir, tmp_path, monkeypatch):
    """A derived manifest of 300 articles of a plain dump, in chunks of 100; small gzip members, so
    that each chunk's file is written in several parts."""
    wiki = synthetic_wiki.write_plain(tmp_path / "dumps" / "synth.xml", 300, paragraphs=1)
    monkeypatch.setattr(dumpsplit, "_BUFFER_BYTES", 4096)
    return Derived(name="synth", host="synth", source={"dump": str(wiki.dump)}, titles=tuple(sorted(wiki.articles)),
                   chunk_size=100, counts={}, dump_stamp=dump_stamp(wiki.dump))


def chunk_titles(meta: Derived, chunk: int) -> list[str]:
    with gzip.open(dumpsplit.chunk_file(meta.name, chunk), "rt", encoding="utf-8") as lines:
        return [json.loads(line)["title"] for line in lines]


def pages_of(meta: Derived, chunk: int) -> dict:
    with open_chunk_source(meta, chunk) as source:
        return dict(source.revisions(list(meta.chunk(chunk))))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_what_a_killed_split_left_is_never_appended_to(plain):
    folder = dumpsplit.folder(plain.name)
    folder.mkdir(parents=True)
    # An older wikiluigi's part file and a temporary of a killed run, each holding a page already.
    member = gzip.compress(json.dumps({"title": plain.titles[0], "revision_id": 1, "timestamp": "",
                                       "text": "stale"}).encode() + b"\n")
    (folder / ".chunk-00000.part").write_bytes(member)
    killed = folder / f".tmp-{dead_pid()}-1-0@{paths.machine_name()}.part"
    killed.write_bytes(member[:-7])                    # and torn
    assert dumpsplit.split(plain) == 300
    assert sorted(p.name for p in folder.iterdir()) == [f"chunk-0000{n}.jsonl.gz" for n in range(3)] + ["split.json"]
    for chunk in range(3):
        assert sorted(chunk_titles(plain, chunk)) == list(plain.chunk(chunk))     # each page once
    assert pages_of(plain, 0)[plain.titles[0]].text != "stale"
    assert dumpsplit.is_split(plain)


def test_a_full_disk_stops_the_split_with_a_clear_error_and_the_next_run_starts_afresh(plain, monkeypatch):
    real_compress, calls = gzip.compress, []

    def compress(data, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_compress(data, *args, **kwargs)
    monkeypatch.setattr(gzip, "compress", compress)
    with pytest.raises(DumpError, match=r"synth: cutting .*synth\.xml into .*dump-chunks/synth stopped: .*No space "
                                        r"left on device; the disk is full: free some space there, then run again"):
        dumpsplit.split(plain)
    folder = dumpsplit.folder(plain.name)
    assert os.listdir(folder) == [] and not dumpsplit.is_split(plain)
    with pytest.raises(DumpError, match=r"not split for this derived manifest.*run Scrape, or SplitDump "
                                        r"--manifest synth"):
        pages_of(plain, 0)                               # never "not in the dump" for every page
    monkeypatch.setattr(gzip, "compress", real_compress)
    assert dumpsplit.split(plain) == 300
    assert all(sorted(chunk_titles(plain, chunk)) == list(plain.chunk(chunk)) for chunk in range(3))


def test_each_chunk_file_is_synced_before_its_rename_and_the_folder_after(plain, monkeypatch):
    events = []
    real_fsync, real_replace, real_syncfs = os.fsync, os.replace, durable._syncfs
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda src, dst: (events.append(("replace", str(dst))), real_replace(src, dst)))
    monkeypatch.setattr(durable, "_syncfs", lambda folder: (events.append(("syncfs", folder)), real_syncfs(folder))[1])
    dumpsplit.split(plain)
    folder = str(dumpsplit.folder(plain.name))
    renames = [events.index(("replace", str(dumpsplit.chunk_file(plain.name, chunk)))) for chunk in range(3)]
    assert ("syncfs", folder) in events[:min(renames)]
    assert ("fsync", folder) in events[max(renames):events.index(("replace", f"{folder}/split.json"))]


def test_a_chunk_file_cut_short_is_cut_again(plain):
    dumpsplit.split(plain)
    path = dumpsplit.chunk_file(plain.name, 1)
    path.write_bytes(path.read_bytes()[:-100])
    assert not dumpsplit.is_split(plain)                # SplitDump is not complete: it runs again
    with pytest.raises(DumpError, match="not split for this derived manifest"):
        pages_of(plain, 1)
    dumpsplit.split(plain)
    assert sorted(pages_of(plain, 1)) == sorted(plain.chunk(1))


def test_a_damaged_chunk_file_is_an_error_naming_it_then_cut_again(plain):
    dumpsplit.split(plain)
    path = dumpsplit.chunk_file(plain.name, 2)
    data = bytearray(path.read_bytes())
    for at in range(40, len(data) - 40, 97):           # the same size, garbage inside its gzip members
        data[at] ^= 0x5A
    path.write_bytes(bytes(data))
    assert dumpsplit.is_split(plain)
    with pytest.raises(DumpError) as caught:
        pages_of(plain, 2)
    message = str(caught.value)
    assert message.startswith(f"{path} is damaged (") and "the dump is cut again (SplitDump)" in message
    assert "Traceback" not in message and not dumpsplit.is_split(plain)
    dumpsplit.split(plain)
    found = pages_of(plain, 2)
    written = {title: text for title, ns, page_id, text, redirect in synthetic_wiki.iter_pages(300, paragraphs=1)}
    assert {title: page.text for title, page in found.items()} == {t: written[t] for t in plain.chunk(2)}  # whole again


def spool_of(meta: Derived, namespaces=(0,), stamp: str | None = None) -> None:
    """What DeriveManifest's pass leaves: the pages of the namespaces, in dump order, in the spool."""
    with dumpsplit.Spool(meta.name, namespaces, meta.dump_stamp if stamp is None else stamp) as spool:
        for page in dump.iter_pages(meta.source["dump"]):
            spool.add(page)


def chunks(meta: Derived) -> list[bytes]:
    return [gzip.decompress(dumpsplit.chunk_file(meta.name, chunk).read_bytes()) for chunk in range(meta.chunk_count)]


def test_the_split_reads_derive_s_spool_not_the_dump_and_writes_the_same_chunks(plain, monkeypatch):
    dumpsplit.split(plain)
    from_the_dump = chunks(plain)
    spool_of(plain)
    folder = dumpsplit.folder(plain.name)
    assert (folder / dumpsplit.SPOOL).exists() and (folder / dumpsplit.SPOOL_RECORD).exists()

    def no_dump(*args, **kwargs):
        raise AssertionError("the dump was read again")
    monkeypatch.setattr(dump, "iter_pages", no_dump)
    assert dumpsplit.split(plain) == 300
    assert chunks(plain) == from_the_dump and dumpsplit.is_split(plain)
    assert not (folder / dumpsplit.SPOOL).exists() and not (folder / dumpsplit.SPOOL_RECORD).exists()  # disk back


@pytest.mark.parametrize("spoiled", ["another namespace", "another dump", "cut short", "never finished"])
def test_a_spool_that_lacks_pages_or_does_not_read_is_passed_over_for_the_dump(plain, spoiled):
    dumpsplit.split(plain)
    from_the_dump = chunks(plain)
    folder = dumpsplit.folder(plain.name)
    spool_of(plain, namespaces=(1,) if spoiled == "another namespace" else (0,),
             stamp="1:2" if spoiled == "another dump" else None)
    if spoiled == "cut short":
        spool = folder / dumpsplit.SPOOL
        spool.write_bytes(spool.read_bytes()[:-200] + bytes(200))  # same size, garbage at the end
    if spoiled == "never finished":
        with pytest.raises(KeyboardInterrupt):  # (the pass stopped: a Ctrl-C)
            with dumpsplit.Spool(plain.name, (0,), plain.dump_stamp) as spool:
                spool.add(next(dump.iter_pages(plain.source["dump"])))
                raise KeyboardInterrupt
        assert sorted(os.listdir(folder)) == [f"chunk-0000{n}.jsonl.gz" for n in range(3)] + ["split.json"]
    assert dumpsplit.split(plain) == 300
    assert chunks(plain) == from_the_dump
    assert not (folder / dumpsplit.SPOOL).exists()


def test_a_spool_of_a_killed_derive_is_gone_at_the_next_one(plain):
    folder = dumpsplit.folder(plain.name)
    folder.mkdir(parents=True)
    killed = folder / f".tmp-{dead_pid()}-1-0@{paths.machine_name()}.part"
    killed.write_bytes(b"half a spool")
    spool_of(plain)
    assert sorted(os.listdir(folder)) == [dumpsplit.SPOOL_RECORD, dumpsplit.SPOOL]
