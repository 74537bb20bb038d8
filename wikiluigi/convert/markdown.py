"""The filtered document model (pandoc's JSON AST after the filters) written as pandoc's gfm writer writes it."""
from __future__ import annotations

import re

# What pandoc's gfm writer (`gfm-raw_html-tex_math_gfm`, `--wrap=none`) escapes in text: the
# characters of Markdown syntax, `<`/`>` (no raw HTML), `|` (pipe tables), `$` (TeX maths), `~~`.
_ESCAPE = re.compile(r"[\[\]`*<>|$\\]|~(?=~)|_|!\[")
_ESCAPED = "[]`*<>|$\\~_!"  # every character a match of _ESCAPE starts with
# A paragraph line that Markdown would read as a list item or a table row.
_ORDERED_MARKER = re.compile(r"\d{1,9}[.)](?=\s|$)|\(\d{1,9}\)(?=\s|$)")
_SUPERSCRIPT = {**{str(d): c for d, c in zip("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")},
                "+": "⁺", "-": "⁻", "−": "⁻", "=": "⁼", "(": "⁽", ")": "⁾", " ": " "}
_SUBSCRIPT = {**{str(d): c for d, c in zip("0123456789", "₀₁₂₃₄₅₆₇₈₉")},
              "+": "₊", "-": "₋", "−": "₋", "=": "₌", "(": "₍", ")": "₎", " ": " "}


def _escape_match(match: re.Match) -> str:
    found = match.group(0)
    if found == "_":
        text, at = match.string, match.start()
        if 0 < at < len(text) - 1 and text[at - 1].isalnum() and text[at + 1].isalnum():
            return "_"  # intraword underscores are left alone
        return "\\_"
    if found == "\\":  # pandoc writes a text `\ and` as `\\and`, dropping the blank; here it stays
        after = match.string[match.end():match.end() + 1]
        return "\\" if after.isalnum() else "\\\\"
    return "\\" + found


def escape(text: str) -> str:
    """A Str's text with Markdown's syntax characters escaped."""
    for character in _ESCAPED:  # (substring searches: the pattern is tried at every character, 5x slower)
        if character in text:
            return _ESCAPE.sub(_escape_match, text)
    return text


def inlines(nodes: list) -> str:
    """Inline nodes as Markdown text."""
    out: list[str] = []
    for i, node in enumerate(nodes):
        kind = node["t"]
        if kind == "Str":  # a `#` that starts a Str (after other inlines) is escaped as pandoc does
            text = node["c"]
            out.append("\\#" + escape(text[1:]) if text[:1] == "#" else escape(text))
        elif kind in ("Space", "SoftBreak"):
            out.append(" ")
        elif kind == "Emph":
            if node["c"]:  # emphasis of emphasis: pandoc writes neither
                if all(child["t"] == "Emph" for child in node["c"]):
                    out.append(inlines([i for child in node["c"] for i in child["c"]]))
                else:
                    out.append("*" + inlines(node["c"]) + "*")
        elif kind == "Strong":
            if node["c"]:
                out.append("**" + inlines(node["c"]) + "**")
        elif kind == "Strikeout":
            if node["c"]:
                out.append("~~" + inlines(node["c"]) + "~~")
        elif kind in ("Superscript", "Subscript"):
            out.append(_script(node))
        elif kind == "Code":
            out.append(_code(node["c"][1]))
        elif kind == "Math":
            kind, tex = node["c"]
            mark = "$$" if kind["t"] == "DisplayMath" else "$"
            out.append(mark + tex + mark)
        elif kind == "LineBreak":
            out.append("\\\n")
        elif kind in ("Span", "Link", "Cite"):
            out.append(inlines(node["c"][1]))
        elif kind == "Quoted":
            inner = inlines(node["c"][1])
            out.append(f"‘{inner}’" if node["c"][0]["t"] == "SingleQuote" else f"“{inner}”")
        elif kind in ("Underline", "SmallCaps"):
            out.append(inlines(node["c"]))
        # RawInline, Note, Image: not written (the filters leave none)
    return "".join(out)


def _script(node: dict) -> str:
    """Super- and subscripts: Unicode's digits and signs where every character has one, else `^(x)`/`_(x)`."""
    table = _SUPERSCRIPT if node["t"] == "Superscript" else _SUBSCRIPT
    content = node["c"]
    if not content:
        return ""
    if all(child["t"] in ("Str", "Space", "SoftBreak") for child in content):
        raw = "".join(child["c"] if child["t"] == "Str" else " " for child in content)
        if all(c in table for c in raw):
            return "".join(table[c] for c in raw)
    rendered = inlines(content)
    if all(c in _SUPERSCRIPT for c in rendered):
        return "".join(_SUPERSCRIPT[c] for c in rendered)
    return ("^(" if node["t"] == "Superscript" else "_(") + rendered + ")"


