"""wikiluigi.corpus: the training set from processed pages, without Luigi and without TensorFlow."""
import json

import pytest

from wikiluigi import corpus, derived, pagefiles, paths
from wikiluigi.errors import ModelError


def make_manifest(name: str, host: str, pages: dict[str, str | None]) -> None:
    """A derived manifest of these titles; each page with text gets a processed file (None: not converted)."""
    meta = derived.Derived(name=name, host=host, source={"dump": f"{name}.xml"}, titles=tuple(sorted(pages)),
                           chunk_size=200, counts={})
    derived.write(paths.derived_manifest(name), meta, [], [])
    for title, text in pages.items():
        if text is not None:
            pagefiles.write_atomic(paths.processed_page(host, title), text)


def test_pages_in_manifest_then_title_order_each_wrapped(data_dir):
    make_manifest("trek", "trek.example", {"Spock": "Spock is a Vulcan.\n", "Kirk": "\nKirk commands.\n",
                                           "Data": None, "Empty": "  \n", "A/B": "Slash title."})
    make_manifest("gaul", "gaul.example", {"Asterix": "A Gaul.", "Spock": "Not the same wiki."})
    stats = corpus.build_trainingset(["trek", "gaul", "trek"])
    assert paths.trainingset().read_text(encoding="utf-8") == (
        "<|startoftext|>\nSlash title.\n<|endoftext|>\n"
        "<|startoftext|>\nKirk commands.\n<|endoftext|>\n"
        "<|startoftext|>\nSpock is a Vulcan.\n<|endoftext|>\n"
        "<|startoftext|>\nA Gaul.\n<|endoftext|>\n"
        "<|startoftext|>\nNot the same wiki.\n<|endoftext|>\n")
    text = paths.trainingset().read_text(encoding="utf-8")
    assert stats == {"manifests": ["trek", "gaul"], "pages": 5, "characters": len(text),
                     "bytes": len(text.encode("utf-8")), "tokens": {}}
    assert json.loads(paths.trainingset_stats().read_text(encoding="utf-8")) == stats
    assert corpus.is_built(["trek", "gaul"]) and not corpus.is_built(["trek"])
    assert not list(paths.out_dir().glob(".*"))


def test_a_page_two_manifests_share_is_taken_once(data_dir):
    make_manifest("one", "wiki.example", {"Shared": "Both.", "Only one": "One."})
    make_manifest("two", "wiki.example", {"Shared": "Both."})
    assert corpus.build_trainingset(["one", "two"])["pages"] == 2


def test_an_empty_corpus_is_an_error_naming_the_manifests(data_dir):
    make_manifest("trek", "trek.example", {"Spock": None, "Kirk": " "})
    make_manifest("gaul", "gaul.example", {})
    with pytest.raises(ModelError, match=r"No processed pages for manifest\(s\) trek, gaul .*nothing to train on"):
        corpus.build_trainingset(["trek", "gaul"])
    assert not paths.trainingset().exists() and not paths.trainingset_stats().exists()
    assert not list(paths.out_dir().iterdir())
    with pytest.raises(ModelError, match=r"at least one manifest"):
        corpus.build_trainingset([])


def test_token_counts_are_recorded_per_vocabulary(data_dir):
    corpus.record_tokens("124M", 10)           # no stats yet: nothing to add to
    assert not paths.trainingset_stats().exists()
    make_manifest("trek", "trek.example", {"Spock": "Spock."})
    corpus.build_trainingset(["trek"])
    corpus.record_tokens("124M", 12)
    corpus.record_tokens("scratch-trek", 9)
    assert corpus.read_stats()["tokens"] == {"124M": 12, "scratch-trek": 9}
    assert corpus.is_built(["trek"])
