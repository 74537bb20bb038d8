"""The fast reader's inline pass: one block's cleaned wikitext into inline nodes, tidied as the filters tidy them.

Maths, nowiki and code elements are cut out first (`cut_verbatims`); then links become their text and
one scan per line finds the quote runs (bold, italics) and inline tags (sub- and superscripts,
strikeouts, line breaks; the rest unwrapped or dropped as pandoc's reader and the filters do).
"""
from __future__ import annotations

import html
import re


class Unsupported(Exception):
    """A construct the fast reader leaves to pandoc (the message says which)."""


# Elements whose content is not wikitext, cut out of the text before the inline pass.
_VERBATIM_TAG = re.compile(r"<(/?)(math|nowiki|code|tt|var|samp)(?:\s[^<>]*+)?>", re.I)
_LINK = re.compile(r"\[\[([^\[\]|]*)(?:\|([^\[\]]*))?\]\]([a-z]*)")
# A link that `_link` writes as its text and trail as they are: a label (or a target with no `:`), no quote
# mark in it, not empty. (Where it matches, _LINK matches the same characters.)
_PLAIN_LINK = re.compile(r"\[\[(?:[^\[\]|]*+\||(?=[^\[\]|:']++\]\]))([^\[\]']++)\]\]([a-z]*)")
# (A label stops at the next bracket: a thousand `[http://x label` never closed cost one pass.)
_EXTERNAL = re.compile(r"\[(?:(?:https?|ftps?|irc|news|gopher|mailto):(?://)?|//)[^\s\[\]<>\"]++(?:[ \t]++([^\]\[\n]*+))?\]")
MAX_INLINE_DEPTH = 32  # inline tags open at once on a line (the clean-up allows 16 of most)
_TOKEN = re.compile(r"(?=[<'\ue010])(?:'{2,5}|<(/?)([A-Za-z][A-Za-z0-9]*)(?=[\s/>])[^<>]*?(/?)>|\ue010\d+\ue011)")
# Tags MediaWiki does not allow, which pandoc's reader leaves as text (any other unknown tag it drops).
_TEXT_TAGS = frozenset(("a", "img", "input", "script", "style", "iframe", "form", "button", "link", "meta"))
_LANGUAGE_PREFIX = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]+)*|simple")
_SPACES = re.compile(r"\s+")
# (Tried only where a run of blanks starts: a page of blanks costs one pass, not one per blank.)
_SPACE_BEFORE_PUNCTUATION = re.compile(r"(?<![^\S\n])[^\S\n]++(?=[.,;:])")
_ODD_BLANK_BEFORE_PUNCTUATION = re.compile(r"[^\S \n][.,;:]")
_SPACE_THEN_PUNCTUATION = re.compile(" [.,;:]")
_ALNUM = re.compile(r"[^\W_]")
# Inline tags: what each becomes (a node type, None to unwrap it, "break" for a line break).
_TAGS = {
    "sub": "Subscript", "sup": "Superscript", "del": "Strikeout", "strike": "Strikeout",
    "i": None, "em": None, "b": None, "strong": None, "s": None,
    "small": None, "big": None, "span": None, "u": None, "ins": None, "font": None, "abbr": None,
    "cite": None, "bdi": None, "dfn": None, "kbd": None, "mark": None, "q": None,
    "br": "break", "wbr": None,
}
_BLOCK_TAGS = {"div", "blockquote", "center", "p", "ul", "ol", "li", "dl", "dt", "dd", "table", "tr", "td",
               "th", "caption", "pre", "poem", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "source",
               "syntaxhighlight", "gallery", "references", "ref", "section", "includeonly", "noinclude"}
_NOWIKI_TAG = re.compile(r"</?nowiki\s*/?>", re.I)
_CODE_MARKUP = re.compile(r"''|\[\[|<|\{\{")
LINK_EDGE = "\ue012"  # keeps a link's quotes apart from quotes around it; removed with the text


