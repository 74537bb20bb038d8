"""The fast front end: cleaned wikitext (after `wikitext.prepare`) read straight into the filtered document model.

A line loop finds the blocks (headings, paragraphs, lists, indented lines, preformatted lines,
blockquotes, HTML lists), `inline.py` reads each block's text (bold and italics, links as their text,
maths, code, sub- and superscripts, line breaks, entities), and the tidying of `filters.py` is done as
the nodes are made:
the result is what `filters.filter_page` makes of pandoc's reading of the same text, ready for
`markdown.write`. What it does not cover (tables, definition lists, poems, block-level HTML, markup
inside code, links left inside links) raises `Unsupported`: the caller sends that page to pandoc.
"""
from __future__ import annotations

import html
import re

from wikiluigi.convert.filters import drop_empty_sections, drop_sections, title_header
from wikiluigi.convert.inline import Unsupported, cut_verbatims, has_text, read_code_line, read_inlines

__all__ = ["Unsupported", "read"]

_HEADING = re.compile(r"^(={1,6})(.+?)\1[ \t]*$")
# Block elements read here: the innermost first, each put on a line of its own as a placeholder.
_CONTAINER = re.compile(r"<(blockquote|div|center|ol|ul)(\s[^<>]*)?>((?:(?!<(?:blockquote|div|center|ol|ul)[\s>]).)*?)"
                        r"</\1\s*>", re.S | re.I)