def _code(code: str) -> str:
    longest = max((len(run) for run in re.findall("`+", code)), default=0)
    marker = "`" * (longest + 1)
    spacer = " " if longest else ""
    return marker + spacer + code + spacer + marker


def _paragraph(nodes: list) -> str:
    text = inlines(nodes)
    first = text[:1]
    if first in ("+", "*", "-") and text[1:2].isspace():
        return "\\" + text
    if first == "|":
        return "\\" + text
    if first and (first.isalnum() or first == "("):
        match = _ORDERED_MARKER.match(text)
        if match:
            marker = match.group(0)
            escaped = re.sub(r"[.()]", lambda m: "\\" + m.group(0), marker)
            return escaped + text[match.end():]
    return text


def _indent(text: str, first: str, rest: str) -> str:
    lines = text.split("\n")
    return "\n".join([first + lines[0]] + [rest + line if line else line for line in lines[1:]])


def _item_ends_with_tight_list(blocks: list) -> bool:
    if not blocks or blocks[-1]["t"] not in ("BulletList", "OrderedList"):
        return False
    last = blocks[-1]
    return _tight(last["c"] if last["t"] == "BulletList" else last["c"][1])


def _tight(items: list) -> bool:
    return all(not item or item[0]["t"] == "Plain" for item in items)


def _list(items: list, markers: list[str]) -> str:
    out: list[str] = []
    tight = _tight(items)
    for item, marker in zip(items, markers):
        text, trailing = blocks_with_trailing(item, True)
        if tight or _item_ends_with_tight_list(item):
            trailing = 1
        out.append(_indent(text, marker, " " * len(marker)) + "\n" * trailing)
    return "".join(out).rstrip("\n")


def _ordered_markers(start: int, count: int) -> list[str]:
    markers = []
    for number in range(start, start + count):
        marker = f"{number}."
        marker = marker.ljust(3)
        markers.append(marker + (" " * (4 - len(marker)) if len(marker) < 4 else " "))
    return markers


def block(node: dict, in_list: bool = False) -> tuple[str, int]:
    """One block as Markdown, and how many newlines must follow it (1 after a Plain in a list, else 2:
    pandoc writes a Plain outside lists as a paragraph)."""
    kind = node["t"]
    if kind == "Para":
        return _paragraph(node["c"]), 2
    if kind == "Plain":
        return _paragraph(node["c"]), 1 if in_list else 2
    if kind == "Header":
        return "#" * node["c"][0] + " " + inlines(node["c"][2]), 2
    if kind == "BulletList":
        return _list(node["c"], ["- "] * len(node["c"])), 2
    if kind == "OrderedList":
        (start, _, _), items = node["c"]
        return _list(items, _ordered_markers(start, len(items))), 2
    if kind == "BlockQuote":
        text, _ = blocks_with_trailing(node["c"], in_list)
        return "\n".join("> " + line if line else ">" for line in text.split("\n")), 2
    if kind == "CodeBlock":
        (_, classes, _), code = node["c"]
        if classes:
            fence = "```"
            runs = [len(line) for line in code.split("\n") if line and set(line) == {"`"}]
            if runs and max(runs) >= 3:
                fence = "`" * (max(runs) + 1)
            return f"{fence} {classes[0]}\n{code}\n{fence}", 2
        return "\n".join("    " + line if line else line for line in code.split("\n")), 2
    if kind == "LineBlock":
        return _paragraph_lines(node["c"]), 2
    if kind == "Div":
        text, _ = blocks_with_trailing(node["c"][1], in_list)
        return text, 2
    raise ValueError(f"the Markdown writer has no rule for a {kind} block")


def _paragraph_lines(lines: list) -> str:
    nodes: list = []
    for line in lines:
        if nodes:
            nodes.append({"t": "LineBreak"})
        nodes.extend(line)
    return _paragraph(nodes)


def blocks_with_trailing(nodes: list, in_list: bool = False) -> tuple[str, int]:
    out: list[str] = []
    trailing = 0
    for node in nodes:
        text, after = block(node, in_list)
        if out:
            out.append("\n" * trailing)
        out.append(text)
        trailing = after
    return "".join(out), max(trailing, 1)


def write(blocks: list) -> str:
    """A page's filtered blocks as Markdown, ending with one newline (as convert_pages stores it)."""
    text, _ = blocks_with_trailing(blocks)
    return text.strip() + "\n"
