"""Page files on disk: atomic, durable writes, failure records, and which pages of a chunk are still to do."""
import contextlib
import functools
import hashlib
import json
import os
import itertools
import threading
import time
from pathlib import Path
from typing import Collection, Iterator

from wikiluigi import durable, paths


_temporary_names = itertools.count()
TEMPORARY_PREFIX, TEMPORARY_SUFFIX = ".tmp-", ".part"
# Another machine's temporary file this old is left over from a kill: no write takes that long.
FOREIGN_TEMPORARY_SECONDS = 24 * 3600


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write through a temporary file in the same folder and rename: a kill leaves the old file or none.
    The file is fsync'ed before the rename and its folder after (once per durable.batch()), so that a
    power cut too leaves the old file or the whole new one, never an empty one.
    The temporary name is made of the pid, the thread, a counter and the machine (cheaper than mkstemp's
    search); remove_stale_temporaries() clears what a killed process left."""
    tmp = temporary_name(path)
    try:
        handle = open(tmp, "xb")
    except FileNotFoundError:
        durable.make_folder(path.parent)
        handle = open(tmp, "xb")
    batch = durable.current()
    try:
        with handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            if durable.ENABLED and batch is None:
                handle.flush()
                os.fsync(handle.fileno())
        if batch is not None:
            batch.defer(("replace", tmp, path))
            return
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    durable.sync_folder(path.parent)


def remove(path: Path) -> bool:
    """Unlink a file durably (in a durable.batch(), in its order among the batch's writes); False when
    there was none."""
    batch = durable.current()
    if batch is not None:
        batch.defer(("unlink", None, path))
        return True
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    durable.sync_folder(path.parent)
    return True


def temporary_name(path: Path) -> Path:
    """A temporary file name beside `path` that remove_stale_temporaries() knows (for writers of their own)."""
    return path.parent / (f"{TEMPORARY_PREFIX}{os.getpid()}-{threading.get_ident()}-{next(_temporary_names)}"
                          f"@{paths.machine_name()}{TEMPORARY_SUFFIX}")


def publish(tmp: Path, path: Path) -> None:
    """Rename a finished temporary file (written by the caller, e.g. in parts) onto `path`, durably:
    the file is fsync'ed before the rename, its folder after (once per durable.batch())."""
    if durable.ENABLED:
        durable.sync_file(tmp)
    os.replace(tmp, path)
    durable.sync_folder(path.parent)


@contextlib.contextmanager
def open_atomic(path: Path):
    """A binary file to write in parts (token files): written under a temporary name, then fsync'ed and
    renamed onto `path` when the block ends without error; an error or a kill leaves no file at `path`."""
    tmp = temporary_name(path)
    durable.make_folder(path.parent)
    try:
        with open(tmp, "xb") as handle:
            yield handle
            if durable.ENABLED:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    durable.sync_folder(path.parent)


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
            elif process_alive(int(ids.split("-")[0])):
                continue
            path.unlink()
            removed += 1
        except (OSError, ValueError):
            continue  # renamed or removed meanwhile, or not a name of ours
    return removed


@functools.lru_cache(maxsize=8)
def _temporaries(names: frozenset[str]) -> tuple[str, ...]:
    return tuple(n for n in names if n.startswith(TEMPORARY_PREFIX) and n.endswith(TEMPORARY_SUFFIX))


def process_alive(pid: int) -> bool:
    """Whether a process of this machine with that pid is running (a temporary file's writer)."""
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
    opened within a durable.batch(), before each group of the batch's files is renamed into place."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None
        self.batch: durable.Batch | None = None

    def __enter__(self) -> "LineLog":
        durable.make_folder(self.path.parent)
        created = not self.path.exists()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if created:
            durable.sync_folder(self.path.parent)
        self.batch = durable.current()
        if self.batch is not None:
            self.batch.logs.append(self)
        if not _ends_a_line(self.path):
            os.write(self.fd, b"\n")
        return self

    def write(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode("utf-8"))

    def sync(self) -> None:
        if durable.ENABLED:
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
    """The names of a folder's non-empty files. A file written whole (fsync'ed before its rename) is emptied
    only by a power cut, which restarts the machine: one scan of the sizes (a stat per file) per boot is
    enough. A scan that finds no empty file leaves a marker holding this boot's id (filled_marker), and
    while it does, the names alone are read (one listdir, reused like listing()'s)."""
    marker = filled_marker(folder)
    boot = _boot_id()
    if boot is not None:
        try:
            if marker.read_text(encoding="utf-8") == boot:
                return listing(folder)
        except (OSError, ValueError):
            pass
    try:
        mtime = folder.stat().st_mtime_ns
    except FileNotFoundError:
        return frozenset()
    if time.time_ns() - mtime < _SETTLED_SECONDS * 1e9:
        names, emptied = _filled_names(folder)
    else:
        names, emptied = _settled_filled_listing(folder, mtime)
    if boot is not None and not emptied:
        write_atomic(marker, boot)
    return names


def filled_marker(folder: Path) -> Path:
    """Where this machine notes the boot in which `folder` last had no empty file (under .cache/, so that
    the page and .failed/ folders hold pages and records only)."""
    key = hashlib.sha256(str(folder.resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return paths.data_dir() / ".cache" / "filled" / f"{paths.machine_name()}-{key}"


@functools.lru_cache(maxsize=1)
def _boot_id() -> str | None:
    """This boot's id (Linux); None elsewhere, where every whole-stage check reads the sizes."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None


@functools.lru_cache(maxsize=64)
def _settled_filled_listing(folder: Path, _mtime: int) -> tuple[frozenset[str], bool]:
    return _filled_names(folder)


def _filled_names(folder: Path) -> tuple[frozenset[str], bool]:
    """The non-empty files' names, and whether any file was empty."""
    names, emptied = [], False
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                if entry.stat().st_size > 0:
                    names.append(entry.name)
                elif entry.is_file():
                    emptied = True
            except FileNotFoundError:
                continue  # removed meanwhile
    return frozenset(names), emptied
