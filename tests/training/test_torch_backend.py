"""The torch backend through wikiluigi.training.loop on the CPU: agreement with TensorFlow, training, resuming,
conversion both ways, sampling and two processes under torchrun (DDP over gloo).

The tiny scratch model and the startrek training set come from tests/support/tiny_gpt2.py.
"""
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tiny_gpt2 import TRAIN
from wikiluigi.corpus import vocabulary
from wikiluigi.corpus.trainingset import END, START, TRAIN_TEXT
from wikiluigi.errors import ModelError
from wikiluigi.training import loop as training, runfolder, sampling
from wikiluigi.training.backends import torch_backend, torch_convert
from wikiluigi.training.loop import Settings

# Measured on this model: 9e-7 at the first step, at most 3e-4 over the first five Adam steps.
SAME_WEIGHTS_TOLERANCE = 1e-5
FIRST_STEPS_TOLERANCE = 1e-3


def losses(run: Path) -> dict[int, dict]:
    with open(run / runfolder.LOSS_LOG, newline="") as f:
        return {int(row["step"]): row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory, tiny_model, corpus_dir):
    """A torch run trained 20 steps, validated every 10, a sample at step 20; tests copy it to change it."""
    run = tmp_path_factory.mktemp("torch-runs") / "trained"
    result = training.train(run, tiny_model, corpus_dir, Settings(steps=20, window=64, sample_every=20, **TRAIN),
                            backend="torch")
    return run, result


@pytest.mark.slow
def test_same_weights_and_batches_give_the_same_loss_on_both_backends(tiny_model, corpus_dir, tmp_path):
    from wikiluigi.training.backends import gpt2
    hparams = gpt2.check_base_model(tiny_model)
    settings = Settings(steps=5, batch_size=4, window=128, learning_rate=3e-3, grad_clip=1.0).resolved(128)
    tokens = vocabulary.encode_corpus(corpus_dir / TRAIN_TEXT, vocabulary.load_tokenizer(tiny_model))
    batches = [training.draw_batches(tokens, settings, step) for step in range(1, 6)]
    seen = {}
    for name in ("tensorflow", "torch"):
        backend = training.load_backend(name)
        with backend.open_backend(hparams, tiny_model, None, settings) as model:
            total, count = model.evaluate(batches[0][0])
            steps = [model.step(batch, settings.learning_rate) for batch in batches]
            folder = tmp_path / name
            folder.mkdir()
            model.save(folder, step=5, optimizer=False)
        seen[name] = (total / count, steps)
    assert count == 4 * 127
    assert seen["torch"][0] == pytest.approx(seen["tensorflow"][0], abs=SAME_WEIGHTS_TOLERANCE)
    assert seen["torch"][1][0] == pytest.approx(seen["tensorflow"][1][0], abs=SAME_WEIGHTS_TOLERANCE)
    assert seen["torch"][1] == pytest.approx(seen["tensorflow"][1], abs=FIRST_STEPS_TOLERANCE)
    # Weights TensorFlow trained, read by torch (and the other way round): the same loss on a batch.
    for trained, reader in (("tensorflow", "torch"), ("torch", "tensorflow")):
        for name in ("hparams.json", "encoder.json", "vocab.bpe"):
            shutil.copyfile(tiny_model / name, tmp_path / trained / name)
        if trained == "torch":
            torch_convert.convert_model(tmp_path / "torch", tmp_path / "torch-as-tf")
        source = tmp_path / ("torch-as-tf" if trained == "torch" else "tensorflow")
        values = []
        for name, folder in ((trained, tmp_path / trained), (reader, source)):
            with training.load_backend(name).open_backend(hparams, folder, None, settings) as model:
                total, count = model.evaluate(batches[0][0])
                values.append(total / count)
        assert values[0] < seen[trained][0] - 0.3                     # trained: far from the first loss
        assert values[1] == pytest.approx(values[0], abs=SAME_WEIGHTS_TOLERANCE)


