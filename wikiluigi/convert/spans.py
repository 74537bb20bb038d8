"""The clean-up's last pass: every inline span pandoc's reader would open (an HTML tag, an external or wiki
link, bold or italics) either closed inside the span that holds it, in its own paragraph, or made harmless.

pandoc's mediawiki reader reads a span as "opener, inlines, closer" and, when the closer never comes, tries
again with the opener as text, re-reading everything after it; spans inside spans that never close (or
close only after the span around them has: `''a <kbd>b'' c</kbd>`) cost twice as much each, so 20 of them
in one paragraph are minutes. This pass pairs them as the reader will, with one stack per paragraph:

- an HTML tag (any name: `<kbd>`, `<sub>`, `<code>`, `<foo>` ...) not closed before its paragraph ends, or
  before a span opened around it closes, is dropped, and so is a closing tag that closes nothing;
- an external link opener (`[` + scheme + `:`, as in `[http://`, `[ftp://`, `[mailto:`) not closed by a `]`
  on its own line, as MediaWiki has it, or a wiki link `[[` not closed by `]]` in its paragraph, keeps
  its bracket as text (`&#91;`, which pandoc reads as `[`);
- `<blockquote>`, whose contents are paragraphs, pairs over the whole page; one never closed is closed at
  the page's end (pandoc rejects a page with one open), a closing tag that closes nothing is dropped.

Bold and italics are already closed on their line by `wikitext.balance_quotes`; here they only bound the
spans opened inside them. A paragraph ends at a blank line, at a line that starts a list item, heading,
table line, indented or preformatted line (and the line after one), at a table cell separator and at a
block tag (`<div>`, `<p>`, a `<pre>` kept aside ...): earlier than pandoc's reader ends it, never later.
One pass over the text, each span pushed and popped once: linear in the page's size.
"""
from __future__ import annotations

import re

# Tags that are not spans: void elements (never closed) and, in pandoc's reader, block tags, which end a
# paragraph wherever they stand.
_VOID = frozenset("area base br col embed hr img input keygen link meta param track wbr".split())
_BLOCK = frozenset("""blockquote caption center col colgroup dd div dl dt h1 h2 h3 h4 h5 h6 hr li meta ol p
    pre rp table td th time tr ul haskell syntaxhighlight source gallery references""".split())
_TOKEN = re.compile(r"<(/?+)([A-Za-z][A-Za-z0-9]*+)(?=[\s/>])[^<>]*+>"  # a tag (1: "/" of a closer, 2: name)
                    r"|\[\[|\[(?=[A-Za-z][A-Za-z0-9+.\-]*+:)|\]"   # a wiki link, an external link, a closer
                    r"|'{2,}+"                                         # bold or italics (closed on the line)
                    r"|\ue000(\d++)\ue001")                           # a protected element (3: its number)
_CELL_TOKEN = re.compile(_TOKEN.pattern + r"|\|\||!!")
_WANTED = re.compile(r"[<\[\]\ue000]")
# Links that hold no bracket, tag or quote mark: a line with nothing else opens and closes them alone.
_PLAIN_LINKS = re.compile(r"\[\[[^\[\]'<]*+\]\]|\[[A-Za-z][A-Za-z0-9+.\-]*+:[^\[\]'<]*+\]")
# A line that pandoc's reader reads as its own block (list item, heading, table line, preformatted text,
# a rule), or a blank one: a paragraph ends before and after it.
_PLAIN_START = re.compile(r"[^\s*#:;=|!{]")
_TABLE_LINE = re.compile(r"[ \t:]*+[|!]")
_LIST_OR_TABLE_LINE = re.compile(r"[ \t]*+[*#:;|!]")
_PROTECTED_BLOCK = re.compile(r"<(?:pre|source|syntaxhighlight)\b", re.I)

_TAG, _EXTERNAL, _WIKI, _QUOTE = range(4)
_AS_TEXT = {_TAG: "", _EXTERNAL: "&#91;", _WIKI: "&#91;&#91;"}


