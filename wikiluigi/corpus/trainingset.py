"""The training set of a manifest set: its processed pages, some held out for validation, as text and JSON Lines.

out/trainingset/<set>/ holds
    train.txt, validation.txt       pages wrapped in <|startoftext|> ... <|endoftext|>, what the model reads
    train.jsonl, validation.jsonl   one page a line: title, text, url, revision_id, wiki (`datasets`'s json
                                    loader reads them: load_dataset("json", data_files={...}))
    stats.json                      manifests, validation split, pages, characters, tokens per vocabulary
The held-out pages are chosen by a hash of wiki and title, so the split is the same on every build and a
page keeps its side when others are added (see _held_out_order).
"""
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Sequence
from urllib.parse import quote, urlencode

from wikiluigi import pagefiles, paths
from wikiluigi.convert import stage
from wikiluigi.errors import ModelError
from wikiluigi.sources import derived

START = "<|startoftext|>"
END = "<|endoftext|>"
TRAIN_TEXT, VALIDATION_TEXT = "train.txt", "validation.txt"
TRAIN_JSONL, VALIDATION_JSONL = "train.jsonl", "validation.jsonl"
STATS = "stats.json"
DEFAULT_VALIDATION = 0.1
FEWEST_PAGES_TO_HOLD_OUT = 4     # below this a corpus keeps every page for training
MOST_HELD_OUT_WHEN_SMALL = 3


def wrap(text: str) -> str:
    """One page as the model sees it: `<|startoftext|>`, the page, `<|endoftext|>`, a line each. Markers
    inside the page's own text are taken out: in the corpus they only ever mean a page's bounds."""
    for marker in (START, END):
        text = text.replace(marker, "")
    return f"{START}\n{text.strip()}\n{END}\n"


def set_name(manifests: Sequence[str], validation: float = DEFAULT_VALIDATION) -> str:
    """The folder name of a manifest set's training set: paths.manifest_set_name (the names joined by '+',
    or '+' and a hash), and the validation split when it is not the default."""
    names = paths.manifest_set_name(manifests)
    return names if validation == DEFAULT_VALIDATION else f"{names}-val{validation:g}"


def folder(manifests: Sequence[str], validation: float = DEFAULT_VALIDATION) -> Path:
    return paths.out_dir() / "trainingset" / set_name(list(dict.fromkeys(manifests)), validation)


