"""Source code elements (`<source>`, `<syntaxhighlight>`) on the fast path: the code blocks pandoc's path writes."""
from __future__ import annotations

import pytest

from wikiluigi.convert.pandoc import ConvertOptions, convert_pages

READ_FAST = {
    "own lines": 'Before text.\n<source lang="x">\n a = 1\n  b</source>\nAfter text.',
    "in a paragraph": 'The instruction <source lang="cbmbas" inline>LET [] = []</source> is the thing.',
    "blank lines around": 'Para.\n\n<source lang="text" highlight="1,5">\nline1\nline2\n</source>\n\nEnd.',
    "syntaxhighlight": 'Para <syntaxhighlight lang="python">x = 1</syntaxhighlight> end.',
    "no language": "Para <source>x &amp; <b>y</b> ''z''</source> end.",
    "blank code lines": 'Text\n<source lang="c">\n\n  int x;\n\n</source>',
    "markup inside": "<source lang=c>\n* x\n{{y}}\n</source>\n== H ==\ntext",
    "after a list": '* item\n<source lang="c">int x;</source>\n# one',
    "italics beside": "More ''types'' here, <source lang=c>x = y</source> is it.",
}
TO_PANDOC = {
    "in a list item": '* item <source lang="c">int x;</source> more\n* two',
    "italics across": "Text ''it <source lang=c>x</source> more'' end",
    "a tab": "Para <source lang='py'>x\ty</source>",
}


@pytest.mark.parametrize("name", sorted(READ_FAST) + sorted(TO_PANDOC))
def test_source_code_as_pandoc_writes_it(name):
    text = READ_FAST.get(name) or TO_PANDOC[name]
    ours = convert_pages({name: text}, ConvertOptions(), engine="auto")[name]
    theirs = convert_pages({name: text}, ConvertOptions(), engine="pandoc")[name]
    assert ours.markdown == theirs.markdown
    assert ours.engine == ("fast" if name in READ_FAST else "pandoc"), ours.fallback
    assert "```" in ours.markdown or "    " in ours.markdown