def cut_verbatims(text: str, verbatim: list) -> str:
    """Maths, nowiki and code elements replaced by placeholders of the nodes they become: one pass over
    their tags, each opening tag paired with the next closing tag of its name (one never closed stays text)."""
    pieces: list[str] = []
    done = 0
    opened: tuple[str, int, int] | None = None  # (tag, where it starts, where its content starts)
    for match in _VERBATIM_TAG.finditer(text):
        closing, tag = match.group(1), match.group(2).lower()
        if opened is None:
            if not closing:
                opened = (tag, match.start(), match.end())
            continue
        if closing and tag == opened[0]:
            pieces.append(text[done:opened[1]])
            pieces.append(_cut_verbatim(tag, text[opened[2]:match.start()], verbatim))
            done = match.end()
            opened = None
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _cut_verbatim(tag: str, content: str, verbatim: list) -> str:
    if tag == "math":
        tex = content.strip()
        if "{{" in tex or "}}" in tex:
            tex = re.sub(r"\{(?=\{)", "{ ", re.sub(r"\}(?=\})", "} ", tex))
        node = {"t": "Math", "c": [{"t": "InlineMath"}, tex]} if tex else None
    elif tag == "nowiki":
        node = {"t": "Str", "c": html.unescape(content)} if content else None
    else:
        if "<" in content and "nowiki" in content.lower():  # <code><nowiki>{{x}}</nowiki></code>: literal
            content = _NOWIKI_TAG.sub("", content)
        elif _CODE_MARKUP.search(content):
            raise Unsupported("markup inside code")
        code = " ".join(html.unescape(content).split())  # pandoc reads code's text as inlines: one blank
        node = {"t": "Code", "c": [["", [], []], code]} if code.strip() else None
    verbatim.append(node)
    return f"\ue010{len(verbatim) - 1}\ue011"


def _link(match: re.Match) -> str:
    target, label, trail = match.group(1), match.group(2), match.group(3)
    if label is None:
        namespace, colon, _ = target.partition(":")
        if colon:
            name = namespace.replace("_", " ").strip()
            if name.lower() == "category" or _LANGUAGE_PREFIX.fullmatch(name):
                return ""
        text = target + trail
    else:
        text = label + trail
    return LINK_EDGE + text + LINK_EDGE if "'" in text or not text else text


def _links_as_text(text: str) -> str:
    """Wiki links as their text (`_link`). Most are plain: a label or a target without a namespace, no
    quote mark; when every link is, one split does it: the text between them, each one's text and
    trail (no call per link, which a substitution makes even with a template)."""
    plain = "".join(_PLAIN_LINK.split(text))
    return plain if "[[" not in plain else _LINK.sub(_link, text)


def read_inlines(text: str, verbatim: list) -> list:
    """The inline nodes of a block's text, tidied as the filters tidy them."""
    if "[" in text:
        if "[[" in text:
            text = _links_as_text(text)
            if "[[" in text and "]]" in text:
                raise Unsupported("a link left inside a link")
        if "//" in text:
            text = _EXTERNAL.sub(lambda m: m.group(1) or "", text)
    if not _has_inline_markup(text):  # plain text: the quick path
        return _tidy([text])
    root: list = []
    for number, line in enumerate(text.split("\n")):
        if number:
            root.append("\n")
        if _has_inline_markup(line):
            _line_inlines(line, verbatim, root)
        else:
            root.append(line)
    return _tidy(root)


def _has_inline_markup(text: str) -> bool:
    # (Three substring searches: a pattern `''|<|\ue010` is tried at every character, four times slower.)
    return "''" in text or "<" in text or "\ue010" in text


def read_code_line(line: str, verbatim: list) -> list:
    """A preformatted line (less its first blank) holding markup, as pandoc reads it: each run of text
    (a link's text a run of its own) inline code with its blanks kept, inside the formatting around it;
    runs of only blanks dropped (as the filters drop empty code)."""
    if "[" in line:
        line = _LINK.sub(lambda m: _edged(_link(m)), line)
        if "[[" in line and "]]" in line:
            raise Unsupported("a link left inside a link")
        if "//" in line:
            line = _EXTERNAL.sub(lambda m: _edged(m.group(1) or ""), line)
    root: list = []
    _line_inlines(line, verbatim, root)
    return _code_runs(root)


