"""wikiluigi.convert.pandoc on real pages: the English Wikipedia excerpt, its table-heavy pages, the Star Trek wiki.

Every conversion here runs the real pandoc (the one inside pypandoc-binary); nothing is mocked except
where a test counts pandoc processes.
"""
import re
import subprocess
import time
from pathlib import Path

import pytest

from wikiluigi.convert import pandoc as convert, wikitext
from wikiluigi.convert.pandoc import Budget, ConvertOptions, PageResult, convert_page, convert_pages
from wikiluigi.sources.manifest import DEFAULT_DROP_SECTIONS, parse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ENWIKI = FIXTURES / "wikipedia" / "enwiki-articles-sample.xml.bz2"
TABLES = FIXTURES / "wikipedia" / "enwiki-table-markup.xml.bz2"
STARTREK = FIXTURES / "startrek-dump.xml"

OPTIONS = ConvertOptions(drop_sections=DEFAULT_DROP_SECTIONS)

# Nothing of wikitext or HTML may reach the training text.
FORBIDDEN = ("{{", "}}", "<ref", "[[", "]]", "Category:", "thumb|", "<div", "<span", "<br", "<a ", "</",
             "<small", "<sup", "<center", "__TOC__", "__NOTOC__", "[^", "&nbsp;", "[TABLE]", "DEFAULTSORT",
             "DISPLAYTITLE", "<!--", "nowiki", "{|", "|}", "File:", "Image:")


def read_pages(path):
    """title -> (namespace, wikitext, is redirect) of an export."""
    try:
        from wikiluigi.sources.dump import iter_pages
    except ImportError:  # pragma: no cover - a small stand-in when dump.py is absent
        return _read_pages_here(path)
    return {page.title: (page.ns, page.text, page.is_redirect) for page in iter_pages(path)}


def _read_pages_here(path):
    import bz2
    import xml.etree.ElementTree as ET

    opener = bz2.open if str(path).endswith(".bz2") else open
    pages = {}
    with opener(path, "rb") as stream:
        for _, elem in ET.iterparse(stream):
            if elem.tag.rpartition("}")[2] != "page":
                continue
            ns = elem.tag[:-4]
            text = elem.find(f"{ns}revision/{ns}text").text or ""
            pages[elem.find(f"{ns}title").text] = (int(elem.find(f"{ns}ns").text), text,
                                                  elem.find(f"{ns}redirect") is not None)
            elem.clear()
    return pages


def assert_clean(markdown):
    found = [s for s in FORBIDDEN if s in markdown]
    assert not found, f"{found} in the Markdown: " + ", ".join(
        repr(markdown[max(0, markdown.find(s) - 60):markdown.find(s) + 60]) for s in found)
    assert not re.search(r"^\[\^?\d+\]:", markdown, re.M), "a footnote definition"
    assert not re.search(r"<[a-zA-Z][a-zA-Z0-9]*[\s>/]", markdown), "a raw HTML tag"


def headings(markdown, level):
    return re.findall(rf"^{'#' * level} (.+)$", markdown, re.M)


@pytest.fixture(scope="module")
def enwiki():
    return read_pages(ENWIKI)


@pytest.fixture(scope="module")
def table_pages():
    return read_pages(TABLES)


@pytest.fixture(scope="module")
def startrek():
    return read_pages(STARTREK)


NAMED = {
    # title: (words of the lead, section headings kept, section headings dropped)
    "Anarchism": ("is a political philosophy that advocates self-governed societies based on voluntary institutions",
                  ["Etymology and terminology", "History", "Anarchist schools of thought", "Criticisms"],
                  ["References", "Further reading", "External links"]),
    "Algeria": ("is a sovereign state in North Africa on the Mediterranean coast",
                ["History", "Geography", "Politics", "Economy", "Demographics", "Culture"],
                ["See also", "References", "Bibliography", "External links"]),
    "Aristotle": ("was a Greek philosopher and scientist born in the city of Stagira",
                  ["Life", "Thought", "Legacy"],
                  ["See also", "Further reading", "External links"]),
    "Autism": ("is a neurodevelopmental disorder characterized by impaired social interaction",
               ["Characteristics", "Causes", "Diagnosis", "Management", "Epidemiology", "History"],
               ["References", "Further reading", "External links"]),
}


