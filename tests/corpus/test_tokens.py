"""wikiluigi.corpus.tokens: a training set's tokens written once (uint16 files and tokens.json), checked before use."""
import json
import os
import shutil

import numpy as np
import pytest

from wikiluigi import paths
from wikiluigi.corpus import tokens, trainingset as corpus, vocabulary
from wikiluigi.errors import ModelError


@pytest.fixture
def corpus_copy(corpus_dir, tmp_path):
    """A private copy of the session's training set folder (without tokens others wrote into it)."""
    copy = tmp_path / "startrek"
    shutil.copytree(corpus_dir, copy, ignore=shutil.ignore_patterns(tokens.FOLDER))
    return copy


def test_tokens_are_the_ids_of_the_whole_text_in_uint16_with_counts_beside(corpus_copy, tiny_model):
    info = tokens.write_tokens(corpus_copy, tiny_model, workers=1, block_bytes=2000)  # many blocks of whole pages
    folder = corpus_copy / "tokens" / tiny_model.name
    tokenizer = vocabulary.load_tokenizer(tiny_model)
    for side, text, name in (("train", "train.txt", "train.bin"), ("validation", "validation.txt", "validation.bin")):
        whole = tokenizer.encode((corpus_copy / text).read_text(encoding="utf-8")).ids
        on_disk = np.fromfile(folder / name, dtype="<u2")
        assert on_disk.tolist() == whole and info[side]["tokens"] == len(whole) > 100
    assert info["dtype"] == "uint16" and info["n_vocab"] == 1000 and info["vocabulary"] == tiny_model.name
    assert json.loads((folder / "tokens.json").read_text(encoding="utf-8")) == info
    assert corpus.read_stats(corpus_copy)["tokens"][tiny_model.name] == info["train"]["tokens"]
    assert tokens.problem(corpus_copy, tiny_model) is None
    train, held, _ = tokens.open_tokens(corpus_copy, tiny_model)
    assert isinstance(train, np.memmap) and train.size == info["train"]["tokens"] and held.size > 0
    assert not list(folder.glob(".*"))


@pytest.mark.slow            # starting worker processes (spawn) takes seconds on a loaded machine
def test_worker_processes_write_the_same_bytes(corpus_copy, tiny_model, tmp_path):
    tokens.write_tokens(corpus_copy, tiny_model, workers=1, block_bytes=3000)
    alone = (corpus_copy / "tokens" / tiny_model.name / "train.bin").read_bytes()
    calls = []
    info = tokens.write_tokens(corpus_copy, tiny_model, workers=2, block_bytes=3000,
                               progress=lambda done, total: calls.append((done, total)))
    assert (corpus_copy / "tokens" / tiny_model.name / "train.bin").read_bytes() == alone
    assert info["workers"] == 2 and calls[-1][0] == calls[-1][1] and len(calls) > 5


def test_a_file_cut_short_or_of_another_vocabulary_or_training_set_is_refused_naming_it(corpus_copy, tiny_model):
    tokens.write_tokens(corpus_copy, tiny_model, workers=1)
    folder = corpus_copy / "tokens" / tiny_model.name
    good = (folder / "train.bin").read_bytes()
    (folder / "train.bin").write_bytes(good[:-3])                      # a kill or a full disk cut it short
    said = tokens.problem(corpus_copy, tiny_model)
    assert said.startswith(f"{folder / 'train.bin'} is {len(good) - 3:,} bytes where tokens.json says") and \
        "cut short" in said
    with pytest.raises(ModelError, match=r"cannot be used: .*train\.bin is .* bytes.*Write them again: run the "
                                         r"Tokens task"):
        tokens.open_tokens(corpus_copy, tiny_model)
    info = tokens.ensure(corpus_copy, tiny_model, workers=1)         # written again
    assert (folder / "train.bin").read_bytes() == good and tokens.problem(corpus_copy, tiny_model) is None

    stats = json.loads((corpus_copy / "stats.json").read_text(encoding="utf-8"))
    (corpus_copy / "stats.json").write_text(json.dumps({**stats, "fingerprint": "rebuilt"}), encoding="utf-8")
    assert "is of another build of the training set" in tokens.problem(corpus_copy, tiny_model)
    tokens.ensure(corpus_copy, tiny_model, workers=1)
    assert tokens.read_info(corpus_copy, tiny_model)["trainingset"] == "rebuilt" != info["trainingset"]

    (folder / "tokens.json").write_text(json.dumps({**tokens.read_info(corpus_copy, tiny_model),
                                                    "vocabulary_sha256": "0" * 64}), encoding="utf-8")
    assert "is of another vocabulary" in tokens.problem(corpus_copy, tiny_model)
    (folder / "tokens.json").unlink()
    assert "tokens.json is missing" in tokens.problem(corpus_copy, tiny_model)


def test_page_blocks_end_at_a_pages_end(tmp_path):
    text = "".join(corpus.wrap(f"Page {n}\n\n\nwith blank lines " * 20) for n in range(30))
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    blocks = [block.decode("utf-8") for block in tokens.page_blocks(tmp_path / "t.txt", block_bytes=500)]
    assert "".join(blocks) == text and len(blocks) == 30
    assert all(block.endswith("<|endoftext|>\n") and block.startswith("<|startoftext|>\n") for block in blocks)
    assert tokens.dtype_for(65536) == "uint16" and tokens.dtype_for(65537) == "uint32"


def test_a_killed_writers_temporaries_go_and_a_live_ones_stay(corpus_copy, tiny_model):
    import subprocess
    import sys
    folder = corpus_copy / "tokens" / tiny_model.name
    folder.mkdir(parents=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    machine = paths.machine_name()
    dead = [folder / f".tmp-{int(gone.stdout)}-1-0@{machine}.part", folder / f".train.bin.{int(gone.stdout)}.part"]
    live = [folder / f".tmp-{os.getppid()}-1-0@{machine}.part", folder / f".train.bin.{os.getppid()}.part"]
    for path in dead + live:                  # pagefiles' temporaries, and those of earlier versions
        path.write_bytes(b"\0" * 10)
    tokens.write_tokens(corpus_copy, tiny_model, workers=1)
    assert not any(path.exists() for path in dead) and all(path.exists() for path in live)
    assert tokens.problem(corpus_copy, tiny_model) is None
