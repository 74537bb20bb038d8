"""The filters, on pandoc's JSON AST of one page (dicts {"t": type, "c": content})."""
from __future__ import annotations

import html
import re
from typing import Callable, Iterable

# Inline and block rules run bottom-up in one walk: children first, then the node's own rule, which
# returns the nodes that replace it (none to drop it, its children to unwrap it). Page-level steps
# (sections, empty sections, the title) run afterwards on the top-level block list.

def _drop(node, options) -> list:
    return []


def _children_inlines(node, options) -> list:
    """Span, Underline, SmallCaps, Cite: markup that Markdown can't hold or prose doesn't need."""
    return node["c"][-1] if node["t"] in ("Span", "Cite") else node["c"]


def _children_blocks(node, options) -> list:
    """Div: a wrapper (of an infobox row, a hatnote, a column) whose content is ordinary text."""
    return node["c"][1]


def _link_text(node, options) -> list:
    """Links, internal and external, become their text: the model should learn prose, not URLs.

    Category links and links to other languages (left after the wikitext pass, e.g. from a template
    rule) disappear, as does an external link with only a number as its text ([http://x] shows "[1]")."""
    target = node["c"][2][0]
    text = node["c"][1]
    if "wikilink" in node["c"][0][1] and _is_meta_link(target):
        return []
    if len(text) == 1 and text[0]["t"] == "Str" and text[0]["c"].isdigit() and "://" in target:
        return []
    return text


def _is_meta_link(target: str) -> bool:
    """A category link or a link to the same page in another language ([[de:...]]), not prose."""
    namespace, colon, _ = target.partition(":")
    if not colon:
        return False
    namespace = namespace.replace("_", " ").strip()
    return namespace.lower() == "category" or bool(_LANGUAGE_PREFIX.fullmatch(namespace))


_LANGUAGE_PREFIX = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]+)*|simple")


def _text(node, options) -> list:
    """Str: what pandoc kept of template syntax (a `{{` never closed) goes; non-breaking and other odd
    spaces become ordinary Spaces (the writer would spell U+00A0 `&nbsp;`)."""
    value = node["c"]
    if "\u200b" in value:  # wikitext.QUOTE_SEPARATOR, or a zero-width space of the page's own
        value = value.replace("\u200b", "")
    if "&" in value and ";" in value:  # pandoc leaves entities of unlabelled links as typed: [[OS&nbsp;X]]
        value = html.unescape(value)
    if "{{" in value or "}}" in value:
        value = value.replace("{{", "").replace("}}", "")
    if not _ODD_SPACE.search(value):
        return [{"t": "Str", "c": value}] if value else []
    out: list = []
    for i, word in enumerate(_ODD_SPACE.split(value)):
        if i:
            out.append({"t": "Space"})
        if word:
            out.append({"t": "Str", "c": word})
    return out


_ODD_SPACE = re.compile(r"\s+")
_STR_WORK = re.compile(r"[&{}\s\u200b]")  # what _text has to look at


def _code(node, options) -> list:
    """Inline code: MediaWiki's preformatted lines (` text`) come from pandoc as code with non-breaking
    spaces; ordinary ones read better."""
    attr, code = node["c"]
    if "\xa0" in code:
        code = code.replace("\xa0", " ")
    return [{"t": "Code", "c": [["", [], []], code]}] if code.strip() else []


def _math(node, options) -> list:
    """TeX keeps its meaning with `{ {` for `{{`, and the Markdown holds no `{{` that looks like a
    template left over."""
    kind, tex = node["c"]
    if "{{" in tex or "}}" in tex:
        tex = re.sub(r"\{(?=\{)", "{ ", re.sub(r"\}(?=\})", "} ", tex))
    return [{"t": "Math", "c": [kind, tex]}]


def _paragraph(node, options) -> list:
    """Para/Plain: whitespace tidied where removed nodes left it doubled; dropped when nothing is left."""
    inlines = _tidy_inlines(node["c"])
    return [{"t": node["t"], "c": inlines}] if _has_text(inlines) else []


