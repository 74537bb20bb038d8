"""Hostile wikitext: one page per construct that has made a wikitext clean-up or pandoc slow, deep or
crash, each grown to about a given size; and a MediaWiki XML export holding them beside real articles.

Used by the convert tests (tests/test_hostile.py), the hostile-wiki test and benchmarks/cleanup_bench.py.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Mapping
from xml.sax.saxutils import escape


def _repeat(unit: str, size: int, joiner: str = "") -> str:
    """`unit` repeated until the text is about `size` characters."""
    return joiner.join([unit] * max(1, size // (len(unit) + len(joiner))))


def _lines(make_line: Callable[[int], str], size: int) -> str:
    out, total, i = [], 0, 0
    while total < size:
        line = make_line(i)
        out.append(line)
        total += len(line) + 1
        i += 1
    return "\n".join(out)


def citation_stack(size: int) -> str:
    """A claim followed by dozens of citations, line after line."""
    refs = "".join(f'<ref name="c{i}">{{{{cite web |url=http://example.org/{i} |title=T{i}}}}}</ref>'
                   for i in range(40))
    return _lines(lambda i: f"Claim number {i} is well sourced.{refs} More text.", size)


def template_row(size: int) -> str:
    """Lines of templates separated by spaces, then text: exponential for the old clean-up's pattern."""
    row = " ".join(["{{lang|fr|mot}}"] * 30)
    return _lines(lambda i: f"Word {i} {row} and then text", size)


def interlanguage_row(size: int) -> str:
    """Rows of links to other languages with prose around them."""
    row = " ".join(f"[[{code}:Seite]]" for code in ("de", "fr", "it", "es", "nl", "pl", "pt", "sv") * 4)
    return _lines(lambda i: f"Line {i} ({row}; {row}", size)


def nested_list(size: int) -> str:
    """A list one level deeper on every line, as deep as the size allows (700 levels: 250 KB)."""
    depth = int(math.sqrt(2 * size))
    return "Intro.\n" + "\n".join("*" * i + f" item {i}" for i in range(1, depth + 1))


def nested_indent(size: int) -> str:
    """Talk-page indentation (`:`) and definition lists, deeper on every line."""
    depth = int(math.sqrt(2 * size))
    return "Intro.\n" + "\n".join((":" if i % 3 else ";") * i + f" reply {i}" for i in range(1, depth + 1))


