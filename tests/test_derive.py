"""Resolving manifests over dumps written here: cycles, depth, localised namespaces, case-sensitive wikis.
(The same walk over the real MediaWiki API is in tests/tasks/test_scrape.py.)"""
from pathlib import Path

import pytest

from wikiluigi.derive import resolve_manifest
from wikiluigi.errors import ManifestError
from wikiluigi.manifest import parse
from wikiluigi.sources import DumpSource

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
    assert result.counts["redirects_resolved"] == 1 and result.counts["duplicates_removed"] >= 1


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
