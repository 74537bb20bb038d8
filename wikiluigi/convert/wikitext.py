"""Before pandoc: the wikitext of one page, with what pandoc cannot use or would choke on cut out."""
from __future__ import annotations

import re
from typing import Iterator, Mapping

from wikiluigi.convert.spans import pair_spans
from wikiluigi.markup import tag_elements

_REDIRECT = re.compile(r"\A\s*+#\s*+REDIRECT\s*+:?+\s*+\[\[([^\[\]|]++)(?:\|[^\[\]]*+)?\]\]", re.I)


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
_ELEMENT_TAGS = _PROTECTED + _DROPPED + ("poem",)
# What is left of these tags after the element pass: unclosed ones and stray closing tags (a <pre>
# never closed is text in MediaWiki; to pandoc, thousands of them are minutes).
# ([^<>] not [^>]: a thousand `<ref ` never closed cost one scan, not one each.)
_STRAY_TAG = re.compile(r"</?(?:" + "|".join(_ELEMENT_TAGS + _UNWRAPPED) + r")(?=[\s/>])[^<>]*+>", re.I)
# `<tag` with no `>` before the next `<`: text in MediaWiki, and to pandoc's reader a tag it tries to
# finish at every later `<` (a thousand `<ref name=a` took seconds): written as text.
_UNFINISHED_TAG = re.compile(r"<(?=/?[A-Za-z][^<>]*+(?:<|\Z))")
_MAGIC_WORD = re.compile(r"__[A-Z]{3,}__")
_CATEGORY_LINK = re.compile(r"\[\[\s*category\s*:[^\[\]]*\]\]", re.I)
# [[de:Artikel]]: links to the same page in another language (not [[:de:x]], which is a visible link).
_INTERLANGUAGE_LINK = re.compile(r"\[\[\s*(?:[a-z]{2,3}(?:-[a-z0-9]+)*|simple)\s*:[^\[\]|]*\]\]")
# [http://example.org] with no label: the wiki shows it as "[1]", a number that means nothing in prose.
_NUMBERED_LINK = re.compile(r"\[(?:(?:https?|ftps?|irc|news|gopher):)?//[^\s\[\]<>\"]*\]")
_FILE_LINK = re.compile(r"\[\[\s*(?:file|image)\s*:", re.I)
_LINK_BRACKETS = re.compile(r"\[\[|\]\]")
# The next `[[` or `]]` (group 1) that is not part of a plain link (`[[a|b]]`, no bracket inside, no file
# link): a plain link opens and closes at once, so the file-link pass need not see it (most of a page's links).
# (Group 1 is empty at the end: the pattern never fails, so it is never tried again at each later character.)
_FILE_LINK_BRACKETS = re.compile(r"(?:[^\[\]]++|\[(?!\[)|\](?!\])|\[\[(?!\s*+(?:file|image)\s*+:)[^\[\]]*+\]\])*+(\[\[|\]\]|\Z)",
                                 re.I)