def _header(node, options) -> list:
    """Headers keep their level and text; pandoc's identifiers go (they differ between a page converted
    alone and in a batch, and Markdown here does not show them)."""
    level, _, inlines = node["c"]
    inlines = _tidy_inlines(inlines)
    return [{"t": "Header", "c": [level, ["", [], []], inlines]}] if _has_text(inlines) else []


def _list(node, options) -> list:
    """Lists lose their empty items (an item that was only an image or a template), then empty lists go."""
    if node["t"] == "OrderedList":
        items = [item for item in node["c"][1] if item]
        return [{"t": "OrderedList", "c": [node["c"][0], items]}] if items else []
    items = [item for item in node["c"] if item]
    return [{"t": node["t"], "c": items}] if items else []


def _container(node, options) -> list:
    """BlockQuote: dropped when empty."""
    return [node] if node["c"] else []


def _line_block(node, options) -> list:
    lines = [_tidy_inlines(line) for line in node["c"]]
    lines = [line for line in lines if _has_text(line)]
    return [{"t": "LineBlock", "c": lines}] if lines else []


def _definition_list(node, options) -> list:
    """Markdown (gfm) has no definition lists, and `: text` is MediaWiki's indentation: a term becomes
    a paragraph of its own, its definitions follow as ordinary blocks."""
    blocks = []
    for term, definitions in node["c"]:
        term = _tidy_inlines(term)
        if _has_text(term):
            blocks.append({"t": "Para", "c": term})
        for definition in definitions:
            blocks.extend(definition)
    return blocks


def _table(node, options) -> list:
    """Tables are dropped unless keep_tables; kept ones are made simple enough for a pipe table (every
    cell one line of text, no row or column spans), which is the only table gfm writes without HTML."""
    if not options.keep_tables:
        return []
    attr, caption, colspecs, head, bodies, foot = node["c"]
    width = len(colspecs)
    if not width or width > MAX_TABLE_COLUMNS:
        return []  # nothing, or too wide to read as a pipe table (and its grid would grow as rows x width)
    head = [head[0], _grid(head[1], width)]
    bodies = [[b[0], 0, _grid(b[2], width), _grid(b[3], width)] for b in bodies]
    foot = [foot[0], _grid(foot[1], width)]
    rows = head[1] + [r for b in bodies for r in b[2] + b[3]] + foot[1]
    if not any(_has_text(cell[4][0]["c"]) for row in rows for cell in row[1] if cell[4]):
        return []
    caption_blocks = [{"t": "Plain", "c": _flatten(caption[1])}] if _has_text(_flatten(caption[1])) else []
    colspecs = [[{"t": "AlignDefault"}, {"t": "ColWidthDefault"}] for _ in colspecs]
    return [{"t": "Table", "c": [attr, [None, caption_blocks], colspecs, head, bodies, foot]}]


MAX_TABLE_COLUMNS = 64


def _grid(rows: list, width: int) -> list:
    """Rows with every cell one Plain line, spans expanded into empty cells, each row `width` cells."""
    grid: list[list] = []
    pending: dict[int, int] = {}  # column -> rows still covered by a rowspan from above
    for attr, cells in rows:
        row: list = []
        column = 0
        queue = iter(cells)
        while column < width:
            if pending.get(column):
                pending[column] -= 1
                row.append(_cell([]))
                column += 1
                continue
            cell = next(queue, None)
            if cell is None:
                row.append(_cell([]))
                column += 1
                continue
            rowspan, colspan = max(1, cell[2]), min(max(1, cell[3]), width - column)
            row.append(_cell(_flatten(cell[4])))
            for extra in range(colspan):
                if rowspan > 1:
                    pending[column + extra] = rowspan - 1
                if extra:
                    row.append(_cell([]))
            column += colspan
        row = row[:width]
        if any(cell[4] for cell in row):  # a row left empty (its cells were images or templates) goes
            grid.append([attr, row])
    return grid


def _cell(inlines: list) -> list:
    return [["", [], []], {"t": "AlignDefault"}, 1, 1, [{"t": "Plain", "c": inlines}] if inlines else []]


