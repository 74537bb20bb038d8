"""MediaWiki wikitext -> clean Markdown for training: one pandoc process reads a whole batch, filters run here.

The path of a batch of pages:

1. `wikitext.prepare` (Python, per page, before pandoc): redirects are answered at once; HTML comments, refs,
   galleries, images, category and interlanguage links, magic words, templates and (unless kept)
   tables are cut out of the wikitext (templates named in `template_rules` become their text), and
   bold/italic quote runs are rewritten well nested. This is where pandoc's own trouble is avoided,
   all of it measured on the real Wikipedia sample:
   - refs: pandoc's reader is superlinear in the <ref>s of one document (12 pages: 4 s read one by one,
     36 s read together; 97 pages together did not finish in 400 s), and the gfm writer is quadratic
     in footnotes. Without refs, a batch reads faster than its pages one by one.
   - `'''''x'''''` closers and overlapping bold/italic: the reader backtracks exponentially
     (12 in one paragraph: 2 minutes); see `wikitext.balance_quotes`.
   - 9 of 106 real articles are rejected by pandoc outright: refs running over several lines,
     a malformed table line (`{| class="a" b;"`, `! a ! b|c`); cut-out refs and table attributes, and
     tables when not kept, leave none.
   - pandoc leaks `<gallery>` lines, `:*` items, image captions with nested links and headings
     holding `=` as literal text.
2. One `pandoc -f mediawiki -t json` process reads all pages of the batch, joined with a numbered
   separator paragraph before each page. A page whose markup stays open (an unclosed table, `<pre>`)
   either makes pandoc fail or swallows the next separator; both are detected, and only the pages
   concerned are read again, alone or in smaller batches (`_read`).
3. The filters (`filters.filter_page`) run on each page's JSON blocks, a plain dict walk.
4. One `pandoc -f json -t gfm` process writes all pages back, again split at separator paragraphs.

With `[convert] engine = auto` (the default), steps 2-4 are first tried by the fast path in Python:
`reader.read` makes the filtered document of the cleaned text and `markdown.write` writes what pandoc's
gfm writer would. A page holding what the fast reader leaves to pandoc (tables, definition lists in
lists, poems, block-level HTML other than blockquotes and divs, markup inside code), or on which it
raises anything at all, goes through pandoc as above; `PageResult.engine` says which path wrote it.
`engine = pandoc` sends every page through pandoc.

No Luigi here; pypandoc is imported only when pandoc is first needed.
"""
from __future__ import annotations

import gc
import json
import logging
import re
from contextlib import contextmanager
import secrets
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterable, Mapping

from wikiluigi.config import setting
from wikiluigi.convert.filters import filter_page
from wikiluigi.convert.markdown import write as write_markdown
from wikiluigi.convert.reader import Unsupported, read as read_fast
from wikiluigi.convert.wikitext import normalised_rules, prepare, redirect_target
from wikiluigi.errors import ConvertError

# The Markdown written: GitHub-flavoured (pipe tables, ATX headings, `$math$`), but with no raw HTML
# (wiki links would otherwise come out as <a class="wikilink">) and no header attributes.
MARKDOWN_FORMAT = "gfm-raw_html-tex_math_gfm"
# pandoc's reader without header identifiers: the filters drop them, and making a thousand identical
# headings unique costs pandoc quadratic time.
WIKITEXT_FORMAT = "mediawiki-auto_identifiers"
# A larger allocation area than GHC's default 4 MB: fewer garbage collections while reading big batches.
PANDOC_RTS = ("+RTS", "-A64m", "-RTS")

log = logging.getLogger(__name__)
EMPTY = "empty after filtering"
ENGINES = ("auto", "pandoc")


def engine_setting() -> str:
    """`[convert] engine` from luigi.cfg: auto (the fast path where it covers the page) or pandoc."""
    engine = setting("convert", "engine", "auto").strip().lower()
    if engine not in ENGINES:
        raise ConvertError(f"luigi.cfg [convert] engine = {engine!r} is not one of {', '.join(ENGINES)}: "
                           "set auto (the fast path, pandoc where it does not cover a page) or pandoc")
    return engine
TOO_DEEP = "nested too deeply to convert (lists, tables or tags hundreds of levels deep)"


