"""wikiluigi.corpus.trainingset: the training set of a manifest set, its validation pages and JSON Lines, without Luigi or TensorFlow."""
import json

import pytest

from wikiluigi import pagefiles, paths
from wikiluigi.corpus import trainingset as corpus
from wikiluigi.errors import ModelError
from wikiluigi.sources import derived


def make_manifest(name: str, host: str, pages: dict[str, str | None], source: dict | None = None) -> None:
    """A manifest (default conversion options) derived to these titles; each page with text gets a processed
    file (None: not converted)."""
    originals = paths.original_manifest_dirs()[0]
    originals.mkdir(parents=True, exist_ok=True)
    (originals / f"{name}.yaml").write_text(f"api: https://{host}/w/api.php\nhost: {host}\nall_pages: true\n")
    meta = derived.Derived(name=name, host=host, source=source or {"api": f"https://{host}/w/api.php"},
                           titles=tuple(sorted(pages)), chunk_size=200, counts={})
    derived.write(paths.derived_manifest(name), meta, [], [])
    for title, text in pages.items():
        if text is not None:
            pagefiles.write_atomic(paths.processed_page(host, title), text)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_pages_in_manifest_then_title_order_each_wrapped_none_held_out_when_so_few(data_dir):
    make_manifest("trek", "trek.example", {"Spock": "Spock is a Vulcan.\n", "Kirk": "\nKirk commands.\n",
                                           "Data": None, "Empty": "  \n", "A/B": "Slash title."})
    make_manifest("gaul", "gaul.example", {"Asterix": "A Gaul.", "Spock": "Not the same wiki."})
    stats = corpus.build_trainingset(["trek", "gaul", "trek"], validation=0)
    folder = paths.out_dir() / "trainingset" / "trek+gaul-val0"
    text = (folder / "train.txt").read_text(encoding="utf-8")
    assert text == (
        "<|startoftext|>\nSlash title.\n<|endoftext|>\n"
        "<|startoftext|>\nKirk commands.\n<|endoftext|>\n"
        "<|startoftext|>\nSpock is a Vulcan.\n<|endoftext|>\n"
        "<|startoftext|>\nA Gaul.\n<|endoftext|>\n"
        "<|startoftext|>\nNot the same wiki.\n<|endoftext|>\n")
    assert (folder / "validation.txt").read_text(encoding="utf-8") == ""
    assert stats["manifests"] == ["trek", "gaul"] and stats["pages"] == 5 and stats["characters"] == len(text)
    assert stats["validation"]["pages"] == 0 and "validation 0" in stats["validation"]["note"]
    assert json.loads((folder / "stats.json").read_text(encoding="utf-8")) == stats
    assert corpus.is_built(["trek", "gaul"], 0) and not corpus.is_built(["trek"], 0)
    assert not corpus.is_built(["trek", "gaul"])                    # another split: another folder
    assert not list(folder.glob(".*"))


def test_validation_pages_are_held_out_by_a_stable_hash_with_json_lines_beside(data_dir):
    pages = {f"Page {n:02d}": f"Text of page {n}." for n in range(40)}
    make_manifest("big", "big.example", pages)
    stats = corpus.build_trainingset(["big"])
    folder = corpus.folder(["big"])
    assert folder == paths.out_dir() / "trainingset" / "big"
    held = stats["validation"]["titles"]
    count = len(held)
    assert 3 <= count <= 8 and count == stats["validation"]["pages"] and stats["train"]["pages"] == 40 - count
    assert stats["validation"]["note"] == f"{count} of 40 pages held out for validation (0.1 of 40 asked, at least 3)"
    train, validation = read_jsonl(folder / "train.jsonl"), read_jsonl(folder / "validation.jsonl")
    assert sorted(r["title"] for r in validation) == held and len(train) == 40 - count
    assert not {r["title"] for r in train} & set(held)
    assert (folder / "validation.txt").read_text(encoding="utf-8").count("<|startoftext|>") == count
    record = train[0]
    assert record == {"title": record["title"], "text": pages[record["title"]], "wiki": "big.example",
                      "url": f"https://big.example/w/index.php?title={record['title'].replace(' ', '+')}",
                      "revision_id": None}
    # The same pages give the same split; more pages keep the held-out ones held out (a hash, not a position).
    make_manifest("big", "big.example", {**pages, **{f"New {n}": "More." for n in range(10)}})
    again = corpus.build_trainingset(["big"])
    under = {title for title in held if corpus._held_out_order("big.example", title) < 0.1}
    assert under and under <= set(again["validation"]["titles"]) and again["validation"]["pages"] >= 3


