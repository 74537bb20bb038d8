"""wikiluigi.training.sampling: Generate's samples of the best or latest checkpoint, batched, cut at the end marker."""
import json
import re
import shutil

import pytest

from wikiluigi.corpus import vocabulary
from wikiluigi.errors import ModelError
from wikiluigi.training import runfolder, sampling

FRAGMENT = re.compile(r"startof|endof|oftext|<\|[se]|t\|>")   # a marker in pieces, or whole


@pytest.mark.slow
def test_generate_writes_20_samples_of_the_best_checkpoint_in_batches(trained, tmp_path, corpus):
    out = tmp_path / "gen"
    result = sampling.generate(trained[0], out, length=100, top_k=10, seed=1, batch_size=10)
    names = [f"sample-{i:03d}.txt" for i in range(1, 21)]
    assert result["samples"] == names and sorted(p.name for p in out.iterdir()) == sorted([*names, "index.json"])
    index = json.loads((out / "index.json").read_text(encoding="utf-8"))
    best = runfolder.load_info(trained[0])["best"]
    assert index["checkpoint"] == "best" and index["step"] == best["step"] and index["batch_size"] == 10
    assert index["length"] == 100 and index["settings"]["top_k"] == 10
    text = corpus.read_text(encoding="utf-8")
    corpus_words, corpus_chars = set(re.findall(r"[A-Za-z]+", text)), set(text)
    words = []
    for name in names:
        sample = (out / name).read_text(encoding="utf-8")
        assert sample.strip() and not FRAGMENT.search(sample)          # no marker, whole or in pieces
        assert set(sample) <= corpus_chars
        words += re.findall(r"[A-Za-z]+", sample)
    assert sum(word in corpus_words for word in words) / len(words) > 0.7
    # Same seed, same samples; the folder is replaced whole.
    first = [(out / name).read_text(encoding="utf-8") for name in names[:10]]
    again = sampling.generate(trained[0], out, nsamples=10, length=100, top_k=10, seed=1, batch_size=10)
    assert again["samples"] == names[:10] and len(list(out.iterdir())) == 11
    assert [(out / name).read_text(encoding="utf-8") for name in names[:10]] == first


@pytest.mark.slow
def test_the_latest_checkpoint_on_request_and_the_batch_size_by_memory(trained, tmp_path):
    result = sampling.generate(trained[0], tmp_path / "gen", checkpoint="latest", nsamples=3, length=20, seed=1)
    assert result["checkpoint"] == "latest" and result["step"] == 40 and result["batch_size"] == 3
    small = {"n_layer": 2, "n_embd": 64, "n_ctx": 128, "n_vocab": 1000}
    openai_124m = {"n_layer": 12, "n_embd": 768, "n_ctx": 1024, "n_vocab": 50257}
    assert sampling.auto_batch_size(small, 20) == 20 and sampling.auto_batch_size(openai_124m, 20) == 14


@pytest.mark.slow
def test_generate_clamps_a_length_beyond_n_ctx_and_keeps_the_prefix(trained, tmp_path, caplog):
    result = sampling.generate(trained[0], tmp_path / "gen", nsamples=2, length=1000, prefix="Spock", seed=2,
                               truncate=False)
    message = "length 1000 is more than this model can write: its window n_ctx is 128 tokens"
    # The page start (<|endoftext|>, \n, <|startoftext|>, \n) and "Spock", in the model's own vocabulary (learnt
    # from the training pages only: "Spock", a held-out page's title, may take more than one token).
    tokenizer = vocabulary.load_tokenizer(runfolder.checkpoint_folder(trained[0], runfolder.BEST)[0])
    context = len(vocabulary.start_context(tokenizer)) + len(tokenizer.encode("Spock").ids)
    assert len(vocabulary.start_context(tokenizer)) == 4
    assert result["length"] == 128 - context and message in result["messages"][0] and message in caplog.text
    assert (tmp_path / "gen" / "sample-001.txt").read_text(encoding="utf-8").startswith("Spock")


def test_generate_bad_inputs_are_clear_errors(tmp_path, tiny_model):
    with pytest.raises(ModelError, match=r"holds no checkpoint: train the run first \(Train --run-name nothing\)"):
        sampling.generate(tmp_path / "nothing", tmp_path / "gen")
    run = tmp_path / "run"
    shutil.copytree(tiny_model, run / "latest")
    (run / "latest" / "checkpoint.json").write_text('{"step": 1, "backend": "tensorflow"}')
    with pytest.raises(ModelError, match=r"The prefix is \d+ tokens with the page start, the model's whole window "
                                         r"\(n_ctx 128\)"):
        sampling.generate(run, tmp_path / "gen", prefix="Spock, Kirk and McCoy. " * 40)
    with pytest.raises(ModelError, match=r"temperature must be above 0"):
        sampling.generate(run, tmp_path / "gen", temperature=0)
    with pytest.raises(ModelError, match=r"batch_size must be 0 \(as many as fit\) or more"):
        sampling.generate(run, tmp_path / "gen", batch_size=-1)
    assert not (tmp_path / "gen").exists()
