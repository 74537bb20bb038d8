"""Synthetic wikis of any size written as real MediaWiki exports: a Wikimedia-style multistream dump with
its index, or a plain one; for the scale tests and benchmarks/scale_bench.py.

Pages are paragraphs of prose (headings, links, bold, a reference, an infobox-like template), in a tree
of categories (Category:Synthetic > 10 branches > 10 leaves each, every article in one or two leaves),
with a redirect every 20th page. Titles are made of words drawn at random, so their sorted order has
nothing to do with the page ids the dump is ordered by, as on a real wiki.
"""
import bz2
import multiprocessing
import os
import random
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

ROOT_CATEGORY = "Synthetic"
BRANCHES = 10
LEAVES_PER_BRANCH = 10
PAGES_PER_STREAM = 100  # as Wikimedia's multistream dumps

_SYLLABLES = ("ka", "lo", "mer", "tis", "van", "dor", "el", "qua", "ri", "sen", "bel", "tho", "ny", "gar",
              "wen", "fa", "ul", "zo", "pra", "hin", "mo", "sta", "ver", "lin", "cu", "da", "ix", "or")
HEAD = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="en">
  <siteinfo>
    <sitename>Synthetic</sitename>
    <dbname>synthwiki</dbname>
    <base>https://synthetic.example.invalid/wiki/Main_Page</base>
    <generator>MediaWiki 1.39.0</generator>
    <case>first-letter</case>
    <namespaces>
      <namespace key="0" case="first-letter" />
      <namespace key="10" case="first-letter">Template</namespace>
      <namespace key="14" case="first-letter">Category</namespace>
    </namespaces>
  </siteinfo>
