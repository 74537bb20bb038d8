"""Page files after kills: torn lines of a revisions log, temporary files a killed write left behind,
and every machine's revisions log read as one."""
import json
import os
import subprocess
import sys

from wikiluigi import pagefiles, paths
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
