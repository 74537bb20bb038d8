"""Stream the pages of a MediaWiki XML export (.xml, .bz2, .gz, .xz) in memory that stays flat however large."""

from __future__ import annotations

import bz2
import gzip
import html
import io
import lzma
import re
import xml.etree.ElementTree as ET
import zlib
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Mapping
from urllib.parse import urlsplit
from xml.parsers.expat import errors as expat_errors

from wikiluigi.errors import DumpError, quote
from wikiluigi.markup import tag_elements
from wikiluigi.sources.mediawiki import Revision

# Every wiki accepts these English names besides the localised ones its <namespaces> lists.
CANONICAL_NAMESPACES = {
    -2: "Media", -1: "Special", 1: "Talk", 2: "User", 3: "User talk", 4: "Project", 5: "Project talk",
    6: "File", 7: "File talk", 8: "MediaWiki", 9: "MediaWiki talk", 10: "Template", 11: "Template talk",
    12: "Help", 13: "Help talk", 14: "Category", 15: "Category talk",
}
_LEGACY_ALIASES = {"Image": 6, "Image talk": 7}

_COMPRESSIONS = (
    (b"BZh", "bzip2", lambda raw: bz2.BZ2File(raw)),
    (b"\x1f\x8b", "gzip", lambda raw: gzip.GzipFile(fileobj=raw)),
    (b"\xfd7zXZ\x00", "xz", lambda raw: lzma.LZMAFile(raw)),
)
_SEVEN_ZIP = b"7z\xbc\xaf\x27\x1c"


def _compression_of(head: bytes):
    """(name, opener) of the compression a file's first bytes show, or None for plain XML."""
    return next(((name, opener) for magic, name, opener in _COMPRESSIONS if head.startswith(magic)), None)


def is_compressed(path: Path) -> bool:
    """Whether a dump is bzip2, gzip or xz, by its first bytes as the reader tells (then reading it is
    mostly decompressing it)."""
    try:
        with open(path, "rb") as file:
            return _compression_of(file.read(8)) is not None
    except OSError:
        return False
# Expat errors that mean "the input stopped in the middle of the document".
_TRUNCATED = {
    expat_errors.codes[m]
    for m in (expat_errors.XML_ERROR_NO_ELEMENTS, expat_errors.XML_ERROR_UNCLOSED_TOKEN,
              expat_errors.XML_ERROR_PARTIAL_CHAR, expat_errors.XML_ERROR_UNCLOSED_CDATA_SECTION)
}

# Content of these is not parsed as wikitext on the page itself, so a category link in it does not count.
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_HIDDEN_TAGS = ("nowiki", "pre", "includeonly", "math", "syntaxhighlight", "source")
_LINK = re.compile(r"\[\[([^\[\]|\n]*)(?:\|[^\[\]]*)?\]\]")
_REDIRECT = re.compile(r"\A\s*#REDIRECT\s*:?\s*\[\[([^\[\]|]+)(?:\|[^\[\]]*)?\]\]", re.I)
_SPACES = re.compile(r"[\s_]+")
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")  # only complete ones, as MediaWiki


@dataclass(frozen=True)
class SiteInfo:
    """The <siteinfo> of an export: who the wiki is and what its namespaces are called."""

    sitename: str
    base_url: str
    host: str  # netloc of base_url; the dbname when the export has no <base>; "" when it has neither
    namespaces: dict[int, str]  # key -> the site's own name; 0 -> ""
    namespace_aliases: dict[str, int]  # other names the wiki accepts (English canonical names, "Image", ...)
    dbname: str = ""
    case: str = "first-letter"  # "case-sensitive" when $wgCapitalLinks is off
    generator: str = ""

    @property
    def category_names(self) -> tuple[str, ...]:
        """Every name of the category namespace, the site's own first: pass it to category_links()."""
        names = [self.namespaces.get(14) or "Category"]
        names += [name for name, key in self.namespace_aliases.items() if key == 14 and name not in names]
        return tuple(names)