# A `[[` whose next bracket token is another `[[`: without one, no link holds a link (the depth pass
# would write a copy). Linear: the run after a `[[` stops at the first `[[` or `]]`.
_NESTED_LINK = re.compile(r"\[\[[^\[\]]*+(?:\[(?!\[)[^\[\]]*+|\](?!\])[^\[\]]*+)*+\[\[")
# Attributes of table and row lines: never needed in Markdown, and a malformed one ({| class="a" b;")
# makes pandoc reject the whole page.
# (The line patterns start with "\n", not `^` in MULTILINE mode: a literal first is found by a fast
# search, `^` is tried at every character; prepare's text starts with a "\n" it strips at the end.)
_TABLE_START = re.compile(r"\n([ \t]*)\{\|.*")
_TABLE_ROW = re.compile(r"\n([ \t]*)\|-+.*")
# A cell line that starts with the separator (`!! b` on a line of its own): MediaWiki reads a cell.
_CELL_LINE = re.compile(r"\n([ \t]*)(?:!!|\|\|)(?=[^}])")
# `:*` (an indented list item): pandoc keeps it as text; a plain list item is what it means.
_INDENTED_LIST = re.compile(r"\n:+(?=[*#])")
_HEADING = re.compile(r"^(=[^\n]*+)", re.M)
_HEADING_AFTER_BREAK = re.compile(r"\n(=[^\n]*+)")  # the same where the text starts with "\n" (prepare's)
_HEADING_LINE = re.compile(r"\n(=[^\n]*+)")
# Lists and indentation deeper than this are read at this depth: pandoc's reader takes minutes on a
# list 700 levels deep, and its JSON for a few hundred levels is too deep to load.
MAX_LIST_DEPTH = 16
_DEEP_LIST = re.compile(r"\n([*#:;]{%d})[*#:;]++" % MAX_LIST_DEPTH)
# Tables in tables deeper than this are cut out (with keep_tables; without, every table goes).
MAX_TABLE_DEPTH = 4
# HTML tags that pandoc reads as nested blocks or inlines: those deeper than this are taken out.
MAX_TAG_DEPTH = 16
_NESTING_TAGS = ("div", "span", "blockquote", "center", "small", "big", "sup", "sub", "u", "s", "del", "ins",
                 "font", "p", "b", "i", "em", "strong", "code", "tt", "abbr", "cite", "q", "ul", "ol", "li",
                 "dl", "dd", "dt", "table", "tr", "td", "th", "caption")
_NESTING_TAG = re.compile(r"<(/?)(?:" + "|".join(_NESTING_TAGS) + r")(?=[\s/>])[^<>]*+>", re.I)
# Links in links (not links in MediaWiki either) deeper than this lose their brackets, and a link
# longer than MAX_LINK_CHARS becomes its text: pandoc's reader is superlinear in a link's length
# (a 100 KB label: 2 s, 1 MB: 20 s).
MAX_LINK_DEPTH = 3
MAX_LINK_CHARS = 2000
_INNERMOST_LINK = re.compile(r"\[\[([^\[\]]{%d,}+)\]\]" % MAX_LINK_CHARS)
# Templates whose rule's text holds further templates with rules are expanded this deep, no deeper;
# and a page's rules may write at most this many times its own size (a rule `{1}{1}` nested 20 deep
# would otherwise write a million copies).
MAX_RULE_DEPTH = 8
RULE_OUTPUT_FACTOR = 4
# A run this long without a blank is no prose, and pandoc's reader is superlinear in one that holds
# `|` (400 KB: 9 s, four times 100 KB's): cut out.
MAX_WORD_CHARS = 5000
_LONG_WORD = re.compile(r"(?<!\S)\S{%d,}+" % MAX_WORD_CHARS)  # (tried where a run starts, not in it)
# A paragraph longer than this is split at its next line break: pandoc's reader is superlinear in a
# paragraph full of bold and italics (a 1 MB one took minutes); real paragraphs are a few KB.
MAX_PARAGRAPH_CHARS = 20_000


def _may_hold_long_word(text: str) -> bool:
    """False when `text` surely holds no run of MAX_WORD_CHARS non-blanks: such a run covers a whole window
    [k * half, (k + 1) * half] of the text, and every window holds a space or a line break. A few
    substring searches instead of splitting the whole text into words."""
    half = MAX_WORD_CHARS // 2
    for start in range(0, len(text) - half, half):
        window = text[start:start + half + 1]
        if " " not in window and "\n" not in window:
            return True
    return False