def _edged(text: str) -> str:
    return text if text.startswith(LINK_EDGE) else LINK_EDGE + text + LINK_EDGE


def _code_runs(raw: list) -> list:
    out: list = []
    for piece in raw:
        if isinstance(piece, str) or piece["t"] == "Str":
            for part in (piece if isinstance(piece, str) else piece["c"]).split(LINK_EDGE):
                code = html.unescape(part) if "&" in part else part
                if code.strip():
                    out.append({"t": "Code", "c": [["", [], []], code.replace("\xa0", " ")]})
            continue
        if piece["t"] in ("Emph", "Strong", "Strikeout", "Superscript", "Subscript"):
            content = _code_runs(piece["c"])
            if not has_text(content):
                continue
            piece = {"t": piece["t"], "c": content}
        out.append(piece)
    return out


def _line_inlines(line: str, verbatim: list, root: list) -> None:
    """One line's inlines appended to `root`: raw text as strings, nodes as dicts; quotes and tags
    left open at the end of the line are closed there (as MediaWiki and pandoc do)."""
    stack: list[tuple[str, list]] = []  # (node type or tag name, its content)
    current = root
    position = 0
    for match in _TOKEN.finditer(line):
        if match.start() > position:
            current.append(line[position:match.start()])
        position = match.end()
        token = match.group(0)
        if token[0] == "'":
            wanted = {2: ["Emph"], 3: ["Strong"], 5: ["Strong", "Emph"]}.get(len(token))
            if wanted is None:  # four quotes: one is text
                current.append("'")
                wanted = ["Strong"]
            for kind in wanted:
                opened = [i for i, (k, _) in enumerate(stack) if k == kind]
                if opened:
                    while len(stack) > opened[-1]:
                        current = _pop(stack, root)
                else:
                    node = {"t": kind, "c": []}
                    current.append(node)
                    stack.append((kind, node["c"]))
                    current = node["c"]
            continue
        if token[0] == "\ue010":
            node = verbatim[int(token[1:-1])]
            if node is not None:
                current.append(node)
            continue
        closing, name, self_closing = match.group(1), match.group(2).lower(), match.group(3)
        if name in _BLOCK_TAGS or "\ue013" in token:
            raise Unsupported(f"a <{name}> tag")
        if name not in _TAGS:
            if name in _TEXT_TAGS:
                current.append(token)
            continue  # raw HTML the filters drop (its content stays)
        kind = _TAGS[name]
        if kind == "break":
            if not closing:
                current.append({"t": "LineBreak"})
            continue
        if kind is None or self_closing:
            continue
        if closing:
            opened = [i for i, (k, _) in enumerate(stack) if k == name]
            if opened:
                while len(stack) > opened[-1]:
                    current = _pop(stack, root)
            continue
        if len(stack) >= MAX_INLINE_DEPTH:
            raise Unsupported("inline tags nested too deeply")
        node = {"t": kind, "c": []}
        current.append(node)
        stack.append((name, node["c"]))
        current = node["c"]
    if position < len(line):
        current.append(line[position:])
    while stack:
        current = _pop(stack, root)


def _pop(stack: list, root: list) -> list:
    stack.pop()
    return stack[-1][1] if stack else root


