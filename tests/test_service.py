"""wikiluigi run like a service: a real luigid, `--workers 8`, two worker machines on one scheduler, the
visualiser in a real browser, exit codes and summaries, and the `wikiluigi` console script.

Every run is the real `luigi --module wikiluigi ...` (or `python -m wikiluigi.cli`) started in a data directory
under pytest's tmp_path, outside the repository, against a real MediaWiki served on 127.0.0.1.
"""
import collections
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.luigi_cli import PROJECT_ROOT, TEST_CONFIG, derived, make_data_dir, run_luigi
from tests.support.luigid import finish, luigi_env, resource_name, start_luigi
from tests.support.wiki_fixtures import STARTREK_DUMP
from wikiluigi.paths import title_to_stem

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# The 27 articles under Category:Star Trek: 6 chunks of at most 5 pages with chunk_size = 5.
TREK_PAGES = 27
SMALL_CHUNKS = TEST_CONFIG + "[fetch]\nchunk_size = 5\n"

# What each machine's luigi.cfg needs when several `luigi ... Wikipedia` processes share one luigid. With the
# shipped defaults the second process exits 10 (already_running) as soon as it finds the first one's task running.
# keep_alive: a worker whose tasks another machine is running waits for them instead of leaving at once;
# already_running / not_run = 0: Luigi 3.8 counts "I waited while another worker ran my task" as already_running
# and "my root task was completed by another worker" as not_run; neither is a failure when machines share work.
SEVERAL_MACHINES = """
[worker]
keep_alive = true
[retcode]
already_running = 0
not_run = 0
"""
# Test speed only ([worker] keys): a waiting worker asks luigid again after 0.5-1 s instead of 1-6 s.
QUICK_POLLING = "wait_interval = 0.5\nwait_jitter = 0.5\n"

# Every content request (prop=revisions) to the wiki waits 0.8 s, so a chunk takes seconds to fetch.
SLOW_CONTENT = """
$wgHooks['ApiBeforeMain'][] = static function () {
	if ( ( $_POST['prop'] ?? $_GET['prop'] ?? '' ) === 'revisions' ) {
		usleep( 800000 );
	}
	return true;
};
"""

TASK_LINE = re.compile(r"^INFO: \[pid \d+\] Worker Worker\(.*?\) (running|done|failed) +(\w+)\((.*)\)\s*$")


def trek_manifest(wiki, **extra):
    return {"api": wiki.api_url, "include_categories": ["Category:Star Trek"], **extra}


def host(wiki) -> str:
    return f"127.0.0.1:{wiki.port}"


def raw_dir(data_dir: Path, wiki) -> Path:
    return data_dir / "raw" / "mediawiki" / host(wiki)


def processed_dir(data_dir: Path, wiki) -> Path:
    return data_dir / "processed" / "mediawiki" / host(wiki)


def assert_pages_complete(data_dir: Path, wiki, titles) -> None:
    """Each page's raw file is the wiki's wikitext byte for byte; its Markdown is a page with a title."""
    for title in titles:
        stem = title_to_stem(title)
        raw = raw_dir(data_dir, wiki) / f"{stem}.mediawiki"
        assert raw.read_text(encoding="utf-8") == wiki.page_text(title), f"raw file of {title!r} differs"
        markdown = (processed_dir(data_dir, wiki) / f"{stem}.md").read_text(encoding="utf-8")
        assert markdown.startswith("# ") and len(markdown.strip()) > 2, f"Markdown of {title!r}: {markdown[:200]!r}"


def task_events(stderr: str) -> list[tuple[str, str, str]]:
    """(event, task family, parameters) of every 'running'/'done'/'failed' line a luigi worker logged, in order."""
    return [m.groups() for m in map(TASK_LINE.match, stderr.splitlines()) if m]


def most_at_once(stderr: str, families: set[str]) -> int:
    """The most tasks of those families that were running at the same time, read from one luigi's log."""
    running: set[str] = set()
    most = 0
    for event, family, params in task_events(stderr):
        if family not in families:
            continue
        if event == "running":
            running.add(f"{family}({params})")
            most = max(most, len(running))
        else:
            running.discard(f"{family}({params})")
    return most


def families(tasks: dict) -> collections.Counter:
    return collections.Counter(task["name"] for task in tasks.values())