class _Spans:
    """The spans open in one paragraph, innermost last, and the markup made harmless so far."""

    def __init__(self) -> None:
        # Each entry: [kind, name, start, end, counts of the open spans of its segment]; name None once it
        # is closed or made harmless. A segment is what opened inside the innermost bold or italics: a
        # closer looks no further down than its own segment.
        self.stack: list[list] = []
        self.segments: list[dict[str, int]] = [{}]
        self.quotes: list[list] = []  # bold and italics open, outermost first
        self.externals: list[list] = []  # external links opened on this line
        self.edits: list[tuple[int, int, str]] = []  # (start, end, replacement), in no particular order

    def open(self, kind: int, name: str, start: int, end: int) -> None:
        counts = self.segments[-1]
        entry = [kind, name, start, end, counts]
        self.stack.append(entry)
        counts[name] = counts.get(name, 0) + 1
        if kind != _QUOTE:
            counts[""] = counts.get("", 0) + 1  # the spans open in the segment
        if kind == _QUOTE:
            self.segments.append({})
            self.quotes.append(entry)
        elif kind == _EXTERNAL:
            self.externals.append(entry)

    def _pop(self, harmless: bool) -> list:
        entry = self.stack.pop()
        if entry[1] is None:  # an external link made text at its line's end
            return entry
        entry[4][entry[1]] -= 1
        if entry[0] == _QUOTE:
            self.segments.pop()
            self.quotes.remove(entry)
        else:
            entry[4][""] -= 1
            if harmless:
                self.edits.append((entry[2], entry[3], _AS_TEXT[entry[0]]))
        entry[1] = None
        return entry

    def close(self, name: str) -> bool:
        """Close the innermost span `name` of the current segment, and make harmless the spans opened
        inside it; False when the segment has none open."""
        if not self.segments[-1].get(name):
            return False
        while self.stack[-1][1] != name:
            self._pop(True)
        self._pop(False)
        return True

    def close_bracket(self, double: bool) -> int:
        """A `]` (`double`: followed by another) closes the innermost link of the current segment: an
        external one, or a wiki link when doubled (a lone `]` inside a wiki link ends it as text, as in
        pandoc's reader). The number of `]` it took."""
        counts = self.segments[-1]
        if not counts.get("[") and not counts.get("[["):
            return 0
        while self.stack[-1][1] not in ("[", "[["):
            self._pop(True)
        if self.stack[-1][1] == "[":
            self._pop(False)
            return 1
        self._pop(not double)
        return 2 if double else 0

    def quote(self, style: str, start: int, end: int) -> None:
        """Bold or italics: closes the innermost one when it is of this style and no span opened inside
        it is still open, else opens one (as pandoc's reader does: inside a span, quotes pair anew)."""
        if self.quotes and self.quotes[-1][1] == style and not self.segments[-1].get(""):
            top = self.quotes[-1]
            while self._pop(False) is not top:
                pass
        else:
            self.open(_QUOTE, style, start, end)

    def end_line(self) -> None:
        """External links close on their line, bold and italics too (balance_quotes closed them)."""
        for entry in self.externals:
            if entry[1] is not None:
                entry[4]["["] -= 1
                entry[4][""] -= 1
                entry[1] = None
                self.edits.append((entry[2], entry[3], _AS_TEXT[_EXTERNAL]))
        self.externals.clear()
        if self.quotes:
            first = self.quotes[0]
            while self._pop(True) is not first:
                pass

    def end_paragraph(self) -> None:
        while self.stack:
            self._pop(True)
        self.segments = [{}]
        self.quotes.clear()
        self.externals.clear()


def pair_spans(text: str, protected: list[str]) -> str:
    """`text` with every inline span closed in its paragraph or made harmless (see the module's
    docstring); `protected`: the elements kept aside behind `\ue000N\ue001` marks."""
    if "<" not in text and "[" not in text:
        return text
    spans = _Spans()
    blockquotes: list[tuple[int, int]] = []  # (start, end) of the blockquote openers still open
    offset = 0
    block_before = True  # the line before ended a paragraph
    for line in text.split("\n"):
        start = offset
        offset += len(line) + 1
        plain = _PLAIN_START.match(line) is not None and not line.startswith("----")
        if not plain or block_before:
            spans.end_paragraph()
        block_before = not plain
        if _WANTED.search(line) is None:
            continue
        cells = _TABLE_LINE.match(line) is not None
        if not spans.stack and not cells and "<" not in line and "\ue000" not in line:  # (most lines: nothing
            rest = _PLAIN_LINKS.sub("", line)                                             # to pair)
            if "[" not in rest and "]" not in rest:
                continue
        skip_to = -1
        line_quotes: list[tuple[int, int]] = []
        for match in (_CELL_TOKEN if cells else _TOKEN).finditer(line):
            at, end = match.start(), match.end()
            if at < skip_to:
                continue
            token = match.group(0)
            first = token[0]
            if first == "<":
                name = match.group(2).lower()
                if name in _BLOCK:
                    spans.end_paragraph()
                    if name == "blockquote":
                        # (in a list item or a table cell, a blockquote pairs on its line, or not at all)
                        opened = line_quotes if _LIST_OR_TABLE_LINE.match(line) else blockquotes
                        if match.group(1):
                            if opened:
                                opened.pop()
                            else:
                                spans.edits.append((start + at, start + end, ""))
                        elif not token.endswith("/>"):
                            opened.append((start + at, start + end))
                elif name in _VOID:
                    continue
                elif match.group(1):
                    if not spans.close(name):
                        spans.edits.append((start + at, start + end, ""))
                elif "/" not in token:  # (pandoc's reader takes any tag holding "/" for a self-closed one)
                    spans.open(_TAG, name, start + at, start + end)
            elif first == "[":
                spans.open(_WIKI if token == "[[" else _EXTERNAL, token, start + at, start + end)
            elif first == "]":
                if spans.close_bracket(line.startswith("]", end)) == 2:
                    skip_to = end + 1
            elif first == "'":
                if len(token) in (2, 3):
                    spans.quote(token, start + at, start + end)
            elif first == "\ue000":
                number = int(match.group(3))
                if number < len(protected) and _PROTECTED_BLOCK.match(protected[number]):
                    spans.end_paragraph()
            else:  # a cell separator
                spans.end_paragraph()
        spans.edits.extend((at, end, "") for at, end in line_quotes)
        spans.end_line()
    spans.end_paragraph()
    if not spans.edits and not blockquotes:
        return text
    out: list[str] = []
    last = 0
    for at, end, replacement in sorted(spans.edits):
        out.append(text[last:at])
        out.append(replacement)
        last = end
    out.append(text[last:])
    out.extend("\n\n</blockquote>" for _ in blockquotes)  # (pandoc rejects a page with one never closed)
    return "".join(out)
