"""Page files on disk: atomic, durable writes, failure records, and which pages of a chunk are still to do."""
import contextlib
import functools
import json
import os
import itertools
import threading
import time
from pathlib import Path
from typing import Collection, Iterator

from wikiluigi import paths


_temporary_names = itertools.count()
TEMPORARY_PREFIX, TEMPORARY_SUFFIX = ".tmp-", ".part"
# Another machine's temporary file this old is left over from a kill: no write takes that long.
FOREIGN_TEMPORARY_SECONDS = 24 * 3600


# Whether writes are made durable (fsync of each file before its rename, of its folder after). Off only to
# measure what durability costs (benchmarks/fetch_bench.py); nothing a user sets.
DURABLE = True
_batch = threading.local()


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write through a temporary file in the same folder and rename: a kill leaves the old file or none.
    The file is fsync'ed before the rename and its folder after (once per durable_batch()), so that a
    power cut too leaves the old file or the whole new one, never an empty one.
    The temporary name is made of the pid, the thread, a counter and the machine (cheaper than mkstemp's
    search); remove_stale_temporaries() clears what a killed process left."""
    tmp = temporary_name(path)
    try:
        handle = open(tmp, "xb")
    except FileNotFoundError:
        make_folder(path.parent)
        handle = open(tmp, "xb")
    batch = _current_batch()
    try:
        with handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            if DURABLE and batch is None:
                handle.flush()
                os.fsync(handle.fileno())
        if batch is not None:
            batch.defer(("replace", tmp, path))
            return
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def remove(path: Path) -> bool:
    """Unlink a file durably (in a durable_batch(), in its order among the batch's writes); False when
    there was none."""
    batch = _current_batch()
    if batch is not None:
        batch.defer(("unlink", None, path))
        return True
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    sync_folder(path.parent)
    return True


def temporary_name(path: Path) -> Path:
    """A temporary file name beside `path` that remove_stale_temporaries() knows (for writers of their own)."""
    return path.parent / (f"{TEMPORARY_PREFIX}{os.getpid()}-{threading.get_ident()}-{next(_temporary_names)}"
                          f"@{paths.machine_name()}{TEMPORARY_SUFFIX}")


def publish(tmp: Path, path: Path) -> None:
    """Rename a finished temporary file (written by the caller, e.g. in parts) onto `path`, durably:
    the file is fsync'ed before the rename, its folder after (once per durable_batch())."""
    if DURABLE:
        sync_file(tmp)
    os.replace(tmp, path)
    sync_folder(path.parent)


@contextlib.contextmanager
def open_atomic(path: Path):
    """A binary file to write in parts (token files): written under a temporary name, then fsync'ed and
    renamed onto `path` when the block ends without error; an error or a kill leaves no file at `path`."""
    tmp = temporary_name(path)
    make_folder(path.parent)
    try:
        with open(tmp, "xb") as handle:
            yield handle
            if DURABLE:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def sync_file(path: Path) -> None:
    """fsync one file's data to disk (it may be open elsewhere: this opens it again)."""
    if not DURABLE:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(folder: Path) -> None:
    """Make the names in a folder (a rename, a new file, an unlink) durable: at once, or with the next
    group of the durable_batch() this thread is in (one fsync per folder per group)."""
    if not DURABLE:
        return
    batch = _current_batch()
    if batch is not None:
        batch.folders.add(str(folder))
    else:
        _fsync_folder(str(folder))


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return  # removed meanwhile: nothing of it to keep
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# A durable batch publishes its writes in groups of this many files: a kill loses at most a group's work
# (its temporary files, removed by the next run), and each group costs about one journal commit.
BATCH_FILES = 256


class _Batch:
    """The writes of a durable_batch() not yet published: temporary files written, their renames (and
    unlinks) waiting, in order."""

    def __init__(self):
        self.operations: list[tuple[str, Path | None, Path]] = []
        self.folders: set[str] = set()
        self.logs: list["LineLog"] = []   # open logs whose lines describe the files: synced before them

    def defer(self, operation: tuple[str, Path | None, Path]) -> None:
        self.operations.append(operation)
        if len(self.operations) >= BATCH_FILES:
            self.publish()

    def publish(self) -> None:
        """Sync every temporary file (one syncfs for the group where Linux has it), rename them in order,
        then fsync each folder once."""
        operations, self.operations = self.operations, []
        done = 0
        try:
            for log in self.logs:
                log.sync()
            if DURABLE:
                sync_files([tmp for kind, tmp, _ in operations if kind == "replace"])
            for kind, tmp, path in operations:
                if kind == "replace":
                    os.replace(tmp, path)
                else:
                    path.unlink(missing_ok=True)
                self.folders.add(str(path.parent))
                done += 1
        finally:
            for kind, tmp, _ in operations[done:]:  # not published (an error): no temporary left behind
                if tmp is not None:
                    tmp.unlink(missing_ok=True)
        folders, self.folders = self.folders, set()
        if DURABLE:
            for folder in sorted(folders, key=len, reverse=True):  # a new folder's names before its parent's
                _fsync_folder(folder)


def sync_files(files: list[Path]) -> None:
    """Many new files onto the disk: one syncfs(2) per file system they are on (Linux; one disk flush
    for all, about a tenth of a fsync per file), else an fsync each."""
    folders = {str(path.parent) for path in files}
    devices = {}
    for folder in folders:
        devices.setdefault(os.stat(folder).st_dev, folder)
    if all(_syncfs(folder) for folder in devices.values()):
        return
    for path in files:
        sync_file(path)


@functools.lru_cache(maxsize=1)
def _libc():
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc if hasattr(libc, "syncfs") else None
    except OSError:
        return None


def _syncfs(folder: str) -> bool:
    """syncfs(2) of the file system holding `folder`: False where there is none (or it failed)."""
    libc = _libc()
    if libc is None:
        return False
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return libc.syncfs(fd) == 0
    finally:
        os.close(fd)


def _current_batch() -> _Batch | None:
    return getattr(_batch, "current", None)


@contextlib.contextmanager
def durable_batch():
    """Within it, writes are published in groups (BATCH_FILES): each group's files are fsync'ed together,
    renamed, and their folders fsync'ed once, which costs a fraction of a fsync per page. A page appears
    when its group is published (at the latest when the batch ends, an error included); a kill loses only
    the pages of a group not yet published (done again), a power cut leaves none empty. Batches nest (the
    outermost one publishes)."""
    if _current_batch() is not None:
        yield
        return
    _batch.current = _Batch()
    try:
        yield
    finally:
        batch, _batch.current = _batch.current, None
        batch.publish()


def make_folder(folder: Path) -> None:
    """mkdir -p, with each folder made synced into its parent (a page in a folder that vanishes is lost too)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir(exist_ok=True)
        sync_folder(made.parent)


def remove_stale_temporaries(folder: Path) -> int:
    """Remove the temporary files of writes that never finished (their process was killed): this
    machine's whose process is gone, another machine's after a day. Returns how many were removed."""
    removed = 0
    for name in _temporaries(listing(folder)):
        stem = name[len(TEMPORARY_PREFIX):-len(TEMPORARY_SUFFIX)]
        ids, at, machine = stem.rpartition("@")
        if not at:  # written before temporary names carried the machine
            ids, machine = stem, ""
        path = folder / name
        try:
            if machine and machine != paths.machine_name():
                if time.time() - path.stat().st_mtime < FOREIGN_TEMPORARY_SECONDS:
                    continue
            elif _process_alive(int(ids.split("-")[0])):
                continue
            path.unlink()
            removed += 1
        except (OSError, ValueError):
            continue  # renamed or removed meanwhile, or not a name of ours
    return removed


@functools.lru_cache(maxsize=8)
def _temporaries(names: frozenset[str]) -> tuple[str, ...]:
    return tuple(n for n in names if n.startswith(TEMPORARY_PREFIX) and n.endswith(TEMPORARY_SUFFIX))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LineLog:
    """A file that several processes append whole lines to: each line is one O_APPEND write, so lines
    never interleave; a kill can cut only the last one, and the next writer ends that torn line before
    adding its own (readers skip it: read_json_lines). Its lines are fsync'ed when it is closed, and,
    opened within a durable_batch(), before each group of the batch's files is renamed into place."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None
        self.batch: _Batch | None = None

    def __enter__(self) -> "LineLog":
        make_folder(self.path.parent)
        created = not self.path.exists()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if created:
            sync_folder(self.path.parent)
        self.batch = _current_batch()
        if self.batch is not None:
            self.batch.logs.append(self)
        if not _ends_a_line(self.path):
            os.write(self.fd, b"\n")
        return self

    def write(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode("utf-8"))

    def sync(self) -> None:
        if DURABLE:
            os.fsync(self.fd)

    def __exit__(self, *exc) -> None:
        if self.batch is not None:
            self.batch.logs.remove(self)
        try:
            self.sync()
        finally:
            os.close(self.fd)


def _ends_a_line(path: Path) -> bool:
    """Whether a file is empty or ends with a newline."""
    with open(path, "rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def read_json_lines(path: Path) -> Iterator[dict]:
    """The JSON objects of a LineLog, in order; a line torn by a kill (or empty) is skipped."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                yield entry


def write_json(path: Path, document: dict) -> None:
    write_atomic(path, json.dumps(document, ensure_ascii=False, indent=1) + "\n")


def record_failure(stage_dir: Path, title: str, stage: str, reason: str) -> None:
    write_json(paths.failure_record(stage_dir, title), {"title": title, "stage": stage, "reason": reason})


def clear_failure(stage_dir: Path, title: str) -> None:
    remove(paths.failure_record(stage_dir, title))


# Up to this many titles (a chunk), a check stats each page's own file: its cost is the chunk's, however
# many files the folder holds. Past it (a whole stage's check), one listing of the folder is cheaper.
PER_PAGE_LIMIT = 20_000


def failures(stage_dir: Path, titles: Collection[str] | None = None) -> list[dict]:
    """The failure records in a stage's folder, of the given titles only when titles are given."""
    folder = paths.failure_dir(stage_dir)
    if not os.path.isdir(folder):
        return []  # no page of this stage ever failed: one stat, not one per title
    if titles is not None and len(titles) <= PER_PAGE_LIMIT:
        names = [name for title in titles if _exists(f"{folder}/{(name := f'{paths.title_to_stem(title)}.json')}")]
    else:
        names = sorted(listing(folder))
    if not names:
        return []
    wanted = None if titles is None else titles if isinstance(titles, (set, frozenset)) else set(titles)
    records = []
    for name in names:
        if not name.endswith(".json"):
            continue  # a temporary file
        try:
            data = (folder / name).read_bytes()
        except OSError:
            continue  # removed meanwhile
        if not data:
            continue  # emptied by a power cut: no record (the page is done again, see todo)
        try:
            record = json.loads(data.decode("utf-8"))
        except ValueError:
            record = None
        if not isinstance(record, dict):  # damaged: still a failure, said so, and nothing deleted
            stem = name.removesuffix(".json")
            record = {"title": paths.stem_to_title(stem) or stem, "stage": "unknown",
                      "reason": f"its failure record {folder / name} is unreadable: delete it to try the page again"}
        if wanted is None or record.get("title") in wanted:
            records.append(record)
    return sorted(records, key=lambda record: str(record.get("title")))


def todo(folder: Path, suffix: str, titles: Collection[str], failed_count_as_done: bool = True) -> list[str]:
    """Titles with neither a file in `folder` nor (optionally) a failure record. A chunk's few titles are
    looked up one by one, a whole stage's through one listing of the folder (and one of .failed). An empty
    file counts as missing: no page or record is ever empty, unless a power cut emptied it (the page is
    then done again)."""
    failed_dir = paths.failure_dir(folder)
    left = []
    if len(titles) <= PER_PAGE_LIMIT:
        pages, failed = str(folder), str(failed_dir)  # strings: pathlib's '/' costs more than the stat
        failed_count_as_done = failed_count_as_done and os.path.isdir(failed)
        for title in titles:
            stem = paths.title_to_stem(title)
            if not _filled(f"{pages}/{stem}{suffix}") and not (
                    failed_count_as_done and _filled(f"{failed}/{stem}.json")):
                left.append(title)
        return left
    present = filled_listing(folder)
    failed = filled_listing(failed_dir) if failed_count_as_done else frozenset()
    for title in titles:
        stem = paths.title_to_stem(title)
        if f"{stem}{suffix}" not in present and f"{stem}.json" not in failed:
            left.append(title)
    return left


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _filled(path: str) -> bool:
    """Whether a file exists and is not empty (the same one stat as existence)."""
    try:
        return os.stat(path).st_size > 0
    except (FileNotFoundError, NotADirectoryError):
        return False


def is_filled(path: Path) -> bool:
    """Whether a page file is there and not empty: an empty one is missing (a power cut before fsync)."""
    return _filled(str(path))


# A listing is reused while its folder's mtime is unchanged and more than a second old (a file
# system's mtime ticks are coarse): hundreds of chunks then cost one listdir for a whole check.
_SETTLED_SECONDS = 1.0


def listing(folder: Path) -> frozenset[str]:
    try:
        mtime = folder.stat().st_mtime_ns
    except FileNotFoundError:
        return frozenset()
    if time.time_ns() - mtime < _SETTLED_SECONDS * 1e9:
        return frozenset(os.listdir(folder))
    return _settled_listing(folder, mtime)


@functools.lru_cache(maxsize=64)
def _settled_listing(folder: Path, _mtime: int) -> frozenset[str]:
    return frozenset(os.listdir(folder))


def filled_listing(folder: Path) -> frozenset[str]:
    """The names of a folder's non-empty files (one scandir, a stat per file), reused like listing()'s."""
    try:
        mtime = folder.stat().st_mtime_ns
    except FileNotFoundError:
        return frozenset()
    if time.time_ns() - mtime < _SETTLED_SECONDS * 1e9:
        return _filled_names(folder)
    return _settled_filled_listing(folder, mtime)


@functools.lru_cache(maxsize=64)
def _settled_filled_listing(folder: Path, _mtime: int) -> frozenset[str]:
    return _filled_names(folder)


def _filled_names(folder: Path) -> frozenset[str]:
    names = []
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                if entry.stat().st_size > 0:
                    names.append(entry.name)
            except FileNotFoundError:
                continue  # removed meanwhile
    return frozenset(names)
