"""Resolving manifests over dumps written here: cycles, depth, localised namespaces, case-sensitive wikis.
(The same walk over the real MediaWiki API is in tests/tasks/test_scrape.py.)"""
from pathlib import Path

import pytest

from wikiluigi.errors import ManifestError
from wikiluigi.sources.derive import resolve_manifest
from wikiluigi.sources.manifest import parse
from wikiluigi.sources.source import DumpSource

HEAD = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="{lang}">
  <siteinfo><sitename>Wiki</sitename><base>https://{host}/wiki/Start</base><case>{case}</case>
    <namespaces><namespace key="0" case="{case}" /><namespace key="4" case="{case}">Wiki</namespace>
    <namespace key="14" case="{case}">{category}</namespace></namespaces>
  </siteinfo>
"""
PAGE = """  <page><title>{title}</title><ns>{ns}</ns><id>{id}</id>{redirect}<revision><id>{id}</id>
    <timestamp>2024-01-01T00:00:00Z</timestamp><text xml:space="preserve">{text}</text></revision></page>
"""


def write_dump(path: Path, pages: list[tuple], lang="en", category="Category", case="first-letter") -> Path:
    body = []
    for i, (title, ns, text, *redirect) in enumerate(pages, start=1):
        tag = f'<redirect title="{redirect[0]}" />' if redirect else ""
        body.append(PAGE.format(title=title, ns=ns, id=i, text=text, redirect=tag))
    path.write_text(HEAD.format(lang=lang, host=f"{lang}.example.invalid", category=category, case=case)
                    + "".join(body) + "</mediawiki>\n", encoding="utf-8")
    return path


def resolve(tmp_path, dump: Path, manifest: str):
    loaded = parse(f"dump: {dump}\n{manifest}", tmp_path / "m.yaml", "m")
    return resolve_manifest(DumpSource(dump), loaded)


def test_a_category_cycle_ends_and_every_page_is_taken_once(tmp_path):
    dump = write_dump(tmp_path / "cycle.xml", [
        ("Category:A", 14, "[[Category:C]]"),
        ("Category:B", 14, "[[Category:A]]"),
        ("Category:C", 14, "[[Category:B]]"),
        ("In A", 0, "x [[Category:A]]"),
        ("In B and C", 0, "x [[Category:B]] [[Category:C]]"),
        ("Shortcut", 0, "#REDIRECT [[In A]] [[Category:C]]", "In A"),
    ])
    result = resolve(tmp_path, dump, "include_categories: [A]\n")
    assert result.titles == ["In A", "In B and C"]
    assert sorted(result.categories) == ["Category:A", "Category:B", "Category:C"]
    # Listed 4 times (In B and C under B and under C; Shortcut, a redirect to In A, under C): 2 duplicates.
    assert (result.counts["members_listed"], result.counts["redirects_resolved"],
            result.counts["duplicates_removed"]) == (4, 1, 2)


def test_max_depth_and_exclusions(tmp_path):
    dump = write_dump(tmp_path / "tree.xml", [
        ("Category:Top", 14, ""), ("Category:Mid", 14, "[[Category:Top]]"), ("Category:Low", 14, "[[Category:Mid]]"),
        ("T", 0, "[[Category:Top]]"), ("M", 0, "[[Category:Mid]]"), ("L", 0, "[[Category:Low]]"),
        ("Wiki:Project page", 4, "[[Category:Top]]"),
    ])
    assert resolve(tmp_path, dump, "include_categories: [Top]\nmax_depth: 1\n").titles == ["M", "T"]
    assert resolve(tmp_path, dump, "include_categories: [Top]\nexclude_categories: [Low]\n").titles == ["M", "T"]
    assert resolve(tmp_path, dump, "include_categories: [Top]\nexclude_pages: [T]\n").titles == ["L", "M"]
    assert resolve(tmp_path, dump, "include_categories: [Top]\n").titles == ["L", "M", "T"]
    assert resolve(tmp_path, dump, "include_categories: [Top]\nnamespaces: [0, 4]\n").titles == [
        "L", "M", "T", "Wiki:Project page"]


def test_localised_category_namespace(tmp_path):
    dump = write_dump(tmp_path / "de.xml", [
        ("Kategorie:Inseln", 14, ""),
        ("Kategorie:Nordseeinseln", 14, "[[Kategorie:Inseln]]"),
        ("Sylt", 0, "Eine Insel. [[kategorie:Nordseeinseln|Sylt]]"),
        ("Föhr", 0, "Noch eine. [[Category:Nordseeinseln]]"),  # the English name works on every wiki
    ], lang="de", category="Kategorie")
    for spelling in ("Inseln", "Kategorie:Inseln", "Category:Inseln"):
        result = resolve(tmp_path, dump, f"include_categories: ['{spelling}']\n")
        assert result.titles == ["Föhr", "Sylt"], spelling
        assert "Kategorie:Nordseeinseln" in result.categories


def test_a_case_sensitive_wiki_keeps_lower_case_titles(tmp_path):
    dump = write_dump(tmp_path / "wikt.xml", [
        ("Category:nouns", 14, ""),
        ("cat", 0, "[[Category:nouns]]"),
        ("Cat", 0, "A name. [[Category:nouns]]"),
    ], case="case-sensitive")
    assert resolve(tmp_path, dump, "include_categories: [nouns]\n").titles == ["Cat", "cat"]


def test_nothing_found_is_an_error_naming_the_manifest(tmp_path):
    dump = write_dump(tmp_path / "empty.xml", [("Lonely", 0, "no categories")])
    with pytest.raises(ManifestError, match=r"m.yaml: the manifest resolves to no pages.*Category:Nowhere has no pages"):
        resolve(tmp_path, dump, "include_categories: [Nowhere]\n")


WHOLE_WIKI = [
    ("Category:Places", 14, ""),
    ("Category:Towns", 14, "[[Category:Places]]"),
    ("Alpha", 0, "[[Category:Towns]]"),
    ("Beta", 0, "no category at all"),
    ("Gamma", 0, "[[Category:Places]]"),
    ("Delta", 0, "[[Category:Towns]]"),
    ("Old Alpha", 0, "#REDIRECT [[Alpha]]", "Alpha"),
    ("Template:Box", 10, "{{{1}}}"),
    ("Wiki:About", 4, "project page"),
]


def test_all_pages_of_a_dump_takes_every_article_and_no_redirect(tmp_path):
    dump = write_dump(tmp_path / "whole.xml", WHOLE_WIKI)
    result = resolve(tmp_path, dump, "all_pages: true\n")
    assert result.titles == ["Alpha", "Beta", "Delta", "Gamma"]
    assert result.counts["all_pages_listed"] == 4 and result.counts["pages"] == 4
    assert resolve(tmp_path, dump, "all_pages: true\nnamespaces: [0, 4, 10]\n").titles == [
        "Alpha", "Beta", "Delta", "Gamma", "Template:Box", "Wiki:About"]


def test_all_pages_applies_the_exclusions_redirects_resolved(tmp_path):
    dump = write_dump(tmp_path / "whole.xml", WHOLE_WIKI)
    assert resolve(tmp_path, dump, "all_pages: true\nexclude_categories: [Towns]\n").titles == ["Beta", "Gamma"]
    # An excluded redirect takes its target out; the rest of Places' tree stays out too.
    assert resolve(tmp_path, dump, "all_pages: true\nexclude_pages: [Old Alpha]\n").titles == ["Beta", "Delta", "Gamma"]
    with pytest.raises(ManifestError, match="resolves to no pages"):
        resolve(tmp_path, dump, "all_pages: true\nexclude_categories: [Places]\nexclude_pages: [Beta]\n")


def test_all_pages_reads_the_dump_once(tmp_path, monkeypatch):
    from wikiluigi.sources import dump as dump_module
    passes = []
    real = dump_module.iter_pages
    monkeypatch.setattr(dump_module, "iter_pages", lambda *a, **k: (passes.append(a), real(*a, **k))[1])
    dump = write_dump(tmp_path / "whole.xml", WHOLE_WIKI)
    result = resolve(tmp_path, dump, "all_pages: true\ninclude_categories: [Places]\nexclude_categories: [Towns]\n"
                                     "include_pages: [Old Alpha]\nexclude_pages: [Wiki:About]\nnamespaces: [0, 4]\n")
    assert result.titles == ["Beta", "Gamma"]
    assert len(passes) == 1


CAFE_NFC, CAFE_NFD = "Caf\u00e9", "Cafe\u0301"


def test_titles_differing_only_in_case_or_normalisation_are_named_and_get_their_own_files(tmp_path, data_dir):
    dump = write_dump(tmp_path / "cases.xml", [
        ("US", 0, "United States"), ("Us", 0, "a film"), ("US (band)", 0, "x"),
        (CAFE_NFC, 0, "composed"), (CAFE_NFD, 0, "decomposed"), ("Plain", 0, "x"),
    ], case="case-sensitive")
    result = resolve(tmp_path, dump, "all_pages: true\n")
    assert result.case_variants == [sorted([CAFE_NFC, CAFE_NFD]), ["US", "Us"]]
    assert result.counts["case_variants"] == 4
    named = [w for w in result.warnings if "differ only in case" in w]
    assert len(named) == 2 and "'US', 'Us'" in named[1] and repr(CAFE_NFD) in " ".join(named)
    # Each title its own file, and the names stay apart under NFC (what macOS's file system compares).
    import unicodedata
    from wikiluigi import paths
    stems = [paths.title_to_stem(t) for t in result.titles]
    assert len({unicodedata.normalize("NFC", s) for s in stems}) == len(result.titles)
    assert paths.title_to_stem(CAFE_NFC) == CAFE_NFC and paths.title_to_stem("US") == "US"
    for title in result.titles:
        paths.raw_page("h", title).parent.mkdir(parents=True, exist_ok=True)
        paths.raw_page("h", title).write_text(title)
    assert sorted(p.read_text() for p in paths.raw_dir("h").iterdir()) == sorted(result.titles)


def test_case_variants_pass_on_a_case_sensitive_file_system_and_are_refused_on_one_that_folds_case(
        tmp_path, monkeypatch):
    """The refusal is shown with paths.case_sensitive answering False: no file system that folds case
    can be mounted on the test machines (no FUSE library, no casefold support in the kernel)."""
    from wikiluigi import paths
    from wikiluigi.sources.derive import refuse_shared_files
    loaded = parse("dump: x.xml\nall_pages: true\n", tmp_path / "m.yaml", "m")
    assert paths.case_sensitive(tmp_path)  # Linux's
    refuse_shared_files([["US", "Us"]], tmp_path, loaded)
    assert not list(tmp_path.iterdir())  # the probe file is gone
    monkeypatch.setattr(paths, "case_sensitive", lambda folder: False)
    with pytest.raises(ManifestError, match=r"m.yaml: 2 titles differ only in case .*'US' / 'Us'.*exclude_pages"):
        refuse_shared_files([["US", "Us"]], tmp_path, loaded)
    refuse_shared_files([[CAFE_NFC, CAFE_NFD]], tmp_path, loaded)  # escaped apart: no clash


def test_a_title_with_a_line_break_is_left_out_with_a_warning(tmp_path):
    dump = write_dump(tmp_path / "broken.xml", [("Good", 0, "x"), ("Bad&#10;title", 0, "x"), ("Nul&#9;", 0, "x")])
    result = resolve(tmp_path, dump, "all_pages: true\n")
    assert result.titles == ["Good"]
    assert any("'Bad\\ntitle' holds a control character" in w for w in result.warnings)


SITEINFO = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11">
  <siteinfo><sitename>{sitename}</sitename><dbname>{dbname}</dbname>{base}<case>first-letter</case>
    <namespaces><namespace key="0" case="first-letter" /></namespaces></siteinfo>
  <page><title>Page</title><ns>0</ns><id>1</id><revision><id>1</id><text>x</text></revision></page>
</mediawiki>
"""