@dataclass(frozen=True)
class DumpPage:
    """One page of an export, as of its last revision in the file."""

    title: str
    ns: int
    page_id: int
    text: str
    revision_id: int | None
    timestamp: str | None  # ISO 8601 as the export writes it, e.g. 2024-01-15T12:00:00Z
    redirect_target: str | None
    model: str = "wikitext"  # content model: wikitext, css, javascript, json, Scribunto, ...

    @property
    def is_redirect(self) -> bool:
        return self.redirect_target is not None


def read_siteinfo(path: str | Path) -> SiteInfo:
    """The export's <siteinfo>, reading only the head of the file. The schema makes <siteinfo> optional:
    without one (or without <base> and <dbname>) every field is empty, `host` included, and the caller
    must name the wiki some other way."""
    reader = _Reader(path)
    with closing(reader.events()) as events:
        for event, elem, name, depth in events:
            if depth == 2 and event == "end" and name == "siteinfo":
                return _siteinfo(elem, reader.path)
            if depth == 2 and event == "start" and name != "siteinfo":
                break
    return SiteInfo(sitename="", base_url="", host="", namespaces={}, namespace_aliases={})


def iter_pages(path: str | Path, titles: Iterable[str] | None = None, *,
               streams: tuple[int, int] | None = None) -> Iterator[DumpPage]:
    """Every page of the export in file order; with `titles`, only those (spaces or underscores alike),
    stopping as soon as all of them were seen. With `streams` (start, end), only the pages of a
    multistream dump's bz2 streams that start at byte offsets (those of its index) from start to before
    end: (offset, offset + 1) reads one stream."""
    wanted = None if titles is None else {_normalise(t) for t in titles}
    if wanted is not None and not wanted:
        return
    reader = _Reader(path, streams)
    root = page = None
    with closing(reader.events()) as events:
        for event, elem, name, depth in events:
            if event == "start":
                if depth == 1:
                    root = elem
                elif depth == 2 and name == "page":
                    page = _PageState(elem)
                continue
            if depth == 3 and page is not None:
                if name == "title":
                    page.title = elem.text or ""
                    page.skip = wanted is not None and page.title not in wanted
                elif name == "revision":
                    if not page.skip:
                        page.revision = _revision(elem, page.title, reader.path)
                    page.elem.remove(elem)  # a full-history page may hold thousands of revisions
            elif depth == 2:
                done = None
                if name == "page" and page is not None and not page.skip:
                    done = _page(elem, page, reader.path)
                page = None
                root.clear()
                if done is not None:
                    yield done
                    if wanted is not None:
                        wanted.discard(done.title)
                        if not wanted:
                            return


def category_links(text: str, category_names: Iterable[str] | str = ("Category",), *,
                   capitalize: bool = True) -> list[str]:
    """The categories a page's wikitext puts it in, as `<first of category_names>:Name`, in order of first
    appearance. Namespace names match case-insensitively; `[[:Category:X]]` (a link), and links inside
    comments, <nowiki>, <pre>, <includeonly>, <math> and code tags do not count. Categories a template adds
    cannot be seen in the wikitext. `capitalize` uppercases the first letter ($wgCapitalLinks, the default;
    pass False for a site whose case is "case-sensitive")."""
    names = [category_names] if isinstance(category_names, str) else list(category_names)
    if not names:
        raise ValueError("category_links needs at least one name of the category namespace")
    prefix = _normalise(names[0])
    folded = {_normalise(n).casefold() for n in names}
    found: dict[str, None] = {}
    text = _COMMENT.sub("", text)
    visible, last = [], 0
    for start, end, *_ in tag_elements(text, _HIDDEN_TAGS):  # a scanner: linear however many never close
        visible.append(text[last:start])
        last = end
    visible.append(text[last:])
    for match in _LINK.finditer("".join(visible)):
        target = match.group(1).strip()
        if target.startswith(":"):
            continue
        ns, colon, rest = target.partition(":")
        if not colon or _normalise(ns).casefold() not in folded:
            continue
        title = _normalise(_ENTITY.sub(lambda m: html.unescape(m.group(0)), rest).partition("#")[0])
        if not title:
            continue
        if capitalize:
            title = title[0].upper() + title[1:]
        found.setdefault(f"{prefix}:{title}", None)
    return list(found)


