"""Manifests: which wiki and which categories and pages; read, checked and normalised here."""
import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from wikiluigi import paths
from wikiluigi.errors import ManifestError

# Sections dropped from every page; a manifest's drop_sections adds to these.
DEFAULT_DROP_SECTIONS = (
    "References", "External links", "See also", "Gallery", "Notes", "Further reading", "Videos",
    "Footnotes", "Bibliography", "Sources", "Citations", "Appearances", "Background information",
)

KEYS = {
    "api": "URL of the wiki's api.php (this or dump)",
    "dump": "path to an XML export, .xml or .xml.bz2, relative to the manifest (this or api)",
    "host": "folder name for the wiki's pages (default: the api's host, or the dump's site)",
    "include_categories": "categories whose pages, and subcategories' pages, are taken",
    "include_pages": "single pages taken as well",
    "exclude_categories": "categories whose pages (and subcategories) are left out",
    "exclude_pages": "single pages left out",
    "max_depth": "how deep to walk subcategories (null: all the way)",
    "namespaces": "namespace numbers of pages to take (default [0], articles)",
    "drop_sections": "section headings dropped from every page, besides the defaults",
    "keep_tables": "keep tables in the Markdown (default false)",
    "template_rules": "template name -> text with {1}, {2}, {name} for its parameters",
}


@dataclass(frozen=True)
class Manifest:
    name: str
    path: Path
    api: str | None = None
    dump: Path | None = None
    host: str = ""
    include_categories: tuple[str, ...] = ()
    include_pages: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    exclude_pages: tuple[str, ...] = ()
    max_depth: int | None = None
    namespaces: tuple[int, ...] = (0,)
    drop_sections: tuple[str, ...] = DEFAULT_DROP_SECTIONS
    keep_tables: bool = False
    template_rules: dict = field(default_factory=dict)


def available() -> dict[str, Path]:
    """Every manifest name that can be used, with its file; the data directory's shadow the shipped ones."""
    found = {}
    for folder in reversed(paths.original_manifest_dirs()):
        for path in sorted(folder.glob("*.yaml")):
            found[path.stem] = path
    return dict(sorted(found.items()))


def find(name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ManifestError(f"{name!r} is not a manifest name: use the file's name without .yaml, e.g. 'demo'.")
    manifests = available()
    if name not in manifests:
        where = " or ".join(str(d) for d in paths.original_manifest_dirs())
        raise ManifestError(
            f"No manifest named {name!r} in {where}. Known manifests: {', '.join(manifests) or 'none'}. "
            f"Write manifests/originals/{name}.yaml in the data directory to add one."
        )
    return manifests[name]


def load(name: str) -> Manifest:
    """The manifest called `name`, parsed once per process while its file is unchanged."""
    path = find(name)
    stat = path.stat()
    return _load(path, name, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _load(path: Path, name: str, _mtime: int, _size: int) -> Manifest:
    return parse(path.read_text(encoding="utf-8"), path, name)


def fingerprint(name: str) -> str:
    """A hash of the manifest's file: the derived manifest records it, so that an edit re-derives."""
    return hashlib.sha256(find(name).read_bytes()).hexdigest()


def source_of(manifest: Manifest) -> dict:
    """The manifest's source as the derived manifest records it: {"api": url} or {"dump": path}."""
    return {"api": manifest.api} if manifest.api else {"dump": str(manifest.dump)}


def parse(text: str, path: Path, name: str | None = None) -> Manifest:
    """Check a manifest's YAML and return it normalised; every error names the file and the key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{path}:{where}: this is not valid YAML ({problem}). Fix the file and run again.") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: a manifest is a YAML mapping of keys ({', '.join(KEYS)}).")
    unknown = sorted(set(map(str, data)) - set(KEYS))
    if unknown:
        raise ManifestError(
            f"{path}: unknown key {', '.join(map(repr, unknown))}. Known keys: "
            + "; ".join(f"{k} ({v})" for k, v in KEYS.items())
        )
    check = _Checker(path, data)
    api, dump = check.text("api"), check.text("dump")
    if bool(api) == bool(dump):
        raise ManifestError(f"{path}: give exactly one of 'api' (the wiki's api.php URL) or 'dump' (an XML export).")
    if api and urlsplit(api).scheme not in ("http", "https"):
        raise ManifestError(f"{path}: key 'api': {api!r} is not an http(s) URL of api.php.")
    dump_path = (path.parent / Path(dump).expanduser()).resolve() if dump else None
    manifest = Manifest(
        name=name or path.stem,
        path=path,
        api=api,
        dump=dump_path,
        host=check.text("host") or (urlsplit(api).netloc if api else ""),
        include_categories=tuple(category_title(c) for c in check.titles("include_categories")),
        include_pages=check.titles("include_pages"),
        exclude_categories=tuple(category_title(c) for c in check.titles("exclude_categories")),
        exclude_pages=check.titles("exclude_pages"),
        max_depth=check.optional_int("max_depth"),
        namespaces=check.ints("namespaces", default=(0,)),
        drop_sections=DEFAULT_DROP_SECTIONS + check.titles("drop_sections"),
        keep_tables=check.boolean("keep_tables"),
        template_rules=check.mapping("template_rules"),
    )
    if not manifest.include_categories and not manifest.include_pages:
        raise ManifestError(f"{path}: name at least one of include_categories or include_pages.")
    return manifest


def category_title(name: str) -> str:
    """'Culture' -> 'Category:Culture'. A name that already has a prefix ('Kategorie:Kultur') is kept:
    namespace names are one word, so 'Star Trek: Voyager' is a category name of its own."""
    prefix, colon, _ = name.partition(":")
    return name if colon and prefix.strip() and " " not in prefix.strip() else f"Category:{name}"


class _Checker:
    """Reads one key at a time, saying which key of which file is wrong."""

    def __init__(self, path: Path, data: dict):
        self.path, self.data = path, data

    def fail(self, key: str, expected: str):
        raise ManifestError(f"{self.path}: key {key!r} should be {expected}, not {self.data[key]!r}.")

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            self.fail(key, "a string")
        return value

    def titles(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.fail(key, "a list of page or category titles")
        return tuple(v.strip().replace("_", " ") for v in value)

    def optional_int(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            self.fail(key, "a whole number of 0 or more, or null")
        return value

    def ints(self, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            self.fail(key, "a list of namespace numbers, such as [0]")
        return tuple(value)

    def boolean(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            self.fail(key, "true or false")
        return value

    def mapping(self, key: str) -> dict:
        value = self.data.get(key) or {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            self.fail(key, "a mapping of template name to replacement text")
        return dict(value)