def held_out_count(pages: int, validation: float, below: int | None = None) -> tuple[int, str]:
    """How many of `pages` pages to hold out for `validation` (a fraction below 1, else a count), and a note.
    `below`: how many pages' hashes fall under the fraction (default: the fraction of the pages, rounded)."""
    whole = isinstance(validation, (int, float)) and (validation < 1 or validation == int(validation))
    if not whole or validation < 0:
        raise ModelError(f"validation must be a fraction of the pages (0 to 1) or a whole number of pages, "
                         f"not {validation!r}.")
    if validation == 0:
        return 0, "no pages held out (validation 0): the run has no validation loss and no best checkpoint"
    if pages < FEWEST_PAGES_TO_HOLD_OUT:
        return 0, (f"only {pages} page(s): too few to hold any out (at least {FEWEST_PAGES_TO_HOLD_OUT}); the run "
                   f"has no validation loss and no best checkpoint")
    if validation >= 1:
        count = min(int(validation), pages - 1)
        asked = f"{int(validation)} asked"
    else:
        least = min(MOST_HELD_OUT_WHEN_SMALL, pages // 4)
        count = max(round(validation * pages) if below is None else below, least)
        asked = f"{validation:g} of {pages} asked, at least {min(MOST_HELD_OUT_WHEN_SMALL, pages // 4)}"
    return count, f"{count} of {pages} pages held out for validation ({asked})"


def _held_out_order(host: str, title: str) -> float:
    """A page's place in the validation order, from 0 to 1: a fraction f holds out the pages under f, so a
    page keeps its side when others are added (a few more are taken when that leaves too few)."""
    return int(hashlib.sha1(f"{host}\n{title}".encode("utf-8")).hexdigest(), 16) / 16 ** 40


def revision_ids(host: str) -> dict[str, int]:
    """Title -> revision id from raw/mediawiki/<host>/revisions*.jsonl: in one file the last line of a title
    wins, across files (one per machine) the highest id. Lines a kill cut short are skipped."""
    found: dict[str, int] = {}
    for log in sorted(paths.raw_dir(host).glob("revisions*.jsonl")):
        mine: dict[str, int] = {}
        with open(log, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                    mine[entry["title"]] = int(entry["revision_id"])
                except (ValueError, KeyError, TypeError):
                    continue
        for title, revision in mine.items():
            found[title] = max(revision, found.get(title, revision))
    return found


def page_url(source: dict, title: str, revision: int | None) -> str | None:
    """Where a page's text came from: index.php beside api.php (with the revision), or the dump's site."""
    if "api" in source:
        query = {"title": title, **({"oldid": revision} if revision else {})}
        return f"{source['api'].rsplit('/', 1)[0]}/index.php?{urlencode(query)}"
    from wikiluigi.sources import dump
    try:
        base = dump.read_siteinfo(source["dump"]).base_url
    except Exception:       # the dump moved or is unreadable: the page is still worth keeping
        return None
    if not base:
        return None
    url = f"{base.rsplit('/', 1)[0]}/{quote(title.replace(' ', '_'), safe='/:()')}"
    return f"{url}?oldid={revision}" if revision else url


def _pages(names: list[str]):
    """(manifest, host, title, text, url, revision) of each processed page with text, a shared page once."""
    seen = set()
    for name in names:
        meta = derived.load(name)
        folder = stage.processed_folder(name, meta.host)
        present = pagefiles.listing(folder)  # one listdir, not a stat per page
        revisions = revision_ids(meta.host)
        for title in meta.titles:
            if (meta.host, title) in seen:
                continue
            seen.add((meta.host, title))
            path = paths.processed_file(folder, title)
            if path.name not in present:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:    # removed since the listing
                continue
            if not text.strip():
                continue
            revision = revisions.get(title)
            yield meta.host, title, text, page_url(meta.source, title, revision), revision


def build_trainingset(manifests: Sequence[str], validation: float = DEFAULT_VALIDATION) -> dict:
    """Write the manifest set's folder (see the module's docstring) and return its stats.

    Pages come in manifest order, then in each derived manifest's (sorted) title order; a page two manifests
    share is taken once, and pages without Markdown (not converted, failed) or with no text are left out.
    An empty corpus is a ModelError, raised before anything is written. Every file is replaced atomically,
    stats.json last: it marks a finished build.
    """
    names = list(dict.fromkeys(manifests))
    if not names:
        raise ModelError("A training set needs at least one manifest (TrainingSet --manifests '[\"demo\"]').")
    pages = list(_pages(names))
    if not pages:
        folders = ", ".join(str(stage.processed_folder(n, derived.load(n).host)) for n in names)
        raise ModelError(f"No processed pages for manifest(s) {', '.join(names)} (looked in {folders}): "
                         f"nothing to train on. Run `luigi --module wikiluigi Wikipedia --manifest "
                         f"{names[0]}` first, and see its report for pages that failed.")
    order = sorted(((host, title) for host, title, *_ in pages), key=lambda key: _held_out_order(*key))
    below = sum(1 for key in order if _held_out_order(*key) < validation) if validation < 1 else None
    count, note = held_out_count(len(pages), validation, below)
    held = set(order[:count])
    target = folder(names, validation)
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob(".*.part"):      # left by a killed build
        stale.unlink(missing_ok=True)
    (target / STATS).unlink(missing_ok=True)
    figures = {}
    for side, text_name, jsonl_name in (("train", TRAIN_TEXT, TRAIN_JSONL),
                                        ("validation", VALIDATION_TEXT, VALIDATION_JSONL)):
        chosen = [page for page in pages if ((page[0], page[1]) in held) == (side == "validation")]
        with _atomic(target / text_name) as text_file, _atomic(target / jsonl_name) as jsonl_file:
            characters = 0
            for host, title, text, url, revision in chosen:
                block = wrap(text)
                text_file.write(block)
                characters += len(block)
                record = {"title": title, "text": block[len(START) + 1:-len(END) - 2], "url": url,
                          "revision_id": revision, "wiki": host}
                jsonl_file.write(json.dumps(record, ensure_ascii=False) + "\n")
        figures[side] = {"pages": len(chosen), "characters": characters,
                         "bytes": (target / text_name).stat().st_size}
    stats = {"manifests": names, "folder": target.name, "pages": len(pages),
             "characters": figures["train"]["characters"] + figures["validation"]["characters"],
             "train": figures["train"],
             "validation": {"asked": validation, **figures["validation"], "note": note,
                            "titles": sorted(title for _, title in held)},
             "tokens": {}}
    pagefiles.write_json(target / STATS, stats)
    return stats


class _atomic:
    """A text file written under a temporary name and renamed into place when the block ends without error."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".part")
        self.file = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        return self.file

    def __exit__(self, kind, *_):
        self.file.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)


def read_stats(corpus_dir) -> dict | None:
    try:
        return json.loads((Path(corpus_dir) / STATS).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def is_built(manifests: Sequence[str], validation: float = DEFAULT_VALIDATION) -> bool:
    """Whether the set's folder is there, built from exactly these manifests with this validation split."""
    stats = read_stats(folder(manifests, validation))
    return (stats is not None and stats.get("manifests") == list(dict.fromkeys(manifests))
            and stats.get("validation", {}).get("asked") == validation)


def record_tokens(corpus_dir, vocabulary: str, tokens: int) -> None:
    """Add the training text's length in tokens of one vocabulary (a model folder's name) to stats.json."""
    stats = read_stats(corpus_dir)
    if stats is None:
        return
    stats.setdefault("tokens", {})[vocabulary] = int(tokens)
    pagefiles.write_json(Path(corpus_dir) / STATS, stats)
