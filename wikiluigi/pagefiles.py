"""Page files on disk: atomic writes, failure records, and which pages of a chunk are still to do."""
import functools
import json
import os
import itertools
import threading
import time
from pathlib import Path
from typing import Iterable

from wikiluigi import paths


_temporary_names = itertools.count()


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write through a temporary file in the same folder and rename: a kill leaves the old file or none.
    The temporary name is made of the pid, the thread and a counter: cheaper than mkstemp's search."""
    tmp = path.parent / f".tmp-{os.getpid()}-{threading.get_ident()}-{next(_temporary_names)}.part"
    try:
        handle = open(tmp, "xb")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(tmp, "xb")
    try:
        with handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class LineLog:
    """A file that several processes append whole lines to: each line is one O_APPEND write, so lines
    never interleave; a kill can cut only the last one."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> "LineLog":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self

    def write(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode("utf-8"))

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def write_json(path: Path, document: dict) -> None:
    write_atomic(path, json.dumps(document, ensure_ascii=False, indent=1) + "\n")


def record_failure(stage_dir: Path, title: str, stage: str, reason: str) -> None:
    write_json(paths.failure_record(stage_dir, title), {"title": title, "stage": stage, "reason": reason})


def clear_failure(stage_dir: Path, title: str) -> None:
    paths.failure_record(stage_dir, title).unlink(missing_ok=True)


def failures(stage_dir: Path, titles: Iterable[str] | None = None) -> list[dict]:
    """The failure records in a stage's folder, of the given titles only when titles are given."""
    folder = paths.failure_dir(stage_dir)
    names = listing(folder)
    if titles is not None:
        wanted = {f"{paths.title_to_stem(t)}.json" for t in titles}
        names = names & wanted
    records = []
    for name in sorted(names):
        try:
            records.append(json.loads((folder / name).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # removed or being replaced meanwhile
    return records


def todo(folder: Path, suffix: str, titles: Iterable[str], failed_count_as_done: bool = True) -> list[str]:
    """Titles with neither a file in `folder` nor (optionally) a failure record: two listdirs, no stat per page."""
    present = listing(folder)
    failed = listing(paths.failure_dir(folder)) if failed_count_as_done else frozenset()
    left = []
    for title in titles:
        stem = paths.title_to_stem(title)
        if f"{stem}{suffix}" not in present and f"{stem}.json" not in failed:
            left.append(title)
    return left


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
