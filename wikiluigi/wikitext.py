"""Before pandoc: the wikitext of one page, with what pandoc cannot use or would choke on cut out."""
from __future__ import annotations

import re
from typing import Mapping

_REDIRECT = re.compile(r"\A\s*#\s*REDIRECT\s*:?\s*\[\[([^\[\]|]+)(?:\|[^\[\]]*)?\]\]", re.I)


def redirect_target(wikitext: str) -> str | None:
    """The target of a `#REDIRECT [[X]]` page, as written (section kept), or None for an ordinary page."""
    match = _REDIRECT.match(wikitext)
    if not match:
        return None
    return re.sub(r"[\s_]+", " ", match.group(1)).strip().lstrip(":") or None


_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
# Tags whose content is not wikitext: kept as they are and hidden from the template and link passes.
_PROTECTED = ("nowiki", "pre", "math", "syntaxhighlight", "source")
# Tags dropped with their content: footnotes, media, maps, interactive and transclusion-only parts.
_DROPPED = ("ref", "references", "gallery", "imagemap", "timeline", "graph", "mapframe", "maplink",
            "templatestyles", "categorytree", "inputbox", "includeonly", "score", "hiero", "indicator",
            "section", "charinsert", "templatedata")
# Tags that disappear but whose content stays.
_UNWRAPPED = ("noinclude", "onlyinclude", "chem", "ce")
_ELEMENT = re.compile(
    r"<(?P<tag>" + "|".join(_PROTECTED + _DROPPED + ("poem",)) + r")(?=[\s/>])[^>]*?"
    r"(?:/>|>(?P<body>.*?)</(?P=tag)\s*>)",
    re.S | re.I,
)
# What is left of dropped or unwrapped tags after the pass above: unclosed ones and stray closing tags.
_STRAY_TAG = re.compile(r"</?(?:" + "|".join(_DROPPED + _UNWRAPPED) + r")(?=[\s/>])[^>]*>", re.I)
_MAGIC_WORD = re.compile(r"__[A-Z]{3,}__")
_CATEGORY_LINK = re.compile(r"\[\[\s*category\s*:[^\[\]]*\]\]", re.I)
# [[de:Artikel]]: links to the same page in another language (not [[:de:x]], which is a visible link).
_INTERLANGUAGE_LINK = re.compile(r"\[\[\s*(?:[a-z]{2,3}(?:-[a-z0-9]+)*|simple)\s*:[^\[\]|]*\]\]")
# [http://example.org] with no label: the wiki shows it as "[1]", a number that means nothing in prose.
_NUMBERED_LINK = re.compile(r"\[(?:(?:https?|ftps?|irc|news|gopher):)?//[^\s\[\]<>\"]*\]")
_FILE_LINK = re.compile(r"\[\[\s*(?:file|image)\s*:", re.I)
_LINK_BRACKETS = re.compile(r"\[\[|\]\]")
# Attributes of table and row lines: never needed in Markdown, and a malformed one ({| class="a" b;")
# makes pandoc reject the whole page.
_TABLE_START = re.compile(r"^([ \t]*)\{\|.*$", re.M)
_TABLE_ROW = re.compile(r"^([ \t]*)\|-+.*$", re.M)
# A cell line that starts with the separator (`!! b` on a line of its own): MediaWiki reads a cell.
_CELL_LINE = re.compile(r"^([ \t]*)(?:!!|\|\|)(?=[^}])", re.M)
# `:*` (an indented list item): pandoc keeps it as text; a plain list item is what it means.
_INDENTED_LIST = re.compile(r"^:+(?=[*#])", re.M)
_HEADING = re.compile(r"^(=+)(.+?)(=+)[ \t]*$", re.M)
_MASK = re.compile("\ue000(\\d+)\ue001")
# Left where something was cut out, until the end of prepare: a line that held only cut-out things
# goes altogether, a line that started with one loses the blanks after it (else it would become
# preformatted text), and two quote marks around a cut-out template do not merge into four.
_GONE = "\ue002"
_GONE_LINE = re.compile("^[ \t]*\ue002[\ue002 \t]*(?:\n|\\Z)", re.M)
_GONE_LINE_START = re.compile("^\ue002[\ue002 \t]*", re.M)
_GONE_BETWEEN_QUOTES = re.compile("(?<=')\ue002+(?=')")
# Brackets that held only cut-out templates, or lost their first items: "Algeria ({{IPA}}; {{lang}} x)"
# reads "Algeria (x)", not "Algeria (; x)".
_GONE_ITEM = "(?:'{2,5}\ue002+'{2,5}|\ue002+)"  # a cut-out template, maybe in italics: ''{{transl|..}}''
_GONE_IN_BRACKETS = re.compile(f"\\([ \t]*(?:{_GONE_ITEM}[ \t]*[;,]?[ \t]*)+(\\)?)")
_GONE_BEFORE_CLOSE = re.compile(f"(?:[ \t]*[;,]?[ \t]*{_GONE_ITEM})+[ \t]*\\)")


