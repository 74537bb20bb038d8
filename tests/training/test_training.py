"""wikiluigi.training.loop on the TensorFlow backend: schedule, validation, best and latest checkpoints, early stop, resume."""
import csv
import json
import math
import re
import shutil
from pathlib import Path

import pytest

from tests.support.tiny_gpt2 import TRAIN, copy_run, write_corpus_dir
from wikiluigi.errors import ModelError
from wikiluigi.training import loop as training, runfolder
from wikiluigi.training.loop import Settings


def rows(run: Path) -> dict[int, dict]:
    with open(run / "loss.csv", newline="") as f:
        return {int(r["step"]): r for r in csv.DictReader(f)}


def losses(run: Path) -> dict[int, float]:
    return {step: float(r["loss"]) for step, r in rows(run).items()}


# ------------------------------------------------------------------------------------------- schedule
def test_warmup_then_cosine_or_linear_decay_to_the_floor():
    cosine = Settings(steps=110, learning_rate=1e-3, warmup_steps=10).resolved(n_ctx=64)
    assert [cosine.learning_rate_at(s) for s in (1, 5, 10)] == pytest.approx([1e-4, 5e-4, 1e-3])
    assert cosine.learning_rate_at(60) == pytest.approx(1e-4 + 0.9e-3 * 0.5)         # half way: the middle
    assert cosine.learning_rate_at(110) == pytest.approx(1e-4)                          # min_lr_ratio 0.1
    linear = Settings(steps=110, learning_rate=1e-3, warmup_steps=10, schedule="linear").resolved(64)
    assert linear.learning_rate_at(85) == pytest.approx(1e-4 + 0.9e-3 * 0.25)
    constant = Settings(steps=110, learning_rate=1e-3, warmup_steps=0, schedule="constant").resolved(64)
    assert {constant.learning_rate_at(s) for s in (1, 50, 110)} == {1e-3}
    rates = [cosine.learning_rate_at(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_settings_are_resolved_and_checked():
    resolved = Settings(steps=1000).resolved(n_ctx=128)
    assert resolved.window == 128 and resolved.warmup_steps == 50
    assert Settings(steps=10000).resolved(128).warmup_steps == 100
    for options, message in (({"window": 129}, r"training window 129 \(sample_length\) does not fit the model: its "
                                               r"window n_ctx is 128"),
                             ({"schedule": "step"}, r"schedule must be one of cosine, linear, constant"),
                             ({"steps": 0}, r"steps must be a whole number of at least 1, not 0"),
                             ({"patience": -1}, r"patience must be 0 \(never\) or a number"),
                             ({"learning_rate": 0}, r"learning_rate must be above 0")):
        with pytest.raises(ModelError, match=message):
            Settings(**{"steps": 10, **options}).resolved(128)


def test_validation_windows_are_a_fixed_spread_and_fit_short_validation_text():
    import numpy as np
    tokens = np.arange(1000, dtype=np.int32)
    windows = training.validation_windows(tokens, 100, 4)
    assert windows.shape == (4, 100) and windows[0, 0] == 0 and windows[-1, -1] == 999
    assert training.validation_windows(tokens[:30], 100, 4).shape == (1, 30)
    assert training.validation_windows(tokens[:1], 100, 4) is None


# ------------------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_training_loss_falls_and_validation_best_and_latest_are_kept(trained):
    run, result, calls = trained
    table = rows(run)
    assert sorted(table) == list(range(1, 41))
    loss = losses(run)
    first, last = sum(loss[s] for s in range(1, 6)) / 5, sum(loss[s] for s in range(36, 41)) / 5
    assert last < first - 1.0, (first, last)
    validated = {s: float(r["val_loss"]) for s, r in table.items() if r["val_loss"]}
    assert sorted(validated) == [10, 20, 30, 40] and validated[40] < validated[10]
    best_step = min(validated, key=validated.get)
    info = json.loads((run / "run.json").read_text())
    assert info["best"] == {"step": best_step, "val_loss": pytest.approx(validated[best_step], abs=1e-5)}
    assert info["latest"]["step"] == 40 and result["best"]["step"] == best_step
    assert json.loads((run / "best" / "checkpoint.json").read_text())["step"] == best_step
    assert (run / "latest" / "checkpoint").read_text().splitlines()[0] == 'model_checkpoint_path: "model-40"'
    assert (run / "latest" / "counter").read_text() == "40\n"
    assert sorted(p.name for p in (run / "latest").glob("model-*")) == [
        "model-40.data-00000-of-00001", "model-40.index"]                 # one checkpoint kept
    settings = info["settings"]
    assert settings["window"] == 128 and settings["warmup_steps"] == 2 and settings["schedule"] == "cosine"
    assert float(table[40]["learning_rate"]) == pytest.approx(3e-4, rel=1e-3)          # decayed to 10%
    assert info["corpus"]["manifests"] == ["startrek"] and info["corpus_stats"]["validation"]["pages"] == 3
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "final-1.txt", "final-2.txt", "final-3.txt", "step-000020.txt", "step-000040.txt"]
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (run / "report.html").exists()
    assert calls[0][:2] == (1, 40) and calls[-1][:2] == (40, 40) and calls[-1][4] == 0
    assert not [p for p in run.rglob(".*")]                    # no temporary file left


@pytest.mark.slow
def test_a_second_train_with_more_steps_resumes_from_the_latest_step(trained, tmp_path, tiny_model, corpus_dir):
    run = copy_run(trained, tmp_path)
    before = losses(run)
    calls = []
    result = training.train(run, tiny_model, corpus_dir, Settings(steps=46, **TRAIN),
                            progress=lambda *a: calls.append(a))
    assert result["start_step"] == 40 and calls[0][0] == 41
    after = losses(run)
    assert sorted(after) == list(range(1, 47)) and all(after[s] == before[s] for s in before)
    assert runfolder.saved_step(run) == 46 and rows(run)[46]["val_loss"]            # validated at the end
    info = runfolder.load_info(run)
    assert info["history"] == [{"step": 40, "changed": {"steps": [40, 46], "sample_every": [20, 0]}}]
    # Already there: nothing to do.
    assert training.train(run, tiny_model, corpus_dir, Settings(steps=30, **TRAIN))["start_step"] == 46


@pytest.mark.slow
def test_resumed_training_matches_training_straight_through(tmp_path, tiny_model, corpus_dir):
    # A constant rate after the warmup: the first part's schedule is then the same although it asks for 3 steps.
    options = {**TRAIN, "batch_size": 2, "window": 32, "save_every": 100, "validate_every": 2, "warmup_steps": 2,
               "schedule": "constant"}
    training.train(tmp_path / "straight", tiny_model, corpus_dir, Settings(steps=6, **options))
    training.train(tmp_path / "resumed", tiny_model, corpus_dir, Settings(steps=3, **options))
    training.train(tmp_path / "resumed", tiny_model, corpus_dir, Settings(steps=6, **options))
    straight, resumed = rows(tmp_path / "straight"), rows(tmp_path / "resumed")
    assert list(resumed) == list(range(1, 7))
    for column in ("loss", "learning_rate"):
        assert [float(resumed[s][column]) for s in resumed] == pytest.approx(
            [float(straight[s][column]) for s in straight], rel=1e-4)
    assert [s for s in resumed if resumed[s]["val_loss"]] == [2, 3, 4, 6]        # and at the end of each part


@pytest.mark.slow
def test_a_run_stopped_after_a_checkpoint_resumes_as_if_never_stopped(tmp_path, tiny_model, corpus_dir, monkeypatch):
    options = {**TRAIN, "batch_size": 2, "window": 32, "save_every": 3, "validate_every": 2, "warmup_steps": 2}
    training.train(tmp_path / "straight", tiny_model, corpus_dir, Settings(steps=8, **options))
    draw = training.draw_batches

    def dies_at_step_5(tokens, settings, step):
        if step == 5:
            raise SystemExit("killed")          # no save on the way out, as with a kill: latest stays at 3
        return draw(tokens, settings, step)

    monkeypatch.setattr(training, "draw_batches", dies_at_step_5)
    with pytest.raises(SystemExit):
        training.train(tmp_path / "run", tiny_model, corpus_dir, Settings(steps=8, **options))
    assert runfolder.saved_step(tmp_path / "run") == 3 and list(rows(tmp_path / "run")) == [1, 2, 3, 4]
    monkeypatch.setattr(training, "draw_batches", draw)
    assert training.train(tmp_path / "run", tiny_model, corpus_dir, Settings(steps=8, **options))["start_step"] == 3
    straight, resumed = rows(tmp_path / "straight"), rows(tmp_path / "run")
    assert list(resumed) == list(range(1, 9))
    for column in ("loss", "val_loss"):
        assert [float(resumed[s][column] or 0) for s in resumed] == pytest.approx(
            [float(straight[s][column] or 0) for s in straight], rel=1e-4)
    assert runfolder.load_info(tmp_path / "run")["best"] == runfolder.load_info(tmp_path / "straight")["best"]


@pytest.mark.slow
def test_early_stopping_stops_after_patience_validations_without_a_better_loss(tmp_path, tiny_model, corpus_dir):
    # A learning rate this high makes the validation loss rise after the first steps.
    settings = Settings(steps=60, batch_size=2, window=32, learning_rate=0.05, warmup_steps=0, schedule="constant",
                        grad_clip=0, validate_every=2, patience=2, save_every=100)
    result = training.train(tmp_path / "run", tiny_model, corpus_dir, settings)
    stopped = result["stopped"]
    assert stopped and stopped["step"] < 60 and stopped["patience"] == 2
    table = rows(tmp_path / "run")
    validated = [(s, float(r["val_loss"])) for s, r in table.items() if r["val_loss"]]
    best = min(validated, key=lambda sv: sv[1])
    assert stopped["best_step"] == best[0] and validated[-1][0] == stopped["step"] == max(table)
    assert [s for s, _ in validated if s > best[0]] == [best[0] + 2, best[0] + 4]
    assert runfolder.saved_step(tmp_path / "run") == stopped["step"]
    assert training.finished(tmp_path / "run", 60, patience=2) and not training.finished(tmp_path / "run", 60, 0)
    info = runfolder.load_info(tmp_path / "run")
    assert info["stopped"]["reason"].startswith("early stop: no better validation loss in 2 validations since step")


@pytest.mark.slow
def test_gradient_accumulation(tmp_path, tiny_model, corpus_dir):
    result = training.train(tmp_path / "run", tiny_model, corpus_dir,
                            Settings(steps=3, accumulate=3, window=64, **TRAIN))
    assert result["step"] == 3 and 0 < result["loss"] < 10


def test_training_bad_inputs_are_clear_errors(tmp_path, tiny_model, corpus_dir):
    with pytest.raises(ModelError, match=r"training window 129 \(sample_length\) does not fit the model"):
        training.train(tmp_path / "run", tiny_model, corpus_dir, Settings(steps=1, window=129))
    assert not (tmp_path / "run").exists()
    with pytest.raises(ModelError, match=r"holds no training set \(stats.json missing\)"):
        training.train(tmp_path / "run", tiny_model, tmp_path / "nothing", Settings(steps=1))
    short = write_corpus_dir(tmp_path / "short", {"Spock": "Spock."}, held_out=())
    with pytest.raises(ModelError, match=r"has \d+ tokens, not more than one training window \(128\)"):
        training.train(tmp_path / "run2", tiny_model, short, Settings(steps=1))
    with pytest.raises(ModelError, match=r"Unknown training backend 'jax': choose one of tensorflow"):
        training.train(tmp_path / "run3", tiny_model, corpus_dir, Settings(steps=1), backend="jax")


@pytest.mark.slow
def test_a_corpus_without_validation_pages_trains_without_a_best_checkpoint(tmp_path, tiny_model, corpus_dir):
    text = (corpus_dir / "train.txt").read_text(encoding="utf-8")
    pages = {f"Page {n}": page.replace("<|startoftext|>", "") for n, page in enumerate(text.split("<|endoftext|>\n"))}
    folder = write_corpus_dir(tmp_path / "novalidation", {t: x for t, x in pages.items() if x.strip()}, held_out=())
    result = training.train(tmp_path / "run", tiny_model, folder, Settings(steps=2, **TRAIN))
    assert result["best"] is None and result["val_loss"] is None
    assert not (tmp_path / "run" / "best").exists() and runfolder.saved_step(tmp_path / "run") == 2


@pytest.mark.slow
def test_a_run_cannot_continue_on_another_corpus_or_base_model(trained, tmp_path, tiny_model, corpus_dir):
    from wikiluigi.training.backends import gpt2
    from tests.support.tiny_gpt2 import TINY
    run = copy_run(trained, tmp_path)
    other = json.loads((corpus_dir / "stats.json").read_text())
    moved = Path(shutil.copytree(corpus_dir, tmp_path / "demo"))
    (moved / "stats.json").write_text(json.dumps({**other, "manifests": ["demo"]}))
    with pytest.raises(ModelError, match=r"is another run than this Train describes \(corpus: it has .*startrek.*"
                                         r"this Train asks for .*demo"):
        training.train(run, tiny_model, moved, Settings(steps=50, **TRAIN))
    base = tmp_path / "other"
    gpt2.build_scratch_model(base, corpus_dir / "train.txt", **{**TINY, "n_embd": 32})
    with pytest.raises(ModelError, match=r"another run than this Train describes \(base_model"):
        training.train(run, base, corpus_dir, Settings(steps=50, **TRAIN))
    assert runfolder.saved_step(run) == 40 and math.isfinite(runfolder.load_info(run)["best"]["val_loss"])


@pytest.mark.slow
def test_a_base_model_with_openais_kind_of_vocabulary_trains_and_samples_without_marker_pieces(
        tmp_path, tiny_model, corpus_dir):
    from wikiluigi.training import sampling
    from wikiluigi.corpus import vocabulary
    # OpenAI's vocabulary has <|endoftext|> and no <|startoftext|>: the tiny model's, with its start marker gone.
    base = Path(shutil.copytree(tiny_model, tmp_path / "openai-like"))
    vocab = json.loads((base / "encoder.json").read_text(encoding="ascii"))
    del vocab["<|startoftext|>"]
    (base / "encoder.json").write_text(json.dumps(vocab), encoding="ascii")
    tokenizer = vocabulary.load_tokenizer(base)
    tokens = vocabulary.encode_corpus(corpus_dir / "train.txt", tokenizer).tolist()
    assert 1 not in tokens and tokens.count(0) == 24                      # pages split by <|endoftext|> alone
    training.train(tmp_path / "run", base, corpus_dir, Settings(steps=20, **TRAIN))
    result = sampling.generate(tmp_path / "run", tmp_path / "gen", nsamples=8, length=60, seed=1)
    assert all(text.strip() for text in result["texts"])
    assert not any(re.search(r"startof|endof|oftext|<\|[se]|t\|>", text) for text in result["texts"])
