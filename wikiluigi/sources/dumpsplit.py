"""A plain dump cut in one pass into one file of pages per chunk, so that each chunk reads only its own.

A plain `.xml`, `.xml.bz2`, `.gz` or `.xz` export can only be read from its start. Instead of every chunk
reading it (chunks x dump size), one task reads it once and leaves each chunk's pages in
`.cache/dump-chunks/<manifest>/chunk-<N>.jsonl.gz` (JSON lines, gzip level 1); `split.json`, written
last, says which derived manifest and which dump the files were cut for, and each file's size.

A compressed dump costs most of its reading in decompression, and DeriveManifest has read it once already:
for an `all_pages` manifest its pass keeps the pages of the manifest's namespaces in a spool
(`spool.jsonl.gz`, the chunk files' lines in dump order, `spool.json` written last), which the split reads
instead of the dump when it holds every page of the derived manifest, then removes.
"""
import bisect
import errno
import gzip
import json
import os
import zlib
from pathlib import Path
from typing import Iterator

from wikiluigi import durable, pagefiles, paths
from wikiluigi.errors import DumpError
from wikiluigi.sources import dump
from wikiluigi.sources.derived import Derived
from wikiluigi.sources.mediawiki import Revision

# Each chunk's pages wait in memory up to this many bytes, then go to its file as one gzip member:
# memory is chunks x this (at most MAX_CHUNKS x 64 KiB), however many pages the dump holds.
_BUFFER_BYTES = 1 << 16
SPLIT_RECORD = "split.json"
SPOOL, SPOOL_RECORD = "spool.jsonl.gz", "spool.json"
_SPOOL_BUFFER_BYTES = 1 << 20


def folder(manifest: str) -> Path:
    return paths.data_dir() / ".cache" / "dump-chunks" / manifest


def chunk_file(manifest: str, chunk: int) -> Path:
    return folder(manifest) / f"chunk-{chunk:05d}.jsonl.gz"


def stamp(derived: Derived) -> dict:
    """What the split files were cut for: a change of any of these cuts them again."""
    derived_file = paths.derived_manifest(derived.name)
    return {"manifest_sha256": derived.manifest_sha256, "dump_stamp": derived.dump_stamp,
            "chunk_size": derived.chunk_size, "pages": len(derived.titles),
            "derived_mtime_ns": derived_file.stat().st_mtime_ns if derived_file.exists() else 0}


