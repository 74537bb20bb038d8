import os

import pytest

from wikiluigi import paths

AWKWARD_TITLES = [
    "Julius Caesar",
    "AC/DC",
    "Rock & Roll",
    "100% Pure",
    "C++ (programming language)",
    ".hack",
    "..",
    "%2F is not a slash",
    "Ἀθῆναι",
    "東京都",
    "Kategorie:Übersicht",
    "Nul\0byte",
]


@pytest.mark.parametrize("title", AWKWARD_TITLES)
def test_every_title_round_trips_through_a_file_name(title, tmp_path):
    stem = paths.title_to_stem(title)
    assert "/" not in stem and "\0" not in stem and not stem.startswith(".")
    assert paths.stem_to_title(stem) == title
    (tmp_path / f"{stem}.mediawiki").write_text("x")  # the file system accepts it
    assert os.listdir(tmp_path) == [f"{stem}.mediawiki"]


def test_readable_titles_are_kept_as_the_wiki_spells_them():
    assert paths.title_to_stem("Julius Caesar") == "Julius Caesar"
    assert paths.title_to_stem("Ἀθῆναι") == "Ἀθῆναι"
    assert paths.title_to_stem("Rock & Roll + more") == "Rock & Roll + more"


def test_over_long_titles_are_cut_with_a_hash_that_keeps_them_apart(tmp_path):
    long_a = "Ä" * 200 + " a"
    long_b = "Ä" * 200 + " b"
    stem_a, stem_b = paths.title_to_stem(long_a), paths.title_to_stem(long_b)
    assert stem_a != stem_b
    assert len(f"{stem_a}.mediawiki".encode()) <= 255
    (tmp_path / f"{stem_a}.mediawiki").write_text("x")
    assert paths.stem_to_title(stem_a) is None  # the whole title is in the page's metadata


def test_layout_follows_the_data_directory(data_dir):
    assert paths.raw_page("memory-alpha.fandom.com", "Spock") == (
        data_dir / "raw" / "mediawiki" / "memory-alpha.fandom.com" / "Spock.mediawiki")
    assert paths.processed_page("h", "A/B") == data_dir / "processed" / "mediawiki" / "h" / "A%2FB.md"
    assert paths.derived_manifest("demo") == data_dir / "manifests" / "derived" / "demo.yaml"
