"""Hostile pages (tests/support/hostile.py) through the clean-up and the convert step: each construct
comes out bounded (depth, size, no markup left that makes pandoc hang), and one page never takes its
batch down: whatever it does, it is converted or named as failed with a reason.

The clean-up's time on these, at 10 KB, 100 KB and 1 MB, is benchmarks/cleanup_bench.py's to show;
the timeouts here only stop a test that would hang.
"""
import re

import pytest

from tests.support.hostile import CONSTRUCTS, FAILS, KEPT, RULES, hostile_pages
from wikiluigi.convert import spans, wikitext
from wikiluigi.convert.budget import convert_within_budget
from wikiluigi.convert.pandoc import Budget, ConvertOptions, convert_page, convert_pages
from wikiluigi.sources.manifest import DEFAULT_DROP_SECTIONS

SIZE = 100_000
RULE_MAP = wikitext.normalised_rules(RULES)
OPTIONS = ConvertOptions(drop_sections=DEFAULT_DROP_SECTIONS, template_rules=RULES)
SPOCK = ("'''Spock''' is a [[Vulcan]] science officer.<ref>{{cite web|url=http://x}}</ref>\n\n"
         "== Life ==\nHe was born on [[Vulcan (planet)|Vulcan]].\n")


def prepared(name, size=SIZE, keep_tables=False):
    return wikitext.prepare(CONSTRUCTS[name](size), RULE_MAP, keep_tables, frozenset({"references"}))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(CONSTRUCTS))
def test_every_construct_comes_out_of_the_clean_up_bounded(name):
    text = prepared(name)
    assert len(text) <= wikitext.RULE_OUTPUT_FACTOR * SIZE + 10_000
    for line in text.splitlines():
        assert len(line) - len(line.lstrip("*#:;")) <= wikitext.MAX_LIST_DEPTH, line[:80]
    tags = ("{{", "}}", "[[File:", "<!--") if name == "unclosed ref tags" else ("<ref", "<pre", "{{", "}}", "[[File:", "<!--")
    for tag in tags:  # (`<ref name=a` never followed by `>` is text, in MediaWiki too)
        assert tag not in text, (tag, text[text.find(tag) - 40:text.find(tag) + 40])
    assert spans.pair_spans(text, []) == text  # every tag, link, bold and italics closed where it opened


def test_spans_never_closed_are_dropped_or_made_text():
    """Any inline tag (any name) not closed in its paragraph is dropped, a closing tag that closes nothing
    too; an external link with no `]` on its line keeps its `[` as text, a wiki link with no `]]` in its
    paragraph too; spans that cross (`''a <kbd>b'' c</kbd>`) keep the outer one."""
    def prepare(text):
        return wikitext.prepare(text, {})
    assert prepare("A <kbd>x <sub>y</sub> z</var>") == "A x <sub>y</sub> z"
    assert prepare("A <sub>b\nc</sub> d\n\ne <sub>f\n\ng</sub> h") == "A <sub>b\nc</sub> d\n\ne f\n\ng h"
    assert prepare("* A <code>b\nc</code> d <zz9>e <Br> f") == "* A b\nc d e <Br> f"
    assert prepare("A [http://a b [ftp://c d] e [mailto:x@y\nf]") == "A &#91;http://a b [ftp://c d] e &#91;mailto:x@y\nf]"
    assert prepare("A [[b|c\nd]] e [[f|g") == "A [[b|c\nd]] e &#91;&#91;f|g"
    assert prepare("''a <kbd>b'' c</kbd> [[x|<sub>y]] z</sub>") == "''a b'' c [[x|y]] z"
    assert prepare("''a [[R|''b'']]'' c") == "''a [[R|''b'']]'' c"  # italics in a link in italics
    assert wikitext.prepare("{|\n| a <kbd>b || c</kbd>\n|}", {}, keep_tables=True) == "{|\n| a b || c\n|}"
    # pandoc rejects a page with a <blockquote> left open: it is closed at the page's end.
    assert prepare("<blockquote>a\n\nb</blockquote></blockquote> c <blockquote>d") == \
        "<blockquote>a\n\nb</blockquote> c <blockquote>d\n\n</blockquote>"
    assert prepare("# a <blockquote>b</blockquote> c\n# d <blockquote>e\n</blockquote> f") == \
        "# a <blockquote>b</blockquote> c\n# d e\n f"  # in a list item: paired on its line


