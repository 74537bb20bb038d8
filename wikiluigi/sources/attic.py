"""The attic: pages a refresh removed, kept for a while under their own paths, so that copying back undoes it."""
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from wikiluigi import paths
from wikiluigi.sources import derived
from wikiluigi.sources.fetch import RAW_SUFFIX

ATTIC = "attic"
STAMP = "%Y-%m-%dT%H-%M-%SZ"


def folder(manifest: str, stamp: float | None = None) -> Path:
    """A new attic folder of a manifest: attic/<manifest>/<UTC time>/."""
    when = datetime.fromtimestamp(stamp or time.time(), timezone.utc).strftime(STAMP)
    return paths.data_dir() / ATTIC / paths.folder_name(manifest, "manifest name") / when


def move_pages(host: str, titles: Iterable[str], attic: Path, folders: list[Path]) -> int:
    """Each page's raw file, Markdown (in every processed folder) and failure records renamed into the
    attic, under the same path as in the data directory: copying the attic back undoes it."""
    root = paths.data_dir()
    moved = 0
    raw = paths.raw_dir(host)
    for title in titles:
        stem = paths.title_to_stem(title)
        files = [raw / f"{stem}{RAW_SUFFIX}", paths.failure_record(raw, title)]
        for folder in folders:
            files += [folder / f"{stem}.md", paths.failure_record(folder, title)]
        for path in files:
            target = attic / path.relative_to(root)
            try:
                os.replace(path, target)
            except FileNotFoundError:
                if not path.exists():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
            moved += 1
    return moved


def prune(manifest: str, days: float, now: float | None = None) -> None:
    """Attic folders of a manifest older than `days` go (0 keeps them)."""
    folder = paths.data_dir() / ATTIC / manifest
    if days <= 0 or not folder.is_dir():
        return
    for entry in folder.iterdir():
        try:
            made = datetime.strptime(entry.name, STAMP).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
        if (now or time.time()) - made > days * 86400:
            shutil.rmtree(entry, ignore_errors=True)


def keep_derived(name: str, attic: Path) -> None:
    """The derived manifest as it was, copied to the attic beside the pages removed."""
    path = paths.derived_manifest(name)
    for old in (path, derived.titles_file(path), derived.offsets_file(path)):
        if old.exists():
            target = attic / old.relative_to(paths.data_dir())
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(old, target)