@pytest.mark.parametrize("count, validation, expected", [
    (3, 0.1, (0, "only 3 page(s): too few to hold any out")), (4, 0.1, (1, "1 of 4 pages held out")),
    (12, 0.1, (3, "3 of 12 pages held out")), (200, 0.1, (20, "20 of 200")), (10, 4, (4, "4 of 10 pages held out")),
    (10, 30, (9, "9 of 10 pages held out for validation (30 asked)")),
])
def test_a_small_corpus_still_keeps_a_few_and_says_how_many(count, validation, expected):
    held, note = corpus.held_out_count(count, validation)
    assert held == expected[0] and expected[1] in note


@pytest.mark.parametrize("bad", [-0.1, 2.5, "ten"])
def test_a_bad_validation_setting_is_a_clear_error(bad):
    with pytest.raises(ModelError, match=r"validation must be a fraction of the pages \(0 to 1\) or a whole number"):
        corpus.held_out_count(10, bad)


def test_revision_ids_from_every_machines_log_and_urls_with_them(data_dir):
    make_manifest("trek", "trek.example", {"Spock": "Vulcan.", "Kirk": "Captain.", "Worf": "Klingon."})
    raw = paths.raw_dir("trek.example")
    raw.mkdir(parents=True)
    (raw / "revisions.jsonl").write_text(
        '{"title": "Spock", "revision_id": 10}\n{"title": "Spock", "revision_id": 12}\n'
        '{"title": "Kirk", "revision_id": 7}\n{"title": "Wo', encoding="utf-8")          # a line a kill cut short
    (raw / "revisions-host2.jsonl").write_text('{"title": "Kirk", "revision_id": 9}\n'
                                               '{"title": "Spock", "revision_id": 11}\n', encoding="utf-8")
    assert corpus.revision_ids("trek.example") == {"Spock": 12, "Kirk": 9}
    for titles in (("Kirk", "Spock", "Worf"), ("Worf", "Spock", "Kirk")):       # sorted, or a dump's order
        assert dict(zip(titles, corpus.revisions_of("trek.example", titles))) == {"Spock": 12, "Kirk": 9, "Worf": 0}
    corpus.build_trainingset(["trek"], validation=0)
    records = {r["title"]: r for r in read_jsonl(corpus.folder(["trek"], 0) / "train.jsonl")}
    assert records["Spock"]["revision_id"] == 12 and records["Worf"]["revision_id"] is None
    assert records["Spock"]["url"] == "https://trek.example/w/index.php?title=Spock&oldid=12"


def test_a_dump_pages_url_is_on_the_dumps_site(data_dir, tmp_path):
    dump = tmp_path / "site.xml"
    dump.write_text('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/"><siteinfo><sitename>Isles'
                    '</sitename><base>http://isles.example/wiki/Main_Page</base></siteinfo></mediawiki>',
                    encoding="utf-8")
    assert corpus.page_url({"dump": str(dump)}, "Myrling Isles (chain)", 5) == \
        "http://isles.example/wiki/Myrling_Isles_(chain)?oldid=5"
    assert corpus.page_url({"dump": str(tmp_path / "gone.xml")}, "X", 5) is None


def test_a_page_two_manifests_share_is_taken_once(data_dir):
    make_manifest("one", "wiki.example", {"Shared": "Both.", "Only one": "One."})
    make_manifest("two", "wiki.example", {"Shared": "Both."})
    assert corpus.build_trainingset(["one", "two"])["pages"] == 2


def test_an_empty_corpus_is_an_error_naming_the_manifests(data_dir):
    make_manifest("trek", "trek.example", {"Spock": None, "Kirk": " "})
    make_manifest("gaul", "gaul.example", {})
    with pytest.raises(ModelError, match=r"No processed pages for manifest\(s\) trek, gaul .*nothing to train on"):
        corpus.build_trainingset(["trek", "gaul"])
    assert not paths.out_dir().exists() or not list(paths.out_dir().iterdir())
    with pytest.raises(ModelError, match=r"at least one manifest"):
        corpus.build_trainingset([])


def test_set_names_are_plain_folder_names():
    assert corpus.set_name(["startrek"]) == "startrek" and corpus.set_name(["a", "b"], 5) == "a+b-val5"
    assert "/" not in corpus.set_name(["../../etc"]) and corpus.set_name(["x" * 100]).startswith("+")
    assert len(corpus.set_name(["x" * 100])) == 13


def test_token_counts_are_recorded_per_vocabulary(data_dir):
    make_manifest("trek", "trek.example", {"Spock": "Spock."})
    corpus.record_tokens(corpus.folder(["trek"]), "124M", 10)        # no stats yet: nothing to add to
    corpus.build_trainingset(["trek"])
    corpus.record_tokens(corpus.folder(["trek"]), "124M", 12)
    corpus.record_tokens(corpus.folder(["trek"]), "scratch-trek", 9)
    assert corpus.read_stats(corpus.folder(["trek"]))["tokens"] == {"124M": 12, "scratch-trek": 9}
    assert corpus.is_built(["trek"])


