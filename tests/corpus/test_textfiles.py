"""wikiluigi.corpus.textfiles: text files written atomically by a background thread; a training set killed mid-write."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.corpus.test_corpus import make_manifest
from wikiluigi.corpus import textfiles
from wikiluigi.corpus import trainingset as corpus

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_chunks_reach_the_file_in_order_and_nothing_is_there_before_the_end(tmp_path, monkeypatch):
    monkeypatch.setattr(textfiles, "CHUNK_BYTES", 10)
    path = tmp_path / "out.txt"
    lines = [f"line {n} \u00e9\n" for n in range(500)]
    with textfiles.Writes() as writes, textfiles.AtomicText(path, writes) as out:
        for line in lines:
            out.write(line)
        assert not path.exists()
    assert path.read_text(encoding="utf-8") == "".join(lines)
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failed_write_reaches_the_caller_and_leaves_the_old_file(tmp_path, monkeypatch):
    monkeypatch.setattr(textfiles, "CHUNK_BYTES", 10)
    path = tmp_path / "out.txt"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(ValueError, match="closed file"):
        with textfiles.Writes() as writes, textfiles.AtomicText(path, writes) as out:
            out.handle.close()                      # every write the thread makes now fails
            for n in range(100):
                out.write(f"line {n}\n")
    assert path.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


KILL_MID_BUILD = """
import os, signal
from wikiluigi.corpus import textfiles, trainingset
textfiles.CHUNK_BYTES = 2000
send = textfiles.AtomicText._send
sent = []
def send_then_die(self):
    send(self)
    sent.append(1)
    if len(sent) == 6:
        self.writes.drain()                 # some chunks are on disk, in the temporaries
        os.kill(os.getpid(), signal.SIGKILL)
textfiles.AtomicText._send = send_then_die
trainingset.build_trainingset(["big"])
"""


def test_a_training_set_killed_mid_write_keeps_its_old_files_and_the_next_build_cleans_up(data_dir):
    make_manifest("big", "big.example", {f"Page {n:03d}": f"Old text of page {n}. " * 20 for n in range(120)})
    corpus.build_trainingset(["big"])
    folder = corpus.folder(["big"])
    names = ("train.txt", "validation.txt", "train.jsonl", "validation.jsonl")
    old = {name: (folder / name).read_bytes() for name in names}
    make_manifest("big", "big.example", {f"Page {n:03d}": f"New text of page {n}. " * 20 for n in range(120)})
    killed = subprocess.run([sys.executable, "-c", KILL_MID_BUILD], cwd=data_dir,
                            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert {name: (folder / name).read_bytes() for name in names} == old         # the old set, whole
    assert not (folder / "stats.json").exists() and not corpus.is_built(["big"])   # so it is built again
    assert list(folder.glob(".tmp-*.part"))                                       # what the kill left
    corpus.build_trainingset(["big"])
    assert corpus.is_built(["big"]) and not list(folder.glob(".*"))
    text = (folder / "train.txt").read_text(encoding="utf-8") + (folder / "validation.txt").read_text(encoding="utf-8")
    assert text.count("New text of page") == 120 * 20 and "Old text" not in text