def _flatten(blocks: list) -> list:
    """The inlines of blocks, joined by spaces, line breaks as spaces: the text of a table cell."""
    out: list = []
    for block in blocks:
        kind, content = block["t"], block.get("c")
        if kind in ("Plain", "Para", "Header"):
            inlines = content[2] if kind == "Header" else content
        elif kind == "LineBlock":
            inlines = [i for line in content for i in [*line, {"t": "Space"}]]
        elif kind in ("BulletList", "BlockQuote", "Div"):
            items = content if kind == "BulletList" else [content] if kind == "BlockQuote" else [content[1]]
            inlines = [i for item in items for i in _flatten(item)]
        elif kind == "OrderedList":
            inlines = [i for item in content[1] for i in _flatten(item)]
        elif kind == "CodeBlock":
            inlines = [{"t": "Code", "c": [["", [], []], " ".join(content[1].split())]}]
        else:
            inlines = []
        if _has_text(inlines):
            if out:
                out.append({"t": "Space"})
            out.extend(inlines)
    return _tidy_inlines(_no_breaks(out))


def _no_breaks(inlines: list) -> list:
    """Line breaks as spaces, at any depth (`''Source:<br>FAO''`): a pipe table cell is one line."""
    out = []
    for node in inlines:
        kind = node["t"]
        if kind in ("LineBreak", "SoftBreak"):
            node = {"t": "Space"}
        elif kind in ("Emph", "Strong", "Strikeout", "Superscript", "Subscript", "Underline", "SmallCaps"):
            node = {"t": kind, "c": _no_breaks(node["c"])}
        elif kind in ("Quoted", "Span", "Link", "Cite"):
            node = {"t": kind, "c": [node["c"][0], _no_breaks(node["c"][1]), *node["c"][2:]]}
        out.append(node)
    return out


INLINE_RULES: dict[str, Callable] = {
    "Link": _link_text,
    "Image": _drop,        # images carry no text worth training on; their captions describe pictures
    "Note": _drop,         # footnotes: citations mostly, and empty when the ref body was a template
    "RawInline": _drop,    # templates left by pandoc ({{...}}), raw HTML tags (<span>, <small>, <u>)
    "Span": _children_inlines,
    "Underline": _children_inlines,
    "SmallCaps": _children_inlines,
    "Cite": _children_inlines,
    "Str": _text,
    "Math": _math,
    "Code": _code,
}
BLOCK_RULES: dict[str, Callable] = {
    "RawBlock": _drop,     # block templates (infoboxes, navboxes), raw HTML (<div>, <center>)
    "Figure": _drop,       # [[File:...|thumb|caption]] on its own line
    "HorizontalRule": _drop,
    "Div": _children_blocks,
    "Para": _paragraph,
    "Plain": _paragraph,
    "Header": _header,
    "BulletList": _list,
    "OrderedList": _list,
    "BlockQuote": _container,
    "LineBlock": _line_block,
    "DefinitionList": _definition_list,
    "Table": _table,
}


def _inlines(nodes: list, options) -> list:
    out: list = []
    for node in nodes:
        kind = node["t"]
        if kind == "Space" or (kind == "Str" and not _STR_WORK.search(node["c"])):
            out.append(node)  # the common case, kept quick: most nodes are plain words and spaces
            continue
        content = node.get("c")
        if kind in ("Emph", "Strong", "Strikeout", "Superscript", "Subscript", "Underline", "SmallCaps"):
            node = {"t": kind, "c": _inlines(content, options)}
            if not _has_text(node["c"]):
                continue
        elif kind == "Quoted":
            node = {"t": kind, "c": [content[0], _inlines(content[1], options)]}
        elif kind in ("Link", "Image", "Span"):
            node = {"t": kind, "c": [content[0], _inlines(content[1], options), *content[2:]]}
        elif kind == "Cite":
            node = {"t": kind, "c": [content[0], _inlines(content[1], options)]}
        rule = INLINE_RULES.get(kind)
        if rule is None:
            out.append(node)
        else:
            out.extend(rule(node, options))
    return out


