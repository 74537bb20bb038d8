"""wikiluigi.gpt2 without Luigi: vocabulary, base models, training, generation, and their errors.

The model is tiny (2 layers, 64 wide, n_ctx 128) and the corpus is the startrek fixture's articles.
"""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tests.support.wiki_fixtures import STARTREK_DUMP
from wikiluigi import gpt2
from wikiluigi.corpus import END, START, wrap
from wikiluigi.errors import ModelError

TINY = {"n_layer": 2, "n_embd": 64, "n_head": 2, "n_ctx": 128, "vocab_size": 1000, "seed": 1}
TRAIN = {"batch_size": 4, "learning_rate": 3e-3, "seed": 1, "save_every": 20}


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


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "trainingset.txt"
    path.write_text("".join(wrap(text) for text in startrek_articles().values()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, corpus) -> Path:
    folder = tmp_path_factory.mktemp("model") / "tiny"
    gpt2.build_scratch_model(folder, corpus, **TINY)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model, corpus):
    """A run trained 40 steps with a 128-token window; tests copy it before changing it."""
    run = tmp_path_factory.mktemp("runs") / "trained"
    calls = []
    result = gpt2.train(run, tiny_model, corpus, steps=40, sample_length=128, sample_every=20,
                        progress=lambda *args: calls.append(args), **TRAIN)
    return run, result, calls


def copy_run(trained, tmp_path, name="run") -> Path:
    return Path(shutil.copytree(trained[0], tmp_path / name))


def losses(run: Path) -> dict[int, float]:
    with open(run / gpt2.LOSS_LOG, newline="") as f:
        return {int(row["step"]): float(row["loss"]) for row in csv.DictReader(f)}