_MASK = re.compile("\ue000(\\d+)\ue001")
# Left where something was cut out, until the end of prepare: a line that held only cut-out things
# goes altogether, a line that started with one loses the blanks after it (else it would become
# preformatted text), and two quote marks around a cut-out template do not merge into four.
_GONE = "\ue002"
# (Each starts with a literal, which the regex engine finds by a fast search: "\n" before a line, as
# prepare's text starts with one, and "'" before the quote marks.)
_GONE_LINE = re.compile("\n[ \t]*+\ue002[\ue002 \t]*+(?=\n|\\Z)")
_GONE_LINE_START = re.compile("\n\ue002[\ue002 \t]*+")
_GONE_BETWEEN_QUOTES = re.compile("'\ue002++(?=')")
_PRIVATE_USE = re.compile("[\ue000-\ue002]")
# Brackets that held only cut-out templates, or lost their first items: "Algeria ({{IPA}}; {{lang}} x)"
# reads "Algeria (x)", not "Algeria (; x)".
# Cut-out things joined by "and", "or" or a comma before the end of a clause go with their joiners:
# "an external link and [http://x] and [[de:Seite]]." reads "an external link.", not "... and and.".
# Possessive quantifiers and the look-behind (a match starts only where a run of them starts, after
# text on its line: a line of only cut-out things is _GONE_LINE's) keep both patterns linear:
# "{{a}} {{b}} ... {{t}} text" took seconds with twenty, minutes with thirty.
_GONE_ITEM = "(?:'{2,5}\ue002++'{2,5}|\ue002++)"  # a cut-out template, maybe in italics: ''{{transl|..}}''
_GONE_IN_BRACKETS = re.compile(f"\\([ \t]*+(?:{_GONE_ITEM}[ \t]*+[;,]?+[ \t]*+)++(\\)?)")
# (A `;` right after a letter or digit may end an entity, `&nbsp;`: not a joiner.)
_GONE_JOINER = "[ \t]*+(?:,|(?<![A-Za-z0-9]);|(?<=[ \t])(?:and|or)(?=[ \t'\ue002]))?+[ \t]*+"
# (The run is matched whole, then kept when no clause end follows it: a pattern that ended in that
# look-ahead tried again after every "and" of a run, quadratic: "A {{t}} and {{t}} ... text".)
_GONE_RUN = re.compile(f"(?<=[^ \t;,\ue002\n])(?:{_GONE_JOINER}{_GONE_ITEM})++[ \t]*+")
_CLAUSE_END = frozenset(").;:,!?\n")
_JOINING = frozenset(",;'" + _GONE)  # what may join cut-out things into one run


# What a run of cut-out things and joiners is made of: _GONE_RUN matches only inside a stretch of these.
_RUN_CHARS = " \t,;'andor" + _GONE
_RUN_STRETCH = re.compile(f"[{_RUN_CHARS}]*+")


def _drop_gone_joiners(line: str) -> str:
    """One line's brackets that held only cut-out things, and cut-out things with their joiners before the
    end of a clause, taken out. _GONE_RUN is tried only on the stretches of _RUN_CHARS around each cut-out
    thing, with a character either side (for its look-behind and the clause's end): tried on the whole
    line, it spent most of the clean-up's time failing at every character."""
    line = _GONE_IN_BRACKETS.sub(lambda m: "" if m.group(1) else "(", line)
    out: list[str] = []
    done, size = 0, len(line)  # line[:done] is in `out`
    found = line.find(_GONE)
    while found >= 0:
        start = done + len(line[done:found].rstrip(_RUN_CHARS))
        end = found
        while True:  # the stretch, and the next ones one character apart (their windows would overlap)
            end = _RUN_STRETCH.match(line, end).end()
            found = line.find(_GONE, end)
            if found < 0 or end + 1 + len(line[end + 1:found].rstrip(_RUN_CHARS)) > end + 1:
                break
            end = found
        window_start, window_end = max(done, start - 1), min(size, end + 1)
        out.append(line[done:window_start])
        out.append(_joiners_dropped(line, window_start, start, end, window_end))
        done = window_end
    out.append(line[done:])
    return "".join(out)


def _joiners_dropped(line: str, window_start: int, start: int, end: int, window_end: int) -> str:
    """line[window_start:window_end] (a stretch line[start:end] with a character either side) with _GONE_RUN's
    runs taken out. The common stretch, cut-out things right after a word then blanks (a footnote after
    its sentence), is decided here without the pattern: it goes when a clause ends after it."""
    stretch = line[start:end]
    after_gone = stretch.lstrip(_GONE)
    rest = after_gone.lstrip(" \t")
    if start > window_start and len(after_gone) < len(stretch) and not _JOINING.intersection(rest):
        # (the pattern's one run here is the cut-out things and the blanks; letters of "and"/"or" after
        # them are no clause's end)
        if not rest and (end == len(line) or line[end] in _CLAUSE_END):
            return line[window_start:start] + line[end:window_end]
        return line[window_start:window_end]
    return _GONE_RUN.sub(_gone_before_close, line[window_start:window_end])