@pytest.fixture(scope="module")
def named(enwiki):
    return convert_pages({title: enwiki[title][1] for title in NAMED}, OPTIONS)


@pytest.mark.parametrize("title", sorted(NAMED))
def test_wikipedia_article(named, title):
    lead, kept, dropped = NAMED[title]
    result = named[title]
    assert result.error is None and result.ok
    markdown = result.markdown
    assert markdown.startswith(f"# {title}\n\n**{title}**")
    first_paragraph = markdown.split("\n\n")[1]
    assert lead in first_paragraph
    sections = headings(markdown, 2)
    assert [s for s in kept if s not in sections] == []
    assert [s for s in dropped if s in sections] == []
    assert headings(markdown, 1) == [title]
    assert_clean(markdown)


def test_wikipedia_lead_loses_the_brackets_of_removed_templates(named):
    # ({{IPAc-en|...}}; {{lang-ar|...}} ''Dzayer'') -> (*Dzayer*): no "(;" left behind
    assert "**Algeria** (*Dzayer*), officially" in named["Algeria"].markdown
    assert "(*Aristotélēs*; 384–322 BC)" in named["Aristotle"].markdown
    for result in named.values():
        assert "(;" not in result.markdown and "( ;" not in result.markdown and "()" not in result.markdown


def test_every_wikipedia_article_converts_clean(enwiki):
    pages = {t: text for t, (ns, text, redirect) in enwiki.items() if ns == 0 and not redirect}
    assert len(pages) > 100
    results = convert_pages(pages, OPTIONS)
    assert {t: r.error for t, r in results.items() if r.error} == {}
    for title, result in results.items():
        assert result.markdown.startswith(f"# {title}\n\n"), title
        assert_clean(result.markdown)
        assert "\n\n\n" not in result.markdown


def test_star_trek_character(startrek):
    pages = {t: startrek[t][1] for t in ("Spock", "Kahless the Unforgettable", "USS Enterprise (NCC-1701)")}
    results = convert_pages(pages, OPTIONS)
    spock = results["Spock"].markdown
    assert spock.startswith("# Spock\n\n**Spock** is a fictional character of *Star Trek*: the half-Vulcan, "
                            "half-Human science officer of the first *Enterprise*. Viewers meet Spock first in "
                            "*Star Trek: The Original Series*.\n")
    assert headings(spock, 2) == ["Biography", "Reception"]  # Appearances, References, External links dropped
    assert headings(spock, 3) == ["Early life"]
    # links become their text, the label where there is one
    assert "Related reading: faster-than-light travel and Vulcan." in spock
    assert "Critics wrote about Spock as well: an essay on Spock, while" in spock
    assert "- Home world: Vulcan\n- Schooling: the *Starfleet Academy*\n  - Marks: among the best" in spock
    assert "1.  A first posting, details unknown\n2.  A second posting, details unknown" in spock
    for gone in ("Spock.jpg", "pictured for the press", "Leonard Nimoy", "hidden editor comment", "Citation needed",
                 "Live long", "example.org", "Encyclopedia", "Chronology", "Vulcans"):
        assert gone not in spock
    assert_clean(spock)
    kahless = results["Kahless the Unforgettable"].markdown
    assert kahless.startswith("# Kahless the Unforgettable\n\n**Kahless the Unforgettable** is a fictional character")
    assert "(Klingon: *qeylIS*)" in kahless
    ship = results["USS Enterprise (NCC-1701)"].markdown
    assert ship.startswith("# USS Enterprise (NCC-1701)\n\nThe **USS Enterprise (NCC-1701)** is the "
                           "*Constitution*-class starship that James T. Kirk takes on a five-year mission of "
                           "exploration.\n")
    assert "From ahead" not in ship and "NCC-1701_bow" not in ship  # the <gallery> is gone, not leaked as text
    assert headings(ship, 2) == ["Design"]
    assert_clean(ship)