@pytest.mark.parametrize("dbname, base, element", [
    ("../../../tmp/evil", "", "<dbname>"),
    ("..", "", "<dbname>"),
    ("wiki", "<base>http://../wiki/Main</base>", "<base>'s host"),
    ("wiki", "<base>http://.hidden/wiki/Main</base>", "<base>'s host"),
])
def test_a_dump_whose_site_names_a_path_is_refused_naming_the_element(tmp_path, dbname, base, element):
    from wikiluigi.paths import PathError
    dump = tmp_path / "third-party.xml"
    dump.write_text(SITEINFO.format(sitename="../../x", dbname=dbname, base=base), encoding="utf-8")
    with pytest.raises(PathError) as error:
        DumpSource(dump).host
    message = str(error.value)
    assert str(dump) in message and element in message and "'host' key" in message


def test_a_dumps_host_key_in_the_manifest_overrides_a_hostile_site(tmp_path, data_dir):
    from wikiluigi.sources.source import host_of
    dump = tmp_path / "third-party.xml"
    dump.write_text(SITEINFO.format(sitename="x", dbname="../..", base=""), encoding="utf-8")
    assert host_of(parse(f"dump: {dump}\nall_pages: true\nhost: mirror\n", tmp_path / "m.yaml", "m")) == "mirror"