def _gone_before_close(match: re.Match) -> str:
    """A run of cut-out things and their joiners: gone when a clause ends after it, else kept."""
    end = match.end()
    text = match.string
    return "" if end == len(text) or text[end] in _CLAUSE_END else match.group(0)


def prepare(wikitext: str, rules: Mapping[str, str], keep_tables: bool = False,
            drop: frozenset[str] = frozenset()) -> str:
    """The wikitext of one page with what pandoc cannot use taken out (see wikiluigi.convert.pandoc's docstring).
    `drop`: casefolded headings of sections to leave out."""
    text = "\n" + (wikitext.replace("\r\n", "\n").replace("\r", "\n") if "\r" in wikitext else wikitext)
    if "\ue000" in text or "\ue001" in text or _GONE in text:
        text = _PRIVATE_USE.sub("", text)
    text = _COMMENT.sub(_GONE, text)
    masked: list[str] = []
    text = _cut_elements(text, masked)
    text = _STRAY_TAG.sub(_GONE, text)
    text = _UNFINISHED_TAG.sub("&lt;", text) if "<" in text else text
    text = _NESTING_TAG.sub(_Depth(MAX_TAG_DEPTH), text) if "<" in text else text
    text = _expand_templates(text, rules, _RuleBudget(len(text)))
    text = _MAGIC_WORD.sub(_GONE, text)
    text = _CATEGORY_LINK.sub(_GONE, text)
    text = _INTERLANGUAGE_LINK.sub(_GONE, text)
    text = _NUMBERED_LINK.sub(_GONE, text)
    text = _drop_file_links(text)
    if "[[" in text:
        if _NESTED_LINK.search(text):  # (else no link holds a link: none is too deep)
            text = _LINK_BRACKETS.sub(_Depth(MAX_LINK_DEPTH), text)
        for _ in range(MAX_LINK_DEPTH):  # innermost first: an outer link may grow long by it
            text, changed = _INNERMOST_LINK.subn(lambda m: m.group(1).partition("|")[2] or m.group(1), text)
            if not changed:
                break
    text = _drop_tables(text, keep_tables)
    if "{" in text and "{|" in text:  # (a one-character search first: no two-character one over every page)
        text = _TABLE_START.sub(r"\n\1{|", text)
    if "|-" in text:
        text = _TABLE_ROW.sub(r"\n\1|-", text)
    if ("!" in text and "!!" in text) or "||" in text:
        text = _CELL_LINE.sub(lambda m: m.group(0)[:-1], text)
    text = _INDENTED_LIST.sub("\n", text)
    text = _DEEP_LIST.sub(r"\n\1", text)
    text = _HEADING_LINE.sub(_heading, text)
    if len(text) >= MAX_WORD_CHARS and _may_hold_long_word(text) \
            and max(map(len, text.split()), default=0) >= MAX_WORD_CHARS:
        text = _LONG_WORD.sub(_GONE, text)
    if drop:
        text = _drop_sections_early(text, drop)
    text = _rewrite_lines(text, _GONE, _drop_gone_joiners)
    text = _rewrite_lines(text, "''", balance_quotes)
    if _GONE in text:
        text = _GONE_LINE.sub(lambda m: "\n" if m.end() == len(m.string) else "", text)  # (the last line's
        text = _GONE_LINE_START.sub("\n", text)                                          # "\n" stays)
        text = _GONE_BETWEEN_QUOTES.sub("'" + QUOTE_SEPARATOR, text)
        text = text.replace(_GONE, "")
    if len(text) > MAX_PARAGRAPH_CHARS:
        text = _split_long_paragraphs(text)
    text = pair_spans(text, masked)
    if masked:
        text = _MASK.sub(lambda m: masked[int(m.group(1))], text)
    return text.strip("\n")