def content_requests(wiki):
    return [r for r in wiki.api_requests() if r.params.get("prop") == "revisions"]


def wikiluigi_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """The `wikiluigi` console script (wikiluigi.cli) run in the data directory."""
    return subprocess.run([sys.executable, "-m", "wikiluigi.cli", *args], cwd=data_dir, capture_output=True,
                          text=True, timeout=120, env=luigi_env())


def status_counts(data_dir: Path, manifest: str) -> dict[str, int]:
    result = wikiluigi_cli(data_dir, "status", "--manifest", manifest)
    assert result.returncode == 0, result.stdout + result.stderr
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s+(derived|raw|processed|failed)\s+(\d+)\s*$",
                                                               result.stdout, re.MULTILINE)}


def disk_counts(data_dir: Path, wiki) -> dict[str, int]:
    """What `wikiluigi status` should say, counted with plain file listings."""
    raw, processed = raw_dir(data_dir, wiki), processed_dir(data_dir, wiki)
    return {
        "raw": len(list(raw.glob("*.mediawiki"))),
        "processed": len(list(processed.glob("*.md"))),
        "failed": len({p.name for folder in (raw, processed) for p in (folder / ".failed").glob("*.json")}),
    }


def summary_block(stdout: str) -> str:
    """The summary wikiluigi prints at the end of a Wikipedia run (its first line to its last indented one)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("wikiluigi summary for manifest"))
    end = start + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    return "\n".join(lines[start:end])


def summary_numbers(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^  (pages listed|fetched|converted|failed|time taken) +(\S+)", stdout, re.MULTILINE))


# --------------------------------------------------------------------------------------------- luigid

@pytest.mark.slow
def test_luigid_with_8_workers_runs_every_task_to_done(tmp_path, startrek_wiki, luigid):
    # Resources are counted by the scheduler: luigid's own luigi.cfg caps the wiki at 3 parallel requests;
    # the 8 in the workers' luigi.cfg only counts with --local-scheduler.
    api = resource_name(host(startrek_wiki))
    scheduler = luigid(resources={api: 3})
    data_dir = make_data_dir(tmp_path / "data", {"trek": trek_manifest(startrek_wiki)},
                             config=SMALL_CHUNKS + f"[resources]\n{api} = 8\n")

    result = run_luigi(data_dir, "Wikipedia", "--manifest", "trek", "--workers", "8", *scheduler.worker_args,
                       check_returncode=0)

    tasks = scheduler.all_tasks()
    assert families(tasks) == {"DeriveManifest": 1, "FetchPages": 6, "ProcessPages": 6, "Convert": 1,
                               "Wikipedia": 1}, sorted(tasks)
    not_done = {task_id: task["status"] for task_id, task in tasks.items() if task["status"] != "DONE"}
    assert not not_done
    assert all(task["params"]["manifest"] == "trek" for task in tasks.values())
    assert sorted(int(t["params"]["chunk"]) for t in tasks.values() if t["name"] == "FetchPages") == list(range(6))

    # Progress and status messages reached luigid from the forked worker processes.
    by_name = collections.defaultdict(list)
    for task in tasks.values():
        by_name[task["name"]].append(task)
    assert by_name["DeriveManifest"][0]["status_message"] == f"{TREK_PAGES} pages in 6 chunks"
    for family, done in (("FetchPages", r"([1-5]) fetched"),
                         ("ProcessPages", r"([1-5]) converted \(\1 by the fast path, 0 by pandoc\)")):
        for task in by_name[family]:
            assert task["progress_percentage"] == 100
            assert re.fullmatch(rf"chunk {task['params']['chunk']}: {done}, 0 failed", task["status_message"])

    # The API cap: luigid's 3, not the workers' 8, and more than the polite default of 1.
    assert [r["num_total"] for r in scheduler.resource_list() if r["name"] == api] == [3]
    assert 2 <= most_at_once(result.stderr, {"FetchPages", "DeriveManifest"}) <= 3, result.stderr[-6000:]

    numbers = summary_numbers(result.stdout)
    assert [numbers[k] for k in ("pages listed", "fetched", "converted", "failed")] == ["27", "27", "27", "0"]
    assert_pages_complete(data_dir, startrek_wiki, derived(data_dir, "trek")["titles"])


@pytest.mark.slow
def test_two_machines_on_one_luigid_fetch_every_page_once(tmp_path, startrek_wiki, luigid):
    scheduler = luigid()  # no [resources]: the wiki's API resource counts as 1, across both machines
    api = resource_name(host(startrek_wiki))
    config = SMALL_CHUNKS + SEVERAL_MACHINES.replace("[worker]\n", "[worker]\n" + QUICK_POLLING)
    data_dir = make_data_dir(tmp_path / "data", {"trek": trek_manifest(startrek_wiki)}, config=config)
    # As the README says for several machines: derive first, so that every machine knows every chunk.
    run_luigi(data_dir, "DeriveManifest", "--manifest", "trek", *scheduler.worker_args, check_returncode=0)
    startrek_wiki.mark_requests()

    # Two machines: each has its own /tmp/luigi pid locks, so each gets its own --lock-pid-dir here.
    machines = [start_luigi(data_dir, "Wikipedia", "--manifest", "trek", "--workers", "8",
                            "--lock-pid-dir", str(tmp_path / f"machine-{i}"), *scheduler.worker_args)
                for i in (1, 2)]
    most_api_tasks = 0
    # For each machine, as soon as it is seen to have left: was Wikipedia already DONE in luigid?
    wikipedia_done_when_left: dict[int, int] = {}
    deadline = time.monotonic() + 300
    while len(wikipedia_done_when_left) < len(machines) and time.monotonic() < deadline:
        running = scheduler.task_list("RUNNING").values()
        most_api_tasks = max(most_api_tasks, sum(1 for t in running if api in (t.get("resources") or {})))
        for i, machine in enumerate(machines):
            if i not in wikipedia_done_when_left and machine.poll() is not None:
                done_now = scheduler.task_list("DONE").values()
                wikipedia_done_when_left[i] = [t["name"] for t in done_now].count("Wikipedia")
        time.sleep(0.05)
    results = [finish(m, timeout=30) for m in machines]

    for result in results:
        assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    # Each machine left only when everything was done: neither gave up early.
    assert wikipedia_done_when_left == {0: 1, 1: 1}
    # Both machines talked to the one luigid (besides the worker that derived the manifest).
    assert len([w for w in scheduler.worker_list() if w["first_task_display_name"] == "Wikipedia(manifest=trek)"]) == 2
    assert most_api_tasks <= 1  # the polite default held across machines

    # Every task ran exactly once, on one machine or the other.
    done = collections.Counter(f"{family}({params})" for result in results
                               for event, family, params in task_events(result.stderr) if event == "done")
    assert sum(done.values()) == 14 and set(done.values()) == {1}, done
    for result in results:  # both machines were offered the chunks, not only the one that derived
        assert "Informed scheduler that task   FetchPages_" in result.stderr
        assert "Informed scheduler that task   ProcessPages_" in result.stderr
    assert all(t["status"] == "DONE" for t in scheduler.all_tasks().values())

    titles = derived(data_dir, "trek")["titles"]
    fetched = collections.Counter(t for r in content_requests(startrek_wiki) for t in r.titles)
    assert sorted(fetched) == sorted(titles) and set(fetched.values()) == {1}, fetched
    assert_pages_complete(data_dir, startrek_wiki, titles)
    assert len(list(processed_dir(data_dir, startrek_wiki).glob("*.md"))) == TREK_PAGES


# --------------------------------------------------------------------------------------------- browser

def _launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def _require_browser():
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as error:
        problem = f"Playwright for Python is not installed ({error}): pip install playwright"
    else:
        if CHROMIUM.exists():
            return sync_playwright, expect
        problem = f"no {CHROMIUM}: apt-get install chromium"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(problem, pytrace=False)
    pytest.skip(problem)


def _wait_for_running_fetch(scheduler, process, timeout: float = 90) -> dict:
    """The running FetchPages task once it has reported some progress, but not all of it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in scheduler.task_list("RUNNING").values():
            if task["name"] == "FetchPages" and 0 < (task["progress_percentage"] or 0) < 100:
                return task
        if process.poll() is not None:
            result = finish(process)
            pytest.fail(f"luigi ended (exit {result.returncode}) before a FetchPages task was seen running:\n"
                        f"{result.stderr[-6000:]}")
        time.sleep(0.05)
    pytest.fail(f"no running FetchPages task with progress within {timeout} s")