def test_redirects_are_errors_not_documents(startrek, enwiki):
    pages = {t: startrek[t][1] for t in ("Kirk", "Mr. Spock", "Spock")}
    pages["AccessibleComputing"] = enwiki["AccessibleComputing"][1]
    pages["lower case"] = "#redirect [[Warp_drive#History|warp]]\n"
    pages["localised"] = "  #REDIRECT:[[Starfleet]]"
    results = convert_pages(pages, OPTIONS)
    assert results["Kirk"] == PageResult(error="is a redirect to James T. Kirk")
    assert results["Mr. Spock"].error == "is a redirect to Spock"  # its category link changes nothing
    assert results["AccessibleComputing"].error == "is a redirect to Computer accessibility"
    assert results["lower case"].error == "is a redirect to Warp drive#History"
    assert results["localised"].error == "is a redirect to Starfleet"
    assert results["Spock"].ok
    redirects = {t for t, (ns, text, redirect) in enwiki.items() if redirect}
    assert len(redirects) == 100
    assert all(wikitext.redirect_target(enwiki[t][1]) for t in redirects)


def test_a_page_pandoc_rejects_fails_alone(table_pages, startrek, monkeypatch):
    """'List of Prison Break characters' has a header row `! colspan="2" ! colspan="1" rowspan="2"|Actor`
    that MediaWiki forgives and pandoc's reader rejects ("unexpected '!'"): with tables kept, the page
    fails and every other page of its batch converts, at the cost of a few pandoc runs, not one per page."""
    bad = "List of Prison Break characters"
    pages = {t: startrek[t][1] for t in ("Spock", "Sarek", "Tuvok", "Worf", "Star Trek")}
    pages[bad] = table_pages[bad][1]
    pages.update({t: text for t, (ns, text, redirect) in table_pages.items() if t != bad})
    runs = count_pandoc_runs(monkeypatch)
    options = ConvertOptions(DEFAULT_DROP_SECTIONS, keep_tables=True)
    results = convert_pages(pages, options)
    assert results[bad].error.startswith("pandoc could not parse the page: unexpected '!'")
    assert {t for t, r in results.items() if r.error} == {bad}
    assert len(runs) <= 5, runs  # the batch, the page alone, the pages before and after it, the writer
    alone = {t: convert_page(t, text, options) for t, text in pages.items() if t != bad}
    assert {t: results[t] for t in alone} == alone
    # Without tables the page is fine: its tables are cut out before pandoc reads them.
    assert convert_page(bad, pages[bad], OPTIONS).markdown.startswith(
        "# List of Prison Break characters\n\nThis is a **list of characters** in the American television series")


def test_unbalanced_markup_does_not_swallow_the_next_pages(startrek):
    """A table never closed runs, in one pandoc document, into the next pages until some `|}`: that is
    seen (their separators are no longer top-level paragraphs) and the pages are read again."""
    pages = {
        "Spock": startrek["Spock"][1],
        "Open table": "Text before.\n\n{|\n| a || b\n|-\n| c\n\nText that MediaWiki would show after the table.",
        "Sarek": startrek["Sarek"][1],
        "Closer": "Some words.\n|}\nMore words.",
        "Unclosed pre": "A line.\n\n<pre>never closed",
        "Worf": startrek["Worf"][1],
    }
    options = ConvertOptions(DEFAULT_DROP_SECTIONS, keep_tables=True)
    results = convert_pages(pages, options)
    assert results["Open table"].error.startswith("pandoc could not parse the page: unexpected end of input")
    assert results["Unclosed pre"].markdown == "# Unclosed pre\n\nA line.\n\nnever closed\n"  # as MediaWiki shows it
    for title in ("Spock", "Sarek", "Closer", "Worf"):
        assert results[title] == convert_page(title, pages[title], options), title
    assert results["Sarek"].markdown.startswith("# Sarek\n\n**Sarek** is a fictional character")


