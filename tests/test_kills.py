"""Kills, against a real MediaWiki and a real luigid: SIGKILL of the real `luigi ... Wikipedia` command (its
whole process group) at about 30% of the fetch stage and of the convert stage, a machine killed holding a
chunk while another shares the work, luigid restarted mid-run. Each time the next run (or the other
machine) cleans up what the kill left and ends with files byte-identical to a run never interrupted."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.luigi_cli import files, make_data_dir, run_luigi
from tests.support.luigid import finish, start_luigi
from tests.support.mediawiki import LocalMediaWiki, require_mediawiki
from tests.support.processes import killpg_quiet
from tests.support.wiki_fixtures import STARTREK_DUMP
from wikiluigi import pagefiles, paths

PAGES = 27  # the articles under Category:Star Trek

# Every content request waits 0.4 s: 9 requests of 3 titles make a fetch stage long enough to hit.
SLOW_CONTENT = """
$wgHooks['ApiBeforeMain'][] = static function () {
	if ( ( $_POST['prop'] ?? $_GET['prop'] ?? '' ) === 'revisions' ) {
		usleep( 400000 );
	}
	return true;
};
"""
CONFIG = """
[http]
user_agent = wikiluigi-tests/0.1 (tests@example.invalid)
titles_per_request = 3
[fetch]
chunk_size = 3
"""


@pytest.fixture(scope="module")
def slow_wiki():
    require_mediawiki()
    wiki = LocalMediaWiki(STARTREK_DUMP, extra_settings=SLOW_CONTENT)
    try:
        yield wiki.start()
    finally:
        wiki.stop()


@pytest.fixture(scope="module")
def uninterrupted(slow_wiki, tmp_path_factory) -> dict[str, dict[str, bytes]]:
    data_dir = data_dir_for(slow_wiki, tmp_path_factory.mktemp("uninterrupted"))
    run_luigi(data_dir, *wikipedia(data_dir), check_returncode=0)
    return pages(data_dir, slow_wiki)


def wikipedia(data_dir: Path) -> list[str]:
    """The command line, with a pid lock of this data directory's own (Luigi's lock is per command line,
    machine-wide: other runs of the same command elsewhere must not look like this one)."""
    return ["Wikipedia", "--manifest", "trek", "--local-scheduler", "--workers", "2",
            "--lock-pid-dir", str(data_dir / "locks")]


def data_dir_for(wiki, folder: Path) -> Path:
    return make_data_dir(folder, {"trek": {"api": wiki.api_url, "include_categories": ["Category:Star Trek"]}},
                         config=CONFIG)


def stage_dirs(data_dir: Path, wiki) -> tuple[Path, Path]:
    host = f"127.0.0.1:{wiki.port}"
    return data_dir / "raw" / "mediawiki" / host, data_dir / "processed" / "mediawiki" / host


def pages(data_dir: Path, wiki) -> dict[str, dict[str, bytes]]:
    raw, processed = stage_dirs(data_dir, wiki)
    return {"raw": files(raw, ".mediawiki"), "processed": files(processed, ".md")}


def count(folder: Path, suffix: str) -> int:
    try:
        return sum(1 for name in os.listdir(folder) if name.endswith(suffix))
    except FileNotFoundError:
        return 0


def kill_when(data_dir: Path, folder: Path, suffix: str, at_least: int) -> int:
    """Start `luigi ... Wikipedia --workers 2` and SIGKILL its process group once `folder` holds
    `at_least` files; returns how many it held then."""
    process = start_luigi(data_dir, *wikipedia(data_dir))
    deadline = time.monotonic() + 120
    while count(folder, suffix) < at_least:
        if process.poll() is not None or time.monotonic() > deadline:
            result = finish(process)
            pytest.fail(f"the run ended (exit {result.returncode}) before it could be killed:\n{result.stderr[-4000:]}")
        time.sleep(0.01)
    killpg_quiet(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    return count(folder, suffix)


def leave_a_torn_write(data_dir: Path, wiki) -> None:
    """What a kill in the middle of a page write leaves, whether or not this kill hit one: a temporary
    file of a process that is gone, in each stage's folder (pagefiles.write_atomic's names)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for folder in stage_dirs(data_dir, wiki):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f".tmp-{gone.pid}-1-0@{paths.machine_name()}.part").write_text("half a page")


def assert_rerun_is_whole(data_dir: Path, wiki, uninterrupted) -> None:
    leave_a_torn_write(data_dir, wiki)
    run_luigi(data_dir, *wikipedia(data_dir), check_returncode=0)
    assert pages(data_dir, wiki) == uninterrupted
    assert len(uninterrupted["raw"]) == len(uninterrupted["processed"]) == PAGES
    assert not [p for p in data_dir.rglob("*") if ".tmp-" in p.name and "locks" not in p.parts], \
        "temporary files left"
    raw, processed = stage_dirs(data_dir, wiki)
    assert not list((raw / ".failed").glob("*")) and not list((processed / ".failed").glob("*"))
    # Every line a kill may have torn is skipped; every page has its revision.
    logged = {entry["title"] for log in raw.glob("revisions-*.jsonl") for entry in pagefiles.read_json_lines(log)}
    assert len(logged) == PAGES