@pytest.mark.slow
def test_visualiser_shows_a_running_chunk_with_progress_and_status(tmp_path, local_mediawiki_factory, luigid):
    sync_playwright, expect = _require_browser()
    wiki = local_mediawiki_factory(STARTREK_DUMP, extra_settings=SLOW_CONTENT)
    scheduler = luigid()
    # One chunk of 27 pages, 3 titles a request: 9 slow requests, about 7 s of fetching with progress.
    data_dir = make_data_dir(tmp_path / "data", {"slowtrek": trek_manifest(wiki)},
                             config=TEST_CONFIG.replace("[http]\n", "[http]\ntitles_per_request = 3\n")
                             + "[fetch]\nchunk_size = 50\n")
    ARTIFACTS.mkdir(exist_ok=True)
    tasks_png = ARTIFACTS / "visualiser-tasks.png"
    workers_png = ARTIFACTS / "visualiser-workers.png"
    message_png = ARTIFACTS / "visualiser-status-message.png"
    for old in (tasks_png, workers_png, message_png):
        old.unlink(missing_ok=True)

    with sync_playwright() as playwright:
        browser = _launch_chromium(playwright)  # before the run: the fetch lasts only seconds
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            process = start_luigi(data_dir, "Wikipedia", "--manifest", "slowtrek", "--workers", "2",
                                  *scheduler.worker_args)
            try:
                _wait_for_running_fetch(scheduler, process)
                page.goto(scheduler.visualiser_url)

                # Task list: the manifest's tasks.
                table = page.locator("#taskTable")
                table.get_by_text("FetchPages", exact=False).first.wait_for(timeout=15000)
                listed = table.inner_text()
                for family in ("DeriveManifest", "FetchPages", "ProcessPages", "Convert", "Wikipedia"):
                    assert family in listed, listed
                assert "slowtrek" in listed
                page.screenshot(path=str(tasks_png), full_page=True)

                # Workers tab: the running chunk with its progress bar.
                page.click("a[data-tab='workerList']")
                bar = page.locator("#workerList .taskProgressBar").first
                bar.wait_for(state="visible", timeout=15000)
                row = page.locator("#workerList .worker-table tbody tr", has=page.locator(".taskProgressBar")).first
                assert "FetchPages" in row.inner_text() and "slowtrek" in row.inner_text()
                assert bar.get_attribute("data-task-id").startswith("FetchPages_0_slowtrek")
                percent = int(bar.get_attribute("aria-valuenow"))
                assert 0 < percent < 100, percent
                assert bar.inner_text().strip() == f"{percent}%"
                page.screenshot(path=str(workers_png), full_page=True)

                # Its status message, in the popup the comment button opens.
                row.locator(".statusMessage").click()
                message = page.locator("#statusMessageModal pre")
                # The popup asks luigid for the message twice a second.
                expect(message).to_have_text(re.compile(rf"fetched \d+ of {TREK_PAGES} pages of chunk 0"),
                                             timeout=15000)
                page.locator("#statusMessageModal .progress-bar").wait_for(state="visible", timeout=5000)
                page.screenshot(path=str(message_png), full_page=True)
                assert process.poll() is None, "the run ended before the screenshots were taken"
            finally:
                result = finish(process)
        finally:
            browser.close()

    assert result.returncode == 0, result.stderr[-6000:]
    assert all(png.stat().st_size > 10_000 for png in (tasks_png, workers_png, message_png))