def _rewrite_lines(text: str, marker: str, rewrite) -> str:
    """`text` with each line that holds `marker` rewritten by `rewrite(line)`, the others untouched (found
    by substring searches: the text is not split into lines)."""
    found = text.find(marker)
    if found < 0:
        return text
    out: list[str] = []
    last = 0  # text[:last] is in `out`; text[last] is a line break, or last is 0
    while found >= 0:
        start = text.rfind("\n", last, found) + 1
        end = text.find("\n", found)
        end = len(text) if end < 0 else end
        out.append(text[last:start])
        out.append(rewrite(text[start:end]))
        last = end
        found = text.find(marker, end)
    out.append(text[last:])
    return "".join(out)


def _split_long_paragraphs(text: str) -> str:
    """A blank line before the first line past MAX_PARAGRAPH_CHARS of a paragraph (not inside a table)."""
    out: list[str] = []
    size = 0
    for line in text.split("\n"):
        if not line.strip():
            size = 0
        elif size > MAX_PARAGRAPH_CHARS and not line.lstrip(" \t:").startswith(("|", "!", "{|")):
            out.append("")
            size = 0
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


_HEADING_MARKUP = re.compile(r"'{2,}|<nowiki/>|\u200b|\[\[(?:[^\[\]|]*\|)?|\]\]")


def _heading_parts(line: str) -> tuple[int, str] | None:
    """(level, text) of a heading line (`== a ==`) as MediaWiki reads it, or None: unequal sides
    (`== X ===`) give the smaller level, the rest is text. String operations, no backtracking: a line
    of a hundred thousand `=` costs one pass."""
    line = line.rstrip(" \t")
    left = len(line) - len(line.lstrip("="))
    if left == len(line) or left == 0:
        return None  # not a heading, or a line of only `=` (text)
    right = len(line) - len(line.rstrip("="))
    if right == 0:
        return None
    level = min(left, right, 6)
    inner = "=" * (left - level) + line[left:len(line) - right] + "=" * (right - level)
    if not inner.strip(" \t="):
        return None
    return level, inner


def _heading(match: re.Match) -> str:
    """`== a = b ==`: pandoc reads no heading when its text holds `=`; MediaWiki does (as &#61;). A line
    that starts with `=` but is no heading (`== a`, `=`) is text in MediaWiki: its first `=` is written
    &#61;, for pandoc's reader tries it as a heading up to every later line that starts with `=`
    (800 lines of `== a`: 10 s, four times 400's)."""
    line = match.group(1)
    parts = _heading_parts(line)
    if parts is None and _GONE in line:  # a heading, then a comment or a template cut out
        parts = _heading_parts(line.rstrip(_GONE + " \t"))
    if parts is None:
        return "\n&#61;" + line[1:]
    level, inner = parts
    return "\n" + "=" * level + inner.replace("=", "&#61;") + "=" * level


def _drop_sections_early(text: str, drop: frozenset[str]) -> str:
    """Sections with a dropped heading (References, External links, ...) cut out before pandoc reads
    them, up to the next heading of the same or a higher level; the filter on the AST does the same
    for headings this does not recognise (a template in the heading, say)."""
    out, last, dropping = [], 0, None
    for match in (_HEADING_AFTER_BREAK if text.startswith("\n") else _HEADING).finditer(text):
        parts = _heading_parts(match.group(1))
        if parts is None:
            continue
        level, inner = parts
        if dropping is not None and level > dropping:
            continue
        if dropping is not None:
            last = match.start(1)
            dropping = None
        name = " ".join(_HEADING_MARKUP.sub("", inner).replace("&#61;", "=").split()).casefold()
        if name in drop:
            out.append(text[last:match.start(1)])
            dropping = level
    if dropping is None:
        out.append(text[last:])
    return "".join(out)