def test_batch_equals_each_page_alone(enwiki, startrek, table_pages):
    """Pages do not bleed into each other: the same Markdown in a batch of 24 as one by one."""
    small = sorted((t for t, (ns, text, redirect) in enwiki.items() if ns == 0 and not redirect),
                   key=lambda t: len(enwiki[t][1]))[:14]
    pages = {t: enwiki[t][1] for t in small}
    pages.update({t: startrek[t][1] for t in ("Spock", "Jean-Luc Picard", "USS Voyager", "Star Trek",
                                              "Vulcan (planet)", "Kirk", "Category:Vulcans")})
    pages.update({t: table_pages[t][1] for t in ("Brahui language", "Constructive vote of no confidence",
                                                "List of Prison Break characters")})
    assert len(pages) == 24
    for options in (OPTIONS, ConvertOptions(DEFAULT_DROP_SECTIONS, keep_tables=True,
                                            template_rules={"Quote": '"{1}" ({2})'})):
        batch = convert_pages(pages, options)
        assert list(batch) == list(pages)
        alone = {t: convert_page(t, text, options) for t, text in pages.items()}
        assert batch == alone
        assert sum(r.ok for r in batch.values()) >= 20


def test_keep_tables(startrek, table_pages):
    ship = startrek["USS Enterprise (NCC-1701)"][1]
    kept = convert_page("USS Enterprise (NCC-1701)", ship, ConvertOptions(DEFAULT_DROP_SECTIONS, keep_tables=True))
    dropped = convert_page("USS Enterprise (NCC-1701)", ship, ConvertOptions(DEFAULT_DROP_SECTIONS))
    table = ("| Property  | Value    |\n|-----------|----------|\n| Length    | 289 m    |\n"
             "| Decks     | 23       |\n| Top speed | Warp 9.0 |\n\nSpecifications\n")
    assert table in kept.markdown
    assert "|" not in dropped.markdown and "289 m" not in dropped.markdown and "Specifications" not in dropped.markdown
    assert kept.markdown.replace(table, "").strip() == dropped.markdown.strip()
    assert_clean(kept.markdown)


def test_table_heavy_page(table_pages):
    estonia = table_pages["Economy of Estonia"][1]
    assert estonia.count("{|") == 4
    kept = convert_page("Economy of Estonia", estonia, ConvertOptions(DEFAULT_DROP_SECTIONS, keep_tables=True))
    markdown = kept.markdown
    assert_clean(markdown)
    assert "| Company               | Revenue (EUR millions) |" in markdown
    assert "| Ericsson Eesti        | 1,213.4                |" in markdown
    assert "| Oil shale | north-east | 1,137,700,000 mln t |" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(rows) > 50
    for table in re.split(r"\n\n+", markdown):  # every pipe table is regular: same cell count each row
        lines = [line for line in table.splitlines() if line.startswith("|")]
        if lines:
            assert len({line.count(" | ") + line.count("-|-") for line in lines}) <= 2, table
    assert headings(markdown, 2) == ["Overview", "Early history", "Modernisation and liberalisation",
                                     "The economy today", "The impact of the financial crisis of 2008",
                                     "Employment participation", "Sectors", "Infrastructure", "Trade",
                                     "Natural resources"]
    assert markdown.startswith("# Economy of Estonia\n\nEstonian economy is an advanced economy and a member "
                               "of the European Union and of the eurozone.")
    dropped = convert_page("Economy of Estonia", estonia, OPTIONS).markdown
    assert "1,213.4" not in dropped and "|" not in dropped
    assert headings(dropped, 2) == [h for h in headings(markdown, 2) if h != "Natural resources"]  # only a table
    results = convert_pages({t: text for t, (ns, text, redirect) in table_pages.items()}, OPTIONS)
    assert all(r.ok for r in results.values()), {t: r.error for t, r in results.items()}
    kept = convert_pages({t: text for t, (ns, text, redirect) in table_pages.items()},
                         ConvertOptions(DEFAULT_DROP_SECTIONS, keep_tables=True))
    assert [t for t, r in kept.items() if not r.ok] == ["List of Prison Break characters"]
    for result in kept.values():
        if result.ok:  # every table written as a pipe table (never "[TABLE]"), line breaks in cells and all
            assert_clean(result.markdown)
    awards = kept["Academy Award for Best Production Design"].markdown
    assert sum(line.startswith("|") for line in awards.splitlines()) > 500