"""
TAIL = "</mediawiki>\n"


@dataclass
class SyntheticWiki:
    dump: Path
    index: Path | None
    articles: list[str]   # titles of the articles (namespace 0, not redirects), in page-id order
    pages: int            # every page of the dump: articles, redirects and categories


def _vocabulary(size: int = 6000) -> list[str]:
    """Words of one to three syllables, made once: drawing whole words keeps a million pages quick to write."""
    rng = random.Random(0)
    return sorted({"".join(rng.choices(_SYLLABLES, k=rng.randint(1, 3))) for _ in range(size)})


_VOCABULARY = _vocabulary()


def _words(rng: random.Random, count: int) -> list[str]:
    return rng.choices(_VOCABULARY, k=count)


def _paragraph(rng: random.Random, titles: list[str], sentences: int) -> str:
    out = []
    for _ in range(sentences):
        words = _words(rng, rng.randint(8, 18))
        if titles and rng.random() < 0.5:
            words[rng.randrange(len(words))] = f"[[{rng.choice(titles)}]]"
        if rng.random() < 0.3:
            words[0] = f"'''{words[0]}'''"
        sentence = " ".join(words)
        out.append(sentence[:1].upper() + sentence[1:] + ".")
    return " ".join(out)


def article_text(rng: random.Random, title: str, titles: list[str], categories: list[str],
                 paragraphs: int) -> str:
    parts = [f"{{{{Infobox|name={title}|type={rng.choice(_SYLLABLES)}}}}}",
             f"'''{title}''' is {_paragraph(rng, titles, 1)}"]
    for number in range(paragraphs):
        if number and number % 2 == 0:
            parts.append(f"== {' '.join(_words(rng, 2)).title()} ==")
        parts.append(_paragraph(rng, titles, rng.randint(3, 5)))
    parts[-1] += f"<ref>{' '.join(_words(rng, 6))}, p. {rng.randint(1, 400)}.</ref>"
    parts.append("== References ==\n<references />")
    parts.extend(f"[[Category:{category}]]" for category in categories)
    return "\n\n".join(parts)


def _page_xml(title: str, ns: int, page_id: int, text: str, redirect: str | None = None) -> str:
    redirect_tag = f'\n    <redirect title="{escape(redirect, {chr(34): "&quot;"})}" />' if redirect else ""
    return (f"  <page>\n    <title>{escape(title)}</title>\n    <ns>{ns}</ns>\n    <id>{page_id}</id>{redirect_tag}\n"
            f"    <revision>\n      <id>{page_id + 1_000_000}</id>\n      <timestamp>2024-01-01T00:00:00Z</timestamp>\n"
            f"      <model>wikitext</model>\n      <format>text/x-wiki</format>\n"
            f"      <text bytes=\"{len(text.encode())}\" xml:space=\"preserve\">{escape(text)}</text>\n"
            f"    </revision>\n  </page>\n")


def iter_pages(articles: int, seed: int = 1, paragraphs: int = 4):
    """(title, ns, page_id, text, redirect target) of every page: categories first, then articles with a
    redirect to one of them every 20th page."""
    rng = random.Random(seed)
    leaves = []
    yield (f"Category:{ROOT_CATEGORY}", 14, 1, "The root of the synthetic wiki.", None)
    page_id = 2
    for branch in range(BRANCHES):
        name = f"Branch {branch}"
        yield (f"Category:{name}", 14, page_id, f"[[Category:{ROOT_CATEGORY}]]", None)
        page_id += 1
        for leaf in range(LEAVES_PER_BRANCH):
            leaf_name = f"Leaf {branch}-{leaf}"
            leaves.append(leaf_name)
            yield (f"Category:{leaf_name}", 14, page_id, f"[[Category:{name}]]", None)
            page_id += 1
    seen: set[str] = set()
    recent: list[str] = []
    made = 0
    while made < articles:
        title = " ".join(_words(rng, rng.randint(1, 3))).title()
        if title in seen:
            title = f"{title} {made}"
        seen.add(title)
        categories = rng.sample(leaves, rng.randint(1, 2))
        yield (title, 0, page_id, article_text(rng, title, recent, categories, paragraphs), None)
        page_id += 1
        made += 1
        recent = (recent + [title])[-50:]
        if made % 20 == 0:
            redirect = f"{title} (redirect)"
            seen.add(redirect)
            yield (redirect, 0, page_id, f"#REDIRECT [[{title}]]", title)
            page_id += 1


def write_multistream(folder: Path, articles: int, seed: int = 1, paragraphs: int = 4,
                      name: str = "synthwiki-20240101-pages-articles-multistream") -> SyntheticWiki:
    """`<name>.xml.bz2` (a header stream, streams of 100 pages, a closing stream) and
    `<name>-index.txt.bz2` (`offset:page_id:title` a line) in `folder`, as Wikimedia writes them.
    The streams are compressed by one process per core while this one writes the pages."""
    folder.mkdir(parents=True, exist_ok=True)
    dump, index = folder / f"{name}.xml.bz2", folder / f"{name}-index.txt.bz2"
    titles: list[str] = []
    count = 0

    def streams():
        nonlocal count
        batch: list[tuple] = []
        for page in iter_pages(articles, seed, paragraphs):
            batch.append(page)
            count += 1
            if page[1] == 0 and page[4] is None:
                titles.append(page[0])
            if len(batch) == PAGES_PER_STREAM:
                yield batch
                batch = []
        if batch:
            yield batch

    def xml_of(batches):
        for batch in batches:
            ids_titles.append([(i, t) for t, _, i, _, _ in batch])
            yield "".join(_page_xml(t, ns, i, text, r) for t, ns, i, text, r in batch).encode()

    ids_titles: list[list[tuple[int, str]]] = []
    with open(dump, "wb") as out, bz2.open(index, "wt", encoding="utf-8") as index_out, \
            multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        out.write(bz2.compress(('<?xml version="1.0" encoding="utf-8"?>\n' + HEAD).encode()))
        for number, compressed in enumerate(pool.imap(bz2.compress, xml_of(streams()), chunksize=8)):
            offset = out.tell()
            out.write(compressed)
            index_out.write("".join(f"{offset}:{i}:{t}\n" for i, t in ids_titles[number]))
            ids_titles[number] = []
        out.write(bz2.compress(TAIL.encode()))
    return SyntheticWiki(dump=dump, index=index, articles=titles, pages=count)


def write_plain(path: Path, articles: int, seed: int = 1, paragraphs: int = 4) -> SyntheticWiki:
    """The same wiki as one plain export: `.xml`, or one bz2 stream for a name ending in `.bz2`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    titles, count = [], 0
    opener = bz2.open if path.suffix == ".bz2" else open
    with opener(path, "wt", encoding="utf-8") as out:
        out.write(HEAD)
        for title, ns, page_id, text, redirect in iter_pages(articles, seed, paragraphs):
            out.write(_page_xml(title, ns, page_id, text, redirect))
            count += 1
            if ns == 0 and redirect is None:
                titles.append(title)
        out.write(TAIL)
    return SyntheticWiki(dump=path, index=None, articles=titles, pages=count)
