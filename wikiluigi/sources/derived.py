"""The derived manifest: a manifest resolved to its page titles, cut into deterministic chunks.

Titles are sorted, except those of a multistream dump, which come in the dump's order (by stream, then
title), so that each chunk reads a few consecutive streams instead of one stream for every page.

On disk it is two files: `manifests/derived/<name>.yaml` for people (source, counts, categories, warnings)
and `<name>.titles.txt` beside it, one title a line (a title cannot hold a line break), which loads in
a fraction of a second at a million titles where YAML takes minutes. A multistream dump's stream offset
of each title goes to `<name>.offsets` (8-byte integers in title order), so a chunk seeks straight to
its pages. A derived manifest written before the titles moved out (a `titles:` list in the YAML) still loads.
"""
import functools
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from wikiluigi import pagefiles, paths
from wikiluigi.errors import ManifestError

# Luigi's scheduler slows down past a few thousand tasks: a stage never has more chunks than this,
# so that the two page stages of a whole run stay under 2,000 tasks however big the manifest.
MAX_CHUNKS = 990
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def chunk_size_for(pages: int, floor: int) -> int:
    """Pages per chunk: `floor` ([fetch] chunk_size), grown so that `pages` make at most MAX_CHUNKS chunks."""
    return max(int(floor), 1, -(-pages // MAX_CHUNKS))


@dataclass(frozen=True)
class Derived:
    name: str
    host: str
    source: dict          # {"api": url} or {"dump": path} (with "index" for a multistream dump)
    titles: tuple[str, ...]
    chunk_size: int
    counts: dict
    manifest_sha256: str = ""  # of the original manifest it was derived from: an edit makes it stale
    offsets: array | None = field(default=None, compare=False)  # a multistream dump's stream of each title
    dump_stamp: str = ""  # size and mtime of the dump it was read from: a new dump makes it stale

    @property
    def chunk_count(self) -> int:
        return -(-len(self.titles) // self.chunk_size)

    @functools.cached_property
    def title_set(self) -> frozenset[str]:
        return frozenset(self.titles)

    def _bounds(self, index: int) -> slice:
        if not 0 <= index < max(self.chunk_count, 1):
            raise ManifestError(f"{self.name}: there is no chunk {index}; the manifest has {self.chunk_count} chunks.")
        return slice(index * self.chunk_size, (index + 1) * self.chunk_size)

    def chunk(self, index: int) -> tuple[str, ...]:
        return self.titles[self._bounds(index)]

    def chunk_offsets(self, index: int) -> list[int] | None:
        """The stream offset of each title of chunk `index`, for a multistream dump; None otherwise."""
        return None if self.offsets is None else list(self.offsets[self._bounds(index)])


def titles_file(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".yaml") + ".titles.txt")


def offsets_file(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".yaml") + ".offsets")


def write(path: Path, derived: Derived, categories: list[str], warnings: list[str]) -> None:
    """The titles (and offsets) first, the YAML last: the YAML is what says the derived manifest is there.
    Each is fsync'ed before its rename and the folder after (pagefiles.write_atomic), in that order."""
    document = {
        "manifest": derived.name,
        "manifest_sha256": derived.manifest_sha256,
        "host": derived.host,
        "source": derived.source,
        "dump_stamp": derived.dump_stamp,
        "chunk_size": derived.chunk_size,
        "chunks": derived.chunk_count,
        "counts": derived.counts,
        "warnings": warnings,
        "titles_file": titles_file(path).name,
        "categories": categories,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    pagefiles.write_atomic(titles_file(path), "".join(f"{title}\n" for title in derived.titles))
    if derived.offsets is not None:
        pagefiles.write_atomic(offsets_file(path), array("q", derived.offsets).tobytes())
    else:
        pagefiles.remove(offsets_file(path))
    pagefiles.write_atomic(path, yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=1 << 20))
    pagefiles.remove_stale_temporaries(path.parent)  # left by a killed run


def load(name: str) -> Derived:
    """The derived manifest of `name`, read once per process while the file is unchanged."""
    path = paths.derived_manifest(name)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ManifestError(f"{path} does not exist yet: run DeriveManifest --manifest {name} first.") from None
    return _load(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _load(path: Path, _mtime: int, _size: int) -> Derived:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    try:
        if "titles" in data:  # written before the titles had a file of their own
            titles = tuple(data["titles"])
        else:
            titles = tuple(_read_titles(titles_file(path), path))
        offsets = None
        if data.get("source", {}).get("index"):
            offsets = array("q")
            offsets.frombytes(_read(offsets_file(path), path))
            if len(offsets) != len(titles):
                raise ManifestError(f"{offsets_file(path)} does not match {path}; delete both and run "
                                    f"DeriveManifest again.")
        return Derived(
            name=data["manifest"], host=data["host"], source=data["source"],
            titles=titles, chunk_size=chunk_size_for(len(titles), int(data["chunk_size"])), counts=data["counts"],
            manifest_sha256=data.get("manifest_sha256", ""), offsets=offsets,
            dump_stamp=data.get("dump_stamp", ""),
        )
    except (TypeError, KeyError, AttributeError) as exc:
        raise ManifestError(f"{path} is damaged (missing {exc}); delete it and run DeriveManifest again.") from None


def _read(path: Path, manifest: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path} is missing (it belongs to {manifest}); delete {manifest} and run "
                            f"DeriveManifest again.") from None


def _read_titles(path: Path, manifest: Path) -> list[str]:
    return _read(path, manifest).decode("utf-8").split("\n")[:-1]