class _PageState:
    """What is known of the page being read."""

    def __init__(self, elem: ET.Element):
        self.elem = elem
        self.title = ""
        self.skip = False
        self.revision: tuple[int | None, str | None, str, str] | None = None


class _Reader:
    """One pass over an export: (event, element, local name, depth) with every failure a DumpError."""

    def __init__(self, path: str | Path, streams: tuple[int, int] | None = None):
        self.path = Path(path)
        self.streams = streams
        self.pages = 0
        self.last_title: str | None = None

    def events(self) -> Iterator[tuple[str, ET.Element, str, int]]:
        if self.streams is None:
            raw, stream = _open(self.path)
        else:
            raw = stream = io.BufferedReader(_Streams(self.path, *self.streams), 1 << 16)
        depth = 0
        title = None
        try:
            for event, elem in ET.iterparse(stream, events=("start", "end")):
                name = elem.tag.rpartition("}")[2]  # the export's xmlns changes with its schema version
                if event == "start":
                    depth += 1
                    if depth == 1 and name != "mediawiki":
                        raise DumpError(f"{self.path}: not a MediaWiki export (its root element is <{name}>, "
                                        f"not <mediawiki>)")
                    yield event, elem, name, depth
                    continue
                if depth == 3 and name == "title":
                    title = elem.text
                yield event, elem, name, depth
                if depth == 2 and name == "page":
                    self.pages += 1
                    self.last_title = title
                depth -= 1
        except ET.ParseError as error:
            raise self._parse_error(error, depth) from None
        except EOFError:
            raise DumpError(f"{self.path}: the compressed data ends early: the file is truncated "
                            f"{self._where()}; download or export it again") from None
        except (OSError, lzma.LZMAError, zlib.error) as error:
            raise DumpError(f"{self.path}: cannot be decompressed ({error}) {self._where()}") from None
        finally:
            stream.close()
            raw.close()

    def _where(self) -> str:
        if not self.pages:
            return "before the end of its first page"
        return f"after {self.pages} complete pages (the last one: {quote(self.last_title)})"

    def _parse_error(self, error: ET.ParseError, depth: int) -> DumpError:
        line, column = error.position
        reason = str(error).split(": line")[0]
        if depth == 0 and not self.pages:
            return DumpError(f"{self.path}: not XML ({reason} at line {line}, column {column})")
        if error.code in _TRUNCATED:
            return DumpError(f"{self.path}: the XML stops at line {line}, column {column} inside an open element: "
                             f"the file is truncated {self._where()}; download or export it again")
        return DumpError(f"{self.path}: broken XML at line {line}, column {column} ({reason}) {self._where()}")


def _open(path: Path) -> tuple[BinaryIO, BinaryIO]:
    """(the file, the XML byte stream in it), after checking that the stream starts like XML."""
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise DumpError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DumpError(f"{path}: is a folder, not an XML export") from None
    except OSError as error:
        raise DumpError(f"{path}: cannot be opened ({error.strerror})") from None
    try:
        head = raw.read(8)
        raw.seek(0)
        if head.startswith(_SEVEN_ZIP):
            raise DumpError(f"{path}: is a 7z archive, which is not read directly; unpack it (7z x) or "
                            f"recompress it with bzip2")
        kind, stream = "plain", raw
        compression = _compression_of(head)
        if compression is not None:
            kind, stream = compression[0], compression[1](raw)
        try:
            start = stream.peek(512)[:512]
        except (EOFError, OSError, lzma.LZMAError, zlib.error) as error:
            raise DumpError(f"{path}: looks {kind}-compressed but cannot be decompressed ({error})") from None
        start = start.removeprefix(b"\xef\xbb\xbf").lstrip()
        if not start:
            raise DumpError(f"{path}: is empty" + ("" if kind == "plain" else f" once {kind}-decompressed"))
        if not start.startswith(b"<"):
            raise DumpError(f"{path}: not XML (it starts with {start[:20]!r}); expected a MediaWiki export, "
                            f".xml or .xml.bz2")
    except BaseException:
        raw.close()
        raise
    return raw, stream