@pytest.mark.slow
def test_a_torch_run_trains_validates_and_keeps_best_and_latest(torch_run):
    run, result = torch_run
    rows = losses(run)
    assert sorted(rows) == list(range(1, 21))
    assert float(rows[20]["loss"]) < float(rows[1]["loss"]) - 1.0
    assert [s for s in rows if rows[s]["val_loss"]] == [10, 20]
    info = json.loads((run / "run.json").read_text())
    assert info["backend"] == "torch" and info["latest"]["step"] == 20
    assert info["settings"]["device"] == "auto" and info["best"] == result["best"]
    assert {p.name for p in (run / "latest").iterdir()} >= {"model.pt", "optimizer.pt", "checkpoint.json", "hparams.json"}
    assert not (run / "best" / "optimizer.pt").exists() and (run / "best" / "model.pt").is_file()
    for name in ("loss.png", "report.html", "samples/step-000020.txt"):
        assert (run / name).is_file()
    assert result["tokens_per_s"] > 0


@pytest.mark.slow
def test_torch_training_resumed_matches_training_straight_through(tmp_path, tiny_model, corpus_dir):
    options = {**TRAIN, "batch_size": 2, "window": 32, "save_every": 100, "validate_every": 2, "warmup_steps": 2,
               "schedule": "constant"}
    training.train(tmp_path / "straight", tiny_model, corpus_dir, Settings(steps=6, **options), backend="torch")
    training.train(tmp_path / "resumed", tiny_model, corpus_dir, Settings(steps=3, **options), backend="torch")
    training.train(tmp_path / "resumed", tiny_model, corpus_dir, Settings(steps=6, **options), backend="torch")
    straight, resumed = losses(tmp_path / "straight"), losses(tmp_path / "resumed")
    assert list(resumed) == list(range(1, 7))
    assert [float(resumed[s]["loss"]) for s in resumed] == pytest.approx(
        [float(straight[s]["loss"]) for s in straight], rel=1e-5)


@pytest.mark.slow
def test_a_run_resumes_only_on_its_own_backend(torch_run, tmp_path, tiny_model, corpus_dir):
    run = Path(shutil.copytree(torch_run[0], tmp_path / "run"))
    with pytest.raises(ModelError, match=r"another run than this Train describes \(backend"):
        training.train(run, tiny_model, corpus_dir, Settings(steps=30, **TRAIN), backend="tensorflow")


@pytest.mark.slow
def test_generate_samples_a_torch_run_reproducibly_without_marker_fragments(torch_run, tmp_path):
    run, _ = torch_run
    first = sampling.generate(run, tmp_path / "gen", nsamples=6, length=40, seed=5, batch_size=3)
    again = sampling.generate(run, tmp_path / "again", nsamples=6, length=40, seed=5, batch_size=3)
    assert first["texts"] == again["texts"]
    assert first["checkpoint"] == "best" and first["step"] == torch_run[1]["best"]["step"]
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == ["index.json"] + [f"sample-00{i}.txt" for i in range(1, 7)]
    for text in first["texts"]:
        assert text.strip() and START not in text and END not in text and "<|" not in text
    other = sampling.generate(run, tmp_path / "other", nsamples=6, length=40, seed=6, batch_size=3)
    assert other["texts"] != first["texts"]


@pytest.mark.slow
def test_a_torch_run_converts_to_gpt2_simple_which_samples_it_and_back(torch_run, tmp_path, tiny_model, corpus_dir):
    run, _ = torch_run
    as_tf = tmp_path / "as-tf"
    done = torch_convert.convert(run, as_tf)
    assert done["to"] == "tensorflow" and done["checkpoints"] == {"latest": 20, "best": torch_run[1]["best"]["step"]}
    assert json.loads((as_tf / "run.json").read_text())["backend"] == "tensorflow"
    assert (as_tf / "latest" / "model-20.index").is_file() and (as_tf / "loss.csv").read_text() == (run / "loss.csv").read_text()

    # gpt-2-simple itself loads the converted checkpoint folder as a run and samples it.
    code = ("import gpt_2_simple as gpt2, sys\n"
            "sess = gpt2.start_tf_sess()\n"
            f"gpt2.load_gpt2(sess, checkpoint_dir={str(as_tf)!r}, run_name='latest')\n"
            f"texts = gpt2.generate(sess, checkpoint_dir={str(as_tf)!r}, run_name='latest', length=30, "
            "return_as_list=True, seed=1)\n"
            "print('SAMPLE', len(texts), len(texts[0]))")
    done_tf = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert "SAMPLE 1" in done_tf.stdout, done_tf.stderr[-2000:]

    # The TensorFlow backend resumes the converted run from step 20; Generate samples it.
    result = training.train(as_tf, tiny_model, corpus_dir, Settings(steps=22, window=64, **TRAIN), backend="tensorflow")
    assert result["start_step"] == 20 and result["step"] == 22
    assert sampling.generate(as_tf, tmp_path / "gen-tf", nsamples=2, length=20, seed=1)["step"] > 0

    # And back to torch, which resumes it too.
    back = torch_convert.convert(as_tf, tmp_path / "back")
    assert back["to"] == "torch" and back["checkpoints"]["latest"] == 22
    result = training.train(tmp_path / "back", tiny_model, corpus_dir, Settings(steps=24, window=64, **TRAIN), backend="torch")
    assert result["start_step"] == 22 and result["step"] == 24
    with pytest.raises(ModelError, match="exists: convert into a new run folder"):
        torch_convert.convert(run, as_tf)