@dataclass(frozen=True)
class Budget:
    """What converting one page may cost: `page_seconds` for each of its steps (clean-up, pandoc,
    filters) and `memory_mb` of memory (pandoc's heap, the converting process's growth); a batch's
    pandoc gets `page_seconds` plus a second per BATCH_BYTES_PER_SECOND of wikitext, at most
    `batch_seconds`. None: no limit."""

    page_seconds: float | None = 60.0
    memory_mb: int | None = 2048
    batch_seconds: float | None = 600.0

    def for_batch(self, pages: int, size: int) -> float | None:
        if pages <= 1:
            return self.page_seconds
        if self.page_seconds is None:
            return self.batch_seconds
        limit = self.page_seconds + size / BATCH_BYTES_PER_SECOND
        return limit if self.batch_seconds is None else min(limit, max(self.batch_seconds, self.page_seconds))

    def over_time(self) -> str:
        return f"over the {self.page_seconds:g} s budget"

    def over_memory(self) -> str:
        return f"over the {self.memory_mb} MB memory budget"


# pandoc reads ~200 KB of prepared wikitext a second on one core; a batch gets a twentieth of that
# pace (a loaded machine) before it counts as stuck and its pages are read one by one.
BATCH_BYTES_PER_SECOND = 10_000


@dataclass(frozen=True)
class ConvertOptions:
    """What a manifest says about conversion: sections to drop, tables, template rules."""

    drop_sections: tuple[str, ...] = ()
    keep_tables: bool = False
    # Template name -> text, with {1}, {2} for positional and {name} for named parameters.
    template_rules: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, manifest) -> "ConvertOptions":
        return cls(
            drop_sections=tuple(manifest.drop_sections),
            keep_tables=bool(manifest.keep_tables),
            template_rules=dict(manifest.template_rules or {}),
        )


@dataclass(frozen=True)
class PageResult:
    """A converted page: exactly one of `markdown` (the document) and `error` (why there is none);
    `engine`: "fast" or "pandoc", the path that read it; `fallback`: why the fast path left it to pandoc."""

    markdown: str | None = None
    error: str | None = None
    engine: str = "pandoc"
    fallback: str | None = None

    def __post_init__(self):
        if (self.markdown is None) == (self.error is None):
            raise ValueError("a PageResult holds exactly one of markdown and error")

    @property
    def ok(self) -> bool:
        return self.error is None


def convert_page(title: str, wikitext: str, options: ConvertOptions | None = None, *,
                 budget: Budget | None = None) -> PageResult:
    """One page: the same path as `convert_pages`, with a batch of one."""
    return convert_pages({title: wikitext}, options, budget=budget)[title]


