"""What makes a write survive a power cut: fsync of files and folders, and synced batches of many files."""
import contextlib
import functools
import os
import threading
from pathlib import Path

# Whether writes are made durable (fsync of each file before its rename, of its folder after). Off only to
# measure what durability costs (benchmarks/fetch_bench.py); nothing a user sets.
ENABLED = True
_batch = threading.local()


def sync_file(path: Path) -> None:
    """fsync one file's data to disk (it may be open elsewhere: this opens it again)."""
    if not ENABLED:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(folder: Path) -> None:
    """Make the names in a folder (a rename, a new file, an unlink) durable: at once, or with the next
    group of the batch() this thread is in (one fsync per folder per group)."""
    if not ENABLED:
        return
    batch = current()
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
# (its temporary files, removed by the next run), and each group costs one syncfs.
BATCH_FILES = 256


class Batch:
    """The writes of a batch() not yet published: temporary files written, their renames (and
    unlinks) waiting, in order."""

    def __init__(self):
        self.operations: list[tuple[str, Path | None, Path]] = []
        self.folders: set[str] = set()
        self.logs: list = []   # open pagefiles.LineLogs whose lines describe the files: synced before them

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
            if ENABLED:
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
        if ENABLED:
            for folder in sorted(folders, key=len, reverse=True):  # a new folder's names before its parent's
                _fsync_folder(folder)


def sync_files(files: list[Path]) -> None:
    """Many new files onto the disk: one syncfs(2) per file system they are on (Linux; one disk flush
    for all, about a tenth of a fsync per file), else an fsync each."""
    if not ENABLED or not files:
        return
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


def current() -> Batch | None:
    """The batch this thread is in, if any."""
    return getattr(_batch, "current", None)


@contextlib.contextmanager
def batch():
    """Within it, pagefiles' writes are published in groups (BATCH_FILES): each group's files synced together
    (sync_files), renamed, and their folders fsync'ed once, which costs a fraction of a fsync per page. A page appears
    when its group is published (at the latest when the batch ends, an error included); a kill loses only
    the pages of a group not yet published (done again), a power cut leaves none empty. Batches nest (the
    outermost one publishes)."""
    if current() is not None:
        yield
        return
    _batch.current = Batch()
    try:
        yield
    finally:
        pending, _batch.current = _batch.current, None
        pending.publish()


def make_folder(folder: Path) -> None:
    """mkdir -p, with each folder made synced into its parent (a page in a folder that vanishes is lost too)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir(exist_ok=True)
        sync_folder(made.parent)