# --------------------------------------------------------------------------------------------- exit codes

def test_clean_run_exits_0_and_prints_the_summary(tmp_path, startrek_wiki):
    pages = ["Spock", "Worf", "Starfleet", "USS Voyager", "Warp drive"]
    data_dir = make_data_dir(tmp_path / "data", {"few": {"api": startrek_wiki.api_url, "include_pages": pages}})
    assert not data_dir.resolve().is_relative_to(PROJECT_ROOT)

    result = run_luigi(data_dir, "Wikipedia", "--manifest", "few", "--local-scheduler")

    assert result.returncode == 0, result.stderr[-6000:]
    numbers = summary_numbers(result.stdout)
    assert {k: numbers[k] for k in ("pages listed", "fetched", "converted", "failed")} == {
        "pages listed": "5", "fetched": "5", "converted": "5", "failed": "0"}
    assert re.fullmatch(r"\d+\.\d s", numbers["time taken"] + " s")
    assert "failures file" not in result.stdout
    reports = data_dir / "out" / "reports"
    assert (reports / "few.txt").read_text(encoding="utf-8").strip() == summary_block(result.stdout)
    assert (reports / "few.failures.tsv").read_text(encoding="utf-8") == "title\tstage\treason\n"
    assert_pages_complete(data_dir, startrek_wiki, pages)
    assert status_counts(data_dir, "few") == {"derived": 5, **disk_counts(data_dir, startrek_wiki)} == {
        "derived": 5, "raw": 5, "processed": 5, "failed": 0}


