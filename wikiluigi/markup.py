"""Wikitext's HTML-like elements found by a linear scanner, shared by the dump reader and the clean-up."""
import re
from functools import lru_cache
from typing import Iterator


@lru_cache(maxsize=32)
def _element_openers(tags: tuple[str, ...]) -> re.Pattern:
    return re.compile(r"<(" + "|".join(tags) + r")(?=[\s/>])", re.I)


@lru_cache(maxsize=64)
def _element_closer(tag: str) -> re.Pattern:
    return re.compile(r"</" + re.escape(tag) + r"\s*+>", re.I)


def tag_elements(text: str, tags: tuple[str, ...]) -> Iterator[tuple[int, int, str, int, int]]:
    """(start, end, tag, body start, body end) of each `<tag ...>body</tag>` or `<tag .../>` (body
    empty) in the text, in order, none inside another; tags compare case-insensitively.

    A scanner, as MediaWiki's preprocessor does it, so that thousands of tags never closed cost one
    pass: where no `>` follows, no tag can; where no `</tag>` follows, that tag never closes again.
    """
    openers = _element_openers(tags)
    position, next_gt, never_closed = 0, -1, set()
    while True:
        match = openers.search(text, position)
        if match is None:
            return
        tag = match.group(1).lower()
        if next_gt < match.end():
            next_gt = text.find(">", match.end())
            if next_gt < 0:
                return
        if text[next_gt - 1] == "/" and next_gt - 1 >= match.end():  # <tag .../>
            yield match.start(), next_gt + 1, tag, next_gt + 1, next_gt + 1
            position = next_gt + 1
            continue
        if tag not in never_closed:
            close = _element_closer(tag).search(text, next_gt + 1)
            if close is not None:
                yield match.start(), close.end(), tag, next_gt + 1, close.start()
                position = close.end()
                continue
            never_closed.add(tag)
        position = match.end()
