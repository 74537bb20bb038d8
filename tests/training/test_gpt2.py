"""wikiluigi.training.backends.gpt2, the TensorFlow backend: base models, gpt-2-simple's layout both ways, and their errors.

The model is tiny (2 layers, 64 wide, n_ctx 128) and the corpus is the startrek fixture's articles
(tests/support/tiny_gpt2.py); the training loop itself is tested in test_training.py.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tiny_gpt2 import TINY, TRAIN, copy_run
from wikiluigi.errors import ModelError
from wikiluigi.training import loop as training, runfolder, sampling
from wikiluigi.training.backends import gpt2


def test_importing_wikiluigi_loads_no_tensorflow():
    code = ("import sys, wikiluigi, wikiluigi.training.backends.gpt2, wikiluigi.corpus.trainingset, wikiluigi.tasks.model, wikiluigi.training.loop, "
            "wikiluigi.training.sampling, wikiluigi.training.report, wikiluigi.training.runfolder, wikiluigi.corpus.vocabulary; "
            "print(sorted(m for m in ('tensorflow', 'gpt_2_simple', 'tokenizers', 'matplotlib', 'numpy') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------- base models
@pytest.mark.slow
def test_scratch_model_has_gpt2_simples_layout_and_loads_in_gpt2_simple(tiny_model):
    import gpt_2_simple
    import tensorflow as tf

    assert sorted(p.name for p in tiny_model.iterdir()) == sorted(gpt2.MODEL_FILES)
    assert (tiny_model / "checkpoint").read_text().splitlines()[0] == 'model_checkpoint_path: "model.ckpt"'
    assert gpt2.read_hparams(tiny_model) == {"n_vocab": 1000, "n_ctx": 128, "n_embd": 64, "n_head": 2, "n_layer": 2}
    assert not list(tiny_model.parent.glob(".*"))      # no temporary folder left beside it
    with tf.Graph().as_default():
        sess = gpt_2_simple.start_tf_sess()
        gpt_2_simple.load_gpt2(sess, model_name=tiny_model.name, model_dir=str(tiny_model.parent))
        texts = gpt_2_simple.generate(sess, model_name=tiny_model.name, model_dir=str(tiny_model.parent),
                                      length=20, return_as_list=True, seed=1)
        sess.close()
    assert len(texts) == 1


@pytest.mark.parametrize("options, message", [
    ({"n_head": 3}, r"n_embd \(64\) must be a multiple of n_head \(3\)"),
    ({"n_layer": 0}, r"n_layer must be a whole number of at least 1"),
    ({"vocab_size": 100}, r"vocab_size must be at least 259"),
])
def test_scratch_model_with_bad_options_is_an_error_and_leaves_nothing(tmp_path, corpus, options, message):
    with pytest.raises(ModelError, match=message):
        gpt2.build_scratch_model(tmp_path / "model", corpus, **{**TINY, **options})
    assert list(tmp_path.iterdir()) == []


def test_interrupted_scratch_build_leaves_no_model_folder(tmp_path, corpus, monkeypatch):
    stale = tmp_path / ".model.tmp-killed"          # what a killed build leaves: cleared by the next one
    stale.mkdir()

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(gpt2, "_write_random_weights", interrupted)
    with pytest.raises(KeyboardInterrupt):
        gpt2.build_scratch_model(tmp_path / "model", corpus, **TINY)
    assert list(tmp_path.iterdir()) == []


def test_unknown_openai_model_is_an_error_listing_the_names(tmp_path):
    with pytest.raises(ModelError, match=r"Unknown GPT-2 model '125M': OpenAI's models are 124M, 355M, 774M, 1558M"):
        gpt2.download_openai_model(tmp_path / "125M", "125M")


def test_download_without_network_names_the_model_and_url(tmp_path, monkeypatch):
    import requests

    def offline(url, **_kwargs):
        raise requests.ConnectionError(f"Failed to resolve host for {url}")

    monkeypatch.setattr(requests, "get", offline)           # gpt-2-simple's own code path, minus the network
    with pytest.raises(ModelError) as error:
        gpt2.download_openai_model(tmp_path / "124M", "124M")
    assert "Could not download GPT-2 124M from " \
           "https://openaipublic.blob.core.windows.net/gpt-2/models/124M/checkpoint" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_an_incomplete_base_model_is_an_error_naming_the_file(tmp_path, tiny_model, corpus_dir):
    broken = Path(shutil.copytree(tiny_model, tmp_path / "broken"))
    (broken / "model.ckpt.index").unlink()
    with pytest.raises(ModelError, match=r"base model .*broken is incomplete: model.ckpt.index missing"):
        training.train(tmp_path / "run", broken, corpus_dir, training.Settings(steps=1))


# ------------------------------------------------------------------------------- gpt-2-simple's layout
@pytest.mark.slow
@pytest.mark.parametrize("kind", [runfolder.LATEST, runfolder.BEST])
def test_gpt2_simple_generates_from_our_checkpoints(trained, kind):
    import gpt_2_simple
    import tensorflow as tf

    run = trained[0]
    assert (run / kind / "checkpoint").read_text().splitlines()[0].startswith('model_checkpoint_path: "model-')
    with tf.Graph().as_default():
        sess = gpt_2_simple.start_tf_sess()
        gpt_2_simple.load_gpt2(sess, run_name=f"{run.name}/{kind}", checkpoint_dir=str(run.parent))
        texts = gpt_2_simple.generate(sess, run_name=f"{run.name}/{kind}", checkpoint_dir=str(run.parent),
                                      length=20, return_as_list=True, seed=1, prefix="Spock")
        sess.close()
    assert texts[0].startswith("Spock")


@pytest.mark.slow
def test_a_moved_run_folder_still_resumes_and_generates(trained, tmp_path, tiny_model, corpus_dir):
    run = copy_run(trained, tmp_path, "before")
    moved = Path(shutil.move(run, tmp_path / "elsewhere" / "after"))
    assert sampling.generate(moved, tmp_path / "gen", nsamples=2, length=10, seed=1)["step"] == 40
    result = training.train(moved, tiny_model, corpus_dir, training.Settings(steps=42, **TRAIN))
    assert result["start_step"] == 40 and runfolder.saved_step(moved) == 42
