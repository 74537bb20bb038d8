from pathlib import Path

import pytest

from wikiluigi import manifest
from wikiluigi.errors import ManifestError


def write(data_dir: Path, name: str, text: str) -> Path:
    path = data_dir / "manifests" / "originals" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_every_shipped_manifest_parses():
    shipped = manifest.available()
    assert {"startrek", "wikipedia", "mortalkombat", "rickandmorty", "sonic", "pokemon", "wow", "demo"} <= set(shipped)
    for name in shipped:
        loaded = manifest.load(name)
        assert loaded.api or loaded.dump
        assert loaded.include_categories or loaded.include_pages


def test_startrek_names_memory_alpha_and_its_categories():
    startrek = manifest.load("startrek")
    assert startrek.api == "https://memory-alpha.fandom.com/api.php"
    assert startrek.host == "memory-alpha.fandom.com"
    assert startrek.include_categories == ("Category:Culture", "Category:People", "Category:Planets", "Category:Technology")
    assert startrek.namespaces == (0,)
    assert "References" in startrek.drop_sections


def test_a_manifest_in_the_data_directory_shadows_a_shipped_one(data_dir):
    write(data_dir, "startrek", "api: http://127.0.0.1:1/api.php\ninclude_pages: [Spock]\n")
    assert manifest.load("startrek").include_pages == ("Spock",)


def test_unknown_name_lists_the_known_ones(data_dir):
    with pytest.raises(ManifestError) as error:
        manifest.load("startrak")
    assert "'startrak'" in str(error.value)
    assert "startrek" in str(error.value) and "demo" in str(error.value)


def test_malformed_yaml_names_file_and_line(data_dir):
    path = write(data_dir, "broken", "api: http://x/api.php\ninclude_categories: [A, B\nmax_depth: 2\n")
    with pytest.raises(ManifestError) as error:
        manifest.load("broken")
    assert str(path) in str(error.value)
    assert "line 3" in str(error.value) or "line 4" in str(error.value)


def test_unknown_key_is_named(data_dir):
    path = write(data_dir, "typo", "api: http://x/api.php\ninclude_category: [A]\n")
    with pytest.raises(ManifestError) as error:
        manifest.load("typo")
    assert str(path) in str(error.value) and "'include_category'" in str(error.value)
    assert "include_categories" in str(error.value)


@pytest.mark.parametrize("text, key", [
    ("api: http://x/api.php\ninclude_categories: 5\n", "include_categories"),
    ("api: http://x/api.php\ninclude_pages: [A]\nmax_depth: -1\n", "max_depth"),
    ("api: http://x/api.php\ninclude_pages: [A]\nkeep_tables: maybe\n", "keep_tables"),
    ("api: ftp://x/api.php\ninclude_pages: [A]\n", "api"),
])
def test_wrong_values_name_the_key(data_dir, text, key):
    write(data_dir, "bad", text)
    with pytest.raises(ManifestError, match=key):
        manifest.load("bad")


def test_api_or_dump_and_something_to_include(data_dir):
    write(data_dir, "none", "include_pages: [A]\n")
    with pytest.raises(ManifestError, match="exactly one of 'api'"):
        manifest.load("none")
    write(data_dir, "empty", "api: http://x/api.php\n")
    with pytest.raises(ManifestError, match="at least one of include_categories"):
        manifest.load("empty")


def test_categories_get_their_prefix_and_dump_paths_resolve_against_the_manifest(data_dir):
    path = write(data_dir, "local", "dump: ../dumps/wiki.xml.bz2\ninclude_categories: [Culture, 'Kategorie:X']\n")
    loaded = manifest.load("local")
    assert loaded.include_categories == ("Category:Culture", "Kategorie:X")
    assert loaded.dump == (path.parent / ".." / "dumps" / "wiki.xml.bz2").resolve()
