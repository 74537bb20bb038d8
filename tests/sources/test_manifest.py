from pathlib import Path

import pytest

from wikiluigi.errors import ManifestError
from wikiluigi.sources import manifest


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
    # The bracket opened on line 2 is found unclosed where line 3's `max_depth:` begins (PyYAML's pure-Python
    # parser, always the one used, so the position is fixed).
    assert f"{path}: line 3, column 10: this is not valid YAML" in str(error.value)


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
    ("api: 'http://[x/api.php'\ninclude_pages: [A]\n", "api"),
    ("dump: ~nosuchuser-wikiluigi/x.xml\ninclude_pages: [A]\n", "dump"),
    ("dump: \"a\\0b.xml\"\ninclude_pages: [A]\n", "dump"),
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


def test_all_pages_needs_no_category(data_dir):
    write(data_dir, "whole", "dump: wiki.xml\nall_pages: true\nexclude_pages: [Main Page]\n")
    loaded = manifest.load("whole")
    assert loaded.all_pages and loaded.include_categories == () and loaded.exclude_pages == ("Main Page",)
    write(data_dir, "off", "dump: wiki.xml\nall_pages: false\n")
    with pytest.raises(ManifestError, match="all_pages: true"):
        manifest.load("off")


def test_manifests_command_shows_all_pages(data_dir, capsys):
    from wikiluigi import cli
    write(data_dir, "whole", "api: http://127.0.0.1:1/api.php\nall_pages: true\nnamespaces: [0, 14]\n"
                             "exclude_categories: [Stubs]\n")
    assert cli.main(["manifests"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("whole\t"))
    assert "all pages of namespace 0, 14 except Category:Stubs" in line


# "Billion laughs": 9 levels of 9 aliases, under 400 bytes that expand to 4.3e8 strings.
ALIAS_BOMB = "api: http://x/api.php\na: &a [l,l,l,l,l,l,l,l,l]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(7)
) + "include_pages: [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"


def test_a_yaml_alias_bomb_is_refused_with_a_short_message(data_dir):
    path = write(data_dir, "bomb", ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 400
    with pytest.raises(ManifestError) as error:
        manifest.load("bomb")
    message = str(error.value)
    assert str(path) in message and "aliases" in message and len(message) < 300


def test_a_few_aliases_are_fine(data_dir):
    write(data_dir, "aliased", "api: http://x/api.php\ninclude_pages: &pages [A, B]\nexclude_pages: *pages\n")
    assert manifest.load("aliased").exclude_pages == ("A", "B")


def test_a_value_that_contains_itself_is_refused(data_dir):
    write(data_dir, "loop", "api: http://x/api.php\ninclude_pages: &a [A, *a]\n")
    with pytest.raises(ManifestError, match="contains itself"):
        manifest.load("loop")


@pytest.mark.parametrize("text, key", [
    ("api: http://x/api.php\ninclude_pages: [A]\nhost: ../../outside\n", "'host'"),
    ("api: http://x/api.php\ninclude_pages: [A]\nhost: a/b\n", "'host'"),
    ("api: http://x/api.php\ninclude_pages: [A]\nhost: ..\n", "'host'"),
    ("api: http://../api.php\ninclude_pages: [A]\n", "'api'"),
    ("api: http://.hidden/api.php\ninclude_pages: [A]\n", "'api'"),
])
def test_a_host_that_would_leave_the_data_directory_is_refused(data_dir, text, key):
    from wikiluigi.paths import PathError
    path = write(data_dir, "escape", text)
    with pytest.raises(PathError) as error:
        manifest.load("escape")
    assert str(path) in str(error.value) and f"key {key}" in str(error.value)


def test_hostile_values_are_quoted_shortened(data_dir):
    write(data_dir, "long", "api: http://x/api.php\ninclude_pages: [A]\nkeep_tables: " + "x" * 1_000_000 + "\n")
    with pytest.raises(ManifestError) as error:
        manifest.load("long")
    assert "'keep_tables'" in str(error.value) and "1000000 characters" in str(error.value)
    assert len(str(error.value)) < 300


def test_a_file_that_is_not_utf8_is_named(data_dir):
    path = data_dir / "manifests" / "originals" / "latin1.yaml"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"api: http://x/api.php\ninclude_pages: [Caf\xe9]\n")
    with pytest.raises(ManifestError, match=r"byte 41 \(counting from 0\) is not UTF-8"):
        manifest.load("latin1")


# Property tests: whatever the file holds, the parser answers a Manifest or a WikiluigiError, never a traceback.
from hypothesis import given, settings, strategies as st  # noqa: E402

from wikiluigi.errors import WikiluigiError  # noqa: E402

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                    st.sampled_from(["http://x/api.php", "ftp://x", "Category:A", "../..", ".", "", "0"]),
                    st.text(max_size=20).map("http://{}".format), st.text(max_size=10).map("~{}".format))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
DOCUMENTS = st.dictionaries(st.sampled_from(sorted(manifest.KEYS)) | st.text(max_size=10), VALUES, max_size=8)
YAML_SOUP = st.lists(st.sampled_from(["api:", "dump:", " ", "\n", "- ", "[", "]", "{", "}", ",", "&a ", "*a",
                                      "<<: ", "!!binary ", "!!python/name:os.system", "'", '"', "?", ":", "#",
                                      "2024-02-30", "0x", "~", "\t", "\0", "\ud800", "include_pages:", "|", ">"]),
                     max_size=40).map("".join)


def parses_or_says_why(text: str) -> None:
    path = Path("/m/hypothesis.yaml")
    try:
        manifest.parse(text, path, "hypothesis")
    except WikiluigiError as error:
        message = str(error)
        assert isinstance(error, ManifestError), message
        # The file first, then what is wrong with it, in a message a person reads whole.
        assert message.startswith(f"{path}: ") and len(message) > len(f"{path}: ") + 20, message
        assert len(message) < 2000, message


@given(DOCUMENTS)
@settings(max_examples=150, deadline=None)
def test_any_yaml_document_parses_or_gives_a_clear_error(document):
    import yaml
    parses_or_says_why(yaml.safe_dump(document, allow_unicode=True))


@given(st.one_of(st.text(max_size=200), YAML_SOUP))
@settings(max_examples=400, deadline=None)
def test_any_text_parses_or_gives_a_clear_error(text):
    parses_or_says_why(text)


def test_a_hostile_manifest_name_is_quoted_shortened(data_dir):
    for name in ("x" * 100_000, "../" * 30_000):
        with pytest.raises(ManifestError) as error:
            manifest.load(name)
        assert len(str(error.value)) < 1000 and "characters)" in str(error.value)