def test_a_page_that_cannot_be_converted_fails_the_run_and_is_named(tmp_path, local_mediawiki_factory):
    wiki = local_mediawiki_factory(STARTREK_DUMP)
    # Only a template call: nothing is left once templates are dropped, so the converter refuses it.
    wiki.edit_page("Template only", "{{Infobox starship\n| name = Nothing here\n}}")
    data_dir = make_data_dir(tmp_path / "data", {
        "broken": {"api": wiki.api_url, "include_pages": ["Spock", "Template only", "Worf"]}})

    result = run_luigi(data_dir, "Wikipedia", "--manifest", "broken", "--local-scheduler")

    assert result.returncode != 0, result.stdout[-3000:]
    numbers = summary_numbers(result.stdout)
    assert {k: numbers[k] for k in ("pages listed", "fetched", "converted", "failed")} == {
        "pages listed": "3", "fetched": "3", "converted": "2", "failed": "1"}
    failures_file = data_dir / "out" / "reports" / "broken.failures.tsv"
    assert f"failures file   {failures_file}" in result.stdout
    assert "Template only (convert): empty after filtering" in result.stdout
    assert "1 of 3 pages of 'broken' failed" in result.stderr
    assert (data_dir / "out" / "reports" / "broken.txt").read_text(encoding="utf-8").strip() == \
        summary_block(result.stdout)
    rows = [line.split("\t") for line in failures_file.read_text(encoding="utf-8").splitlines()]
    assert rows == [["title", "stage", "reason"], ["Template only", "convert", "empty after filtering"]]

    # The other pages are done, and the failed one has raw wikitext but no Markdown.
    assert_pages_complete(data_dir, wiki, ["Spock", "Worf"])
    assert (raw_dir(data_dir, wiki) / "Template only.mediawiki").exists()
    assert not (processed_dir(data_dir, wiki) / "Template only.md").exists()
    assert status_counts(data_dir, "broken") == {"derived": 3, **disk_counts(data_dir, wiki)} == {
        "derived": 3, "raw": 3, "processed": 2, "failed": 1}


# --------------------------------------------------------------------------------------------- wikiluigi CLI

def test_wikiluigi_manifests_lists_the_shipped_and_the_data_directorys_manifests(tmp_path):
    data_dir = make_data_dir(tmp_path / "data", {"mine": {"api": "http://127.0.0.1:9/api.php",
                                                          "include_categories": ["Category:Mine"]}})
    result = wikiluigi_cli(data_dir, "manifests")
    assert result.returncode == 0, result.stderr
    rows = {line.split("\t")[0]: line.split("\t") for line in result.stdout.splitlines()}
    assert re.fullmatch(r"dump .*demo-wiki\.xml", rows["demo"][1]) and "Category:Myrling Isles" in rows["demo"][2]
    assert rows["startrek"][1] == "https://memory-alpha.fandom.com/api.php"
    assert rows["mine"][1:3] == ["http://127.0.0.1:9/api.php", "Category:Mine"]


def test_wikiluigi_status_of_an_unknown_manifest_is_a_clear_error(tmp_path):
    data_dir = make_data_dir(tmp_path / "data", {"mine": {"api": "http://127.0.0.1:9/api.php",
                                                          "include_pages": ["A"]}})
    result = wikiluigi_cli(data_dir, "status", "--manifest", "startrak")
    assert result.returncode == 2
    assert "No manifest named 'startrak'" in result.stderr and "startrek" in result.stderr
    assert "Traceback" not in result.stderr

    before = wikiluigi_cli(data_dir, "status", "--manifest", "mine")
    assert before.returncode == 0 and "not derived yet" in before.stdout
    assert "luigi --module wikiluigi Wikipedia --manifest mine" in before.stdout