@pytest.mark.timeout(300)
@pytest.mark.parametrize("markup", ["[http://example.org/{i} a", "[ftp://example.org/{i} a", "[mailto:a{i}@example.org a",
                                    "<kbd>{i}", "<mark>{i}", "<strike>{i}", "<sub>{i}", "<code>{i}", "<tt>{i}",
                                    "<x{i}>{i}", "''a <kbd>b'' {i}</kbd>", "[http://a <sub>b] {i}</sub>",
                                    "[[a|<del>b]] {i}</del>", "<sup>[http://a {i}</sup> c]"])
def test_a_paragraph_of_spans_never_closed_converts_in_its_budget(markup):
    """40 of them in one paragraph, on one line and over many: pandoc's reader tried each both ways
    (20 took minutes); now the page converts in well under its 20 s budget and keeps its words."""
    for joiner in (" ", "\n"):
        text = "Start " + joiner.join(markup.format(i=f"w{i}") for i in range(40)) + " end"
        result = convert_pages({"Spans": text}, OPTIONS, budget=Budget(page_seconds=20), engine="pandoc")["Spans"]
        assert result.ok, result.error
        words = result.markdown.split()
        assert "Start" in words and "end" in words and "w39" in " ".join(words), result.markdown


def test_template_rows_and_citation_stacks_leave_the_prose():
    """Rows of cut-out templates, links to other languages and citations: the words around stay, and
    no joiner is left dangling ("and and.")."""
    first_line = wikitext.prepare(CONSTRUCTS["template row"](2_000), {}).splitlines()[0]
    assert first_line.split() == ["Word", "0", "and", "then", "text"]
    assert prepared("citation stack", 2_000).splitlines()[0] == "Claim number 0 is well sourced. More text."
    assert prepared("interlanguage row", 2_000).splitlines()[0] == "Line 0 ("  # the bracket never closes
    text = "It is [http://example.org a link] and [http://example.org] and [[de:Seite]]. Then {{a}}, {{b}} or {{c}})"
    assert wikitext.prepare(text, {}) == "It is [http://example.org a link]. Then)"


def test_nesting_is_bounded_not_refused():
    lists = prepared("nested list")
    assert "*" * wikitext.MAX_LIST_DEPTH + " item 400" in lists  # deeper items read at the deepest level
    tags = prepared("nested tags")
    assert tags.count("<div>") == len(re.findall(r"<div>", tags)) <= wikitext.MAX_TAG_DEPTH
    assert "deep text" in tags
    kept = prepared("nested tables", keep_tables=True)
    assert kept.count("{|") == wikitext.MAX_TABLE_DEPTH == kept.count("|}")
    assert "{|" not in prepared("nested tables") and "After the tables." in prepared("nested tables")
    # A rule `{1}{1}` nested a thousand deep writes at most RULE_OUTPUT_FACTOR times the page.
    templates = prepared("nested templates")
    assert "Intro" in templates and "after." in templates
    assert len(templates) <= wikitext.RULE_OUTPUT_FACTOR * SIZE + 10_000


def test_unclosed_markup_is_dropped_as_mediawiki_shows_it():
    assert set(prepared("unclosed refs", 700).split()) == {"Text", "x"}  # the tags go, the text stays
    assert set(prepared("unclosed braces", 700).split()) == {"Text", "x"}
    assert prepared("unclosed file links", 700) == "Text"
    assert set(prepared("unclosed pre", 700).split()) == {"Text", "x"}
    assert prepared("unclosed tables", 700) == "Text"  # a table never closed runs to the end of the page
    assert wikitext.prepare("A {{b|[[c]] {{d}} e", {}) == "A b|[[c]]  e"