def test_template_rules_make_text(startrek):
    spock = startrek["Spock"][1]
    rules = {
        "quote": '"{1}" ({2})',  # first letter case-insensitive, as on the wiki
        "Infobox_character": "{name} was played by {actor}.",  # `_` = space, named parameters
        "Template:Citation needed": "",
    }
    markdown = convert_page("Spock", spock, ConvertOptions(DEFAULT_DROP_SECTIONS, template_rules=rules)).markdown
    assert '## Reception\n\n"Live long and prosper." (Spock)\n\nCritics wrote' in markdown
    assert markdown.startswith("# Spock\n\nSpock was played by Leonard Nimoy.\n\n**Spock** is a fictional")
    assert_clean(markdown)
    plain = convert_page("Spock", spock, OPTIONS).markdown
    assert "Live long" not in plain and "Nimoy" not in plain
    # links and nested templates inside the arguments, a missing parameter
    rules = {"Lang": "{2}", "Nowrap": "{1}", "Convert": "{1} {2}"}
    text = "The word {{lang|fr|[[Bonjour|bonjour]] {{nowrap|à tous}}}} is {{convert|5|km}} long {{lang}}."
    assert convert_page("T", text, ConvertOptions(template_rules=rules)).markdown == \
        "# T\n\nThe word bonjour à tous is 5 km long.\n"


def test_empty_pages(startrek):
    results = convert_pages({
        "Only templates": "{{Infobox|a=b}}\n{{Navbox}}\n[[Category:X]]\n__NOTOC__\n{{DEFAULTSORT:X}}",
        "Only a dropped section": "== References ==\n* A book.\n",
        "Blank": "  \n",
        "Star Trek": startrek["Star Trek"][1],
    }, OPTIONS)
    for title in ("Only templates", "Only a dropped section", "Blank"):
        assert results[title] == PageResult(error="empty after filtering"), title
    assert results["Star Trek"].ok


def test_wikitext_cleanups():
    text = """{{DISPLAYTITLE:''The'' page}}__NOTOC__
{{Infobox thing
| name = X
| image = [[File:X.png|thumb|Caption with a [[link]]]]
}}
'''The page''' is a test.<ref name="a">{{cite web|url=http://x}}</ref> It has a note.<ref name="a"/>
<!-- a comment
over lines -->
It is ''italic'' and [http://example.org an external link] and [http://example.org] and [[de:Seite]].

[[File:Big.jpg|thumb|left|A caption with ''[[Linked]]'' words
<source lang="text">
 code in a caption
</source>]]
<gallery>
File:A.jpg|One
</gallery>
== Section = with equals ==
: indented text
:* indented item
;Term
: Definition
{{clear}}
<div class="x"><span style="color:red">Red</span> text<br/>next</div>

<poem>
Line one
Line two
</poem>
<math>x^{{2}}</math>

[[Category:Tests|Sort]]
{{DEFAULTSORT:Page, The}}
"""
    markdown = convert_page("The page", text, ConvertOptions()).markdown
    assert markdown == """# The page

**The page** is a test. It has a note. It is *italic* and an external link.

## Section = with equals

indented text

- indented item

Term

Definition

Red text\\
next

Line one\\
Line two

$x^{ {2} }$
"""
    assert_clean(markdown)