def prepare(wikitext: str, rules: Mapping[str, str], keep_tables: bool = False,
            drop: frozenset[str] = frozenset()) -> str:
    """The wikitext of one page with what pandoc cannot use taken out (see wikiluigi.convert's docstring).
    `drop`: casefolded headings of sections to leave out."""
    text = wikitext.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub("[\ue000-\ue002]", "", text)
    text = _COMMENT.sub(_GONE, text)
    masked: list[str] = []

    def element(match: re.Match) -> str:
        tag = match.group("tag").lower()
        if tag in _DROPPED:
            return _GONE
        if tag == "poem":  # pandoc does not know <poem>: keep its lines as lines
            body = (match.group("body") or "").strip("\n")
            return "\n\n" + re.sub(r"(?<=\S)\n(?=.)", "<br />\n", body) + "\n\n"
        masked.append(match.group(0))
        return f"\ue000{len(masked) - 1}\ue001"

    text = _ELEMENT.sub(element, text)
    text = _STRAY_TAG.sub(_GONE, text)
    text = _expand_templates(text, rules)
    text = _MAGIC_WORD.sub(_GONE, text)
    text = _CATEGORY_LINK.sub(_GONE, text)
    text = _INTERLANGUAGE_LINK.sub(_GONE, text)
    text = _NUMBERED_LINK.sub(_GONE, text)
    text = _drop_file_links(text)
    if not keep_tables:
        text = _drop_tables(text)
    text = _TABLE_START.sub(r"\1{|", text)
    text = _TABLE_ROW.sub(r"\1|-", text)
    text = _CELL_LINE.sub(lambda m: m.group(0)[:-1], text)
    text = _INDENTED_LIST.sub("", text)
    text = _HEADING.sub(_heading, text)
    if drop:
        text = _drop_sections_early(text, drop)
    if _GONE in text:
        text = _GONE_IN_BRACKETS.sub(lambda m: "" if m.group(1) else "(", text)
        text = _GONE_BEFORE_CLOSE.sub(")", text)
    if "''" in text:
        text = "\n".join(balance_quotes(line) if "''" in line else line for line in text.split("\n"))
    if _GONE in text:
        text = _GONE_LINE.sub("", text)
        text = _GONE_LINE_START.sub("", text)
        text = _GONE_BETWEEN_QUOTES.sub("<nowiki/>", text)
        text = text.replace(_GONE, "")
    if masked:
        text = _MASK.sub(lambda m: masked[int(m.group(1))], text)
    return text.strip("\n")


_HEADING_LINE = re.compile(r"^(={1,6})(.+?)\1[ \t]*$", re.M)
_HEADING_MARKUP = re.compile(r"'{2,}|<nowiki/>|\[\[(?:[^\[\]|]*\|)?|\]\]")


def _drop_sections_early(text: str, drop: frozenset[str]) -> str:
    """Sections with a dropped heading (References, External links, ...) cut out before pandoc reads
    them, up to the next heading of the same or a higher level; the filter on the AST does the same
    for headings this does not recognise (a template in the heading, say)."""
    out, last, dropping = [], 0, None
    for match in _HEADING_LINE.finditer(text):
        level = len(match.group(1))
        if dropping is not None and level > dropping:
            continue
        if dropping is not None:
            last = match.start()
            dropping = None
        name = " ".join(_HEADING_MARKUP.sub("", match.group(2)).replace("&#61;", "=").split()).casefold()
        if name in drop:
            out.append(text[last:match.start()])
            dropping = level
    if dropping is None:
        out.append(text[last:])
    return "".join(out)


def _heading(match: re.Match) -> str:
    """`== a = b ==`: pandoc reads no heading when its text holds `=`; MediaWiki does (as &#61;).
    Unequal sides (`== X ===`) give the smaller level, the rest is text, as in MediaWiki."""
    left, inner, right = match.groups()
    level = min(len(left), len(right), 6)
    inner = "=" * (len(left) - level) + inner + "=" * (len(right) - level)
    if not inner.strip(" \t="):  # a line of only `=`: text, not a heading
        return match.group(0)
    return "=" * level + inner.replace("=", "&#61;") + "=" * level


_TABLE_LINE = re.compile(r"^[ \t:]*(\{\||\|\})", re.M)