def _blocks(nodes: list, options) -> list:
    out: list = []
    for node in nodes:
        kind = node["t"]
        content = node.get("c")
        if kind in ("Para", "Plain"):
            node = {"t": kind, "c": _inlines(content, options)}
        elif kind == "Header":
            node = {"t": kind, "c": [content[0], content[1], _inlines(content[2], options)]}
        elif kind == "LineBlock":
            node = {"t": kind, "c": [_inlines(line, options) for line in content]}
        elif kind == "BlockQuote":
            node = {"t": kind, "c": _blocks(content, options)}
        elif kind == "BulletList":
            node = {"t": kind, "c": [_blocks(item, options) for item in content]}
        elif kind == "OrderedList":
            node = {"t": kind, "c": [content[0], [_blocks(item, options) for item in content[1]]]}
        elif kind == "DefinitionList":
            node = {"t": kind, "c": [[_inlines(term, options), [_blocks(d, options) for d in defs]]
                                     for term, defs in content]}
        elif kind == "Div":
            node = {"t": kind, "c": [content[0], _blocks(content[1], options)]}
        elif kind == "Table":
            if not options.keep_tables:
                continue
            node = {"t": kind, "c": _table_children(content, options)}
        elif kind == "Figure":
            continue
        rule = BLOCK_RULES.get(kind)
        if rule is None:
            out.append(node)
        else:
            out.extend(rule(node, options))
    return _join_lists(out)


def _join_lists(blocks: list) -> list:
    """Two lists of the same kind in a row become one: what stood between them (an image, a template)
    is gone, and the writer would otherwise keep them apart with a line of `&nbsp;`. Items are added
    to one new list in place: a thousand lists in a row cost a thousand appends, not a thousand copies."""
    out: list = []
    for block in blocks:
        kind = block["t"]
        if out and kind == out[-1]["t"] == "BulletList":
            if not out[-1].get("joined"):
                out[-1] = {"t": kind, "c": list(out[-1]["c"]), "joined": True}
            out[-1]["c"].extend(block["c"])
        elif out and kind == out[-1]["t"] == "OrderedList":
            if not out[-1].get("joined"):
                out[-1] = {"t": kind, "c": [out[-1]["c"][0], list(out[-1]["c"][1])], "joined": True}
            out[-1]["c"][1].extend(block["c"][1])
        else:
            out.append(block)
    for block in out:
        block.pop("joined", None)
    return out


def _table_children(content: list, options) -> list:
    attr, caption, colspecs, head, bodies, foot = content

    def rows(rs):
        return [[r[0], [[c[0], c[1], c[2], c[3], _blocks(c[4], options)] for c in r[1]]] for r in rs]

    return [attr, [caption[0], _blocks(caption[1], options)], colspecs, [head[0], rows(head[1])],
            [[b[0], b[1], rows(b[2]), rows(b[3])] for b in bodies], [foot[0], rows(foot[1])]]


def _tidy_inlines(inlines: list) -> list:
    """No two spaces in a row, none at the start or end, none before closing punctuation left behind by
    a removed footnote or template (`word .` -> `word.`)."""
    out: list = []
    for node in inlines:
        if node["t"] in ("Space", "SoftBreak"):
            if not out or out[-1]["t"] in ("Space", "SoftBreak", "LineBreak"):
                continue
        elif node["t"] == "LineBreak":
            while out and out[-1]["t"] in ("Space", "SoftBreak"):
                out.pop()
            if not out or out[-1]["t"] == "LineBreak":
                continue
        elif node["t"] == "Str" and out and out[-1]["t"] == "Space" and node["c"][:1] in (".", ",", ";", ":"):
            out.pop()
        out.append(node)
    while out and out[-1]["t"] in ("Space", "SoftBreak", "LineBreak"):
        out.pop()
    return _merge_words(out)


