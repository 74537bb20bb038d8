"""The training set of a manifest set: its processed pages, some held out for validation, as text and JSON Lines.

out/trainingset/<set>/ holds
    train.txt, validation.txt       pages wrapped in <|startoftext|> ... <|endoftext|>, what the model reads
    train.jsonl, validation.jsonl   one page a line: title, text, url, revision_id, wiki (`datasets`'s json
                                    loader reads them: load_dataset("json", data_files={...}))
    stats.json                      manifests, validation split, pages, characters, tokens per vocabulary,
                                    and the fingerprint of its inputs (see inputs()): stale when they change
    tokens/<model>/                 its token ids in a vocabulary (wikiluigi.corpus.tokens)
The held-out pages are chosen by a hash of wiki and title, so the split is the same on every build and a
page keeps its side when others are added (see _held_out_order). The build streams: one page in memory
at a time, whatever the number of pages.
"""
import contextlib
import hashlib
import json
import os
import re
import time
from array import array
from json.encoder import encode_basestring as _json_string      # json.dumps' own (C) string writer
from pathlib import Path
from typing import Sequence
from urllib.parse import quote, quote_plus

from wikiluigi import pagefiles, paths
from wikiluigi.convert import stage
from wikiluigi.corpus import textfiles
from wikiluigi.errors import ManifestError, ModelError, WikiluigiError
from wikiluigi.sources import derived

START = "<|startoftext|>"
END = "<|endoftext|>"
TRAIN_TEXT, VALIDATION_TEXT = "train.txt", "validation.txt"
TRAIN_JSONL, VALIDATION_JSONL = "train.jsonl", "validation.jsonl"
STATS = "stats.json"
DEFAULT_VALIDATION = 0.1
FEWEST_PAGES_TO_HOLD_OUT = 4     # below this a corpus keeps every page for training
MOST_HELD_OUT_WHEN_SMALL = 3
FORMAT = 2                        # of the fingerprint: a new one makes every set stale


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
    return int.from_bytes(hashlib.sha1(f"{host}\n{title}".encode("utf-8")).digest(), "big") / 16 ** 40


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


def _url_maker(source: dict):
    """A function (title, revision) -> where the page's text came from: index.php beside api.php (with the
    revision), or the dump's site, whose siteinfo is read once here, not once a page."""
    if "api" in source:
        index = f"{source['api'].rsplit('/', 1)[0]}/index.php?title="      # as urlencode writes it
        return lambda title, revision: f"{index}{quote_plus(title)}&oldid={revision}" if revision else \
            f"{index}{quote_plus(title)}"
    from wikiluigi.sources import dump
    try:
        base = dump.read_siteinfo(source["dump"]).base_url
    except Exception:       # the dump moved or is unreadable: the page is still worth keeping
        base = None
    if not base:
        return lambda title, revision: None
    site = base.rsplit("/", 1)[0]

    def url(title, revision):
        address = f"{site}/{quote(title.replace(' ', '_'), safe='/:()')}"
        return f"{address}?oldid={revision}" if revision else address
    return url


