"""The training corpus: every processed page of some manifests, each wrapped in GPT-2's document markers."""
import json
import os
import tempfile
from typing import Sequence

from wikiluigi import derived, pagefiles, paths
from wikiluigi.errors import ModelError

START = "<|startoftext|>"
END = "<|endoftext|>"


def wrap(text: str) -> str:
    """One page as the model sees it: `<|startoftext|>`, the page, `<|endoftext|>`, a line each."""
    return f"{START}\n{text.strip()}\n{END}\n"


def build_trainingset(manifests: Sequence[str]) -> dict:
    """Write paths.trainingset() and its stats file; return the stats.

    Pages come in manifest order, then in each derived manifest's (sorted) title order; a page two manifests
    share is taken once, and pages without Markdown (not converted, failed) or with no text are left out.
    An empty corpus is a ModelError, raised before anything is written.
    """
    names = list(dict.fromkeys(manifests))
    if not names:
        raise ModelError("A training set needs at least one manifest (TrainingSet --manifests '[\"demo\"]').")
    target = paths.trainingset()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    pages = characters = 0
    seen = set()
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            for name in names:
                meta = derived.load(name)
                present = pagefiles.listing(paths.processed_dir(meta.host))  # one listdir, not a stat per page
                for title in meta.titles:
                    if (meta.host, title) in seen:
                        continue
                    seen.add((meta.host, title))
                    path = paths.processed_page(meta.host, title)
                    if path.name not in present:
                        continue
                    try:
                        text = path.read_text(encoding="utf-8")
                    except FileNotFoundError:    # removed since the listing
                        continue
                    if not text.strip():
                        continue
                    block = wrap(text)
                    out.write(block)
                    pages += 1
                    characters += len(block)
        if not pages:
            folders = ", ".join(str(paths.processed_dir(derived.load(n).host)) for n in names)
            raise ModelError(f"No processed pages for manifest(s) {', '.join(names)} (looked in {folders}): "
                             f"nothing to train on. Run `luigi --module wikiluigi Wikipedia --manifest "
                             f"{names[0]}` first, and see its report for pages that failed.")
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    stats = {"manifests": names, "pages": pages, "characters": characters, "bytes": target.stat().st_size,
             "tokens": {}}
    pagefiles.write_json(paths.trainingset_stats(), stats)
    return stats


def read_stats() -> dict | None:
    try:
        return json.loads(paths.trainingset_stats().read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def is_built(manifests: Sequence[str]) -> bool:
    """Whether out/trainingset.txt is there and was made from exactly these manifests (its stats say which)."""
    if not paths.trainingset().exists():
        return False
    stats = read_stats()
    return stats is not None and stats.get("manifests") == list(dict.fromkeys(manifests))


def record_tokens(vocabulary: str, tokens: int) -> None:
    """Add the corpus's length in tokens of one vocabulary (a model folder's name) to the stats file."""
    stats = read_stats()
    if stats is None:
        return
    stats.setdefault("tokens", {})[vocabulary] = int(tokens)
    pagefiles.write_json(paths.trainingset_stats(), stats)