def _merge_words(inlines: list) -> list:
    """Runs of Str and Space as one Str ("a b c"): the same Markdown, a JSON document a fifth the size,
    and the writer's time is mostly reading that JSON (8 s -> 1 s for the enwiki sample).

    The first word of a line stays a Str of its own: the writer escapes a line-starting "+", "-", "1."
    or "#" by looking at that Str alone."""
    out: list = []
    words: list[str] = []
    line_start = True
    for node in inlines:
        kind = node["t"]
        if line_start:
            out.append(node)
            line_start = kind not in ("Space", "SoftBreak") or not out[:-1]
            continue
        if kind == "Str" or (kind == "Space" and words):
            words.append(node["c"] if kind == "Str" else " ")
            continue
        if words:
            out.append({"t": "Str", "c": "".join(words)})
            words = []
        out.append(node)
        line_start = kind == "LineBreak"
    if words:
        out.append({"t": "Str", "c": "".join(words)})
    return out


def _has_text(inlines: list) -> bool:
    """Whether inlines hold anything to read (not only spaces and line breaks)."""
    for node in inlines:
        kind = node["t"]
        if kind == "Str":
            if any(c.isalnum() for c in node["c"]):  # "+ +", "( )": what removed templates leave behind
                return True
        elif kind in ("Code", "Math"):
            if node["c"][1].strip():
                return True
        elif kind in ("Space", "SoftBreak", "LineBreak", "RawInline", "Note", "Image"):
            continue
        elif kind == "Quoted":
            if _has_text(node["c"][1]):
                return True
        elif kind in ("Link", "Span", "Cite"):
            if _has_text(node["c"][1]):
                return True
        elif _has_text(node.get("c") or []):
            return True
    return False


def _header_text(inlines: list) -> str:
    parts = []
    for node in inlines:
        kind = node["t"]
        if kind == "Str":
            parts.append(node["c"])
        elif kind in ("Space", "SoftBreak", "LineBreak"):
            parts.append(" ")
        elif kind in ("Code", "Math"):
            parts.append(node["c"][1])
        elif kind in ("Link", "Span", "Quoted", "Cite"):
            parts.append(_header_text(node["c"][1]))
        elif isinstance(node.get("c"), list) and node["c"] and isinstance(node["c"][0], dict):
            parts.append(_header_text(node["c"]))
    return " ".join("".join(parts).split())


def drop_sections(blocks: list, names: Iterable[str]) -> list:
    """Remove each section whose heading is one of `names` (case-insensitive), with everything up to the
    next heading of the same or a higher level: References, External links and the like."""
    wanted = {" ".join(name.split()).casefold() for name in names}
    if not wanted:
        return blocks
    out, dropping = [], None  # dropping: level of the heading being dropped
    for block in blocks:
        if block["t"] == "Header":
            level = block["c"][0]
            if dropping is not None and level > dropping:
                continue
            dropping = level if _header_text(block["c"][2]).casefold() in wanted else None
            if dropping is not None:
                continue
        elif dropping is not None:
            continue
        out.append(block)
    return out


def drop_empty_sections(blocks: list) -> list:
    """Remove headings with nothing under them up to the next heading of the same or a higher level
    (what is left of a section of only images, tables or templates). One pass from the end."""
    keep = [True] * len(blocks)
    content_at = len(blocks)  # the nearest block after this one that is not a heading
    next_heading: dict[int, int] = {}  # level -> the nearest heading of that level after this block
    for i in range(len(blocks) - 1, -1, -1):
        block = blocks[i]
        if block["t"] != "Header":
            content_at = i
            continue
        level = block["c"][0]
        section_end = min((at for lvl, at in next_heading.items() if lvl <= level), default=len(blocks))
        keep[i] = content_at < section_end
        next_heading[level] = i
    return [block for block, kept in zip(blocks, keep) if kept]


def title_header(title: str) -> dict:
    """`# Title` on top, so each document says what it is about."""
    inlines: list = []
    for word in title.split():
        if inlines:
            inlines.append({"t": "Space"})
        inlines.append({"t": "Str", "c": word})
    return {"t": "Header", "c": [1, ["", [], []], inlines]}


def filter_page(title: str, blocks: list, options) -> list | None:
    """All filters on one page's blocks (`options`: a ConvertOptions); None when no text is left."""
    blocks = _blocks(blocks, options)
    blocks = drop_sections(blocks, options.drop_sections)
    blocks = drop_empty_sections(blocks)
    if not any(block["t"] != "Header" for block in blocks):
        return None
    return [title_header(title), *blocks]