def _cut_elements(text: str, masked: list[str]) -> str:
    """Dropped elements (refs, galleries, ...) become _GONE, protected ones (pre, math, ...) a mask
    that `prepare` puts back at the end, <poem> its lines."""
    out, last = [], 0
    for start, end, tag, body_start, body_end in tag_elements(text, _ELEMENT_TAGS):
        out.append(text[last:start])
        last = end
        if tag in _DROPPED:
            out.append(_GONE)
        elif tag == "poem":  # pandoc does not know <poem>: keep its lines as lines
            body = text[body_start:body_end].strip("\n")
            out.append("\n\n" + re.sub(r"(?<=\S)\n(?=.)", "<br />\n", body) + "\n\n")
        else:
            masked.append(text[start:end])
            out.append(f"\ue000{len(masked) - 1}\ue001")
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


class _Depth:
    """A substitution that takes out what is nested deeper than `limit`: HTML tags (_NESTING_TAG, their
    text stays) or link brackets (`[[`, `]]`). Unbalanced closers only bring the depth back to 0."""

    def __init__(self, limit: int):
        self.limit, self.depth = limit, 0

    def __call__(self, match: re.Match) -> str:
        token = match.group(0)
        if token.startswith(("</", "]]")):
            self.depth = max(0, self.depth - 1)
            return token if self.depth < self.limit else ""
        if token.endswith("/>"):
            return token
        self.depth += 1
        return token if self.depth <= self.limit else ""


_TABLE_LINE = re.compile(r"\n[ \t:]*+(\{\||\|\})")  # (after "\n", not `^`: see _TABLE_START)


def _drop_tables(text: str, keep_tables: bool) -> str:
    """Cut out tables (`{|` ... `|}`, nested ones with them) when they are not kept: pandoc then
    neither spends time on them nor rejects the page for a malformed cell (`! a ! b|c`, seen on
    Wikipedia); a table never closed goes to the end of the page, as MediaWiki shows it. Kept tables
    lose the tables nested in them deeper than MAX_TABLE_DEPTH. `text` starts with "\n" (prepare's)."""
    if "{" not in text or "{|" not in text:
        return text
    limit = MAX_TABLE_DEPTH if keep_tables else 0
    out, last, depth, start = [], 0, 0, 0
    for match in _TABLE_LINE.finditer(text):
        if match.group(1) == "{|":
            if depth == limit:
                start = match.start() + 1  # (the line's start)
            depth += 1
        elif depth:
            depth -= 1
            if depth == limit:
                end = text.find("\n", match.end())
                end = len(text) if end < 0 else end
                out.append(text[last:start])
                out.append("\n")  # a table is a block: what stood before and after it stays apart
                last = end
    if depth > limit and not keep_tables:
        out.append(text[last:start])
        return "".join(out)
    out.append(text[last:])
    return "".join(out)


def _drop_file_links(text: str) -> str:
    """Cut out [[File:...]] and [[Image:...]], nested links in their captions included. pandoc reads the
    simple ones as images, but a caption with a link in italics, a blank line or a <source> block
    leaks out as text ("thumb|left|..."). An image never closed goes to the end of its line (to
    pandoc, thousands of them are minutes).

    Brackets pair up in one pass with a stack (each `]]` closes the latest `[[`), so that thousands of
    file links never closed cost one pass, not one each."""
    first = _FILE_LINK.search(text) if "[[" in text else None
    if first is None:
        return text
    # The pass starts at the first file link: the brackets before it close nothing after it that matters
    # (a `]]` that finds no link open here closes one that is no file link), and they are read the same
    # from there unless a bracket right before it could have taken its first `[`.
    begin = first.start() if first.start() == 0 or text[first.start() - 1] not in "[]" else 0
    ends: dict[int, int] = {}  # start of each file link that closes -> its end
    open_links: list[int] = []  # starts of the `[[` still open; -1 for links that are not file links
    for bracket in _FILE_LINK_BRACKETS.finditer(text, begin):
        if bracket.group(1) == "[[":
            is_file = _FILE_LINK.match(text, bracket.start(1)) is not None
            open_links.append(bracket.start(1) if is_file else -1)
        elif bracket.group(1) and open_links:
            start = open_links.pop()
            if start >= 0:
                ends[start] = bracket.end()
    line_end = -1
    for start in open_links:  # in order: one search per line, however many are open on it
        if start >= 0:
            if line_end < start:
                line_end = text.find("\n", start)
                line_end = len(text) if line_end < 0 else line_end
            ends[start] = line_end
    out, last = [], 0
    for start in sorted(ends):
        if start < last:
            continue  # inside a file link already cut out
        out.append(text[last:start])
        out.append(_GONE)
        last = ends[start]
    out.append(text[last:])
    return "".join(out)