def revisions_of(host: str, titles: Sequence[str]) -> array:
    """The revision id of each of `titles` (0: none) as revision_ids() finds them, in an array beside the titles
    (8 bytes a page, where a dict of titles takes 150): sorted titles are looked up by bisection, others
    through a dict of their positions."""
    import bisect
    if all(a < b for a, b in zip(titles, titles[1:])):
        def position(title):
            at = bisect.bisect_left(titles, title)
            return at if at < len(titles) and titles[at] == title else None
    else:
        position = {title: n for n, title in enumerate(titles)}.get
    import numpy as np
    found = np.zeros(len(titles), dtype=np.int64)
    for log in paths.revisions_logs(host):
        mine = np.zeros(len(titles), dtype=np.int64)       # in one log the last line of a title wins
        with open(log, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                    at = position(entry["title"])
                    if at is not None:
                        mine[at] = int(entry["revision_id"])
                except (ValueError, KeyError, TypeError, OverflowError):
                    continue
        np.maximum(found, mine, out=found)               # across logs (one a machine) the highest
    return array("q", found.tobytes())


def page_url(source: dict, title: str, revision: int | None) -> str | None:
    """Where a page's text came from: index.php beside api.php (with the revision), or the dump's site."""
    return _url_maker(source)(title, revision)


def _processed_folder(name: str, host: str) -> Path:
    """The manifest's processed folder (the one of its conversion options); the wiki's default folder when
    its original manifest is gone (a derived manifest alone still names its pages)."""
    try:
        return stage.processed_folder(name, host)
    except ManifestError:
        return paths.processed_dir(host)


class _Source:
    """One manifest of a set as the build walks it: its derived manifest, one listing of its processed
    folder, its revision ids, and the manifests before it on the same wiki (whose pages it does not repeat)."""

    def __init__(self, name: str, earlier: list["_Source"]):
        self.name = name
        self.meta = derived.load(name)
        self.folder = _processed_folder(name, self.meta.host)
        self.present = pagefiles.listing(self.folder)       # one listdir, not a stat per page
        self.revisions = revisions_of(self.meta.host, self.meta.titles)
        self.options = stage.recorded_fingerprint(self.folder)
        self.before = [s.meta for s in earlier if s.meta.host == self.meta.host]

    def pages(self):
        """(title, path as a string, revision id or None) of each page of this manifest with Markdown, in the
        derived manifest's order."""
        folder, present, before = os.path.join(self.folder, ""), self.present, self.before
        stem, suffix = paths.title_to_stem, stage.PROCESSED_SUFFIX
        for title, revision in zip(self.meta.titles, self.revisions):
            name = stem(title) + suffix
            if name in present and not (before and any(title in meta.title_set for meta in before)):
                yield title, folder + name, revision or None

    def summary(self, page_digest: str, pages: int) -> dict:
        meta = self.meta
        return {"manifest": self.name, "host": meta.host, "source": meta.source,
                "manifest_sha256": meta.manifest_sha256, "dump_stamp": meta.dump_stamp, "titles": len(meta.titles),
                "pages": pages, "processed_folder": self.folder.name, "conversion_options": self.options, "pages_sha256": page_digest}


def _sources(names: list[str]) -> list[_Source]:
    sources: list[_Source] = []
    for name in names:
        sources.append(_Source(name, sources))
    return sources


def _walk(sources: list[_Source], on_page=None) -> list[dict]:
    """Every page of the set once (title and revision id hashed per manifest); `on_page(source, title, path)`
    for each. Returns the inputs: each manifest's summary and their fingerprint."""
    summaries = []
    for source in sources:
        digest, count = hashlib.sha256(), 0
        for title, path, revision in source.pages():
            digest.update(f"{title}\t{revision or ''}\n".encode("utf-8"))
            count += 1
            if on_page is not None:
                on_page(source, title, path, revision)
        summaries.append(source.summary(digest.hexdigest(), count))
    return summaries


def _fingerprint(summaries: list[dict], validation: float) -> str:
    document = {"format": FORMAT, "validation": validation, "manifests": summaries}
    return hashlib.sha256(json.dumps(document, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def inputs(manifests: Sequence[str], validation: float = DEFAULT_VALIDATION) -> dict:
    """What a training set of these manifests would be built from now: {"fingerprint", "manifests"} where each
    manifest says its wiki, source, derived manifest, conversion options, how many pages have Markdown and a
    hash of their titles and revision ids. One listing of each processed folder and one read of the
    revision logs: seconds at a million pages, no page read."""
    names = list(dict.fromkeys(manifests))
    stamp = _stamp(names)
    summaries = _remembered.get(stamp) if stamp is not None else None
    if summaries is None:
        summaries = _walk(_sources(names))
        if stamp is not None:
            _remembered.clear()      # one set at a time: what TrainingSet, Tokens and Train check in turn
            _remembered[stamp] = summaries
    return {"fingerprint": _fingerprint(summaries, validation), "manifests": summaries}


_remembered: dict = {}
SETTLED_SECONDS = 2.0       # a folder changed more recently than this may change again within its time stamp


def _stamp(names: list[str]):
    """What the inputs of these manifests hang on, cheaply: their derived manifests, processed folders
    (renames change a folder's time) and revision logs, by size and time; None while one has just changed."""
    parts = []
    now = time.time_ns()
    try:
        for name in names:
            derived_path = paths.derived_manifest(name)
            meta = derived.load(name)
            folder = _processed_folder(name, meta.host)
            files = [derived_path, derived.titles_file(derived_path), folder, folder / stage.OPTIONS_FILE,
                     *paths.revisions_logs(meta.host)]
            for path in files:
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    parts.append((str(path), None))
                    continue
                if now - stat.st_mtime_ns < SETTLED_SECONDS * 1e9:
                    return None
                parts.append((str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino))
    except WikiluigiError:
        return None
    return tuple(parts)


def build_trainingset(manifests: Sequence[str], validation: float = DEFAULT_VALIDATION, progress=None) -> dict:
    """Write the manifest set's folder (see the module's docstring) and return its stats.

    Pages come in manifest order, then in each derived manifest's (sorted) title order; a page two manifests
    share is taken once, and pages without Markdown (not converted, failed) or with no text are left out.
    Streamed: a first pass over the titles chooses the held-out pages by their hash, a second reads and
    writes one page at a time, so memory does not grow with the pages' text. An empty corpus is a ModelError,
    raised before anything is written. Every file is replaced atomically (fsync, rename), stats.json last:
    it marks a finished build and holds the inputs' fingerprint. `progress(done, total)` now and then.
    """
    names = list(dict.fromkeys(manifests))
    if not names:
        raise ModelError("A training set needs at least one manifest (TrainingSet --manifests '[\"demo\"]').")
    held_out_count(1, validation)       # a bad setting fails before any work
    sources = _sources(names)
    orders = array("d")
    summaries = _walk(sources, lambda source, title, path, revision: orders.append(_held_out_order(source.meta.host, title)))
    if not orders:
        raise _nothing_to_train_on(names, sources)
    threshold, note = _threshold(orders, validation)
    target = folder(names, validation)
    target.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(target)
    (target / STATS).unlink(missing_ok=True)
    writer = _Writer(orders, threshold, progress)
    try:
        with textfiles.Writes() as writes, \
                textfiles.AtomicText(target / TRAIN_TEXT, writes) as train_text, \
                textfiles.AtomicText(target / TRAIN_JSONL, writes) as train_jsonl, \
                textfiles.AtomicText(target / VALIDATION_TEXT, writes) as held_text, \
                textfiles.AtomicText(target / VALIDATION_JSONL, writes) as held_jsonl:
            writer.sides = {"train": (train_text, train_jsonl), "validation": (held_text, held_jsonl)}
            for source in sources:
                writer.write(source)
            if not writer.figures["train"]["pages"] + writer.figures["validation"]["pages"]:   # every page blank
                raise _nothing_to_train_on(names, sources)
    except ModelError:          # nothing written: the folder is not left behind empty
        for empty in (target, target.parent):
            with contextlib.suppress(OSError):
                empty.rmdir()
        raise
    figures = writer.figures
    for side, name in (("train", TRAIN_TEXT), ("validation", VALIDATION_TEXT)):
        figures[side]["bytes"] = (target / name).stat().st_size
    stats = {"manifests": names, "folder": target.name,
             "pages": figures["train"]["pages"] + figures["validation"]["pages"],
             "characters": figures["train"]["characters"] + figures["validation"]["characters"],
             "train": figures["train"],
             "validation": {"asked": validation, **figures["validation"], "note": note, "titles": sorted(writer.held)},
             "fingerprint": _fingerprint(summaries, validation), "inputs": summaries, "tokens": {}}
    pagefiles.write_json(target / STATS, stats)
    return stats


class _Writer:
    """The second pass: each page read, wrapped and written to its side's text and JSON Lines files (the
    pages come in the first pass's order, so its held-out orders are read back by position)."""

    def __init__(self, orders: array, threshold: float, progress):
        self.orders, self.threshold, self.progress = orders, threshold, progress
        self.figures = {side: {"pages": 0, "characters": 0} for side in ("train", "validation")}
        self.held: list[str] = []
        self.sides: dict = {}
        self.done = 0

    def write(self, source: "_Source") -> None:
        """Every page of one manifest."""
        host, url_of, orders, threshold, progress = source.meta.host, _url_maker(source.meta.source), self.orders, \
            self.threshold, self.progress
        wiki = _json_string(host)
        for title, path, revision in source.pages():
            at = self.done
            self.done += 1
            if progress is not None and self.done % 10000 == 0:
                progress(self.done, len(orders))
            try:
                with open(path, "rb") as page:
                    text = page.read().decode("utf-8")
            except FileNotFoundError:    # removed since the listing
                continue
            if "\r" in text:           # as a text-mode read sees it
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            if not text.strip():
                continue
            side = "validation" if orders[at] <= threshold else "train"
            if side == "validation":
                self.held.append(title)
            block = wrap(text)
            text_file, jsonl_file = self.sides[side]
            text_file.write(block)
            url = url_of(title, revision)       # the line json.dumps(record, ensure_ascii=False) writes
            jsonl_file.write(f'{{"title": {_json_string(title)}, "text": {_json_string(block[len(START) + 1:-len(END) - 2])}, '
                             f'"url": {"null" if url is None else _json_string(url)}, '
                             f'"revision_id": {"null" if revision is None else int(revision)}, "wiki": {wiki}}}\n')
            figures = self.figures[side]
            figures["pages"] += 1
            figures["characters"] += len(block)


def _nothing_to_train_on(names: list[str], sources: list[_Source]) -> ModelError:
    folders = ", ".join(str(s.folder) for s in sources)
    return ModelError(f"No processed pages for manifest(s) {', '.join(names)} (looked in {folders}): "
                      f"nothing to train on. Run `luigi --module wikiluigi Wikipedia --manifest "
                      f"{names[0]}` first, and see its report for pages that failed.")


def _threshold(orders: array, validation: float) -> tuple[float, str]:
    """The held-out order at or under which a page is held out (-1: none), and the note saying how many."""
    import numpy as np
    values = np.frombuffer(orders, dtype=np.float64)
    below = int((values < validation).sum()) if validation < 1 else None
    count, note = held_out_count(len(values), validation, below)
    if count == 0:
        return -1.0, note
    return float(np.partition(values, count - 1)[count - 1]), note


def remove_dead_temporaries(folder: Path) -> None:
    """Remove the temporary files of writers whose process is gone (killed): pagefiles' (see
    pagefiles.remove_stale_temporaries) and the `.<name>.<pid>.part` of earlier versions; those of a live
    one, on this machine, stay."""
    pagefiles.remove_stale_temporaries(folder)
    for stale in folder.glob(".*.part"):
        if stale.name.startswith(pagefiles.TEMPORARY_PREFIX):
            continue
        pid = stale.name[:-len(".part")].rpartition(".")[2]
        if not pid.isdigit() or not pagefiles.process_alive(int(pid)):
            stale.unlink(missing_ok=True)


def read_stats(corpus_dir) -> dict | None:
    try:
        return json.loads((Path(corpus_dir) / STATS).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def stale_because(manifests: Sequence[str], validation: float = DEFAULT_VALIDATION) -> str | None:
    """Why the set's folder is not what these manifests make now (None: it is): not built, built from other
    manifests or split, or its inputs changed since (which manifest, and what: pages, revisions, options)."""
    stats = read_stats(folder(manifests, validation))
    if stats is None:
        return "not built"
    if stats.get("manifests") != list(dict.fromkeys(manifests)) or stats.get("validation", {}).get("asked") != validation:
        return "built from other manifests or another validation split"
    try:
        now = inputs(manifests, validation)
    except WikiluigiError as exc:
        return str(exc)
    if stats.get("fingerprint") == now["fingerprint"]:
        return None
    return changes(stats.get("inputs") or [], now["manifests"])


def changes(before: list[dict], now: list[dict]) -> str:
    """What differs between two lists of manifest summaries, in words."""
    said = []
    old = {entry.get("manifest"): entry for entry in before}
    for entry in now:
        was = old.get(entry["manifest"])
        if was is None:
            said.append(f"{entry['manifest']}: not in the set before")
            continue
        keys = [key for key in entry if was.get(key) != entry[key]]
        if "pages" in keys:
            said.append(f"{entry['manifest']}: {was.get('pages')} pages with Markdown, now {entry['pages']}")
            keys = [key for key in keys if key not in ("pages", "pages_sha256")]
        if "pages_sha256" in keys:
            keys[keys.index("pages_sha256")] = "pages or their revisions"
        if keys:
            said.append(f"{entry['manifest']}: {', '.join(k.replace('_', ' ') for k in keys)} changed")
    return "; ".join(said) or "built by another version of wikiluigi"


def is_built(manifests: Sequence[str], validation: float = DEFAULT_VALIDATION) -> bool:
    """Whether the set's folder is there, built from exactly these manifests with this validation split, and
    from the inputs as they are now (the same fingerprint: see inputs())."""
    return stale_because(manifests, validation) is None


def record_tokens(corpus_dir, vocabulary: str, tokens: int) -> None:
    """Add the training text's length in tokens of one vocabulary (a model folder's name) to stats.json."""
    stats = read_stats(corpus_dir)
    if stats is None:
        return
    stats.setdefault("tokens", {})[vocabulary] = int(tokens)
    pagefiles.write_json(Path(corpus_dir) / STATS, stats)