def test_quote_runs_that_make_pandoc_backtrack():
    """`'''''x'''''` closers and overlapping bold/italic made pandoc's reader take minutes (exponential
    in the number of them in a paragraph); balanced per line before pandoc, they take milliseconds."""
    paragraph = " ".join(["'''''court of appeal''''' text"] * 40 + ["''a '''b'' c''' d"] * 20)
    started = time.monotonic()
    markdown = convert_page("Quotes", paragraph, ConvertOptions(), budget=Budget(page_seconds=60)).markdown
    assert time.monotonic() - started < 20
    assert markdown.count("***court of appeal***") == 40
    assert "''" not in markdown
    sep = wikitext.QUOTE_SEPARATOR
    assert wikitext.balance_quotes("''a '''b'' c''' d") == f"''a '''b'''{sep}''{sep}''' c''' d"
    assert wikitext.balance_quotes("'''''open") == f"'''{sep}''open''{sep}'''"
    assert wikitext.balance_quotes("l'''amour and ''x''") == f"l'''amour and ''x''{sep}'''"


def test_template_names_compare_like_mediawiki():
    assert wikitext.template_name("  citation_needed ") == "Citation needed"
    assert wikitext.template_name("Template:Quote") == "Quote"
    assert wikitext.template_name("subst:quote") == "Quote"
    assert wikitext.template_name("iPhone") == "IPhone"


def test_one_pandoc_process_each_way(startrek, monkeypatch):
    runs = count_pandoc_runs(monkeypatch)
    pages = {t: text for t, (ns, text, redirect) in startrek.items() if ns == 0}
    results = convert_pages(pages, OPTIONS, engine="pandoc")
    assert sum(r.ok for r in results.values()) == 27  # and 4 redirects
    assert [args[0] for args in runs] == ["--from=mediawiki-auto_identifiers", "--from=json"]


def test_invalid_unicode_and_timeouts(startrek):
    results = convert_pages({"Broken": "Text \udcff here", "Spock": startrek["Spock"][1]}, OPTIONS)
    assert results["Broken"].error.startswith("the wikitext is not valid Unicode")
    assert results["Spock"].ok
    results = convert_pages({t: startrek[t][1] for t in ("Spock", "Sarek", "Worf")}, OPTIONS,
                            budget=Budget(page_seconds=0.001, batch_seconds=0.001), engine="pandoc")
    assert all(r.error == "over the 0.001 s budget (pandoc was stopped)" for r in results.values())


def test_results_hold_one_of_markdown_and_error():
    with pytest.raises(ValueError):
        PageResult()
    with pytest.raises(ValueError):
        PageResult(markdown="# A\n", error="no")
    assert PageResult(markdown="# A\n").ok and not PageResult(error="x").ok


def test_options_from_a_manifest(tmp_path):
    manifest = parse("dump: x.xml\ninclude_pages: [Spock]\ndrop_sections: [Trivia]\nkeep_tables: true\n"
                     "template_rules:\n  Quote: '\"{1}\" ({2})'\n", tmp_path / "t.yaml")
    options = ConvertOptions.from_manifest(manifest)
    assert options == ConvertOptions(drop_sections=DEFAULT_DROP_SECTIONS + ("Trivia",), keep_tables=True,
                                     template_rules={"Quote": '"{1}" ({2})'})
    text = "Lead.\n\n== Trivia ==\nDropped.\n\n=== Sub ===\nAlso dropped.\n\n== History ==\nKept."
    assert convert_page("T", text, options).markdown == "# T\n\nLead.\n\n## History\n\nKept.\n"


def count_pandoc_runs(monkeypatch):
    """Record the arguments of every pandoc process convert starts."""
    runs = []
    real = subprocess.run

    def run(command, *args, **kwargs):
        runs.append([a for a in command[1:] if a.startswith("--from")])
        return real(command, *args, **kwargs)

    monkeypatch.setattr(convert.subprocess, "run", run)
    return runs