class _Streams(io.RawIOBase):
    """The decompressed XML of the bz2 streams of a multistream dump that start at byte offsets in
    [start, end), read one after the other with a fresh decompressor each, as one document: their
    <page>s wrapped in a <mediawiki> root."""

    def __init__(self, path: Path, start: int, end: int):
        self.path, self.end = path, end
        try:
            self.raw = open(path, "rb")
        except FileNotFoundError:
            raise DumpError(f"{path}: no such file") from None
        self.raw.seek(start)
        self.position = start
        self.decompressor: bz2.BZ2Decompressor | None = None
        self.pending = memoryview(b"<mediawiki>")
        self.finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending and not self.finished:
            self._decompress_more()
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        return count

    def _decompress_more(self) -> None:
        if self.decompressor is None:
            if self.position >= self.end:
                self.pending, self.finished = memoryview(b"</mediawiki>"), True
                return
            self.decompressor = bz2.BZ2Decompressor()
        block = self.raw.read(1 << 16)
        if not block:
            raise DumpError(f"{self.path}: the bz2 stream at byte {self.position} ends early: the file is "
                            f"truncated; download it again")
        try:
            data = self.decompressor.decompress(block)
        except OSError as error:
            raise DumpError(f"{self.path}: no bz2 stream starts at byte {self.position} ({error}): the index "
                            f"does not belong to this dump; run DeriveManifest again with the dump's own "
                            f"index beside it") from None
        if self.decompressor.eof:  # this stream ends here: the next one starts where its data stops
            self.position = self.raw.tell() - len(self.decompressor.unused_data)
            self.raw.seek(self.position)
            self.decompressor = None
        if data.rstrip().endswith(b"</mediawiki>"):  # the closing stream of the dump
            data = data.rstrip()[:-len(b"</mediawiki>")]
        self.pending = memoryview(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


def multistream_index(path: str | Path) -> Path | None:
    """The index beside a multistream dump, as Wikimedia names it: `X-multistream.xml.bz2` has
    `X-multistream-index.txt.bz2` (or an unpacked `X-multistream-index.txt`); None when there is none."""
    path = Path(path)
    stem = path.name.removesuffix(".bz2").removesuffix(".xml")
    if stem == path.name:
        return None
    for name in (f"{stem}-index.txt.bz2", f"{stem}-index.txt"):
        if (path.parent / name).is_file():
            return path.parent / name
    return None


def iter_index(path: str | Path) -> Iterator[tuple[int, int, str]]:
    """(stream offset, page id, title) of each `offset:page_id:title` line of a multistream index."""
    path = Path(path)
    try:
        handle = bz2.open(path, "rt", encoding="utf-8") if path.suffix == ".bz2" else open(path, encoding="utf-8")
    except OSError as error:
        raise DumpError(f"{path}: cannot be opened ({error.strerror or error})") from None
    number = 0
    try:
        with handle:
            for number, line in enumerate(handle, start=1):
                offset, _, rest = line.partition(":")
                page_id, _, title = rest.partition(":")
                if not offset.isdigit() or not page_id.isdigit() or not title.strip():
                    raise DumpError(f"{path}, line {number}: not an 'offset:page_id:title' line of a "
                                    f"multistream index: {line.strip()[:80]!r}")
                yield int(offset), int(page_id), title.rstrip("\n")
    except (EOFError, OSError, UnicodeDecodeError) as error:
        raise DumpError(f"{path}: unreadable after line {number} ({error}); download the index again") from None


def _normalise(title: str) -> str:
    """A title as MediaWiki spells it: underscores as spaces, runs of blanks as one, no blanks at the ends."""
    return _SPACES.sub(" ", title).strip()


def _number(elem: ET.Element, what: str, title: str, path: Path) -> int:
    try:
        return int((elem.text or "").strip())
    except ValueError:
        raise DumpError(f"{path}: page {quote(title)} has a {what} that is not a number: {quote(elem.text)}") from None


def _revision(elem: ET.Element, title: str, path: Path) -> tuple[int | None, str | None, str, str]:
    """(revision id, timestamp, main-slot text, content model) of a <revision>."""
    revision_id = timestamp = text_elem = None
    model = "wikitext"
    for child in elem:  # direct children only: other slots sit in <content> elements (schema 0.11)
        name = child.tag.rpartition("}")[2]
        if name == "id":
            revision_id = _number(child, "revision id", title, path)
        elif name == "timestamp":
            timestamp = child.text
        elif name == "model":
            model = child.text or model
        elif name == "text":
            text_elem = child
    text = "" if text_elem is None else text_elem.text or ""
    if text_elem is not None and not text and text_elem.get("deleted") is None \
            and (text_elem.get("bytes") or "0").strip() not in ("", "0"):
        raise DumpError(f"{path}: page {quote(title)} has no text although its revision holds "
                        f"{text_elem.get('bytes')} bytes: this is a stub dump without page content; "
                        f"use a pages-articles or Special:Export dump")
    return revision_id, timestamp, text, model


def _page(elem: ET.Element, state: _PageState, path: Path) -> DumpPage:
    ns = page_id = None
    redirect = redirect_elem = None
    for child in elem:
        name = child.tag.rpartition("}")[2]
        if name == "ns":
            ns = _number(child, "namespace", state.title, path)
        elif name == "id":
            page_id = _number(child, "page id", state.title, path)
        elif name == "redirect":
            redirect_elem = child
    if page_id is None:
        raise DumpError(f"{path}: page {quote(state.title)} has no <id>")
    revision_id, timestamp, text, model = state.revision or (None, None, "", "wikitext")
    if redirect_elem is not None and redirect_elem.get("title"):
        redirect = redirect_elem.get("title")
    elif model == "wikitext":  # older exports flag redirects without a target, or not at all
        match = _REDIRECT.match(text)
        if match:
            target = _normalise(match.group(1).partition("#")[0].lstrip(":"))
            redirect = target[:1].upper() + target[1:] or None
    if ns is None:
        raise DumpError(f"{path}: page {quote(state.title)} has no <ns>: exports older than schema 0.6 are not read")
    return DumpPage(title=state.title, ns=ns, page_id=page_id, text=text, revision_id=revision_id,
                    timestamp=timestamp, redirect_target=redirect, model=model)


def _siteinfo(elem: ET.Element, path: Path) -> SiteInfo:
    fields: dict[str, str] = {}
    namespaces: dict[int, str] = {}
    aliases: dict[str, int] = {}
    for child in elem:
        name = child.tag.rpartition("}")[2]
        if name in ("namespaces", "namespacealiases"):
            for ns in child:
                try:
                    key = int(ns.get("key", ""))
                except ValueError:
                    raise DumpError(f"{path}: <siteinfo> has a namespace whose key is not a number: "
                                    f"{quote(ns.get('key'))}") from None
                if name == "namespaces":
                    namespaces[key] = (ns.text or "").strip()
                elif ns.text:
                    aliases[ns.text.strip()] = key
        else:
            fields[name] = (child.text or "").strip()
    for key, canonical in CANONICAL_NAMESPACES.items():
        if key in namespaces and namespaces[key] != canonical:
            aliases.setdefault(canonical, key)
    for alias, key in _LEGACY_ALIASES.items():
        if key in namespaces:
            aliases.setdefault(alias, key)
    base = fields.get("base", "")
    host = urlsplit(base).netloc or fields.get("dbname", "")
    return SiteInfo(sitename=fields.get("sitename", ""), base_url=base, host=host, namespaces=namespaces,
                    namespace_aliases=aliases, dbname=fields.get("dbname", ""),
                    case=fields.get("case") or "first-letter", generator=fields.get("generator", ""))


def found_or_missing(titles: list[str], found: Mapping[str, "DumpPage | Revision"], where: str
                     ) -> Iterator[tuple[str, Revision | str]]:
    """Each title with its page as a Revision, or the reason it has none: not in `where`."""
    for title in titles:
        page = found.get(title)
        if page is None:
            yield title, f"the page is not in {where}"
        else:
            yield title, Revision(title=title, text=page.text, revision_id=page.revision_id, timestamp=page.timestamp)