_QUOTE_RUN = re.compile(r"(''+)")  # (not '{2,}: a literal first is found by a fast search, 7x quicker)
# What keeps two quote markers apart for pandoc (`'''` then `''`, not `'''''`): a zero-width space,
# which the filters take out of the text. (`<nowiki/>` did the same, but pandoc's reader is
# superlinear in the number of them: 300 KB of bold and italics took 7 s instead of 2.)
QUOTE_SEPARATOR = "\u200b"


def balance_quotes(line: str) -> str:
    """One line's bold and italic markup (`''`, `'''`, `'''''`) rewritten well nested and closed.

    MediaWiki pairs these per line and forgives anything: overlaps (`''a '''b'' c'''`), a
    `'''''` that closes, runs left open. pandoc's reader backtracks on them, exponentially: a
    paragraph with twelve `'''''x'''''` took 2 minutes, sixteen never finished. Here each line goes
    through MediaWiki's own state machine (Parser::doQuotes, simplified) and comes out with every
    style opened and closed in order, markers kept apart by QUOTE_SEPARATOR so that pandoc reads them
    one way only.
    """
    parts = _QUOTE_RUN.split(line)
    if len(parts) == 1 or _well_nested(parts[1::2]):
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


def _well_nested(runs: list[str]) -> bool:
    """Whether quote runs are bold and italics only (three or two marks), each closed after all opened
    inside it and none left open: what balance_quotes would write again as it is (most lines)."""
    open_: list[int] = []
    for run in runs:
        size = len(run)
        if size != 2 and size != 3:
            return False
        if open_ and open_[-1] == size:
            open_.pop()
        elif size in open_:
            return False
        else:
            open_.append(size)
    return not open_


def _last_char(pieces: list[str]) -> str:
    for piece in reversed(pieces):
        if piece:
            return piece[-1]
    return ""


def _markers(styles: list[str], before: str, after: str) -> str:
    text = QUOTE_SEPARATOR.join("'''" if style == "b" else "''" for style in styles)
    if before.endswith("'"):
        text = QUOTE_SEPARATOR + text
    if after.startswith("'"):
        text += QUOTE_SEPARATOR
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


# (Two patterns, each starting with a literal, which the regex engine finds by a fast search; one pattern
# for both, `\{\{+|\}\}+`, is tried at every character, three times slower.)
_OPENING_BRACES = re.compile(r"\{\{+")
_CLOSING_BRACES = re.compile(r"\}\}+")


def _brace_runs(text: str) -> list[tuple[int, str]]:
    """(start, run) of every run of two or more `{` or `}`, in order."""
    runs = [(match.start(), match.group(0)) for match in _OPENING_BRACES.finditer(text)]
    runs.extend((match.start(), match.group(0)) for match in _CLOSING_BRACES.finditer(text))
    runs.sort()
    return runs


class _RuleBudget:
    """How much template rules may still write on one page, and how deep they may nest."""

    def __init__(self, page_size: int):
        self.left = RULE_OUTPUT_FACTOR * page_size + 10_000
        self.depth = 0


