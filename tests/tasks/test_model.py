"""The model stage's tasks through luigi.build with a local scheduler: TrainingSet, BaseModel, Train, Generate.

Processed pages are made here from the startrek fixture's articles (wikitext stands in for Markdown), and
TrainingSet's requirement on Convert (the convert stage, tested with it) is left out: the tasks start from
the processed pages.
"""
import contextlib
import csv
import json

import luigi
import luigi.configuration
import pytest
from luigi.execution_summary import LuigiStatusCode

from tests.support.tiny_gpt2 import startrek_articles
from wikiluigi import pagefiles, paths
from wikiluigi.errors import ModelError
from wikiluigi.sources import derived
from wikiluigi.tasks.model import BaseModel, Generate, Tokens, Train, TrainingSet, scratch_folder
from wikiluigi.tasks.process import Convert
from wikiluigi.training import runfolder
from wikiluigi.training.backends import gpt2

HOST = "startrek.example"
TINY = {"n_layer": 2, "n_embd": 64, "n_head": 2, "n_ctx": 128, "vocab_size": 1000}
TRAIN = {"base_model": "scratch", "manifests": '["startrek"]', "batch_size": "4", "learning_rate": "0.003",
         "sample_length": "128", "save_every": "10", "validate_every": "10", **{k: str(v) for k, v in TINY.items()}}
TOKENS = {"base_model": "scratch", **TINY}


def make_manifest(name: str, pages: dict[str, str | None], host: str = HOST) -> None:
    meta = derived.Derived(name=name, host=host, source={"dump": "startrek-dump.xml"},
                           titles=tuple(sorted(pages)), chunk_size=200, counts={})
    derived.write(paths.derived_manifest(name), meta, [], [])
    for title, text in pages.items():
        if text is None:      # a page that failed to convert: TrainingSet leaves it out
            pagefiles.record_failure(paths.processed_dir(host), title, "convert", "pandoc said no")
        else:
            pagefiles.write_atomic(paths.processed_page(host, title), text)


@pytest.fixture
def startrek(data_dir, monkeypatch):
    make_manifest("startrek", startrek_articles())
    monkeypatch.setattr(TrainingSet, "requires", lambda self: [])
    return data_dir


def test_training_set_requires_every_manifest_converted():
    assert TrainingSet(manifests=["startrek", "demo"]).requires() == [Convert(manifest="startrek"),
                                                                       Convert(manifest="demo")]


@contextlib.contextmanager
def config(sections: dict[str, dict[str, str]]):
    """Set luigi.cfg options for the duration, as [Section] option = value lines would."""
    parser = luigi.configuration.get_config()
    saved = []
    for section, options in sections.items():
        if not parser.has_section(section):
            parser.add_section(section)
        for option, value in options.items():
            saved.append((section, option, parser.get(section, option, None)))
            parser.set(section, option, value)
    try:
        yield
    finally:
        for section, option, value in reversed(saved):
            if value is None:
                parser.remove_option(section, option)
            else:
                parser.set(section, option, value)


def build(*tasks) -> tuple[bool, list[str]]:
    """luigi.build in this process; returns whether all went well (every task done, no missing external
    dependency), and the failed tasks' errors."""
    errors = []

    def failed(task, exception):
        errors.append(f"{task.task_family}: {exception}")

    events = (luigi.Event.FAILURE, luigi.Event.BROKEN_TASK)
    for event in events:
        luigi.Task.event_handler(event)(failed)
    try:
        result = luigi.build(list(tasks), local_scheduler=True, workers=1, log_level="WARNING",
                             detailed_summary=True)
    finally:
        for event in events:
            luigi.Task._event_callbacks[luigi.Task][event].discard(failed)
    return result.status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY), errors


def recorded(monkeypatch, task_class) -> list[tuple]:
    """What the task tells luigid: (percentage, message) pairs."""
    reports = []
    original = task_class.report

    def report(self, done, total, message):
        reports.append((round(100 * done / total) if total else 100, message))
        original(self, done, total, message)

    monkeypatch.setattr(task_class, "report", report)
    return reports