def _record(derived: Derived) -> dict | None:
    try:
        recorded = json.loads((folder(derived.name) / SPLIT_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def is_split(derived: Derived, chunk: int | None = None) -> bool:
    """Whether the chunk files (or the one of `chunk`) were cut for this derived manifest and are each the
    size split.json recorded (a file cut short, grown or gone is cut again)."""
    recorded = _record(derived)
    if recorded is None or {k: v for k, v in recorded.items() if k != "sizes"} != stamp(derived):
        return False
    sizes = recorded.get("sizes")
    if not isinstance(sizes, list) or len(sizes) != derived.chunk_count:
        return False
    if chunk is not None:
        return 0 <= chunk < len(sizes) and _size(chunk_file(derived.name, chunk)) == sizes[chunk]
    return all(_size(chunk_file(derived.name, number)) == size for number, size in enumerate(sizes))


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _chunk_line(page) -> bytes:
    return json.dumps({"title": page.title, "revision_id": page.revision_id, "timestamp": page.timestamp,
                       "text": page.text}, ensure_ascii=False).encode("utf-8") + b"\n"


class Spool:
    """The pages of some namespaces (redirects left out) kept from DeriveManifest's pass over a compressed
    dump (`dump_stamp`: its size and time before the pass), so that the split need not decompress it again.
    Used as a context: `add` each page inside it; the spool is kept when the block ends without an error,
    else its temporary file goes (a spool never finished is no spool)."""

    def __init__(self, manifest: str, namespaces, dump_stamp: str):
        self.namespaces, self.dump_stamp = frozenset(namespaces), dump_stamp
        self.path = folder(manifest) / SPOOL
        self.buffer: list[bytes] = []
        self.size = 0

    def __enter__(self) -> "Spool":
        target = self.path.parent
        durable.make_folder(target)
        (target / SPOOL_RECORD).unlink(missing_ok=True)  # (the record first: a spool without one is none)
        self.path.unlink(missing_ok=True)
        pagefiles.remove_stale_temporaries(target)  # (a spool or split of a killed run)
        self.file = pagefiles.open_atomic(self.path)
        self.out = self.file.__enter__()
        return self

    def add(self, page) -> None:
        if page.ns in self.namespaces and not page.is_redirect:
            line = _chunk_line(page)
            self.buffer.append(line)
            self.size += len(line)
            if self.size >= _SPOOL_BUFFER_BYTES:
                self._flush()

    def _flush(self) -> None:
        self.out.write(gzip.compress(b"".join(self.buffer), compresslevel=1, mtime=0))
        self.buffer, self.size = [], 0

    def __exit__(self, *error) -> None:
        """The spool on disk under its name (open_atomic), then its record: the dump it was read from, its size."""
        if error[0] is None:
            try:
                self._flush()
            except BaseException as failed:
                self.file.__exit__(type(failed), failed, failed.__traceback__)
                raise
        self.file.__exit__(*error)
        if error[0] is None:
            pagefiles.write_json(self.path.parent / SPOOL_RECORD,
                                 {"dump_stamp": self.dump_stamp, "size": _size(self.path)})


def _spooled_pages(derived: Derived) -> Iterator | None:
    """The pages DeriveManifest's pass kept for this dump, as the split reads them; None when there is no
    spool of this dump (another dump, cut short, never finished)."""
    spool = folder(derived.name) / SPOOL
    try:
        recorded = json.loads((spool.parent / SPOOL_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or recorded.get("dump_stamp") != derived.dump_stamp \
            or recorded.get("size") != _size(spool):
        return None

    def pages():
        try:
            with gzip.open(spool, "rb") as lines:
                for line in lines:
                    yield json.loads(line)["title"], line
        except (OSError, EOFError, ValueError, KeyError, zlib.error) as error:
            raise _SpoolUnreadable(str(error)) from None
    return pages()


class _SpoolUnreadable(Exception):
    """The spool is damaged: the split reads the dump instead."""


def _forget_spool(target: Path) -> None:
    (target / SPOOL_RECORD).unlink(missing_ok=True)
    (target / SPOOL).unlink(missing_ok=True)


def split(derived: Derived, progress=None) -> int:
    """One pass over the dump (or over DeriveManifest's spool of it, when that holds every page): every page
    of the derived manifest into its chunk's file. Returns the number of pages written; a page the dump
    does not hold is simply absent (its chunk says so). Each chunk is written to a temporary file of this
    run's own (never one a killed run left), fsync'ed and renamed into place at the end; split.json, with
    each file's size, is written last."""
    target = folder(derived.name)
    durable.make_folder(target)
    (target / SPLIT_RECORD).unlink(missing_ok=True)
    durable.sync_folder(target)  # no longer split, on disk before any chunk file goes
    for old in [*target.glob("chunk-*"), *target.glob(".chunk-*.part")]:  # .part: an older wikiluigi's
        old.unlink()
    pagefiles.remove_stale_temporaries(target)
    spooled, written = _spooled_pages(derived), None
    if spooled is not None:
        try:
            written = _cut(derived, target, spooled, progress, every_page=True)
        except _SpoolUnreadable:
            pass
    _forget_spool(target)  # (used, or of no use: its disk back either way)
    if written is not None:
        return written
    dump_pages = ((page.title, _chunk_line(page))
                  for page in dump.iter_pages(Path(derived.source["dump"]), titles=derived.title_set))
    return _cut(derived, target, dump_pages, progress)


def _cut(derived: Derived, target: Path, pages, progress, every_page: bool = False) -> int | None:
    """(title, chunk line) of the pages into the chunk files; with `every_page`, None (nothing written)
    when some page of the derived manifest was not among them."""
    firsts = [derived.titles[i] for i in range(0, len(derived.titles), derived.chunk_size)]
    buffers: dict[int, list[bytes]] = {}
    sizes: dict[int, int] = {}
    temporaries: dict[int, Path] = {}
    written = 0

    def flush(chunk: int) -> None:
        if chunk not in temporaries:
            temporaries[chunk] = pagefiles.temporary_name(chunk_file(derived.name, chunk))
            mode = "xb"
        else:
            mode = "ab"
        with open(temporaries[chunk], mode) as out:
            out.write(gzip.compress(b"".join(buffers.pop(chunk)), compresslevel=1, mtime=0))
        sizes[chunk] = 0

    wanted, seen = derived.title_set, set()
    try:
        for title, line in pages:
            if every_page:  # (a spool holds every page of the namespaces, each as often as the dump)
                if title not in wanted or title in seen:
                    continue
                seen.add(title)
            chunk = bisect.bisect_right(firsts, title) - 1
            buffers.setdefault(chunk, []).append(line)
            sizes[chunk] = sizes.get(chunk, 0) + len(line)
            if sizes[chunk] >= _BUFFER_BYTES:
                flush(chunk)
            written += 1
            if progress and written % 1000 == 0:
                progress(written, len(derived.titles))
        if every_page and written < len(derived.titles):
            return None
        for chunk in list(buffers):
            flush(chunk)
        durable.sync_files(list(temporaries.values()))   # every chunk's file on disk (one syncfs), then named
        for chunk in sorted(temporaries):
            os.replace(temporaries.pop(chunk), chunk_file(derived.name, chunk))
        durable.sync_folder(target)
        record = {**stamp(derived), "sizes": [_size(chunk_file(derived.name, chunk))
                                              for chunk in range(derived.chunk_count)]}
        pagefiles.write_json(target / SPLIT_RECORD, record)
    except OSError as error:
        advice = ("the disk is full: free some space there, then run again" if error.errno in (errno.ENOSPC,
                  errno.EDQUOT) else "run again")
        raise DumpError(f"{derived.name}: cutting {derived.source['dump']} into {target} stopped: {error}; "
                        f"{advice} (the split starts afresh).") from None
    finally:
        for tmp in temporaries.values():
            tmp.unlink(missing_ok=True)
    return written


class SplitChunk:
    """The pages of one chunk, read from its split file."""

    def __init__(self, path: Path, dump_name: str):
        self.path = path
        self.dump_name = dump_name

    def pages(self, wanted: set[str]) -> Iterator[Revision]:
        if not self.path.exists():
            return  # no page of this chunk was in the dump
        try:
            with gzip.open(self.path, "rt", encoding="utf-8") as lines:
                for line in lines:
                    page = json.loads(line)
                    if page["title"] in wanted:
                        yield Revision(title=page["title"], text=page["text"], revision_id=page["revision_id"],
                                       timestamp=page["timestamp"])
        except (OSError, EOFError, ValueError, zlib.error) as error:
            # Not the file split.json recorded: it no longer counts as split, and the next run cuts it again.
            (self.path.parent / SPLIT_RECORD).unlink(missing_ok=True)
            raise DumpError(f"{self.path} is damaged ({error}): run again, and the dump is cut again "
                            f"(SplitDump); if this comes back, check the disk.") from None

    def revisions(self, titles: list[str]) -> Iterator[tuple[str, Revision | str]]:
        yield from dump.found_or_missing(titles, {page.title: page for page in self.pages(set(titles))}, self.dump_name)
