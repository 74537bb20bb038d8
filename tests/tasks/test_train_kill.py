"""SIGKILL at any moment of training, through the real `luigi` command: the next Train resumes cleanly and
ends with the files of a run never interrupted (loss log, validation, best step), no temporary file left."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.luigi_cli import PROJECT_ROOT, make_data_dir, run_luigi
from wikiluigi.training import runfolder

TINY = ["--n-layer", "2", "--n-embd", "32", "--n-head", "2", "--n-ctx", "64", "--vocab-size", "600"]
# A save at every step and a validation every third: a kill often lands inside one.
TRAIN = ["--manifests", '["demo"]', "--steps", "24", "--batch-size", "2", "--learning-rate", "0.003",
         "--save-every", "1", "--validate-every", "3", "--validation-windows", "4", *TINY, "--local-scheduler",
         "--no-lock"]     # luigi's lock is per command line: another test run at the same time would refuse it


def rows(run: Path) -> dict[int, dict]:
    with open(run / "loss.csv", newline="") as f:
        return {int(r["step"]): r for r in csv.DictReader(f)}


def logged_steps(run: Path) -> int:
    try:
        return max(0, len((run / "loss.csv").read_text(encoding="utf-8").splitlines()) - 1)
    except FileNotFoundError:
        return 0


def train_until_killed(data: Path, run_name: str, after_rows: int) -> None:
    luigi = Path(sys.executable).with_name("luigi")
    command = [str(luigi), "--module", "wikiluigi", "Train", "--run-name", run_name, *TRAIN]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    process = subprocess.Popen(command, cwd=data, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    run = data / "out" / "checkpoint" / run_name
    try:
        deadline = time.monotonic() + 300
        while logged_steps(run) < after_rows and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert process.poll() is None, "training ended before the kill"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.slow
def test_a_run_killed_again_and_again_ends_as_one_never_interrupted(tmp_path):
    data = make_data_dir(tmp_path / "data", {})
    run_luigi(data, "Train", "--run-name", "straight", *TRAIN, check_returncode=0)    # the corpus and model too

    killed = data / "out" / "checkpoint" / "killed"
    for after_rows in (3, 10, 17):
        train_until_killed(data, "killed", after_rows)
        # Whatever the moment, what is on disk is whole: a checkpoint with its step, run.json, a log to resume.
        state = runfolder.RunFolder(killed)
        step = runfolder.saved_step(killed) or runfolder.checkpoint_info(killed / ".latest.old")["step"]
        assert step >= 1
        json.loads((killed / "run.json").read_text(encoding="utf-8"))
        assert state.path.exists()
    run_luigi(data, "Train", "--run-name", "killed", *TRAIN, check_returncode=0)

    straight = data / "out" / "checkpoint" / "straight"
    ours, theirs = rows(killed), rows(straight)
    assert list(ours) == list(theirs) == list(range(1, 25))
    for column in ("loss", "learning_rate", "val_loss"):
        assert [float(ours[s][column] or 0) for s in ours] == pytest.approx(
            [float(theirs[s][column] or 0) for s in theirs], rel=1e-4, abs=1e-6)
    info, reference = runfolder.load_info(killed), runfolder.load_info(straight)
    assert info["best"]["step"] == reference["best"]["step"] and info["latest"] == reference["latest"]
    assert info["settings"] == reference["settings"]
    assert sorted(p.name for p in (killed / "latest").iterdir()) == sorted(p.name for p in (straight / "latest").iterdir())
    assert [str(p.relative_to(killed)) for p in killed.rglob("*") if p.name.startswith(".")] == []
    assert (killed / "report.html").exists()