_CONTAINER_START = re.compile(r"<(?:blockquote|div|center|ol|ul)[\s>]", re.I)
# An HTML list's items: each <li> up to its </li>, or to the next <li> or the end.
_LIST_ITEM = re.compile(r"<li(?:\s[^<>]*)?>((?:(?!<li[\s>]).)*?)(?:</li\s*>|(?=<li[\s>])|\Z)", re.S | re.I)
_LIST_START = re.compile(r"\bstart\s*=\s*[\"']?(\d{1,6})")
MAX_CONTAINERS = 64
_BLOCK_PLACEHOLDER = re.compile("\ue013(\\d+)\ue014")
_ITEM_QUOTE = re.compile("\ue015(\\d+)\ue016[ \t]*$")
_DISPLAY_MATH = re.compile(":+\ue010(\\d+)\ue011")
_AFTER_CONTAINER = re.compile("\ue014\n[ \t]++")
_LONE_TAG = re.compile(r"</?(?:div|center)(?:\s[^<>]*)?>[ \t]*", re.I)
_PREFORMATTED_MARKUP = re.compile("''|\\[|<|\ue010")
# Source code (`<source lang="c">`, `<syntaxhighlight>`): a code block wherever it stands, as pandoc reads it.
_S_TAG = re.compile("<[sS]")  # (one search, led by a literal, for `<source` and `<syntaxhighlight`)
_SOURCE_OPEN = re.compile(r"<(source|syntaxhighlight)(\s[^<>]*)?>", re.I)
_SOURCE_LANG = re.compile(r"""\blang\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)
_CONTAINER_END = re.compile(r"</(?:blockquote|div|center|ol|ul)\s*>", re.I)
_SOURCE_LINE_NUMBERS = re.compile(r"(?<![\w-])line(?![\w-])", re.I)
# What may open a span around a source element on its line: pandoc pairs those differently around it.
_SOURCE_LINE_UNSUPPORTED = re.compile("<|\\[|\\]|[\ue000-\uf8ff]")
_QUOTE_RUN = re.compile("''+")  # (not '{2,}: a literal first is found by a fast search)
_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")
_SOURCE_PLACEHOLDER = re.compile("\ue017(\\d+)\ue018")
_PREFORMATTED_UNSUPPORTED = re.compile("\\{\\{|\ue013|&#|~~~")


def read(title: str, text: str, options) -> list | None:
    """The filtered blocks of one page (`title_header` on top), None when no text is left, as
    `filters.filter_page` gives for pandoc's reading. Raises Unsupported for what pandoc must read."""
    if "{" in text and "{|" in text:  # (a one-character search first: braces are rare after the clean-up)
        raise Unsupported("a table")
    verbatim: list[dict] = []
    containers: list[tuple[str, str]] = []
    if "<" in text:
        if _S_TAG.search(text):
            text = _cut_sources(text, verbatim)
        text = cut_verbatims(text, verbatim)
        text = _cut_containers(text, containers)
    blocks = _blocks(text, verbatim, containers)
    blocks = drop_sections(blocks, options.drop_sections)
    blocks = drop_empty_sections(blocks)
    if not any(block["t"] != "Header" for block in blocks):
        return None
    return [title_header(title), *blocks]


def _cut_sources(text: str, verbatim: list) -> str:
    """Source code elements in paragraphs made code blocks (in `verbatim`) on lines of their own: the text
    before one ends its paragraph, the text after it starts the next (pandoc's reading). Elsewhere (a
    list item, an indented line, a heading, HTML blocks) they stay for pandoc."""
    if _SOURCE_OPEN.search(text) is None:
        return text
    out: list[str] = []
    done = 0
    containers = 0  # block-level HTML elements open before the element (counted up to `done`)
    for match in _SOURCE_OPEN.finditer(text):
        if match.start() < done:
            continue
        between = text[done:match.start()]
        if "<" in between:
            containers += len(_CONTAINER_START.findall(between)) - len(_CONTAINER_END.findall(between))
        if containers:
            raise Unsupported("source code inside block-level HTML")
        tag, attributes = match.group(1).lower(), match.group(2) or ""
        close = re.compile(f"</{tag}\\s*>", re.I).search(text, match.end())
        if close is None:
            raise Unsupported(f"a <{tag}> never closed")
        line_start = text.rfind("\n", 0, match.start()) + 1
        before = text[line_start:match.start()]
        if before[:1] in (" ", "\t", "*", "#", ":", ";", "=", "|", "!", "{", "<", "\ue000", "\ue010"):
            raise Unsupported(f"a <{tag}> in a block that is no paragraph")
        line_end = text.find("\n", close.end())
        after = text[close.end():len(text) if line_end < 0 else line_end]
        if _SOURCE_LINE_UNSUPPORTED.search(before) or _SOURCE_LINE_UNSUPPORTED.search(after) \
                or not _quotes_pair_alone(before) or not _quotes_pair_alone(after):
            raise Unsupported(f"a <{tag}> inside or beside inline markup")
        if _SOURCE_LINE_NUMBERS.search(attributes):
            raise Unsupported(f"a <{tag}> with line numbers")
        code = text[match.end():close.start()]
        code = (code[1:] if code.startswith("\n") else code).rstrip("\n")
        if not code.strip() or "\t" in code or _PRIVATE_USE.search(code):  # (pandoc expands tabs)
            raise Unsupported(f"a <{tag}> with no code, or with marks")
        lang = _SOURCE_LANG.search(attributes)
        classes = [next(group for group in lang.groups() if group is not None)] if lang else []
        if classes and (not classes[0] or classes[0] != classes[0].strip()):
            raise Unsupported(f"a <{tag}> with an odd language")
        verbatim.append({"t": "CodeBlock", "c": [["", classes, []], code]})
        out.append(text[done:match.start()])
        out.append(f"\n\ue017{len(verbatim) - 1}\ue018\n")
        done = close.end()
        while done < len(text) and text[done] in " \t":  # the text after it starts a paragraph
            done += 1
    out.append(text[done:])
    return "".join(out)


def _quotes_pair_alone(text: str) -> bool:
    """Whether the bold or italics of a text beside a source element pair up within it: runs of one
    kind only, an even number of them (pandoc pairs no quote mark across the code block)."""
    if "''" not in text:
        return True
    runs = _QUOTE_RUN.findall(text)
    return len(set(runs)) == 1 and runs[0] in ("''", "'''") and len(runs) % 2 == 0


def _cut_containers(text: str, containers: list) -> str:
    """Blockquotes, divs and centred blocks replaced by placeholders on lines of their own."""
    count = len(_CONTAINER_START.findall(text))
    if not count:
        return text
    if count > MAX_CONTAINERS:
        raise Unsupported("many block-level HTML elements")

    def cut(match: re.Match) -> str:
        line_start = text.rfind("\n", 0, match.start()) + 1
        containers.append((match.group(1).lower(), match.group(3), match.group(2) or ""))
        if text[line_start:match.start()].strip() and text[line_start] in "*#:;":
            line_end = text.find("\n", match.end())
            if match.group(1).lower() != "blockquote" or text[match.end():None if line_end < 0 else line_end].strip():
                raise Unsupported(f"a <{match.group(1)}> inside a list item")
            return f"\ue015{len(containers) - 1}\ue016"  # `* item<blockquote>q</blockquote>`: in the item
        return f"\n\ue013{len(containers) - 1}\ue014\n"

    for _ in range(count):
        text, found = _CONTAINER.subn(cut, text)
        if not found:
            break
    return _AFTER_CONTAINER.sub("\ue014\n", text) if containers else text  # `</blockquote> Text`: no pre


def _blocks(text: str, verbatim: list, containers: list) -> list:
    """The blocks of a text (a page, or a blockquote's content)."""
    blocks: list = []
    paragraph: list[str] = []
    preformatted: list[str] = []  # lines that start with a blank
    for line in text.split("\n"):
        first = line[:1]
        if preformatted:
            if first in (" ", "\t"):  # (a line of blanks too: pandoc goes on with the block)
                preformatted.append(line)
                continue
            _add_preformatted(blocks, preformatted, verbatim)
            preformatted = []
        if first in ("*", "#", ":", ";"):
            _end_paragraph(blocks, paragraph, verbatim)
            math = _DISPLAY_MATH.match(line) if first == ":" else None
            if math and verbatim[int(math.group(1))] is not None and verbatim[int(math.group(1))]["t"] == "Math":
                # `:<math>`: display maths, inline in a paragraph that goes on with the lines after it
                tex = verbatim[int(math.group(1))]["c"][1]
                verbatim.append({"t": "Math", "c": [{"t": "DisplayMath"}, tex]})
                paragraph.append(f"\ue010{len(verbatim) - 1}\ue011" + line[math.end():])
                continue
            _list_line(blocks, line, verbatim, containers)
            continue
        if first == "\ue017" and _SOURCE_PLACEHOLDER.fullmatch(line):
            _end_paragraph(blocks, paragraph, verbatim)
            blocks.append(verbatim[int(line[1:-1])])
            continue
        if first == "\ue013":
            placeholder = _BLOCK_PLACEHOLDER.fullmatch(line)
            if placeholder:
                _end_paragraph(blocks, paragraph, verbatim)
                kind, content, attributes = containers[int(placeholder.group(1))]
                if kind in ("ol", "ul"):
                    blocks.append(_html_list(kind, content, attributes, verbatim))
                    continue
                inner = _blocks(content.strip(), verbatim, containers)
                if kind == "blockquote":
                    if inner:
                        blocks.append({"t": "BlockQuote", "c": inner})
                else:
                    blocks.extend(inner)
                continue
        if not line.strip():
            _end_paragraph(blocks, paragraph, verbatim)
            continue
        if first == "=":
            heading = _HEADING.match(line)
            if heading:
                _end_paragraph(blocks, paragraph, verbatim)
                inlines = read_inlines(heading.group(2).strip(), verbatim)
                if has_text(inlines):
                    blocks.append({"t": "Header", "c": [len(heading.group(1)), ["", [], []], inlines]})
                continue
        if first == " " or first == "\t":
            _end_paragraph(blocks, paragraph, verbatim)
            preformatted.append(line)
            continue
        if first == "<" and _LONE_TAG.fullmatch(line):  # a <div> never closed, a stray </div>: pandoc drops it
            _end_paragraph(blocks, paragraph, verbatim)
            continue
        if line.startswith("----"):
            _end_paragraph(blocks, paragraph, verbatim)
            line = line.lstrip("-")
            if not line.strip():
                continue
        paragraph.append(line)
    _end_paragraph(blocks, paragraph, verbatim)
    if preformatted:
        _add_preformatted(blocks, preformatted, verbatim)
    return _join_lists(blocks)


def _html_list(kind: str, content: str, attributes: str, verbatim: list) -> dict:
    """`<ol>`/`<ul>` of `<li>` items (text only) as a list; its empty items go with _join_lists."""
    if _LIST_ITEM.sub("", content).strip():
        raise Unsupported("an HTML list holding more than items")
    items = []
    for match in _LIST_ITEM.finditer(content):
        if "\n\n" in match.group(1).strip() or "\ue013" in match.group(1):
            raise Unsupported("an HTML list item of several blocks")
        inlines = read_inlines(match.group(1).strip(), verbatim)
        items.append([{"t": "Plain", "c": inlines}] if has_text(inlines) else [])
    if kind == "ul":
        return {"t": "BulletList", "c": items}
    start = _LIST_START.search(attributes)
    return {"t": "OrderedList", "c": [[int(start.group(1)) if start else 1, {"t": "DefaultStyle"},
                                       {"t": "DefaultDelim"}], items]}


def _add_preformatted(blocks: list, lines: list[str], verbatim: list) -> None:
    """Lines that start with a blank: pandoc reads each as inline code (less its first blank), one
    line break apart; markup in them (quotes, links, tags) stays around the code."""
    inlines: list = []
    for line in lines:
        if _PREFORMATTED_UNSUPPORTED.search(line):
            raise Unsupported("templates, signatures or block elements in preformatted lines")
        line = line.expandtabs(4)[1:]
        if _PREFORMATTED_MARKUP.search(line):
            nodes = read_code_line(line, verbatim)
        else:
            code = html.unescape(line) if "&" in line else line
            nodes = [{"t": "Code", "c": [["", [], []], code.replace("\xa0", " ")]}] if code.strip() else []
        if not nodes:
            continue
        if inlines:
            inlines.append({"t": "LineBreak"})
        inlines.extend(nodes)
    if inlines:
        blocks.append({"t": "Para", "c": inlines})


def _end_paragraph(blocks: list, lines: list[str], verbatim: list) -> None:
    """The paragraph of the lines gathered so far (if any) added to the blocks; `lines` emptied."""
    if lines:
        inlines = read_inlines("\n".join(lines), verbatim)
        if has_text(inlines):
            blocks.append({"t": "Para", "c": inlines})
        lines.clear()


def _list_line(blocks: list, line: str, verbatim: list, containers: list) -> None:
    """A list line (`*`, `#`, `:`, `;` markers) added to the list blocks at the end of `blocks`."""
    markers = line[:len(line) - len(line.lstrip("*#:;"))]
    content = line[len(markers):]
    if ";" in markers and markers != ";":
        if markers.rstrip(";") != markers[:-1] or ":" in markers or ":" in content:
            raise Unsupported("a definition list inside a list")
        markers = markers[:-1] + ":"  # a term in a list: a paragraph in the item above it
        term = True
    else:
        term = False
    if markers == ";":
        if "\ue015" in content:
            raise Unsupported("a blockquote inside a definition list")
        term, colon, definition = content.partition(":")
        if colon and ("[[" in term or "//" in term or "\ue010" in term):
            raise Unsupported("a definition list term with a colon")
        for part in (term, definition):
            inlines = read_inlines(part.strip(), verbatim)
            if has_text(inlines):
                blocks.append({"t": "Para", "c": inlines})
        return
    quote = _ITEM_QUOTE.search(content) if "\ue015" in content else None
    if quote:
        content = content[:quote.start()]
        quote = _blocks(containers[int(quote.group(1))][1].strip(), verbatim, containers)
    if "\ue015" in content or (quote is not None and (markers[0] in ":;" or term)):
        raise Unsupported("a blockquote inside an indented line")
    inlines = read_inlines(content.strip(), verbatim)
    if markers[0] == ":":
        if set(markers) != {":"}:
            raise Unsupported("a list inside an indented line")
        # `:` indentation: a definition list without a term, which the filters unwrap into its blocks
        if has_text(inlines):
            blocks.append({"t": "Para", "c": inlines})
        return
    kinds = markers.rstrip(":")
    if ":" in kinds:
        raise Unsupported("a list inside an indented line inside a list")
    continued = len(kinds) < len(markers)  # `*:`: more of the item above, as its own line
    container = blocks
    for depth, marker in enumerate(kinds):
        kind = "BulletList" if marker == "*" else "OrderedList"
        last = container[-1] if container else None
        if last is None or last["t"] != kind:
            last = {"t": kind, "c": []} if kind == "BulletList" else \
                {"t": kind, "c": [[1, {"t": "DefaultStyle"}, {"t": "DefaultDelim"}], []]}
            container.append(last)
        items = last["c"] if kind == "BulletList" else last["c"][1]
        if (depth == len(kinds) - 1 and not continued) or not items:
            items.append([])
        container = items[-1]
    if has_text(inlines):
        container.append({"t": "Para" if term else "Plain", "c": inlines})
    if quote:
        container.append({"t": "BlockQuote", "c": quote})


def _join_lists(blocks: list) -> list:
    """Lists without their empty items, empty lists gone, and two lists of one kind in a row made one
    (filters._list and filters._join_lists), at every depth: each item is finished once."""
    out: list = []
    for block in blocks:
        kind = block["t"]
        if kind in ("BulletList", "OrderedList"):
            items = block["c"] if kind == "BulletList" else block["c"][1]
            items = [finished for finished in map(_join_lists, items) if finished]
            if not items:
                continue
            if out and out[-1]["t"] == kind:
                (out[-1]["c"] if kind == "BulletList" else out[-1]["c"][1]).extend(items)
                continue
            block = {"t": kind, "c": items} if kind == "BulletList" else {"t": kind, "c": [block["c"][0], items]}
        out.append(block)
    return out


