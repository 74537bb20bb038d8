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


# Property tests: whatever a wiki or a dump calls a page, its file name is a valid Linux file name inside
# its folder, the title comes back from it, and no two titles share it (nor do their NFC forms).
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from wikiluigi.paths import PathError

# Every code point, lone surrogates included (a JSON or YAML escape can carry one), weighted towards the
# characters that need escaping and the combining marks that make NFC and NFD differ.
ANY_CHARACTER = st.characters(codec=None, exclude_categories=())
AWKWARD = st.sampled_from(["%", "/", "\0", ".", "%2F", "%25", "%~", "e\u0301", "\u00e9", "A", "a", "\ud800",
                           "\u212b", "\u00c5", "I", "\u0130", "\u00df", "SS", " ", "\\", "\n"])
TITLES = st.lists(st.one_of(ANY_CHARACTER, AWKWARD), max_size=120).map("".join) | st.text(max_size=400)
FOLDER = Path("/data/raw/mediawiki/host")


def valid_linux_file_name(name: str) -> bool:
    encoded = name.encode("utf-8")  # no lone surrogate either: it would not encode
    return 0 < len(encoded) <= 255 and b"/" not in encoded and b"\0" not in encoded and name not in (".", "..")


@given(TITLES)
@settings(max_examples=400, deadline=None)
def test_a_file_name_is_valid_inside_its_folder_and_gives_the_title_back(title):
    stem = paths.title_to_stem(title)
    for suffix in (".mediawiki", ".md", ".json"):
        assert valid_linux_file_name(stem + suffix)
        assert (FOLDER / f"{stem}{suffix}").parent == FOLDER
    assert not stem.startswith(".")
    assert unicodedata.is_normalized("NFC", stem)
    back = paths.stem_to_title(stem)
    assert back == title or (back is None and len(title.encode("utf-8", "surrogatepass")) > 80)


@given(st.lists(TITLES, min_size=2, max_size=12, unique=True))
@settings(max_examples=200, deadline=None)
def test_different_titles_never_share_a_file_name_even_under_nfc(titles):
    stems = [paths.title_to_stem(t) for t in titles]
    assert len(set(stems)) == len(titles)
    assert len({unicodedata.normalize("NFC", s) for s in stems}) == len(titles)


@given(st.lists(TITLES, min_size=1, max_size=8, unique=True))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_file_system_takes_every_name_and_lists_each_once(tmp_path_factory, titles):
    folder = tmp_path_factory.mktemp("pages")
    for title in titles:
        (folder / f"{paths.title_to_stem(title)}.md").write_bytes(b"x")
    assert len(os.listdir(folder)) == len(titles)
    assert list(folder.parent.glob("*.md")) == []  # nothing landed beside the folder


@pytest.mark.parametrize("function", [paths.raw_dir, paths.processed_dir, paths.derived_manifest, paths.report,
                                      paths.failures_report, paths.model_dir, paths.checkpoint_dir, paths.generated_dir])
@pytest.mark.parametrize("name", ["..", ".", "../../etc", "a/b", "", ".hidden", "a\0b", "a\\b", "x" * 241, "tab\there"])
def test_no_folder_named_after_outside_input_can_leave_its_place(function, name, data_dir):
    with pytest.raises(PathError, match="cannot be a folder name inside the data directory"):
        function(name)


def test_a_hostile_name_is_quoted_shortened_in_the_error():
    with pytest.raises(PathError) as error:
        paths.raw_dir("../" * 100_000)
    assert len(str(error.value)) < 300 and "300000 characters" in str(error.value)


def test_ordinary_names_stay_as_they_are(data_dir):
    assert paths.raw_dir("127.0.0.1:18931").name == "127.0.0.1:18931"
    assert paths.checkpoint_dir("trek-2").name == "trek-2"


def test_names_of_manifest_sets_never_collide(data_dir):
    """A training set's or scratch model's folder names its manifests and split: 'a+b' is ["a", "b"] and
    'demo-val0.2' is ["demo"] at 0.2 only, since no manifest can be called 'a+b' or 'demo-val0.2'."""
    from wikiluigi.corpus import trainingset
    from wikiluigi.errors import ManifestError
    from wikiluigi.sources import manifest
    from wikiluigi.tasks.model import scratch_folder

    originals = paths.original_manifest_dirs()[0]
    originals.mkdir(parents=True)
    for name in ("a+b", "demo-val0.2", "demo-val5", "x-valINF"):
        (originals / f"{name}.yaml").write_text("api: https://h.example/w/api.php\nall_pages: true\n")
        with pytest.raises(ManifestError, match=r"cannot be a manifest name: it (holds '\+'|ends like '-val0.2').*"
                                                r"Rename its file"):
            manifest.load(name)
        with pytest.raises(PathError, match="Rename the manifest's file"):
            trainingset.set_name([name])
        with pytest.raises(PathError):
            scratch_folder([name], 1, 2, 3, 4, 5, 6)
    (originals / "demo-valley.yaml").write_text("api: https://h.example/w/api.php\nall_pages: true\n")
    assert manifest.load("demo-valley").name == "demo-valley"  # only a validation split's ending is refused
    assert trainingset.set_name(["a", "b"]) == "a+b" and trainingset.set_name(["demo"], 0.2) == "demo-val0.2"

    # Long or unusual names are hashed, marked by a leading '+' that no list of plain names has.
    hashed = trainingset.set_name(["x" * 61])
    assert hashed.startswith("+") and len(hashed) == 13 and hashed != trainingset.set_name(["y" * 61])
    assert paths.manifest_set_name(["Übung"]).startswith("+")
    assert scratch_folder(["a", "b"], 1, 2, 3, 4, 5, 6) == "scratch-a+b-l1-e2-h3-c4-v5-s6"