# ---------------------------------------------------------------------------------------- no TensorFlow
def test_importing_wikiluigi_loads_no_tensorflow():
    code = ("import sys, wikiluigi, wikiluigi.gpt2, wikiluigi.corpus, wikiluigi.tasks.model; "
            "print(sorted(m for m in ('tensorflow', 'gpt_2_simple', 'tokenizers', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------ vocabulary
def test_vocabulary_ids_are_gpt2_simple_encoder_ids(tmp_path, corpus):
    from gpt_2_simple.src import encoder

    n_vocab = gpt2.build_vocabulary(corpus, tmp_path, 600)
    assert n_vocab == 600
    vocab = json.loads((tmp_path / "encoder.json").read_text(encoding="ascii"))   # ASCII: any locale reads it
    assert len(vocab) == 600 and END in vocab
    bpe = (tmp_path / "vocab.bpe").read_text(encoding="utf-8")
    assert bpe.startswith("#version: 0.2\n") and bpe.endswith("\n")
    assert len(bpe.split("\n")[1:-1]) == 600 - 256 - 1          # every merge read back by gpt-2-simple

    theirs, ours = encoder.get_encoder(str(tmp_path)), gpt2.load_tokenizer(tmp_path)
    text = corpus.read_text(encoding="utf-8")
    plain = text.replace(END, "").replace(START, "")
    for sample in (plain, "Spock's  ship   isn't\n\n\tthe U.S.S. Enterprise (NCC-1701) – naïve café 😀 ½ 12345"):
        ids = theirs.encode(sample)
        assert ours.encode(sample).ids == ids
        assert theirs.decode(ids) == sample
    # <|endoftext|> is one token for us; gpt-2-simple's encoder spells it out, and decodes ours back to it.
    ids = ours.encode(text).ids
    assert ids.count(vocab[END]) == text.count(END)
    assert theirs.decode(ids) == text


def test_vocabulary_needs_a_corpus_with_text(tmp_path):
    with pytest.raises(ModelError, match=r"does not exist: build it first"):
        gpt2.build_vocabulary(tmp_path / "missing.txt", tmp_path / "model", 1000)
    empty = tmp_path / "empty.txt"
    empty.write_text(wrap("") * 3, encoding="utf-8")
    with pytest.raises(ModelError, match=r"holds no text \(no tokens"):
        gpt2.build_vocabulary(empty, tmp_path / "model", 1000)


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
    ({"vocab_size": 100}, r"vocab_size must be at least 258"),
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


# -------------------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_training_loss_falls_and_the_run_folder_has_its_files(trained):
    run, result, calls = trained
    loss = losses(run)
    assert sorted(loss) == list(range(1, 41))
    first, last = sum(loss[s] for s in range(1, 6)) / 5, sum(loss[s] for s in range(36, 41)) / 5
    assert last < first - 1.0, (first, last)
    assert result["start_step"] == 0 and result["step"] == 40 and result["avg_loss"] < first
    with open(run / gpt2.LOSS_LOG, newline="") as f:
        assert next(csv.reader(f)) == ["step", "loss", "avg_loss", "tokens_per_s", "elapsed_s"]
    assert (run / gpt2.LOSS_PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "checkpoint").read_text().splitlines()[0] == 'model_checkpoint_path: "model-40"'
    assert (run / gpt2.COUNTER).read_text() == "40\n" and gpt2.saved_step(run) == 40
    assert not list(run.glob("model-20.*"))                   # one checkpoint kept
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-000020.txt", "step-000040.txt"]
    assert calls[0][:2] == (1, 40) and calls[-1][:2] == (40, 40) and calls[-1][4] == 0
    step, total, value, tokens_per_s, _left = calls[-1]
    assert value == pytest.approx(loss[40], abs=1e-4) and tokens_per_s > 0


@pytest.mark.slow
def test_a_second_train_with_more_steps_resumes_from_the_saved_step(trained, tmp_path, tiny_model, corpus):
    run = copy_run(trained, tmp_path)
    before = losses(run)
    calls = []
    result = gpt2.train(run, tiny_model, corpus, steps=46, sample_length=128, progress=lambda *a: calls.append(a),
                        **TRAIN)
    assert result["start_step"] == 40 and calls[0][0] == 41
    after = losses(run)
    assert sorted(after) == list(range(1, 47)) and all(after[s] == before[s] for s in before)
    assert gpt2.saved_step(run) == 46 and sorted(p.name for p in run.glob("model-*.index")) == ["model-46.index"]
    # Already there: nothing to do.
    assert gpt2.train(run, tiny_model, corpus, steps=30, sample_length=128, **TRAIN)["start_step"] == 46


@pytest.mark.slow
def test_resumed_training_matches_training_straight_through(tmp_path, tiny_model, corpus):
    options = {**TRAIN, "batch_size": 2, "sample_length": 32, "save_every": 100}
    gpt2.train(tmp_path / "straight", tiny_model, corpus, steps=6, **options)
    gpt2.train(tmp_path / "resumed", tiny_model, corpus, steps=3, **options)
    gpt2.train(tmp_path / "resumed", tiny_model, corpus, steps=6, **options)
    straight, resumed = losses(tmp_path / "straight"), losses(tmp_path / "resumed")
    assert list(resumed) == list(range(1, 7))
    assert [resumed[s] for s in resumed] == pytest.approx([straight[s] for s in straight], rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("absolute", [False, True], ids=["ours", "finetune's absolute paths"])
def test_a_moved_run_folder_still_resumes_and_generates(trained, tmp_path, tiny_model, corpus, absolute):
    run = copy_run(trained, tmp_path, "before")
    if absolute:      # as gpt-2-simple's finetune writes it: a moved run then fails to load in gpt-2-simple
        (run / "checkpoint").write_text(f'model_checkpoint_path: "{run}/model-40"\n'
                                        f'all_model_checkpoint_paths: "{run}/model-40"\n')
    moved = Path(shutil.move(run, tmp_path / "elsewhere" / "after"))
    assert gpt2.generate(moved, tmp_path / "gen", nsamples=2, length=10, seed=1)["step"] == 40
    assert gpt2.train(moved, tiny_model, corpus, steps=42, sample_length=128, **TRAIN)["start_step"] == 40
    assert gpt2.saved_step(moved) == 42


@pytest.mark.slow
def test_a_window_of_64_tokens_on_an_n_ctx_128_model_works_too(tmp_path, tiny_model, corpus):
    # The trained fixture uses 128 tokens, the whole window; finetune hard-codes 1024, which fails on this
    # model ("indices[0,855] = 855 is not in [0, 128)").
    result = gpt2.train(tmp_path / "run", tiny_model, corpus, steps=3, sample_length=64, **TRAIN)
    assert result["step"] == 3 and result["loss"] > 0
    result = gpt2.train(tmp_path / "default", tiny_model, corpus, steps=1, **{**TRAIN, "batch_size": 1})
    assert result["step"] == 1                                         # default window: n_ctx


@pytest.mark.slow
def test_gradient_accumulation(tmp_path, tiny_model, corpus):
    result = gpt2.train(tmp_path / "run", tiny_model, corpus, steps=3, accumulate=3, sample_length=64, **TRAIN)
    assert result["step"] == 3 and 0 < result["loss"] < 10


def test_a_window_beyond_n_ctx_is_an_error(tmp_path, tiny_model, corpus):
    with pytest.raises(ModelError, match=r"sample_length 129 does not fit the model: its window n_ctx is 128"):
        gpt2.train(tmp_path / "run", tiny_model, corpus, steps=1, sample_length=129)
    assert not (tmp_path / "run").exists()


def test_training_bad_inputs_are_clear_errors(tmp_path, tiny_model, corpus):
    with pytest.raises(ModelError, match=r"The corpus .*missing.txt does not exist: build it first"):
        gpt2.train(tmp_path / "run", tiny_model, tmp_path / "missing.txt", steps=1)
    short = tmp_path / "short.txt"
    short.write_text(wrap("Spock."), encoding="utf-8")
    with pytest.raises(ModelError, match=r"has \d+ tokens, not more than one training window \(sample_length 128\)"):
        gpt2.train(tmp_path / "run2", tiny_model, short, steps=1)
    broken = Path(shutil.copytree(tiny_model, tmp_path / "broken"))
    (broken / "model.ckpt.index").unlink()
    with pytest.raises(ModelError, match=r"base model .*broken is incomplete: model.ckpt.index missing"):
        gpt2.train(tmp_path / "run3", broken, corpus, steps=1)
    with pytest.raises(ModelError, match=r"steps must be a whole number of at least 1, not 0"):
        gpt2.train(tmp_path / "run4", tiny_model, corpus, steps=0)


@pytest.mark.slow
def test_a_run_cannot_continue_from_another_base_model(trained, tmp_path, corpus):
    other = tmp_path / "other"
    gpt2.build_scratch_model(other, corpus, **{**TINY, "n_embd": 32})
    with pytest.raises(ModelError, match=r"was started from another base model \(tiny\), not .*other"):
        gpt2.train(copy_run(trained, tmp_path), other, corpus, steps=50)


# ------------------------------------------------------------------------------------------ generation
@pytest.mark.slow
def test_generate_writes_20_samples_in_the_corpus_vocabulary(trained, tmp_path, corpus):
    out = tmp_path / "gen"
    result = gpt2.generate(trained[0], out, length=100, top_k=10, seed=1, batch_size=10)
    names = [f"sample-{i:03d}.txt" for i in range(1, 21)]
    assert result["samples"] == names and sorted(p.name for p in out.iterdir()) == sorted([*names, "index.json"])
    index = json.loads((out / "index.json").read_text(encoding="utf-8"))
    assert index["step"] == 40 and index["length"] == 100 and index["settings"]["top_k"] == 10
    text = corpus.read_text(encoding="utf-8")
    corpus_words, corpus_chars = set(re.findall(r"[A-Za-z]+", text)), set(text)
    words = []
    for name in names:
        sample = (out / name).read_text(encoding="utf-8")
        assert sample.strip() and END not in sample and not sample.startswith(START)
        assert set(sample) <= corpus_chars
        words += re.findall(r"[A-Za-z]+", sample)
    assert sum(word in corpus_words for word in words) / len(words) > 0.7
    # Same seed, same samples; the folder is replaced whole.
    first = [(out / name).read_text(encoding="utf-8") for name in names[:10]]
    again = gpt2.generate(trained[0], out, nsamples=10, length=100, top_k=10, seed=1, batch_size=10)
    assert again["samples"] == names[:10] and len(list(out.iterdir())) == 11
    assert [(out / name).read_text(encoding="utf-8") for name in names[:10]] == first


@pytest.mark.slow
def test_gpt2_simple_generates_from_our_run(trained):
    import gpt_2_simple
    import tensorflow as tf

    run = trained[0]
    with tf.Graph().as_default():
        sess = gpt_2_simple.start_tf_sess()
        gpt_2_simple.load_gpt2(sess, run_name=run.name, checkpoint_dir=str(run.parent))
        texts = gpt_2_simple.generate(sess, run_name=run.name, checkpoint_dir=str(run.parent), length=20,
                                      return_as_list=True, seed=1, prefix="Spock")
        sess.close()
    assert texts[0].startswith("Spock")


@pytest.mark.slow
def test_generate_clamps_a_length_beyond_n_ctx_with_a_message(trained, tmp_path, caplog):
    result = gpt2.generate(trained[0], tmp_path / "gen", nsamples=2, length=1000, prefix="Spock", seed=2,
                           truncate=False)
    message = "length 1000 is more than this model can write: its window n_ctx is 128 tokens"
    assert result["length"] == 127 and message in result["messages"][0] and message in caplog.text
    assert (tmp_path / "gen" / "sample-001.txt").read_text(encoding="utf-8").startswith("Spock")


def test_generate_bad_inputs_are_clear_errors(tmp_path, tiny_model):
    with pytest.raises(ModelError, match=r"holds no checkpoint: train the run first \(Train --run-name nothing\)"):
        gpt2.generate(tmp_path / "nothing", tmp_path / "gen")
    run = tmp_path / "run"
    shutil.copytree(tiny_model, run)
    (run / "checkpoint").write_text('model_checkpoint_path: "model-1"\n')
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copyfile(tiny_model / f"model.ckpt{suffix}", run / f"model-1{suffix}")
    with pytest.raises(ModelError, match=r"The prefix is \d+ tokens, the model's whole window \(n_ctx 128\)"):
        gpt2.generate(run, tmp_path / "gen", prefix="Spock, Kirk and McCoy. " * 40)
    with pytest.raises(ModelError, match=r"temperature must be above 0"):
        gpt2.generate(run, tmp_path / "gen", temperature=0)
    assert not (tmp_path / "gen").exists()