@pytest.mark.slow
def test_sigkill_during_fetch_then_a_rerun_gives_the_uninterrupted_files(tmp_path, slow_wiki, uninterrupted):
    data_dir = data_dir_for(slow_wiki, tmp_path)
    raw, processed = stage_dirs(data_dir, slow_wiki)
    held = kill_when(data_dir, raw, ".mediawiki", PAGES * 3 // 10)
    assert held < PAGES, "the fetch stage was over before the kill"
    assert_rerun_is_whole(data_dir, slow_wiki, uninterrupted)


@pytest.mark.slow
def test_sigkill_during_convert_then_a_rerun_gives_the_uninterrupted_files(tmp_path, slow_wiki, uninterrupted):
    data_dir = data_dir_for(slow_wiki, tmp_path)
    raw, processed = stage_dirs(data_dir, slow_wiki)
    held = kill_when(data_dir, processed, ".md", PAGES * 3 // 10)
    assert held < PAGES, "the convert stage was over before the kill"
    assert_rerun_is_whole(data_dir, slow_wiki, uninterrupted)


# Several machines on one luigid, as the README sets them up (each machine's luigi.cfg, luigid's own),
# with the scheduler's waits cut from minutes to seconds.
MACHINE_CONFIG = CONFIG + """
[wikiluigi]
data_dir = {data_dir}
machine_name = {name}
[worker]
keep_alive = true
wait_interval = 0.5
wait_jitter = 0.5
[retcode]
already_running = 0
not_run = 0
"""
LUIGID_CONFIG = """
[scheduler]
retry_count = 3
retry_delay = 1
worker_disconnect_delay = 4
prune_on_get_work = true
"""


def machine(folder: Path, name: str, shared: Path) -> Path:
    """A machine's working directory: its own luigi.cfg naming the shared data directory."""
    return make_data_dir(folder / name, {}, config=MACHINE_CONFIG.format(data_dir=shared, name=name))


def running_fetch(scheduler, process, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in scheduler.task_list("RUNNING").values():
            if task["name"] == "FetchPages":
                return task
        if process.poll() is not None:
            pytest.fail(f"the run ended before a chunk was seen running:\n{finish(process).stderr[-4000:]}")
        time.sleep(0.02)
    pytest.fail("no FetchPages task ran")


@pytest.mark.slow
def test_a_machine_killed_holding_a_chunk_leaves_it_to_the_others(tmp_path, slow_wiki, uninterrupted, luigid):
    scheduler = luigid(config=LUIGID_CONFIG)
    shared = data_dir_for(slow_wiki, tmp_path / "shared")
    (shared / "luigi.cfg").unlink()  # each machine has its own
    first, second = machine(tmp_path, "first", shared), machine(tmp_path, "second", shared)
    run_luigi(first, "DeriveManifest", "--manifest", "trek", *scheduler.worker_args, check_returncode=0)

    doomed = start_luigi(first, "Wikipedia", "--manifest", "trek", "--workers", "1",
                         "--lock-pid-dir", str(first / "locks"), *scheduler.worker_args)
    held = running_fetch(scheduler, doomed)
    killpg_quiet(doomed.pid, signal.SIGKILL)  # the machine dies holding a chunk
    doomed.communicate()

    result = run_luigi(second, "Wikipedia", "--manifest", "trek", "--workers", "2",
                       "--lock-pid-dir", str(second / "locks"), *scheduler.worker_args, timeout=300)
    assert result.returncode == 0, result.stderr[-6000:]
    # The second machine waited for the chunk the dead one held, then did it itself.
    assert f"done      FetchPages(manifest=trek, chunk={held['params']['chunk']})" in result.stderr
    assert pages(shared, slow_wiki) == uninterrupted
    assert all(t["status"] == "DONE" for t in scheduler.all_tasks().values())
    # Each machine kept its own HTTP cache and revisions log in the shared data directory.
    assert {p.name for p in (shared / ".cache" / "http").glob("*.sqlite")} == {"first.sqlite", "second.sqlite"}
    raw, _ = stage_dirs(shared, slow_wiki)
    logs = {p.name for p in raw.glob("revisions*.jsonl")}
    assert "revisions-second.jsonl" in logs and logs <= {"revisions-first.jsonl", "revisions-second.jsonl"}


@pytest.mark.slow
def test_luigid_restarted_mid_run_then_a_rerun_completes(tmp_path, slow_wiki, uninterrupted, luigid):
    scheduler = luigid()
    data_dir = data_dir_for(slow_wiki, tmp_path)
    with open(data_dir / "luigi.cfg", "a", encoding="utf-8") as config:  # ride out the restart, quickly
        config.write("[core]\nrpc_retry_attempts = 10\nrpc_retry_wait = 1\n")
    command = ["Wikipedia", "--manifest", "trek", "--workers", "2", "--lock-pid-dir", str(tmp_path / "locks"),
               *scheduler.worker_args]
    process = start_luigi(data_dir, *command)
    running_fetch(scheduler, process)
    scheduler.stop()   # SIGTERM: luigid saves its state and goes; the workers' requests fail meanwhile
    time.sleep(2)
    scheduler.start()  # the same port, its state read back
    result = finish(process)
    if result.returncode != 0:  # failing is allowed, with a message that says it was the scheduler
        assert "scheduler" in result.stderr.lower(), result.stderr[-4000:]
    run_luigi(data_dir, *command, check_returncode=0)
    assert pages(data_dir, slow_wiki) == uninterrupted
    assert not [p for p in data_dir.rglob("*") if ".tmp-" in p.name and "locks" not in p.parts]