@pytest.mark.slow
def test_a_tensorflow_run_converts_to_a_torch_run_with_the_same_loss(trained, tmp_path, tiny_model, corpus_dir):
    run = trained[0]
    target = tmp_path / "as-torch"
    torch_convert.convert(run, target)
    hparams = runfolder.read_hparams(run)
    settings = Settings(steps=1, batch_size=4, window=128).resolved(128)
    tokens = vocabulary.encode_corpus(corpus_dir / TRAIN_TEXT, vocabulary.load_tokenizer(run))
    batch = training.draw_batches(tokens, settings, 1)[0]
    values = []
    for name, folder in (("tensorflow", run / "latest"), ("torch", target / "latest")):
        with training.load_backend(name).open_backend(hparams, tiny_model, folder, settings) as model:
            total, count = model.evaluate(batch)
            values.append(total / count)
    assert values[1] == pytest.approx(values[0], abs=SAME_WEIGHTS_TOLERANCE)


@pytest.mark.slow
def test_two_processes_under_torchrun_resume_and_train_as_one_with_the_whole_batch(tmp_path, tiny_model, corpus_dir):
    options = {**TRAIN, "batch_size": 4, "window": 32, "save_every": 100, "validate_every": 2, "warmup_steps": 0,
               "schedule": "constant"}
    training.train(tmp_path / "one", tiny_model, corpus_dir, Settings(steps=4, **options), backend="torch")
    training.train(tmp_path / "two", tiny_model, corpus_dir, Settings(steps=2, **options), backend="torch")
    (tmp_path / ".two.rank1.tmp-999").mkdir()               # a follower's copy a killed torchrun left
    # Two processes (DDP over gloo) take the run on from its step-2 checkpoint, two windows each a batch.
    two = torch_backend.train_distributed(tmp_path / "two", tiny_model, corpus_dir, Settings(steps=4, **options),
                                          processes=2)
    assert two["start_step"] == 2 and two["step"] == 4
    single, double = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert list(double) == [1, 2, 3, 4]
    for column in ("loss", "val_loss"):
        assert [float(double[s][column] or 0) for s in double] == pytest.approx(
            [float(single[s][column] or 0) for s in single], rel=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]       # no follower copy left behind


def test_a_batch_that_does_not_split_among_the_processes_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "3")
    settings = Settings(steps=1, batch_size=4).resolved(128)
    with pytest.raises(ModelError, match="batch_size 4 does not split among 3 processes"):
        with torch_backend.open_backend({"n_vocab": 10, "n_ctx": 8, "n_embd": 8, "n_head": 2, "n_layer": 1},
                                        tmp_path, None, settings):
            pass


def test_several_processes_need_the_torch_backend(tmp_path):
    with pytest.raises(ModelError, match="processes 2 needs backend 'torch'"):
        torch_backend.train_distributed(tmp_path / "r", tmp_path, tmp_path, Settings(steps=1), backend="tensorflow",
                                        processes=2)


def test_bad_torch_options_are_model_errors_naming_the_option():
    with pytest.raises(ModelError, match="torch backend: compile must be 'auto', 'true' or 'false', not 'maybe'"):
        torch_backend.make_trainer({"n_vocab": 10, "n_ctx": 8, "n_embd": 8, "n_head": 2, "n_layer": 1},
                                   compile="maybe")