def _template_calls(text: str) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
    """One pass over the braces: the outermost calls (begin, end, braces: 2 a template, 3 a parameter)
    and the spans of broken markup (a `{{` never closed, a `}}` never opened), in order.

    Braces pair up as in MediaWiki's preprocessor: a run of `{` is one stack entry; a run of `}` closes
    three braces (a parameter) when both sides have three, else two, and goes on with what is left.
    A call is outermost when the stack is empty after it closes; an entry left on the stack at the end
    never closed, and the calls inside it are outermost (they never depended on it).
    """
    closed: list[tuple[int, int, int]] = []  # (begin, end, size) in closing order
    broken: list[tuple[int, int]] = []
    stack: list[list[int]] = []  # [position of the run, braces of it still open]
    for at, run in _brace_runs(text):
        if run[0] == "{":
            stack.append([at, len(run)])
            continue
        close = len(run)
        while close >= 2 and stack:
            start, left = stack[-1]
            size = 3 if left >= 3 and close >= 3 else 2
            begin, end = start + left - size, at + size
            at, close = end, close - size
            if left - size < 2:
                stack.pop()
            else:
                stack[-1][1] = left - size
            closed.append((begin, end, size))
        if close >= 2 and not stack:  # closing braces that opened nowhere
            broken.append((at, at + close))
    # What never closed is broken markup: its braces go, what stood inside stays.
    broken.extend((start, start + left) for start, left in stack)
    calls: list[tuple[int, int, int]] = []
    last_end = -1
    for begin, end, size in sorted(closed, key=lambda c: (c[0], -c[1])):  # outermost first
        if begin >= last_end:
            calls.append((begin, end, size))
            last_end = end
    broken.sort()
    return calls, broken


def _expand_templates(text: str, rules: Mapping[str, str], budget: _RuleBudget) -> str:
    """Replace every `{{...}}` (templates, parser functions, `{{{parameters}}}`) by the text of its rule,
    or by nothing; broken markup, a `{{` never closed or a `}}` never opened, is dropped rather than
    left as text. Only outermost calls are replaced (a rule expands the calls in its arguments itself,
    up to MAX_RULE_DEPTH deep). Linear in the text: one pass pairs the braces, one writes the result.
    """
    if "{{" not in text and "}}" not in text:
        return text
    calls, broken = _template_calls(text)
    pieces = sorted([(begin, end, size) for begin, end, size in calls] + [(b, e, 0) for b, e in broken])
    out: list[str] = []
    last = 0
    for begin, end, size in pieces:
        if begin < last:
            continue  # a broken brace run inside a call already replaced
        out.append(text[last:begin])
        rendered = _render_template(text[begin:end], rules, budget) if size == 2 else ""
        if not rendered:
            rendered = _GONE
        elif _alone_on_its_lines(text, begin, end):
            rendered = f"\n\n{rendered}\n\n"  # a block template ({{Quote}}): a paragraph of its own
        out.append(rendered)
        last = end
    out.append(text[last:])
    return "".join(out)


def _alone_on_its_lines(text: str, begin: int, end: int) -> bool:
    return (begin == 0 or text[begin - 1] == "\n") and (end == len(text) or text[end] == "\n")


_ARGUMENT_MARK = re.compile(r"\{\{|\}\}|\[\[|\]\]|\|")


def _split_arguments(body: str) -> list[str]:
    """`name|a|b=[[x|y]]` -> ['name', 'a', 'b=[[x|y]]']: pipes inside nested templates or links don't split."""
    parts, depth_braces, depth_links, start = [], 0, 0, 0
    for mark in _ARGUMENT_MARK.finditer(body):
        token = mark.group(0)
        if token == "{{":
            depth_braces += 1
        elif token == "}}":
            depth_braces = max(0, depth_braces - 1)
        elif token == "[[":
            depth_links += 1
        elif token == "]]":
            depth_links = max(0, depth_links - 1)
        elif not depth_braces and not depth_links:
            parts.append(body[start:mark.start()])
            start = mark.end()
    parts.append(body[start:])
    return parts


def _render_template(call: str, rules: Mapping[str, str], budget: _RuleBudget) -> str:
    """The text of one template call `{{Name|...}}` by its rule, or "" when it has none, or when the
    page's rules have written all they may (`budget`)."""
    if not rules or budget.left <= 0:
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
    if budget.depth >= MAX_RULE_DEPTH:
        return ""
    budget.depth += 1
    try:
        params = {key: _expand_templates(value, rules, budget) for key, value in params.items()}
    finally:
        budget.depth -= 1
    rendered = _RULE_PARAMETER.sub(lambda m: params.get(m.group(1).strip(), ""), rule)
    budget.left -= len(rendered)
    return rendered if budget.left >= 0 else ""


_RULE_PARAMETER = re.compile(r"\{([^{}]++)\}")