def _drop_tables(text: str) -> str:
    """Cut out tables (`{|` ... `|}`, nested ones with them) when they are not kept: pandoc then
    neither spends time on them nor rejects the page for a malformed cell (`! a ! b|c`, seen on
    Wikipedia). A table never closed is left to pandoc."""
    if "{|" not in text:
        return text
    out, last, depth, start = [], 0, 0, 0
    for match in _TABLE_LINE.finditer(text):
        if match.group(1) == "{|":
            if depth == 0:
                start = match.start()
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                end = text.find("\n", match.end())
                end = len(text) if end < 0 else end
                out.append(text[last:start])
                out.append("\n")  # a table is a block: what stood before and after it stays apart
                last = end
    out.append(text[last:])
    return "".join(out)


def _drop_file_links(text: str) -> str:
    """Cut out [[File:...]] and [[Image:...]], nested links in their captions included. pandoc reads the
    simple ones as images, but a caption with a link in italics, a blank line or a <source> block
    leaks out as text ("thumb|left|..."). An image never closed is left to pandoc."""
    if "[[" not in text:
        return text
    out, last = [], 0
    for match in _FILE_LINK.finditer(text):
        if match.start() < last:
            continue
        depth, end = 0, None
        for bracket in _LINK_BRACKETS.finditer(text, match.start()):
            depth += 1 if bracket.group(0) == "[[" else -1
            if depth == 0:
                end = bracket.end()
                break
        if end is None:
            continue
        out.append(text[last:match.start()])
        out.append(_GONE)
        last = end
    out.append(text[last:])
    return "".join(out)


_QUOTE_RUN = re.compile(r"('{2,})")


def balance_quotes(line: str) -> str:
    """One line's bold and italic markup (`''`, `'''`, `'''''`) rewritten well nested and closed.

    MediaWiki pairs these per line and forgives anything: overlaps (`''a '''b'' c'''`), a
    `'''''` that closes, runs left open. pandoc's reader backtracks on them, exponentially: a
    paragraph with twelve `'''''x'''''` took 2 minutes, sixteen never finished. Here each line goes
    through MediaWiki's own state machine (Parser::doQuotes, simplified) and comes out with every
    style opened and closed in order, markers kept apart by `<nowiki/>` so that pandoc reads them
    one way only.
    """
    parts = _QUOTE_RUN.split(line)
    if len(parts) == 1:
        return line
    runs = []
    for i in range(1, len(parts), 2):  # MediaWiki: 4 = apostrophe + bold, more than 5 = apostrophes + both
        run = parts[i]
        if len(run) == 4:
            parts[i - 1] += "'"
            run = "'''"
        elif len(run) > 5:
            parts[i - 1] += "'" * (len(run) - 5)
            run = "'''''"
        parts[i] = run
        runs.append(i)
    bold = [i for i in runs if len(parts[i]) == 3]
    italic = [i for i in runs if len(parts[i]) == 2]
    if len(bold) % 2 and len(italic) % 2:
        # Odd both: one bold run was an apostrophe plus italics (l'''amour). MediaWiki's choice: after a
        # one-letter word first, else after a letter, else the first.
        def before(i):
            return parts[i - 1]
        pick = next((i for i in bold if len(before(i)) >= 2 and before(i)[-2] == " " and before(i)[-1] != " "), None)
        if pick is None:
            pick = next((i for i in bold if before(i) and before(i)[-1] != " "), bold[0])
        parts[pick - 1] += "'"
        parts[pick] = "''"
    out: list[str] = []
    open_: list[str] = []  # styles open, outermost first: "b" (''') or "i" ('')

    def toggle(style, markers):
        if style in open_:  # close it, closing and reopening whatever was opened inside it
            inner = open_[open_.index(style) + 1:]
            markers.extend(reversed(inner))
            markers.append(style)
            del open_[open_.index(style):]
            open_.extend(inner)
            markers.extend(inner)
        else:
            open_.append(style)
            markers.append(style)

    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(part)
            continue
        markers: list[str] = []
        if len(part) == 5:
            if "b" in open_ and "i" in open_:
                for style in reversed(list(open_)):
                    toggle(style, markers)
            elif "i" in open_:
                toggle("i", markers)
                toggle("b", markers)
            else:
                toggle("b", markers)
                toggle("i", markers)
        else:
            toggle("b" if len(part) == 3 else "i", markers)
        out.append(_markers(markers, _last_char(out), parts[i + 1] if i + 1 < len(parts) else ""))
    if open_:
        out.append(_markers(list(reversed(open_)), _last_char(out), ""))
    return "".join(out)


def _last_char(pieces: list[str]) -> str:
    for piece in reversed(pieces):
        if piece:
            return piece[-1]
    return ""


def _markers(styles: list[str], before: str, after: str) -> str:
    text = "<nowiki/>".join("'''" if style == "b" else "''" for style in styles)
    if before.endswith("'"):
        text = "<nowiki/>" + text
    if after.startswith("'"):
        text += "<nowiki/>"
    return text