def test_a_dump_error_quotes_a_hostile_title_and_value_shortened(tmp_path):
    from wikiluigi.errors import DumpError
    dump = tmp_path / "long.xml"
    dump.write_text(SITEINFO.format(sitename="x", dbname="wiki", base="").replace(
        "<title>Page</title><ns>0</ns><id>1</id>", f"<title>{'A' * 1_000_000}</title><ns>0</ns><id>{'9x' * 500_000}</id>"),
        encoding="utf-8")
    with pytest.raises(DumpError) as error:
        DumpSource(dump).all_pages(0).__next__()
    message = str(error.value)
    assert str(dump) in message and "1000000 characters" in message and len(message) < 600


def test_the_derived_manifest_names_the_case_variants(tmp_path):
    from tests.support.luigi_cli import derived, make_data_dir, run_luigi
    dump = write_dump(tmp_path / "cases.xml", [("US", 0, "x"), ("Us", 0, "x"), (CAFE_NFC, 0, "x"), (CAFE_NFD, 0, "x")])
    data_dir = make_data_dir(tmp_path / "data", {"cases": {"dump": str(dump), "all_pages": True}})
    run_luigi(data_dir, "DeriveManifest", "--manifest", "cases", "--local-scheduler", check_returncode=0)
    result = derived(data_dir, "cases")
    named = [w for w in result["warnings"] if "differ only in case" in w]
    assert len(named) == 2 and "'US', 'Us'" in named[1] and CAFE_NFD in named[0] and CAFE_NFC in named[0]
    assert result["counts"]["case_variants"] == 4 and result["counts"]["pages"] == 4
