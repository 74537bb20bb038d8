"""Session-scoped fixtures for the model tests: the startrek fixture's articles as a training set folder, a tiny
scratch GPT-2 (2 layers, 64 wide, n_ctx 128) built on it, and a run trained 40 steps on it.

Loaded by tests/conftest.py. Tests copy the trained run (copy_run) before changing it.
"""
import json
import os
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tests.support.wiki_fixtures import STARTREK_DUMP
from wikiluigi.corpus.trainingset import wrap

TINY = {"n_layer": 2, "n_embd": 64, "n_head": 2, "n_ctx": 128, "vocab_size": 1000, "seed": 1}
TRAIN = {"batch_size": 4, "learning_rate": 3e-3, "seed": 1, "save_every": 20, "validate_every": 10}
HELD_OUT = ("Spock", "Worf", "USS Enterprise (NCC-1701)")


def startrek_articles() -> dict[str, str]:
    """Title -> wikitext of the startrek fixture's articles (namespace 0, no redirects)."""
    if not STARTREK_DUMP.is_file():
        message = f"fixture dump missing: {STARTREK_DUMP}"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    root = ElementTree.parse(STARTREK_DUMP).getroot()
    ns = {"m": root.tag.split("}")[0][1:]}
    return {page.find("m:title", ns).text: page.find("m:revision/m:text", ns).text or ""
            for page in root.findall("m:page", ns)
            if page.find("m:ns", ns).text == "0" and page.find("m:redirect", ns) is None}


def write_corpus_dir(folder: Path, pages: dict[str, str], held_out=HELD_OUT) -> Path:
    """A training set folder as TrainingSet writes it (text files and stats.json), `held_out` titles aside."""
    folder.mkdir(parents=True, exist_ok=True)
    train = {t: x for t, x in pages.items() if t not in held_out}
    held = {t: x for t, x in pages.items() if t in held_out}
    (folder / "train.txt").write_text("".join(wrap(x) for x in train.values()), encoding="utf-8")
    (folder / "validation.txt").write_text("".join(wrap(x) for x in held.values()), encoding="utf-8")
    stats = {"manifests": ["startrek"], "folder": folder.name, "pages": len(pages),
             "train": {"pages": len(train)},
             "validation": {"asked": 0.1, "pages": len(held), "note": f"{len(held)} held out"}, "tokens": {}}
    (folder / "stats.json").write_text(json.dumps(stats), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    return write_corpus_dir(tmp_path_factory.mktemp("trainingset") / "startrek", startrek_articles())


@pytest.fixture(scope="session")
def corpus(corpus_dir) -> Path:
    """The training text alone."""
    return corpus_dir / "train.txt"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, corpus_dir) -> Path:
    from wikiluigi.training.backends import gpt2
    folder = tmp_path_factory.mktemp("model") / "tiny"
    gpt2.build_scratch_model(folder, [corpus_dir / "train.txt"], **TINY)  # (as Train: the training pages only)
    return folder


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_model, corpus_dir):
    """A run trained 40 steps with a 128-token window, validated every 10; (run, result, progress calls)."""
    from wikiluigi.training import loop as training
    run = tmp_path_factory.mktemp("runs") / "trained"
    calls = []
    result = training.train(run, tiny_model, corpus_dir, training.Settings(steps=40, sample_every=20, **TRAIN),
                            progress=lambda *args: calls.append(args))
    return run, result, calls


def copy_run(trained, tmp_path, name="run") -> Path:
    return Path(shutil.copytree(trained[0], tmp_path / name))