def template_name(name: str) -> str:
    """A template's name as MediaWiki compares it: `_` = space, first letter case-insensitive,
    `Template:` prefix optional."""
    name = re.sub(r"[\s_]+", " ", name).strip()
    lowered = name.lower()
    for prefix in ("subst:", "safesubst:", "template:"):
        if lowered.startswith(prefix):
            name = name[len(prefix):].strip()
            lowered = name.lower()
    return name[:1].upper() + name[1:]


def normalised_rules(rules: Mapping[str, str]) -> dict[str, str]:
    return {template_name(name): text for name, text in (rules or {}).items()}


_BRACES = re.compile(r"\{\{+|\}\}+")


def _expand_templates(text: str, rules: Mapping[str, str]) -> str:
    """Replace every `{{...}}` (templates, parser functions, `{{{parameters}}}`) by the text of its rule,
    or by nothing.

    Braces pair up as in MediaWiki's preprocessor: a run of `{` is one stack entry; a run of `}` closes
    three braces (a parameter) when both sides have three, else two, and goes on with what is left.
    Only outermost calls are replaced (a rule expands the calls in its arguments itself). Broken
    markup, a `{{` never closed or a `}}` never opened, is dropped rather than left as text.
    """
    if "{{" not in text and "}}" not in text:
        return text
    out: list[str] = []
    stack: list[list[int]] = []  # [position of the run, braces of it still open]
    last = position = 0
    while True:
        match = _BRACES.search(text, position)
        if match is None:
            if not stack:
                break
            start, left = stack[0]  # the outermost `{{` that never closed: drop it, read on after it
            out.append(text[last:start])
            out.append(_GONE)
            last = position = start + left
            stack.clear()
            continue
        run, position = match.group(0), match.end()
        if run[0] == "{":
            stack.append([match.start(), len(run)])
            continue
        close, at = len(run), match.start()
        while close >= 2 and stack:
            start, left = stack[-1]
            size = 3 if left >= 3 and close >= 3 else 2
            begin, end = start + left - size, at + size
            at, close = end, close - size
            if left - size < 2:
                stack.pop()
            else:
                stack[-1][1] = left - size
            if not stack:
                out.append(text[last:begin])
                rendered = _render_template(text[begin:end], rules) if size == 2 else ""
                if not rendered:
                    rendered = _GONE
                elif _alone_on_its_lines(text, begin, end):
                    rendered = f"\n\n{rendered}\n\n"  # a block template ({{Quote}}): a paragraph of its own
                out.append(rendered)
                last = end
        if close >= 2 and not stack:  # closing braces that opened nowhere
            out.append(text[last:at])
            out.append(_GONE)
            last = at + close
    out.append(text[last:])
    return "".join(out)


def _alone_on_its_lines(text: str, begin: int, end: int) -> bool:
    return (begin == 0 or text[begin - 1] == "\n") and (end == len(text) or text[end] == "\n")


def _split_arguments(body: str) -> list[str]:
    """`name|a|b=[[x|y]]` -> ['name', 'a', 'b=[[x|y]]']: pipes inside nested templates or links don't split."""
    parts, depth_braces, depth_links, start, i = [], 0, 0, 0, 0
    while i < len(body):
        pair = body[i:i + 2]
        if pair == "{{":
            depth_braces += 1
            i += 2
        elif pair == "}}" and depth_braces:
            depth_braces -= 1
            i += 2
        elif pair == "[[":
            depth_links += 1
            i += 2
        elif pair == "]]" and depth_links:
            depth_links -= 1
            i += 2
        else:
            if body[i] == "|" and not depth_braces and not depth_links:
                parts.append(body[start:i])
                start = i + 1
            i += 1
    parts.append(body[start:])
    return parts


def _render_template(call: str, rules: Mapping[str, str]) -> str:
    """The text of one template call `{{Name|...}}` by its rule, or "" when it has none."""
    if not rules:
        return ""
    parts = _split_arguments(call[2:-2])
    name = parts[0]
    if ":" in name and not name.strip().lower().startswith(("template:", "subst:", "safesubst:")):
        return ""  # parser functions and magic words: {{#if:...}}, {{DEFAULTSORT:...}}, {{lc:...}}
    rule = rules.get(template_name(name))
    if rule is None:
        return ""
    params: dict[str, str] = {}
    position = 0
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if eq and key.strip() and "{{" not in key and "[[" not in key:
            params[key.strip()] = value.strip()
        else:
            position += 1
            params[str(position)] = part.strip()
    params = {key: _expand_templates(value, rules) for key, value in params.items()}
    return re.sub(r"\{([^{}]+)\}", lambda m: params.get(m.group(1).strip(), ""), rule)