def _tidy(raw: list, top: bool = True) -> list:
    """Raw pieces (strings and nodes) as the filters leave inlines: text in Str runs with single spaces,
    Space nodes between a run and a node (SoftBreak where a line ended), no empty formatting (a node
    without a letter or digit goes with its content), two formatting nodes of one kind in a row made one.
    No space at either end; at the top level (`top`) also no space (but a line end) before closing
    punctuation, as filters._tidy_inlines does (inside formatting pandoc keeps those)."""
    out: list = []
    text: list[str] = []  # text not yet added: joined once, so that a thousand pieces cost one copy
    joinable = None  # the formatting node just added, which an identical one right after joins
    for piece in raw:
        previous, joinable = joinable, None
        if isinstance(piece, str):
            if "\u200b" in piece or LINK_EDGE in piece:
                piece = piece.replace("\u200b", "").replace(LINK_EDGE, "")
            if "&" in piece and ";" in piece:  # twice, as pandoc's reader and then the filters do
                piece = html.unescape(piece)
                if "&" in piece and ";" in piece:
                    piece = html.unescape(piece)
            if "{" in piece or "}" in piece:  # (one-character searches, the quick kind)
                piece = piece.replace("{{", "").replace("}}", "")
            text.append(piece)
            continue
        kind = piece["t"]
        if kind == "Str":  # nowiki text
            text.append(piece["c"])
            continue
        if kind in ("Emph", "Strong", "Strikeout", "Superscript", "Subscript"):
            content = _tidy(piece["c"], False)
            if not has_text(content):
                continue
            if text:
                _add_text(out, "".join(text), top)
                text = []
            if previous is not None and previous is out[-1] and previous["t"] == kind:
                # pandoc's builder joins them: x<sub>a</sub><sub>b</sub>
                out[-1] = joinable = {"t": kind, "c": out[-1]["c"] + content}
                continue
            piece = joinable = {"t": kind, "c": content}
        elif text:
            _add_text(out, "".join(text), top)
            text = []
        if kind == "LineBreak":
            while out and out[-1]["t"] in ("Space", "SoftBreak"):
                out.pop()
            if not out or out[-1]["t"] == "LineBreak":
                continue
        out.append(piece)
    if text:
        _add_text(out, "".join(text), top)
    while out and out[-1]["t"] in ("Space", "SoftBreak", "LineBreak"):
        out.pop()
    return out


def _add_text(out: list, text: str, top: bool) -> None:
    """Text appended to the inlines: runs of words in one Str, whitespace at its ends as a Space (or a
    SoftBreak when it holds a line end) node."""
    if not text:
        return
    # (Most text is ASCII with no blank but single spaces: then it needs neither the search for odd
    # blanks nor the split into words, the costliest steps here.)
    spaced = text.isascii() and text.isprintable()  # (in ASCII, every blank but the space is unprintable)
    if top and (_SPACE_THEN_PUNCTUATION.search(text)
                or not spaced and _ODD_BLANK_BEFORE_PUNCTUATION.search(text)):
        text = _SPACE_BEFORE_PUNCTUATION.sub("", text)
    if spaced and "  " not in text:
        body = text.strip(" ")
    else:
        body = " ".join(text.split())
    if not body:
        _add_space(out, text, top)
        return
    if text[0].isspace():
        _add_space(out, text[:len(text) - len(text.lstrip())], top)
    if top and out and out[-1]["t"] == "Space" and body[0] in ".,;:":
        out.pop()
    if out and out[-1]["t"] == "Str":
        out[-1] = {"t": "Str", "c": out[-1]["c"] + body}
    else:
        out.append({"t": "Str", "c": body})
    if text[-1].isspace():
        _add_space(out, text[len(text.rstrip()):], top)


def _add_space(out: list, space: str, top: bool) -> None:
    if not out or out[-1]["t"] in ("Space", "SoftBreak", "LineBreak"):
        return
    out.append({"t": "SoftBreak" if "\n" in space else "Space"})


def has_text(inlines: list) -> bool:
    """Whether inlines hold a letter or digit (or code, or maths) to read."""
    for node in inlines:
        kind = node["t"]
        if kind == "Str":
            if _ALNUM.search(node["c"]):
                return True
        elif kind in ("Code", "Math"):
            if node["c"][1].strip():
                return True
        elif kind in ("Space", "LineBreak"):
            continue
        elif has_text(node["c"]):
            return True
    return False
