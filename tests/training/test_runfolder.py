"""wikiluigi.training.runfolder without a backend: what a kill can leave at each moment, identity, run.json, the log."""
import json

import pytest

from wikiluigi.errors import ModelError
from wikiluigi.training import runfolder
from wikiluigi.training.runfolder import BEST, LATEST, RunFolder

IDENTITY = {"backend": "test", "base_model": {"name": "base"}, "corpus": {"manifests": ["demo"], "validation": 0.1}}


@pytest.fixture
def base(tmp_path):
    folder = tmp_path / "base"
    folder.mkdir()
    for name, text in (("hparams.json", '{"n_vocab": 5, "n_ctx": 8, "n_embd": 4, "n_head": 1, "n_layer": 1}'),
                       ("encoder.json", '{"a": 0}'), ("vocab.bpe", "#version: 0.2\n")):
        (folder / name).write_text(text)
    return folder


def save(folder: RunFolder, kind, step, val_loss=None, payload="weights"):
    with folder.writing(kind, step, backend="test", val_loss=val_loss) as tmp:
        (tmp / "model.bin").write_text(f"{payload} {step}")


def row(step, loss=2.0, val_loss=None):
    return {"step": step, "loss": loss, "avg_loss": loss, "learning_rate": 1e-3, "tokens_per_s": 10.0,
            "elapsed_s": float(step), "val_loss": val_loss}


def test_a_new_run_gets_the_model_files_and_a_run_json_with_settings_and_checkpoints(tmp_path, base):
    folder = RunFolder(tmp_path / "run")
    state = folder.open(IDENTITY, {"steps": 10}, base)
    assert state.step == 0 and state.best_step is None and state.rows == []
    for step in (1, 2):
        folder.append(row(step, val_loss=1.5 if step == 2 else None))
    save(folder, BEST, 2, val_loss=1.5)
    save(folder, LATEST, 2)
    folder.close()
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["settings"] == {"steps": 10} and info["backend"] == "test"
    assert info["latest"] == {"step": 2, "val_loss": None} and info["best"] == {"step": 2, "val_loss": 1.5}
    assert (tmp_path / "run" / "latest" / "model.bin").read_text() == "weights 2"
    assert sorted(p.name for p in (tmp_path / "run" / "best").iterdir()) == [
        "checkpoint.json", "encoder.json", "hparams.json", "model.bin", "vocab.bpe"]
    assert (tmp_path / "run" / "loss.csv").read_text().splitlines() == [
        "step,loss,avg_loss,learning_rate,tokens_per_s,elapsed_s,val_loss",
        "1,2.00000,2.00000,1.0000e-03,10.0,1.00,", "2,2.00000,2.00000,1.0000e-03,10.0,2.00,1.50000"]
    assert runfolder.saved_step(tmp_path / "run") == 2 and runfolder.saved_step(tmp_path / "run", BEST) == 2


def test_resuming_drops_log_rows_after_the_latest_checkpoint_and_a_torn_line(tmp_path, base):
    folder = RunFolder(tmp_path / "run")
    folder.open(IDENTITY, {"steps": 10}, base)
    for step in (1, 2, 3):
        folder.append(row(step, val_loss=1.0 if step == 2 else None))
    save(folder, LATEST, 2)
    folder.append(row(4))
    folder.close()
    with open(tmp_path / "run" / "loss.csv", "a") as log:
        log.write("5,1.9")                                   # a kill mid-line
    state = RunFolder(tmp_path / "run").open(IDENTITY, {"steps": 10}, base)
    assert state.step == 2 and [r["step"] for r in state.rows] == [1, 2] and state.rows[1]["val_loss"] == 1.0
    assert len((tmp_path / "run" / "loss.csv").read_text().splitlines()) == 3


@pytest.mark.parametrize("moment", ["tmp written", "old moved aside", "new in place", "aside removed"])
def test_a_kill_at_any_moment_of_publishing_leaves_a_whole_checkpoint(tmp_path, base, moment):
    run = tmp_path / "run"
    folder = RunFolder(run)
    folder.open(IDENTITY, {"steps": 10}, base)
    save(folder, LATEST, 1)
    # What each moment of the next save leaves on disk, made by hand.
    tmp = run / f".{LATEST}.tmp-999"
    tmp.mkdir()
    (tmp / "model.bin").write_text("weights 2")
    (tmp / "checkpoint.json").write_text('{"step": 2, "val_loss": null, "backend": "test"}')
    if moment != "tmp written":
        (run / LATEST).rename(run / f".{LATEST}.old")
    if moment in ("new in place", "aside removed"):
        tmp.rename(run / LATEST)
    if moment == "aside removed":
        import shutil
        shutil.rmtree(run / f".{LATEST}.old")
    state = RunFolder(run).open(IDENTITY, {"steps": 10}, base)
    expected = 2 if moment in ("new in place", "aside removed") else 1
    assert state.step == expected and (run / LATEST / "model.bin").read_text() == f"weights {expected}"
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