# --------------------------------------------------------------------------------------------- names
def test_scratch_models_with_different_options_get_different_folders():
    one = BaseModel(name="scratch", manifests=["startrek"], **TINY)
    assert one.folder() == "scratch-startrek-l2-e64-h2-c128-v1000-s1"
    assert BaseModel(name="scratch", manifests=("startrek",), **TINY).folder() == one.folder()
    others = {BaseModel(name="scratch", manifests=["startrek"], **{**TINY, key: value}).folder()
              for key, value in (("n_layer", 3), ("n_embd", 32), ("n_head", 4), ("n_ctx", 64), ("vocab_size", 500))}
    others |= {BaseModel(name="scratch", manifests=["startrek"], seed=2, **TINY).folder(),
               BaseModel(name="scratch", manifests=["startrek", "demo"], **TINY).folder()}
    assert len(others) == 7 and one.folder() not in others
    assert scratch_folder(["a b/c"], 1, 2, 1, 8, 300, 1).startswith("scratch-")    # no path in a folder name
    assert "/" not in scratch_folder(["a b/c"], 1, 2, 1, 8, 300, 1)
    assert BaseModel(name="124M").folder() == "124M"
    assert BaseModel(name="124M").output().path.endswith("/out/model/124M")


def test_an_unknown_base_model_is_an_error_listing_the_names():
    with pytest.raises(ModelError, match=r"Unknown base model '125M': choose one of 124M, 355M, 774M, 1558M, scratch"):
        BaseModel(name="125M")
    with pytest.raises(ModelError, match=r"Unknown base model 'gpt2'"):
        Train(run_name="run", base_model="gpt2", manifests=["startrek"])


@pytest.mark.parametrize("name", ["a/b", "../run", "..", "a\\b", ".hidden", ""])
def test_a_run_name_with_a_path_in_it_is_an_error(name):
    with pytest.raises(ModelError, match=r"must be a plain folder name"):
        Train(run_name=name, manifests=["startrek"])
    with pytest.raises(ModelError, match=r"must be a plain folder name"):
        Generate(run_name=name)


# ------------------------------------------------------------------------------------------ training set
def test_training_set_task_writes_the_corpus_folder_of_its_manifest_set(startrek):
    assert build(TrainingSet(manifests=["startrek"])) == (True, [])
    folder = paths.out_dir() / "trainingset" / "startrek"
    assert TrainingSet(manifests=["startrek"]).output().path == str(folder)
    stats = json.loads((folder / "stats.json").read_text(encoding="utf-8"))
    train, held = (folder / "train.txt").read_text(encoding="utf-8"), (folder / "validation.txt").read_text("utf-8")
    held_out = stats["validation"]["pages"]
    assert stats["manifests"] == ["startrek"] and stats["pages"] == 27 and 3 <= held_out <= 6
    assert train.count("<|startoftext|>\n") == 27 - held_out and held.count("<|startoftext|>\n") == held_out
    assert len((folder / "validation.jsonl").read_text(encoding="utf-8").splitlines()) == held_out
    assert TrainingSet(manifests=["startrek"]).complete()
    assert not TrainingSet(manifests=["startrek"], validation=5).complete()        # another split, another folder
    make_manifest("other", {"Worf": "A Klingon."}, host="other.example")
    assert not TrainingSet(manifests=["startrek", "other"]).complete()


def test_training_set_of_manifests_without_pages_fails_naming_them(startrek):
    make_manifest("nothing", {"Spock": None, "Kirk": None}, host="nothing.example")
    ok, errors = build(TrainingSet(manifests=["nothing"]))
    assert not ok
    assert len(errors) == 1 and "No processed pages for manifest(s) nothing" in errors[0]
    assert not (paths.out_dir() / "trainingset" / "nothing" / "stats.json").exists()


def test_base_model_download_failure_names_the_model_and_url(data_dir, monkeypatch):
    import requests

    def offline(url, **_kwargs):
        raise requests.ConnectionError("Network is unreachable")

    monkeypatch.setattr(requests, "get", offline)
    ok, errors = build(BaseModel(name="355M"))
    assert not ok and len(errors) == 1
    assert "Could not download GPT-2 355M from https://openaipublic.blob.core.windows.net/gpt-2/models/355M/" \
           in errors[0]
    assert not paths.model_dir("355M").exists()


