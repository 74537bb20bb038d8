"""Page files after kills: torn lines of a revisions log, temporary files a killed write left behind,
and every machine's revisions log read as one."""
import json
import os
import subprocess
import sys

from wikiluigi import durable, pagefiles, paths
from wikiluigi.sources import fetch


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_torn_last_line_is_ended_before_the_next_one_and_skipped_by_readers(data_dir):
    log = data_dir / "revisions-a.jsonl"
    log.write_text('{"title": "Spock", "revision_id": 1}\n{"title": "Wo', encoding="utf-8")  # killed mid-line
    with pagefiles.LineLog(log) as writer:
        writer.write(json.dumps({"title": "Worf", "revision_id": 2}))
    assert log.read_text(encoding="utf-8").splitlines()[-1] == '{"title": "Worf", "revision_id": 2}'
    assert [e["title"] for e in pagefiles.read_json_lines(log)] == ["Spock", "Worf"]


def test_temporary_files_of_dead_processes_are_removed_and_live_ones_kept(data_dir):
    folder = data_dir / "raw"
    folder.mkdir()
    me = paths.machine_name()
    dead = folder / f".tmp-{dead_pid()}-1-0@{me}.part"
    alive = folder / f".tmp-{os.getpid()}-1-1@{me}.part"
    older_version = folder / f".tmp-{dead_pid()}-1-2.part"       # names without the machine
    other_machine = folder / f".tmp-{dead_pid()}-1-3@elsewhere.part"
    page = folder / "Spock.mediawiki"
    for path in (dead, alive, older_version, other_machine, page):
        path.write_text("x")
    assert pagefiles.remove_stale_temporaries(folder) == 2
    assert sorted(p.name for p in folder.iterdir()) == sorted([alive.name, other_machine.name, page.name])
    # Another machine's process may still be writing: its file goes only once it is a day old.
    os.utime(other_machine, (1, 1))
    assert pagefiles.remove_stale_temporaries(folder) == 1 and not other_machine.exists()


def test_write_atomic_names_its_temporary_file_after_the_machine(data_dir, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (seen.append(src.name), real_replace(src, dst)))
    pagefiles.write_atomic(data_dir / "a" / "Spock.md", "text")
    assert seen[0].endswith(f"@{paths.machine_name()}.part") and seen[0].startswith(f".tmp-{os.getpid()}-")
    assert (data_dir / "a" / "Spock.md").read_text() == "text"


def test_every_machines_revisions_log_is_read(data_dir):
    folder = paths.raw_dir("wiki.example")
    folder.mkdir(parents=True)
    (folder / "revisions-alpha.jsonl").write_text(
        '{"title": "Spock", "revision_id": 5, "timestamp": "2020"}\n'
        '{"title": "Worf", "revision_id": 9, "timestamp": "2021"}\n'
        '{"title": "Spock", "revision_id": 4, "timestamp": "2019"}\n', encoding="utf-8")
    (folder / "revisions-beta.jsonl").write_text(
        '{"title": "Worf", "revision_id": 7, "timestamp": "2020"}\n{"title": "Kirk", "revision_id": 3, "ti',
        encoding="utf-8")
    current = fetch.read_revisions("wiki.example")
    assert current == {"Spock": {"title": "Spock", "revision_id": 4, "timestamp": "2019"},  # its log's last
                       "Worf": {"title": "Worf", "revision_id": 9, "timestamp": "2021"}}    # the newest


def record_syncs(monkeypatch) -> list[tuple[str, str]]:
    """os.fsync, syncfs and os.replace, recorded in order: ("fsync", what the descriptor names), ("syncfs",
    the folder it was asked for) and ("replace", target)."""
    events = []
    real_fsync, real_replace, real_syncfs = os.fsync, os.replace, durable._syncfs
    monkeypatch.setattr(durable, "_syncfs", lambda folder: (events.append(("syncfs", folder)),
                                                              real_syncfs(folder))[1])

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        real_replace(src, dst)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_a_write_is_fsynced_before_its_rename_and_its_folder_after(data_dir, monkeypatch):
    folder = data_dir / "raw"
    folder.mkdir()
    events = record_syncs(monkeypatch)
    pagefiles.write_atomic(folder / "Spock.mediawiki", "Vulcan")
    assert [kind for kind, _ in events] == ["fsync", "replace", "fsync"]
    assert events[0][1].endswith(".part") and events[1][1] == str(folder / "Spock.mediawiki")
    assert events[2][1] == str(folder)
    assert (folder / "Spock.mediawiki").read_text() == "Vulcan"