@pytest.mark.slow            # importing datasets (pyarrow, pandas) alone takes seconds
def test_the_json_lines_load_with_the_datasets_librarys_json_loader(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")                       # a local loader: nothing to download
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from datasets import load_dataset

    pages = {f"Page {n:02d}": f"Text of page {n}, with ünïcode and a [link](x)." for n in range(20)}
    make_manifest("set", "set.example", pages)
    stats = corpus.build_trainingset(["set"])
    folder = corpus.folder(["set"])
    loaded = load_dataset("json", data_files={"train": str(folder / "train.jsonl"),
                                              "validation": str(folder / "validation.jsonl")},
                          cache_dir=str(tmp_path / "cache"))
    assert loaded["train"].num_rows == stats["train"]["pages"]
    assert loaded["validation"].num_rows == stats["validation"]["pages"]
    assert set(loaded["train"].column_names) == {"title", "text", "url", "revision_id", "wiki"}
    row = loaded["validation"][0]
    assert row["text"] == pages[row["title"]] and row["wiki"] == "set.example"


@pytest.mark.parametrize("settled", [corpus.SETTLED_SECONDS, 0.0])    # 0: every check after the first remembered
def test_a_training_set_is_stale_when_its_pages_revisions_or_options_change_and_only_then(data_dir, monkeypatch,
                                                                                         settled):
    monkeypatch.setattr(corpus, "SETTLED_SECONDS", settled)
    make_manifest("trek", "trek.example", {"Spock": "Vulcan.", "Kirk": "Captain.", "Worf": None})
    built = corpus.build_trainingset(["trek"], validation=0)
    assert corpus.is_built(["trek"], 0) and len(built["fingerprint"]) == 64
    assert built["inputs"][0]["pages"] == 2 and built["inputs"][0]["manifest"] == "trek"
    pagefiles.write_atomic(paths.processed_page("trek.example", "Spock"), "Vulcan.")    # the same page again
    assert corpus.is_built(["trek"], 0)
    assert bool(corpus._remembered) == (settled == 0)

    pagefiles.write_atomic(paths.processed_page("trek.example", "Worf"), "Klingon.")    # a page converted since
    assert corpus.stale_because(["trek"], 0) == "trek: 2 pages with Markdown, now 3"
    assert corpus.build_trainingset(["trek"], validation=0)["pages"] == 3 and corpus.is_built(["trek"], 0)

    raw = paths.raw_dir("trek.example")
    raw.mkdir(parents=True)
    (raw / "revisions-host1.jsonl").write_text('{"title": "Spock", "revision_id": 12}\n', encoding="utf-8")
    assert corpus.stale_because(["trek"], 0) == "trek: pages or their revisions changed"      # a refresh
    corpus.build_trainingset(["trek"], validation=0)
    assert corpus.is_built(["trek"], 0)

    paths.processed_page("trek.example", "Kirk").unlink()                                 # a page lost
    assert corpus.stale_because(["trek"], 0) == "trek: 3 pages with Markdown, now 2"
    corpus.build_trainingset(["trek"], validation=0)
    assert corpus.stale_because(["trek"], 0) is None and corpus.stale_because(["trek"], 0.5) == "not built"
    # Other conversion options are another processed folder (with its own pages): named in the inputs.
    assert corpus.changes([{**built["inputs"][0], "processed_folder": "trek.example~0123456789ab"}],
                          built["inputs"]) == "trek: processed folder changed"


def test_a_dumps_siteinfo_is_read_once_per_manifest(data_dir, tmp_path, monkeypatch):
    from wikiluigi.sources import dump as dumps
    site = tmp_path / "site.xml"
    site.write_text('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/"><siteinfo><sitename>Isles'
                    '</sitename><base>http://isles.example/wiki/Main_Page</base></siteinfo></mediawiki>',
                    encoding="utf-8")
    reads = []
    real = dumps.read_siteinfo
    monkeypatch.setattr(dumps, "read_siteinfo", lambda path: reads.append(path) or real(path))
    make_manifest("isles", "isles.example", {f"Isle {n}": f"Isle number {n}." for n in range(30)},
                  source={"dump": str(site)})
    corpus.build_trainingset(["isles"], validation=0)
    records = read_jsonl(corpus.folder(["isles"], 0) / "train.jsonl")
    assert len(records) == 30 and records[0]["url"] == "http://isles.example/wiki/Isle_0" and len(reads) == 1