def convert_pages(pages: Mapping[str, str], options: ConvertOptions | None = None, *,
                  budget: Budget | None = None,
                  on_step: Callable[[str | None, float | None, str], None] | None = None,
                  engine: str | None = None) -> dict[str, PageResult]:
    """Convert title -> wikitext into title -> PageResult, in the order given.

    One pandoc process reads the batch and one writes it; a page that pandoc rejects or whose markup
    runs into the next page costs extra pandoc runs for it and its neighbours only. `budget` bounds
    each pandoc process (time and heap); a batch that runs out of time has its pages read one by one,
    a page over its budget gets an error. Any error of one page's clean-up or filters is that page's
    error. `on_step(title, seconds, kind)` is told before each step: "python" (a page's clean-up or
    filters) or "pandoc" (a run for one page, or for a batch: title None), with its time limit;
    wikiluigi.convert.budget uses it to stop a step that overruns. `engine`: "auto" or "pandoc" (None:
    luigi.cfg's `[convert] engine`); with auto, a page the fast path reads never reaches pandoc.
    Raises ConvertError only when pandoc itself cannot be run.
    """
    engine = engine or engine_setting()
    fast: dict[str, str] = {}
    fallback: dict[str, str] = {}
    options = options or ConvertOptions()
    budget = budget or Budget()
    step = on_step or (lambda title, seconds, kind: None)
    rules = normalised_rules(options.template_rules)
    drop = frozenset(" ".join(name.split()).casefold() for name in options.drop_sections)
    errors: dict[str, str] = {}
    texts: dict[str, str] = {}
    for title, wikitext in pages.items():
        step(title, budget.page_seconds, "python")
        try:
            target = redirect_target(wikitext)
            if target is not None:
                errors[title] = f"is a redirect to {target}"
                continue
            text = prepare(wikitext, rules, options.keep_tables, drop)
            text.encode("utf-8")
        except Exception as error:  # noqa: BLE001 - whatever one page does, it is that page's failure
            errors[title] = _page_error("the wikitext clean-up", error, budget)
            continue
        if not text.strip():
            errors[title] = EMPTY
            continue
        if engine == "auto":
            try:
                with _no_cycle_collection():
                    blocks = read_fast(title, text, options)
                    markdown = write_markdown(blocks) if blocks is not None else None
            except Unsupported as declined:
                fallback[title] = str(declined)
            except Exception as error:  # noqa: BLE001 - the fast path failing is pandoc's turn, not a failure
                fallback[title] = f"the fast path failed: {type(error).__name__}: {str(error)[:200]}"
            else:
                if markdown is not None:
                    fast[title] = markdown
                    continue
                fallback[title] = "no text left on the fast path"  # pandoc has the last word on emptiness
        texts[title] = text
    if fallback:
        log.info("convert: %d of %d pages by the fast path, %d sent to pandoc (%s)", len(fast), len(pages),
                 len(fallback), "; ".join(f"{title}: {why}" for title, why in list(fallback.items())[:5]))

    documents: dict[str, list] = {}
    api_version = None
    with _no_cycle_collection():
        reads = _read(list(texts.items()), budget, step)
    for title, read in reads.items():
        if isinstance(read, str):
            errors[title] = read
            continue
        blocks, api_version = read
        step(title, budget.page_seconds, "python")
        try:
            with _no_cycle_collection():
                filtered = filter_page(title, blocks, options)
        except Exception as error:  # noqa: BLE001
            errors[title] = _page_error("the filters", error, budget)
            continue
        if filtered is None:
            errors[title] = EMPTY
        else:
            documents[title] = filtered

    written = _write(list(documents.items()), api_version, budget, step)
    results: dict[str, PageResult] = {}
    for title in pages:
        if title in fast:
            results[title] = PageResult(markdown=fast[title], engine="fast")
        else:
            result = PageResult(error=errors[title]) if title in errors else written[title]
            results[title] = PageResult(result.markdown, result.error, "pandoc", fallback.get(title)) \
                if title in fallback else result
    return results


@contextmanager
def _no_cycle_collection():
    """Python's cycle collector paused while JSON trees are built and filtered: they hold no cycles,
    and with millions of nodes alive its passes made the filters superlinear (a 300 KB page of bold
    and italics: 1.1 s instead of 0.2 s)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _page_error(where: str, error: Exception, budget: Budget) -> str:
    """The failure record's reason for an exception raised while converting one page."""
    if isinstance(error, UnicodeError):
        start = getattr(error, "start", None)
        at = f" at character {start}" if start is not None else ""
        return f"the wikitext is not valid Unicode: {getattr(error, 'reason', error)}{at}"
    if isinstance(error, RecursionError):
        return TOO_DEEP
    if isinstance(error, MemoryError):
        return budget.over_memory()
    return f"{where} failed on it: {type(error).__name__}: {str(error)[:200]}"


# --------------------------------------------------------------------------------------------------
# pandoc: one process per batch, reading or writing.

@lru_cache(maxsize=1)
def pandoc_path() -> str:
    try:
        import pypandoc
    except ImportError:
        raise ConvertError("pypandoc is not installed: pip install pypandoc-binary (it ships pandoc)") from None
    try:
        return pypandoc.get_pandoc_path()
    except OSError as error:
        raise ConvertError(f"pypandoc finds no pandoc binary ({error}): pip install pypandoc-binary") from None


class _PandocFailed(Exception):
    """A pandoc run that gave no document: `reason` says why, `line` where (when pandoc said so);
    `split` when a smaller batch may do better (out of time or memory, a document too deep)."""

    def __init__(self, reason: str, line: int | None = None, timed_out: bool = False, split: bool = False):
        super().__init__(reason)
        self.reason, self.line, self.timed_out, self.split = reason, line, timed_out, split