def test_a_durable_batch_publishes_its_files_in_groups_each_synced_before_its_rename(data_dir, monkeypatch):
    events = record_syncs(monkeypatch)
    folder = data_dir / "raw" / "wiki"          # made by the first write: synced into its parent too
    with durable.batch():
        for title in ("Spock", "Worf", "Kirk"):
            pagefiles.write_atomic(folder / f"{title}.mediawiki", title)
            pagefiles.record_failure(folder, f"{title} II", "fetch", "missing")
        pagefiles.clear_failure(folder, "Spock II")                      # after its own write: gone at the end
        assert not (folder / "Spock.mediawiki").exists()                 # published when the group is
        assert [kind for kind, _ in events if kind == "replace"] == []
    kinds = [kind for kind, _ in events]
    assert kinds[:1] == ["syncfs"] and kinds[1:7] == ["replace"] * 6 and kinds[7:] == ["fsync"] * 4
    folders = [what for _, what in events[7:]]
    assert sorted(folders) == sorted([str(folder), str(paths.failure_dir(folder)), str(folder.parent),
                                      str(data_dir)])
    assert folders.index(str(folder)) < folders.index(str(folder.parent))
    assert sorted(p.name for p in folder.iterdir()) == [".failed", "Kirk.mediawiki", "Spock.mediawiki",
                                                        "Worf.mediawiki"]
    assert sorted(p.name for p in paths.failure_dir(folder).iterdir()) == ["Kirk II.json", "Worf II.json"]


def test_a_batch_publishes_every_group_of_files_and_what_it_holds_when_it_fails(data_dir, monkeypatch):
    monkeypatch.setattr(durable, "BATCH_FILES", 4)
    folder = data_dir / "raw"
    try:
        with durable.batch():
            for number in range(10):
                pagefiles.write_atomic(folder / f"P{number}.md", f"page {number}")
                if number == 5:
                    assert len(list(folder.glob("*.md"))) == 4           # the first group is out
            raise RuntimeError("the chunk fails")
    except RuntimeError:
        pass
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"P{n}.md" for n in range(10))


def test_the_revisions_log_is_fsynced_when_closed(data_dir, monkeypatch):
    log = data_dir / "revisions-a.jsonl"
    events = record_syncs(monkeypatch)
    with pagefiles.LineLog(log) as writer:
        writer.write('{"title": "Spock"}')
        assert ("fsync", str(log)) not in events
    assert ("fsync", str(log)) in events and ("fsync", str(data_dir)) in events   # the line, the new name


def test_open_atomic_writes_in_parts_and_leaves_nothing_on_error(data_dir, monkeypatch):
    target = data_dir / "tokens" / "train.bin"
    events = record_syncs(monkeypatch)
    with pagefiles.open_atomic(target) as out:
        out.write(b"\x01\x00")
        out.write(b"\x02\x00")
    assert target.read_bytes() == b"\x01\x00\x02\x00"
    assert [kind for kind, _ in events][-3:] == ["fsync", "replace", "fsync"]
    try:
        with pagefiles.open_atomic(data_dir / "tokens" / "val.bin") as out:
            out.write(b"\x01")
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert sorted(p.name for p in target.parent.iterdir()) == ["train.bin"]


def test_an_empty_page_or_record_never_counts_as_done(data_dir, monkeypatch):
    """A power cut before fsync can leave a renamed page empty: it is done again, by a chunk's check
    (a stat per page) and by a whole stage's (one listing)."""
    folder = paths.raw_dir("wiki.example")
    folder.mkdir(parents=True)
    (folder / "Spock.mediawiki").write_text("Vulcan")
    (folder / "Worf.mediawiki").write_bytes(b"")
    paths.failure_dir(folder).mkdir()
    (paths.failure_dir(folder) / "Kirk.json").write_bytes(b"")
    titles = ["Kirk", "Spock", "Worf"]
    assert pagefiles.todo(folder, ".mediawiki", titles) == ["Kirk", "Worf"]
    monkeypatch.setattr(pagefiles, "PER_PAGE_LIMIT", 1)
    assert pagefiles.todo(folder, ".mediawiki", titles) == ["Kirk", "Worf"]
    assert pagefiles.failures(folder, titles) == []          # unreadable: not a failure, and not deleted
    assert (paths.failure_dir(folder) / "Kirk.json").exists()


