"""The derived manifest: a manifest resolved to its sorted page titles, cut into deterministic chunks."""
import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from wikiluigi import pagefiles, paths
from wikiluigi.errors import ManifestError


@dataclass(frozen=True)
class Derived:
    name: str
    host: str
    source: dict          # {"api": url} or {"dump": path}
    titles: tuple[str, ...]
    chunk_size: int
    counts: dict
    manifest_sha256: str = ""  # of the original manifest it was derived from: an edit makes it stale

    @property
    def chunk_count(self) -> int:
        return -(-len(self.titles) // self.chunk_size)

    def chunk(self, index: int) -> tuple[str, ...]:
        if not 0 <= index < max(self.chunk_count, 1):
            raise ManifestError(f"{self.name}: there is no chunk {index}; the manifest has {self.chunk_count} chunks.")
        return self.titles[index * self.chunk_size:(index + 1) * self.chunk_size]


def write(path: Path, derived: Derived, categories: list[str], warnings: list[str]) -> None:
    document = {
        "manifest": derived.name,
        "manifest_sha256": derived.manifest_sha256,
        "host": derived.host,
        "source": derived.source,
        "chunk_size": derived.chunk_size,
        "counts": derived.counts,
        "warnings": warnings,
        "categories": categories,
        "titles": list(derived.titles),
    }
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
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        return Derived(
            name=data["manifest"], host=data["host"], source=data["source"],
            titles=tuple(data["titles"]), chunk_size=int(data["chunk_size"]), counts=data["counts"],
            manifest_sha256=data.get("manifest_sha256", ""),
        )
    except (TypeError, KeyError) as exc:
        raise ManifestError(f"{path} is damaged (missing {exc}); delete it and run DeriveManifest again.") from None