def nested_tables(size: int) -> str:
    """Tables inside tables, each in the one cell of the one before."""
    depth = max(1, size // 10)
    return "Intro.\n" + "{|\n| a\n" * depth + "|}\n" * depth + "After the tables."


def nested_templates(size: int) -> str:
    """Templates as arguments of templates, hundreds deep."""
    depth = max(1, size // 7)
    return "Intro " + "{{a|x" * depth + "}}" * depth + " after."


def nested_links(size: int) -> str:
    depth = max(1, size // 6)
    return "Intro " + "[[a|b" * depth + "]]" * depth + " after."


def nested_tags(size: int) -> str:
    """<div>, <span> and <blockquote> nested hundreds deep (pandoc reads them as nested blocks)."""
    depth = max(1, size // 40)
    return ("Intro.\n\n" + "<div><blockquote><span>" * depth + "deep text"
            + "</span></blockquote></div>" * depth + "\n\nAfter.")


def unclosed_refs(size: int) -> str:
    return "Text " + _repeat("<ref>x ", size)


def unclosed_ref_tags(size: int) -> str:
    """`<ref ` and `<pre ` never closed with `>`."""
    return "Text " + _repeat("<ref name=a <pre x ", size)


def unclosed_braces(size: int) -> str:
    return "Text " + _repeat("{{x ", size)


def unclosed_file_links(size: int) -> str:
    return "Text " + _repeat("[[File:x.png|", size)


def unclosed_pre(size: int) -> str:
    return "Text " + _repeat("<pre>x ", size)


def unclosed_comments(size: int) -> str:
    return "Text " + _repeat("<!-- x ", size)


def unclosed_tables(size: int) -> str:
    return "Text\n" + _repeat("{|\n| a\n", size)


def quote_storm(size: int) -> str:
    """Bold, italic and both, overlapping and unclosed, in long lines."""
    line = " ".join(["'''''court of appeal''''' text ''a '''b'' c''' d l'''amour ''''x"] * 20)
    return _lines(lambda i: line, size)


def heading_storm(size: int) -> str:
    """Lines of `=` that are almost headings: a long one, and many `== a = b ===`."""
    return ("=" * (size // 2) + "x\n" + _lines(lambda i: f"== a = b {i} ===\n=== c ==", size // 2))


def unclosed_headings(size: int) -> str:
    """Lines that start with `=` but close no heading (`== a`, `=`): text in MediaWiki; pandoc's reader
    tried each as a heading up to every later one (800 lines: 10 s, four times 400's)."""
    return "Intro.\n" + _lines(lambda i: "=" if i % 3 == 2 else f"== a {i}", size) + "\n=== b ==\nEnd."


def redirect_spaces(size: int) -> str:
    """`#REDIRECT` then only blanks: not a redirect, and a trap for an ambiguous pattern."""
    return "#REDIRECT" + " " * size + "x"


def magic_words(size: int) -> str:
    return "__" + "A" * size + " __NOTOC__ text"


def brackets_storm(size: int) -> str:
    """Parentheses and semicolons around cut-out templates, unbalanced."""
    return _lines(lambda i: "(" * 20 + "; {{x}} ; " * 20 + "''{{y}}'' ," * 10 + " text", size)


def joined_cut_outs(size: int) -> str:
    """Cut-out templates joined by "and", "or" and commas, with no clause end after them: quadratic for
    a pattern that tried again after every "and"."""
    row = " and ".join(["{{t}}"] * 20) + " or ''{{u}}'' or " + ", ".join(["{{v}}"] * 10)
    return "A " + _repeat(row, size, " and ") + " text"


def unclosed_external_links(size: int) -> str:
    """`[http://...`, `[ftp://...`, `[mailto:...` with no `]` on their line, in one paragraph of many
    lines (and one `]` at its end): pandoc's reader tries each as a link to the paragraph's end, inside
    the one before, exponentially."""
    line = "Text [http://example.org/a b [ftp://example.org/c d [mailto:a@example.org e [//example.org f"
    return _lines(lambda i: line, size) + " end]"


def unclosed_inline_tags(size: int) -> str:
    """Inline tags never closed, every kind pandoc reads as a span and some it does not, in one paragraph
    of many lines: to pandoc's reader, each opens a span it tries to close at the paragraph's end."""
    tags = ("kbd", "mark", "strike", "var", "s", "samp", "sub", "sup", "del", "code", "tt", "u", "ins", "small",
            "big", "span", "font", "abbr", "cite", "em", "b", "i", "q", "bdi", "ruby", "foo")
    line = " ".join(f"<{tag}>{tag}" for tag in tags) + " </kbd> </sub> words"
    return _lines(lambda i: line, size)


def crossed_markup(size: int) -> str:
    """Bold, italics, tags and links that cross each other (`''a <kbd>b'' c</kbd>`): each one closed, but
    inside another that closes first, which pandoc's reader tries both ways, exponentially."""
    line = ("''a <kbd>b'' c</kbd> [[x|<sub>y]] z</sub> [http://example.org <mark>m] n</mark> "
            "<tt>[http://example.org t</tt> u] <del>a<sup>b</del> c</sup> [http://example.org [[w]] v")
    return _lines(lambda i: line, size)


def big_page(size: int) -> str:
    """An ordinary article, only very long: sections of prose with links, templates and refs."""
    def section(i: int) -> str:
        return (f"== Section {i} ==\nThe [[river|River]] flows past ''the town'' of '''Ostrava'''.{{{{citation needed}}}}"
                f" It was first mentioned in {1000 + i}.<ref>{{{{cite book|title=B{i}}}}}</ref> "
                "People fished there and traded salt, wool and iron along its banks.\n")
    return "Lead paragraph of a long article.\n" + _lines(section, size)


CONSTRUCTS: dict[str, Callable[[int], str]] = {
    "citation stack": citation_stack,
    "template row": template_row,
    "interlanguage row": interlanguage_row,
    "nested list": nested_list,
    "nested indent": nested_indent,
    "nested tables": nested_tables,
    "nested templates": nested_templates,
    "nested links": nested_links,
    "nested tags": nested_tags,
    "unclosed refs": unclosed_refs,
    "unclosed ref tags": unclosed_ref_tags,
    "unclosed braces": unclosed_braces,
    "unclosed file links": unclosed_file_links,
    "unclosed pre": unclosed_pre,
    "unclosed comments": unclosed_comments,
    "unclosed tables": unclosed_tables,
    "quote storm": quote_storm,
    "heading storm": heading_storm,
    "unclosed headings": unclosed_headings,
    "redirect spaces": redirect_spaces,
    "magic words": magic_words,
    "brackets storm": brackets_storm,
    "joined cut-outs": joined_cut_outs,
    "unclosed external links": unclosed_external_links,
    "unclosed inline tags": unclosed_inline_tags,
    "crossed markup": crossed_markup,
    "big page": big_page,
}

# What a user finds in each hostile page's Markdown (at 10 KB or more): text that must be kept. A page
# that converts must keep it; the one construct that cannot convert fails with its reason (FAILS).
KEPT: dict[str, tuple[str, ...]] = {
    "citation stack": ("Claim number 0 is well sourced. More text. Claim number 1",),
    "template row": ("Word 0 mot mot", "and then text Word 1"),
    "interlanguage row": ("Line 0 ( Line 1 (",),
    "nested list": ("Intro.", "- item 1\n", "item 20\n"),
    "nested indent": ("Intro.", "reply 1\n", "reply 20\n"),
    "nested tables": ("Intro.\n\nAfter the tables.",),
    "nested templates": ("Intro xx", "after."),
    "nested links": ("Intro", "after."),
    "nested tags": ("Intro.", "deep text", "After."),
    "unclosed refs": ("Text x x x",),
    "unclosed ref tags": ("Text \\<ref name=a \\<pre x \\<ref name=a",),
    "unclosed braces": ("Text x x x",),
    "unclosed file links": ("Text",),
    "unclosed pre": ("Text x x x",),
    "unclosed comments": ("Text",),
    "unclosed tables": ("Text",),
    "quote storm": ("***court of appeal*** text *a **b",),
    "unclosed headings": ("Intro. == a 0 == a 1 = == a 3 == a 4 =", "## = b\n\nEnd."),
    "redirect spaces": ("REDIRECT x",),
    "magic words": ("text",),
    "brackets storm": ("((((((((((((((((((((", ", text ((((("),
    "joined cut-outs": ("A and and", "or or", " text"),
    "unclosed external links": ("Text \\[http://example.org/a b \\[ftp://example.org/c d \\[mailto:a@example.org e "
                                "\\[//example.org f Text",),
    "unclosed inline tags": ("kbd mark strike var s samp sub sup del code tt u ins small big span font abbr cite em b i"
                             " q bdi ruby foo words kbd mark",),
    "crossed markup": ("*a b* c y z m n `[", "t` u\\] ~~ab~~ c \\[http://example.org w v *a b*"),
    "big page": ("## Section 1\n\nThe River flows past *the town* of **Ostrava**. It was first mentioned in 1001.",),
}
FAILS = {"heading storm": "empty after filtering"}  # only headings once its line of `=` is cut

# The template rules a hostile manifest carries, so that the rule expansion is exercised too.
RULES = {"a": "{1}{1}", "lang": "{2}"}


def hostile_pages(size: int, big: int | None = None) -> dict[str, str]:
    """Title ("Hostile <construct>") -> wikitext of about `size` characters; the big page `big`."""
    return {f"Hostile {name}": make(big if name == "big page" and big else size) for name, make in CONSTRUCTS.items()}


_DUMP_HEAD = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="en">
  <siteinfo><sitename>Hostile</sitename><dbname>hostilewiki</dbname>
    <base>https://hostile.example.invalid/wiki/Main_Page</base><case>first-letter</case>
    <namespaces><namespace key="0" case="first-letter" /><namespace key="10" case="first-letter">Template</namespace>
      <namespace key="14" case="first-letter">Category</namespace></namespaces>
  </siteinfo>
"""
_PAGE = """  <page><title>{title}</title><ns>0</ns><id>{id}</id><revision><id>{id}</id>
    <timestamp>2024-01-01T00:00:00Z</timestamp><model>wikitext</model><format>text/x-wiki</format>
    <text xml:space="preserve" bytes="{size}">{text}</text></revision></page>
"""


def write_dump(path: Path, pages: Mapping[str, str]) -> Path:
    """A MediaWiki export (schema 0.11) of the pages, as importDump.php reads it."""
    with open(path, "w", encoding="utf-8") as out:
        out.write(_DUMP_HEAD)
        for number, (title, text) in enumerate(pages.items(), start=1):
            out.write(_PAGE.format(title=escape(title), id=number, size=len(text.encode("utf-8")),
                                   text=escape(text)))
        out.write("</mediawiki>\n")
    return path