def test_revisions_lines_are_on_disk_before_the_pages_they_describe(data_dir, monkeypatch):
    monkeypatch.setattr(durable, "BATCH_FILES", 2)
    log, folder = data_dir / "revisions-a.jsonl", data_dir / "raw"
    events = record_syncs(monkeypatch)
    with durable.batch(), pagefiles.LineLog(log) as writer:
        for title in ("Kirk", "Spock"):
            writer.write(json.dumps({"title": title, "revision_id": 1}))
            pagefiles.write_atomic(folder / f"{title}.mediawiki", title)
    first_rename = events.index(("replace", str(folder / "Kirk.mediawiki")))
    assert ("fsync", str(log)) in events[:first_rename] and events[first_rename - 1] == ("syncfs", str(folder))


def test_without_syncfs_each_file_of_a_group_is_fsynced_before_the_renames(data_dir, monkeypatch):
    events = record_syncs(monkeypatch)
    monkeypatch.setattr(durable, "_libc", lambda: None)
    with durable.batch():
        for title in ("Kirk", "Spock"):
            pagefiles.write_atomic(data_dir / f"{title}.md", title)
    kinds = [kind for kind, _ in events]
    assert kinds == ["syncfs", "fsync", "fsync", "replace", "replace", "fsync"]
    assert all(what.endswith(".part") for _, what in events[1:3]) and events[-1] == ("fsync", str(data_dir))


def test_an_unreadable_failure_record_is_reported_as_such_and_kept(data_dir):
    folder = paths.raw_dir("wiki.example")
    records = paths.failure_dir(folder)
    records.mkdir(parents=True)
    (records / "Worf.json").write_bytes(b'{"title": "Wo\x00\xff')             # damaged, not empty
    pagefiles.record_failure(folder, "Kirk", "fetch", "the page does not exist")
    found = pagefiles.failures(folder, ["Kirk", "Worf"])
    assert [r["title"] for r in found] == ["Kirk", "Worf"]
    assert found[1]["reason"] == (f"its failure record {records / 'Worf.json'} is unreadable: "
                                  f"delete it to try the page again")
    assert pagefiles.todo(folder, ".mediawiki", ["Kirk", "Worf"]) == []    # both failed: done, until deleted
    assert (records / "Worf.json").exists()


def test_a_whole_stage_check_reads_sizes_once_a_boot(data_dir, monkeypatch):
    """After a clean scan of the sizes, the names alone are read until the machine restarts (a power cut
    does): then the sizes are read again and an emptied page is done again."""
    monkeypatch.setattr(pagefiles, "PER_PAGE_LIMIT", 1)
    folder = paths.raw_dir("wiki.example")
    folder.mkdir(parents=True)
    for title in ("Kirk", "Spock"):
        (folder / f"{title}.mediawiki").write_text(title)
    marker = pagefiles.filled_marker(folder)
    monkeypatch.setattr(pagefiles, "_boot_id", lambda: "boot-1")
    assert pagefiles.todo(folder, ".mediawiki", ["Kirk", "Spock"]) == []
    assert marker.read_text() == "boot-1"
    scans = []
    real_scan = pagefiles._filled_names
    monkeypatch.setattr(pagefiles, "_filled_names", lambda f: (scans.append(f), real_scan(f))[1])
    assert pagefiles.todo(folder, ".mediawiki", ["Kirk", "Spock"]) == [] and scans == []
    (folder / "Spock.mediawiki").write_bytes(b"")              # the power cut...
    monkeypatch.setattr(pagefiles, "_boot_id", lambda: "boot-2")  # ...and the restart
    assert pagefiles.todo(folder, ".mediawiki", ["Kirk", "Spock"]) == ["Spock"] and scans
    assert marker.read_text() == "boot-1"                      # not clean: no marker for this boot
    (folder / "Spock.mediawiki").write_text("Spock")
    assert pagefiles.todo(folder, ".mediawiki", ["Kirk", "Spock"]) == [] and marker.read_text() == "boot-2"
    assert sorted(p.name for p in folder.iterdir()) == ["Kirk.mediawiki", "Spock.mediawiki"]   # nothing else