# ----------------------------------------------------------------------------------------- the pipeline
@pytest.mark.slow
def test_corpus_to_model_to_samples_then_more_training(startrek, monkeypatch):
    train_reports = recorded(monkeypatch, Train)
    token_reports = recorded(monkeypatch, Tokens)
    with config({"Train": {**TRAIN, "steps": "30"}}):
        generate = Generate(run_name="trek", length=60, top_k=10, seed=1, batch_size=10)
        assert build(generate) == (True, [])

        model = paths.model_dir("scratch-startrek-l2-e64-h2-c128-v1000-s1")
        assert sorted(p.name for p in model.iterdir()) == sorted(gpt2.MODEL_FILES)
        run = paths.checkpoint_dir("trek")
        with open(run / "loss.csv", newline="") as f:
            table = list(csv.DictReader(f))
        loss = [float(row["loss"]) for row in table]
        assert len(loss) == 30 and sum(loss[-5:]) / 5 < sum(loss[:5]) / 5 - 1.0
        assert [int(row["step"]) for row in table if row["val_loss"]] == [10, 20, 30]
        info = json.loads((run / "run.json").read_text(encoding="utf-8"))
        assert runfolder.saved_step(run) == 30 and (run / "loss.png").exists() and (run / "report.html").exists()
        stats = json.loads((paths.out_dir() / "trainingset" / "startrek" / "stats.json").read_text(encoding="utf-8"))
        folder = paths.out_dir() / "trainingset" / "startrek" / "tokens" / model.name
        tokens = json.loads((folder / "tokens.json").read_text(encoding="utf-8"))
        assert info["corpus"] == {"folder": "startrek", "manifests": ["startrek"], "validation": 0.1,
                                  "fingerprint": stats["fingerprint"], "tokens": tokens["fingerprint"]}
        assert tokens["dtype"] == "uint16" and (folder / "train.bin").stat().st_size == 2 * tokens["train"]["tokens"]
        assert info["corpus_stats"]["train_tokens"] == tokens["train"]["tokens"]
        assert token_reports[0] == (0, f"encoding: {folder / 'tokens.json'} is missing or unreadable (tokens never "
                                       f"written, or their writing was cut short)")
        assert token_reports[-1] == (100, f"{tokens['train']['tokens']:,} training and "
                                          f"{tokens['validation']['tokens']:,} validation tokens (uint16) with 1 process(es)")
        assert any(percent == 100 and "MB encoded" in message for percent, message in token_reports)
        held_out = info["corpus_stats"]["validation"]["pages"]
        assert info["corpus_stats"]["validation"]["note"] == \
            f"{held_out} of 27 pages held out for validation (0.1 of 27 asked, at least 3)"
        best = info["best"]
        assert train_reports[-1][0] == 100 and train_reports[-1][1].startswith(f"step 30, loss {loss[-1]:.3f}")
        assert f"best validation loss {best['val_loss']:.3f} at step {best['step']}" in train_reports[-1][1]
        assert any(m.startswith("step ") and "tokens/s" in m and " left" in m for _, m in train_reports)
        assert stats["tokens"]["scratch-startrek-l2-e64-h2-c128-v1000-s1"] == tokens["train"]["tokens"] > 5000

        out = paths.generated_dir("trek")
        index = json.loads((out / "index.json").read_text(encoding="utf-8"))
        assert index["checkpoint"] == "best" and index["step"] == best["step"] and len(index["samples"]) == 20
        assert all((out / name).read_text(encoding="utf-8").strip() for name in index["samples"])
        assert generate.complete()
        assert not Generate(run_name="trek", length=60, top_k=10, seed=2, batch_size=10).complete()
        assert not Generate(run_name="trek", length=60, top_k=10, seed=1, batch_size=10, checkpoint="latest").complete()
        report = (run / "report.html").read_text(encoding="utf-8")
        assert "out/gen/trek/ (best checkpoint" in report

    with config({"Train": {**TRAIN, "steps": "36"}}):
        assert Train(run_name="trek", steps=30).complete() and not Train(run_name="trek").complete()
        assert not generate.complete()                        # the run moved on: its samples may be stale
        assert build(generate) == (True, [])
    with open(run / "loss.csv", newline="") as f:
        assert [int(row["step"]) for row in csv.DictReader(f)] == list(range(1, 37))
    index = json.loads((out / "index.json").read_text(encoding="utf-8"))
    assert index["step"] == json.loads((run / "run.json").read_text(encoding="utf-8"))["best"]["step"]


