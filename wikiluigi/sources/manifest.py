"""Manifests: which wiki and which categories and pages; read, checked and normalised here."""
import functools
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from wikiluigi import paths
from wikiluigi.errors import ManifestError, quote

# Sections dropped from every page; a manifest's drop_sections adds to these.
DEFAULT_DROP_SECTIONS = (
    "References", "External links", "See also", "Gallery", "Notes", "Further reading", "Videos",
    "Footnotes", "Bibliography", "Sources", "Citations", "Appearances", "Background information",
)

KEYS = {
    "api": "URL of the wiki's api.php (this or dump)",
    "dump": "path to an XML export, .xml or .xml.bz2, relative to the manifest (this or api)",
    "host": "folder name for the wiki's pages (default: the api's host, or the dump's site)",
    "all_pages": "take every page of the wiki in the manifest's namespaces (default false)",
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
    all_pages: bool = False
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
    if not name or "/" in name or name.startswith(".") or "\0" in name or len(name) > 200:
        raise ManifestError(f"{quote(name)} is not a manifest name: use the file's name without .yaml, e.g. 'demo'.")
    problem = paths.manifest_name_problem(name)
    if problem:
        raise ManifestError(f"{quote(name)} cannot be a manifest name: {problem}. Rename its file "
                            f"({name}.yaml), e.g. to {quote(_renamed(name) + '.yaml')}.")
    for folder in paths.original_manifest_dirs():  # first match wins, as in available(); no folder listed
        path = folder / f"{name}.yaml"
        if path.is_file():
            return path
    manifests = available()
    if name not in manifests:
        where = " or ".join(str(d) for d in paths.original_manifest_dirs())
        raise ManifestError(
            f"No manifest named {quote(name)} in {where}. Known manifests: {', '.join(manifests) or 'none'}. "
            f"Write manifests/originals/{name}.yaml in the data directory to add one."
        )
    return manifests[name]


def _renamed(name: str) -> str:
    """A suggestion for a name manifest_name_problem refuses: '+' as '_', '-val' as '-v'."""
    renamed = name.replace("+", "_")
    if paths.manifest_name_problem(renamed):
        cut = renamed.rfind("-val")
        renamed = renamed[:cut] + "-v" + renamed[cut + len("-val"):]
    return renamed


def load(name: str) -> Manifest:
    """The manifest called `name`, parsed once per process while its file is unchanged."""
    path = find(name)
    stat = path.stat()
    return _load(path, name, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _load(path: Path, name: str, _mtime: int, _size: int) -> Manifest:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: byte {exc.start} (counting from 0) is not UTF-8: save the file as UTF-8 text.") from None
    return parse(text, path, name)


def fingerprint(name: str) -> str:
    """A hash of the manifest's file: the derived manifest records it, so that an edit re-derives."""
    return hashlib.sha256(find(name).read_bytes()).hexdigest()


def source_of(manifest: Manifest) -> dict:
    """The manifest's source as the derived manifest records it: {"api": url} or {"dump": path}."""
    return {"api": manifest.api} if manifest.api else {"dump": str(manifest.dump)}


# Values that YAML aliases (*name) may add to a manifest by repeating others; more is an alias bomb
# ("billion laughs": 300 bytes that expand to 10^9 values).
MAX_ALIASED_VALUES = 100_000


def parse(text: str, path: Path, name: str | None = None) -> Manifest:
    """Check a manifest's YAML and return it normalised; every error names the file and the key."""
    data = _read_yaml(text, path)
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: a manifest is a YAML mapping of keys ({', '.join(KEYS)}).")
    unknown = sorted(set(map(str, data)) - set(KEYS))
    if unknown:
        shown = ", ".join(quote(key) for key in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ManifestError(
            f"{path}: unknown key {shown}. Known keys: " + "; ".join(f"{k} ({v})" for k, v in KEYS.items())
        )
    check = _Checker(path, data)
    api, dump = check.text("api"), check.text("dump")
    if bool(api) == bool(dump):
        raise ManifestError(f"{path}: give exactly one of 'api' (the wiki's api.php URL) or 'dump' (an XML export).")
    netloc = _netloc(api) if api else ""
    if api and not netloc:
        raise ManifestError(f"{path}: key 'api': {quote(api)} is not an http(s) URL of api.php.")
    host = check.text("host")
    if host is not None:
        paths.folder_name(host, f"{path}: key 'host'")
        if "~" in host:
            raise ManifestError(f"{path}: key 'host': {quote(host)} holds '~', which separates a wiki's folder "
                                f"from its conversion options in processed/: choose a name without it.")
    elif api:
        host = paths.folder_name(netloc, f"{path}: key 'api' (its host, the folder of its pages)")
    dump_path = _dump_path(path, dump) if dump else None
    manifest = Manifest(
        name=name or path.stem,
        path=path,
        api=api,
        dump=dump_path,
        host=host or "",
        all_pages=check.boolean("all_pages"),
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
    if not manifest.all_pages and not manifest.include_categories and not manifest.include_pages:
        raise ManifestError(f"{path}: name at least one of include_categories or include_pages, "
                            f"or take every page with 'all_pages: true'.")
    return manifest


def _netloc(url: str) -> str:
    """The host (and port) of an http(s) URL; "" when it is no such URL."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "http://[x": an IPv6 address left open
        return ""
    return parts.netloc if parts.scheme in ("http", "https") else ""


def _dump_path(manifest_path: Path, dump: str) -> Path:
    """The dump's path: relative to the manifest's folder, '~' for a home folder."""
    try:
        return (manifest_path.parent / Path(dump).expanduser()).resolve()
    except (RuntimeError, ValueError, OSError) as exc:  # '~nosuchuser', a NUL, a loop of links
        raise ManifestError(f"{manifest_path}: key 'dump': {quote(dump)} is not a usable path ({exc}).") from None


def _read_yaml(text: str, path: Path):
    """The YAML document in `text`; every way it can be wrong (syntax, an alias bomb, nesting too deep for
    the parser, a date that does not exist) is a ManifestError naming the file."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # pure Python: libyaml's composer crashes on deep nesting
        node = loader.get_single_node()
        if node is None:
            return None
        added = _expanded_size(node) - _distinct_size(node)
        if added > MAX_ALIASED_VALUES:
            more = "a value that contains itself" if math.isinf(added) else f"{added:.3g} more values"
            raise ManifestError(f"{path}: its YAML aliases (*name) expand to {more}: write the values out "
                                f"instead of repeating anchors.")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f": line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{path}{where}: this is not valid YAML ({quote(problem, 200)}). "
                            f"Fix the file and run again.") from None
    except RecursionError:
        raise ManifestError(f"{path}: its YAML is nested too deep to read; a manifest needs two levels.") from None
    except (ValueError, OverflowError) as exc:  # e.g. a date such as 2024-02-30 or a number too long
        raise ManifestError(f"{path}: a value cannot be read ({quote(str(exc), 200)}). Fix the file and run "
                            f"again.") from None
    finally:
        if loader is not None:
            loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _distinct_size(root: yaml.Node) -> int:
    """How many nodes the document holds, each counted once however many aliases point to it."""
    seen = {id(root)}
    stack = [root]
    while stack:
        for child in _children(stack.pop()):
            if id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    return len(seen)


def _expanded_size(root: yaml.Node) -> float:
    """How many values the document holds once every alias is expanded (inf for one that contains
    itself), in time linear in its distinct nodes: each node's size is computed once."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
        elif key in open_nodes:
            return math.inf
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    return sizes[id(root)]


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
        raise ManifestError(f"{self.path}: key {key!r} should be {expected}, not {quote(self.data[key])}.")

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