def test_a_run_resumes_only_as_itself(tmp_path, base):
    folder = RunFolder(tmp_path / "run")
    folder.open(IDENTITY, {"steps": 10}, base)
    folder.close()
    other_corpus = {**IDENTITY, "corpus": {"manifests": ["startrek"], "validation": 0.1}}
    with pytest.raises(ModelError, match=r"is another run than this Train describes \(corpus: it has "
                                         r".*demo.*this Train asks for .*startrek.*\)\. A run only resumes"):
        RunFolder(tmp_path / "run").open(other_corpus, {"steps": 10}, base)
    with pytest.raises(ModelError, match=r"\(base_model: it has .*\"base\".*, this Train asks for .*124M"):
        RunFolder(tmp_path / "run").open({**IDENTITY, "base_model": {"name": "124M"}}, {"steps": 10}, base)
    (base / "vocab.bpe").write_text("#version: 0.2\na b\n")
    with pytest.raises(ModelError, match=r"was started from another base model \(base\).*vocabulary differ"):
        RunFolder(tmp_path / "run").open(IDENTITY, {"steps": 10}, base)


def test_changed_settings_are_kept_in_the_history(tmp_path, base):
    folder = RunFolder(tmp_path / "run")
    folder.open(IDENTITY, {"steps": 10, "learning_rate": 1e-3}, base)
    save(folder, LATEST, 10)
    folder.close()
    folder = RunFolder(tmp_path / "run")
    folder.open(IDENTITY, {"steps": 20, "learning_rate": 1e-3}, base)
    folder.close()
    info = runfolder.load_info(tmp_path / "run")
    assert info["settings"]["steps"] == 20 and info["history"] == [{"step": 10, "changed": {"steps": [10, 20]}}]


def test_best_falls_back_to_latest_with_a_message_and_no_run_is_a_clear_error(tmp_path, base):
    with pytest.raises(ModelError, match=r"holds no checkpoint: train the run first \(Train --run-name run\)"):
        runfolder.checkpoint_folder(tmp_path / "run")
    folder = RunFolder(tmp_path / "run")
    folder.open(IDENTITY, {}, base)
    save(folder, LATEST, 3)
    path, info, messages = runfolder.checkpoint_folder(tmp_path / "run", BEST)
    assert path.name == LATEST and info["step"] == 3 and "has no best checkpoint" in messages[0]
    with pytest.raises(ModelError, match=r"checkpoint must be 'best' or 'latest', not 'newest'"):
        runfolder.checkpoint_folder(tmp_path / "run", "newest")


def test_a_run_of_the_older_layout_is_a_clear_error(tmp_path, base):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint").write_text('model_checkpoint_path: "model-40"\n')
    with pytest.raises(ModelError, match=r"run of an older wikiluigi .* delete it to start again"):
        RunFolder(tmp_path / "run").open(IDENTITY, {}, base)


FIRST_OPEN = """
import os, signal, sys
from wikiluigi.training.runfolder import RunFolder
IDENTITY = {identity!r}
renames, real_replace = [0], os.replace
def replace(src, dst):
    renames[0] += 1
    if renames[0] == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)    # a kill just before this rename
    real_replace(src, dst)
os.replace = replace
RunFolder(sys.argv[1]).open(IDENTITY, {{"steps": 10}}, sys.argv[2])
"""


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4, 5])
def test_a_kill_while_a_run_folder_is_first_written_leaves_no_run_or_a_whole_one(tmp_path, base, kill_at):
    import signal
    import subprocess
    import sys
    run = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", FIRST_OPEN.format(identity=IDENTITY, kill_at=kill_at),
                             str(run), str(base)], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (run / "run.json").exists()               # not a run yet
    state = RunFolder(run).open(IDENTITY, {"steps": 10}, base)   # the next Train goes on
    assert state.step == 0
    for name in runfolder.MODEL_FILES:
        assert (run / name).read_bytes() == (base / name).read_bytes()
    assert runfolder.load_info(run)["settings"] == {"steps": 10}
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


def test_a_model_file_torn_before_the_run_was_started_is_copied_again(tmp_path, base):
    run = tmp_path / "run"
    run.mkdir()
    (run / "hparams.json").write_text('{"n_vocab": 5, "n_')      # an older wikiluigi's copy, cut by a kill
    RunFolder(run).open(IDENTITY, {"steps": 10}, base)
    assert (run / "hparams.json").read_bytes() == (base / "hparams.json").read_bytes()


def test_a_checkpoint_is_on_disk_before_it_is_named_and_its_name_after(tmp_path, base, monkeypatch):
    import os
    folder = RunFolder(tmp_path / "run")
    folder.open(IDENTITY, {"steps": 10}, base)
    folder.append(row(1))
    events = []
    real_fsync, real_rename = os.fsync, os.rename
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd)))
    monkeypatch.setattr(os, "rename", lambda src, dst: (events.append(("rename", str(dst))), real_rename(src, dst)))
    save(folder, LATEST, 1)
    folder.close()
    published = events.index(("rename", str(tmp_path / "run" / LATEST)))
    synced = {what for kind, what in events[:published] if kind == "fsync"}
    tmp = [what for kind, what in events if kind == "fsync" and what.endswith("/model.bin")][0].rsplit("/", 1)[0]
    assert {f"{tmp}/model.bin", f"{tmp}/checkpoint.json", tmp, str(tmp_path / "run" / "loss.csv")} <= synced
    assert ("fsync", str(tmp_path / "run")) in events[published:]