@pytest.mark.slow
def test_train_resumes_only_its_own_corpus(startrek):
    with config({"Train": {**TRAIN, "steps": "2", "batch_size": "1"}}):
        assert build(Train(run_name="mine")) == (True, [])
        make_manifest("other", {"Worf": "A Klingon warrior. " * 200, "Kirk": "A captain. " * 200}, host="other.example")
        # Already at step 2, and still an error: another corpus.
        ok, errors = build(Train(run_name="mine", steps=2, manifests=["startrek", "other"]))
    assert not ok
    assert any("is another run than this Train describes" in e and "other" in e for e in errors), errors
    assert runfolder.saved_step(paths.checkpoint_dir("mine")) == 2

    # A page converted since: the training set, its tokens and the run are out of date; the run says what changed.
    with config({"Train": {**TRAIN, "steps": "2", "batch_size": "1"}}):
        assert Train(run_name="mine").complete()
        pagefiles.write_atomic(paths.processed_page(HOST, "Tribble"), "A small furry creature. " * 50)
        make_manifest("startrek", {**startrek_articles(), "Tribble": "A small furry creature. " * 50})
        assert not Train(run_name="mine").complete() and not TrainingSet(manifests=["startrek"]).complete()
        ok, errors = build(Train(run_name="mine"))
    assert not ok
    assert any("is another run than this Train describes" in e and "The corpus changed since the run began: "
               "startrek: 27 pages with Markdown, now 28" in e for e in errors), errors
    assert TrainingSet(manifests=["startrek"]).complete()               # rebuilt, and its tokens with it
    assert Tokens(manifests=["startrek"], **TOKENS).complete()


@pytest.mark.slow
def test_generate_from_an_existing_run_needs_no_train_parameters(startrek, tmp_path):
    with config({"Train": {**TRAIN, "steps": "2", "batch_size": "1"}}):
        assert build(Train(run_name="small")) == (True, [])
    ok, errors = build(Generate(run_name="other", existing_run=True))
    assert not ok                                  # no such run: a missing external dependency
    done = Generate(run_name="small", existing_run=True, nsamples=2, length=500, seed=1)
    assert build(done) == (True, [])
    index = json.loads((paths.generated_dir("small") / "index.json").read_text(encoding="utf-8"))
    assert index["length"] == 124 and "length 500 is more than this model can write" in index["messages"][0]


@pytest.mark.slow
def test_training_with_a_window_beyond_n_ctx_fails_clearly(startrek):
    with config({"Train": {**TRAIN, "steps": "2", "sample_length": "129"}}):
        ok, errors = build(Train(run_name="wide"))
    assert not ok
    assert any("Train: The training window 129 (sample_length) does not fit the model: its window n_ctx is 128" in e
               for e in errors), errors


@pytest.mark.slow
def test_a_scratch_vocabulary_is_learnt_from_the_training_pages_alone(data_dir, monkeypatch):
    from wikiluigi.corpus import trainingset
    pages = {f"Page {n}": f"Plain words about page {n}. " * 20 for n in range(12)}
    held = sorted(pages, key=lambda title: trainingset._held_out_order(HOST, title))[:3]
    for title in held:                                  # a word only the held-out pages have, many times
        pages[title] = "Quuxplughxyzzy " * 300
    make_manifest("words", pages)
    monkeypatch.setattr(TrainingSet, "requires", lambda self: [])
    assert build(BaseModel(name="scratch", manifests=["words"], **TINY)) == (True, [])
    stats = json.loads((paths.out_dir() / "trainingset" / "words" / "stats.json").read_text(encoding="utf-8"))
    assert stats["validation"]["titles"] == sorted(held)
    model = paths.model_dir(scratch_folder(["words"], seed=1, **TINY))
    vocab = json.loads((model / "encoder.json").read_text(encoding="utf-8"))
    assert not [token for token in vocab if "xyzzy" in token or "Quux" in token]
    assert [token for token in vocab if "Plain" in token]            # the training pages' words are learnt