def test_almost_headings_and_redirects():
    storm = prepared("heading storm", 2_000)
    assert storm.startswith("&#61;" + "=" * 999 + "x\n== a &#61; b 0 &#61;==\n==&#61; c ==\n")  # (a line of `=`: text)
    assert wikitext.prepare("== a\n=\n== b ==\n==c==<!-- x -->", {}) == "&#61;= a\n&#61;\n== b ==\n==c=="
    assert wikitext.redirect_target(CONSTRUCTS["redirect spaces"](SIZE)) is None
    assert wikitext.redirect_target("#REDIRECT   :  [[Target page]]") == "Target page"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("engine", ["pandoc", "auto"])
def test_a_batch_of_hostile_pages_converts_each_and_keeps_its_text(engine):
    """Every construct at 20 KB in one batch with a real page, under a 30 s budget per page (each takes
    well under a second): each page converted with its text kept (KEPT), or failed alone with its reason
    (FAILS); the real page is converted as it is alone."""
    pages = {"Spock": SPOCK, **hostile_pages(20_000), "Broken": "Text \udcff here"}
    results = convert_pages(pages, OPTIONS, budget=Budget(page_seconds=30), engine=engine)
    assert results["Spock"] == convert_pages({"Spock": SPOCK}, OPTIONS, engine=engine)["Spock"]
    assert results["Spock"].markdown == "# Spock\n\n**Spock** is a Vulcan science officer.\n\n## Life\n\n" \
                                        "He was born on Vulcan.\n"
    assert results["Broken"].error.startswith("the wikitext is not valid Unicode")
    failed = {title: result.error for title, result in results.items() if not result.ok}
    assert failed == {"Broken": results["Broken"].error, **{f"Hostile {name}": reason for name, reason in FAILS.items()}}
    assert sorted(KEPT) == sorted(set(CONSTRUCTS) - set(FAILS))
    for name, kept in KEPT.items():
        markdown = results[f"Hostile {name}"].markdown
        assert markdown.startswith(f"# Hostile {name}\n\n"), name
        for text in kept:
            assert text in markdown, (name, text, markdown[:300])


def test_a_page_over_its_time_budget_fails_alone():
    """A 30 MB page takes its clean-up seconds: with a budget of 0.3 s it is stopped and named, and
    the pages before and after it in the batch are converted."""
    huge = CONSTRUCTS["big page"](30_000_000)
    pages = {"Before": SPOCK, "Huge": huge, "After": SPOCK.replace("Spock", "Sarek")}
    results = convert_within_budget(pages, OPTIONS, Budget(page_seconds=0.3))
    assert results["Huge"].error == "over the 0.3 s budget"
    assert results["Before"].markdown.startswith("# Before\n\n**Spock** is")
    assert results["After"].markdown.startswith("# After\n\n**Sarek** is")


def test_a_page_over_its_memory_budget_fails_alone():
    """The same page under 64 MB: its clean-up cannot allocate what it needs, and only it fails."""
    huge = CONSTRUCTS["big page"](30_000_000)
    pages = {"Before": SPOCK, "Huge": huge}
    results = convert_within_budget(pages, OPTIONS, Budget(memory_mb=64))
    assert results["Huge"].error.startswith("over the 64 MB memory budget")
    assert results["Before"].ok


def test_a_raw_page_that_is_not_utf8_fails_alone(data_dir):
    """Invalid UTF-8 on disk (a file written by something else): that page's failure record says so,
    and the chunk's other page is converted."""
    from wikiluigi import pagefiles, paths
    from wikiluigi.convert.stage import process_pages

    pagefiles.write_atomic(paths.raw_page("bytes", "Good"), SPOCK)
    pagefiles.write_atomic(paths.raw_page("bytes", "Bad"), b"Text \xff\xfe here")
    report = process_pages("bytes", ["Bad", "Good"], OPTIONS)
    assert report.converted == 1 and report.failed == {
        "Bad": "the raw page is not valid UTF-8 (byte 5): delete it to fetch it again"}
    assert paths.processed_file(report.folder, "Good").read_text().startswith("# Good\n\n**Spock**")
    assert pagefiles.failures(report.folder)[0]["reason"].startswith("the raw page is not valid UTF-8")