_ERROR_AT = re.compile(r"^Error at (?:\"[^\"]*\" )?\(line (\d+), column (\d+)\):\s*$", re.M)


def _run_pandoc(args: Iterable[str], data: bytes, budget: Budget, seconds: float | None) -> bytes:
    """pandoc's output, its heap capped at the memory budget (`+RTS -M`) and killed after `seconds`."""
    heap = (f"-M{budget.memory_mb}m",) if budget.memory_mb else ()
    command = [pandoc_path(), *PANDOC_RTS[:-1], *heap, PANDOC_RTS[-1], *args]
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=seconds)
    except subprocess.TimeoutExpired:
        raise _PandocFailed(f"over the {seconds:g} s budget (pandoc was stopped)", timed_out=True) from None
    except OSError as error:
        raise ConvertError(f"cannot run pandoc ({command[0]}): {error}") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip()
        if "Heap exhausted" in message:
            raise _PandocFailed(budget.over_memory() + " (pandoc's heap)", split=True)
        where = _ERROR_AT.search(message)
        if where:  # "Error at (line 3, column 7):\nunexpected '!'\nexpecting ...\n<the line>\n   ^"
            lines = message[where.end():].strip("\n").split("\n")
            detail = "; ".join(line for line in lines if line.startswith(("unexpected", "expecting"))) \
                or lines[0]
            raise _PandocFailed(detail[:300], int(where.group(1)))
        detail = message.splitlines()[-1] if message else ""
        raise _PandocFailed(detail[:300] or f"pandoc stopped with exit status {done.returncode}")
    return done.stdout


def _load_json(output: bytes) -> dict:
    try:
        return json.loads(output)
    except RecursionError:  # a list or tags nested hundreds deep: Python's json cannot hold it
        raise _PandocFailed(TOO_DEEP, split=True) from None


def _separator(token: str, index: int) -> str:
    return f"{token}N{index:07d}"


Step = Callable[[str | None, float | None, str], None]


def _read(items: list[tuple[str, str]], budget: Budget, step: Step) -> dict[str, object]:
    """title -> (blocks, api version) or an error string, for every (title, prepared wikitext).

    The pages go through one pandoc process, each after its own separator paragraph. A separator that
    is not a top-level paragraph of the result was swallowed by the page before it (unbalanced markup):
    that page is read again alone and the swallowed ones as a new batch. When pandoc rejects the batch,
    the page holding the line pandoc names is tried alone first (usually the culprit: then the pages
    before and after it are read as two batches); otherwise the batch is bisected. A batch out of time
    has each page read alone, with the whole page budget: one level, not a bisection of slow halves.
    """
    if not items:
        return {}
    token = "WIKILUIGIPAGE" + secrets.token_hex(8).upper()
    pieces, first_lines, line = [], [], 1
    for index, (_, text) in enumerate(items):
        first_lines.append(line)
        piece = f"{_separator(token, index)}\n\n{text}\n\n"
        pieces.append(piece)
        line += piece.count("\n")
    data = "".join(pieces).encode("utf-8")
    seconds = budget.for_batch(len(items), len(data))
    step(items[0][0] if len(items) == 1 else None, seconds, "pandoc")
    try:
        document = _load_json(_run_pandoc([f"--from={WIKITEXT_FORMAT}", "--to=json"], data, budget, seconds))
    except _PandocFailed as failure:
        if len(items) == 1:
            if failure.timed_out or failure.split:
                return {items[0][0]: failure.reason}
            page_line = min((failure.line or 0) - 2, items[0][1].count("\n") + 1)
            where = f" (line {page_line} of the page)" if page_line > 0 else ""
            return {items[0][0]: f"pandoc could not parse the page: {failure.reason}{where}"}
        results: dict[str, object] = {}
        if failure.timed_out:
            for item in items:
                results.update(_read([item], budget, step))
            return results
        if failure.line is not None:
            suspect = max(i for i, first in enumerate(first_lines) if first <= failure.line)
            results.update(_read([items[suspect]], budget, step))
            rest = items[:suspect] + items[suspect + 1:]
            if isinstance(results[items[suspect][0]], str):  # the culprit: the others go on without it
                results.update(_read(items[:suspect], budget, step))
                results.update(_read(items[suspect + 1:], budget, step))
                return results
            items = rest  # an error caused further up (a table never closed): bisect the others
        half = max(1, len(items) // 2)
        results.update(_read(items[:half], budget, step))
        results.update(_read(items[half:], budget, step))
        return results

    version = document.get("pandoc-api-version")
    blocks = document["blocks"]
    found: list[tuple[int, int]] = []  # (page index, block index) of each separator paragraph
    names = {_separator(token, i): i for i in range(len(items))}
    for position, block in enumerate(blocks):
        if block.get("t") == "Para" and len(block["c"]) == 1 and block["c"][0].get("t") == "Str":
            index = names.get(block["c"][0]["c"])
            if index is not None:
                found.append((index, position))
    results = {}
    again: list[tuple[str, str]] = []  # swallowed by another page: read again as a batch
    alone: list[tuple[str, str]] = []  # swallowed the next page: read again by itself
    seen = {index for index, _ in found}
    again.extend(item for i, item in enumerate(items) if i < (found[0][0] if found else len(items)))
    for k, (index, position) in enumerate(found):
        next_index, end = found[k + 1] if k + 1 < len(found) else (len(items), len(blocks))
        if next_index == index + 1:
            results[items[index][0]] = (blocks[position + 1:end], version)
        else:
            alone.append(items[index])
            again.extend(items[i] for i in range(index + 1, next_index) if i not in seen)
    if len(again) == len(items):  # no separator found at all (cannot happen, but must not loop)
        if len(items) == 1:
            return {items[0][0]: "pandoc lost the page: its separator is not in the output"}
        half = len(items) // 2
        return {**_read(items[:half], budget, step), **_read(items[half:], budget, step)}
    for item in alone:
        results.update(_read([item], budget, step))
    results.update(_read(again, budget, step))
    return results


def _write(documents: list[tuple[str, list]], api_version, budget: Budget, step: Step) -> dict[str, PageResult]:
    """title -> PageResult for every (title, filtered blocks), with one pandoc process."""
    if not documents:
        return {}
    token = "WIKILUIGIPAGE" + secrets.token_hex(8).upper()
    blocks: list = []
    for index, (_, page_blocks) in enumerate(documents):
        blocks.append({"t": "Para", "c": [{"t": "Str", "c": _separator(token, index)}]})
        blocks.extend(page_blocks)
    document = {"pandoc-api-version": api_version or [1, 23, 1, 1], "meta": {}, "blocks": blocks}
    args = ["--from=json", f"--to={MARKDOWN_FORMAT}", "--wrap=none"]
    try:
        try:
            data = json.dumps(document, ensure_ascii=False).encode("utf-8")
        except RecursionError:
            raise _PandocFailed(TOO_DEEP, split=True) from None
        seconds = budget.for_batch(len(documents), len(data))
        step(documents[0][0] if len(documents) == 1 else None, seconds, "pandoc")
        output = _run_pandoc(args, data, budget, seconds).decode("utf-8")
    except _PandocFailed as failure:
        if len(documents) == 1:
            reason = failure.reason if failure.timed_out or failure.split else \
                f"pandoc could not write the page: {failure.reason}"
            return {documents[0][0]: PageResult(error=reason)}
        if failure.timed_out:
            return {title: _write([(title, page)], api_version, budget, step)[title] for title, page in documents}
        half = len(documents) // 2
        return {**_write(documents[:half], api_version, budget, step),
                **_write(documents[half:], api_version, budget, step)}
    parts = re.split(rf"^{token}N(\d+)\n", output, flags=re.M)
    numbers = [int(n) for n in parts[1::2]]
    if parts[0].strip() or numbers != list(range(len(documents))):
        if len(documents) == 1:
            return {documents[0][0]: PageResult(error="pandoc lost the page separator while writing")}
        return {title: _write([(title, page)], api_version, budget, step)[title] for title, page in documents}
    return {title: PageResult(markdown=part.strip() + "\n") for (title, _), part in zip(documents, parts[2::2])}
