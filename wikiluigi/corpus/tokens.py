"""A training set's tokens for one vocabulary, written once: flat binary files of token ids and a JSON beside them.

out/trainingset/<set>/tokens/<model folder>/ holds
    train.bin, validation.bin   the token ids of train.txt and validation.txt, one after the other, as
                                little-endian uint16 while the vocabulary fits (nanoGPT's train.bin), else uint32
    tokens.json                 vocabulary (model folder and a hash of its files), dtype, token and page
                                counts, the training set's fingerprint; written last: it marks finished files
Training reads random windows of a numpy memmap of them (open_tokens), so a Train start costs the same
whatever the corpus. The text is cut into blocks of whole pages (a page never spans two blocks, so the
ids are those of the whole text at once) that worker processes encode, a few blocks in flight at a time:
every core, bounded memory. Every file is written under a temporary name, fsync'ed and renamed.
"""
import collections
import hashlib
import json
import logging
import os
from pathlib import Path

from wikiluigi import pagefiles
from wikiluigi.corpus import trainingset as corpus, vocabulary
from wikiluigi.errors import ModelError

log = logging.getLogger(__name__)

FOLDER = "tokens"
TRAIN_BIN, VALIDATION_BIN, INFO = "train.bin", "validation.bin", "tokens.json"
SIDES = (("train", corpus.TRAIN_TEXT, TRAIN_BIN), ("validation", corpus.VALIDATION_TEXT, VALIDATION_BIN))
FORMAT = 1
BLOCK_BYTES = 1 << 20          # text per block a worker encodes
IN_FLIGHT_PER_WORKER = 2       # blocks handed out ahead of the writer: what bounds memory


def folder(corpus_dir, model_dir) -> Path:
    """Where the tokens of a training set (its folder) in a vocabulary (a model folder) go."""
    return Path(corpus_dir) / FOLDER / Path(model_dir).name


ITEM_BYTES = {"uint16": 2, "uint32": 4}  # the dtypes written, and the bytes of an id in each


def dtype_for(n_vocab: int) -> str:
    return "uint16" if n_vocab <= 1 << 16 else "uint32"


def vocabulary_sha256(model_dir) -> str:
    """A hash of the vocabulary's files (encoder.json, vocab.bpe): another vocabulary, other tokens."""
    digest = hashlib.sha256()
    for name in ("encoder.json", "vocab.bpe"):
        try:
            digest.update((Path(model_dir) / name).read_bytes())
        except FileNotFoundError:
            raise ModelError(f"{model_dir} has no vocabulary: {name} missing.") from None
    return digest.hexdigest()


def expected(corpus_dir, model_dir) -> dict:
    """What the tokens of this training set in this vocabulary must have been made from, with its hash."""
    stats = corpus.read_stats(corpus_dir)
    if stats is None:
        raise ModelError(f"{corpus_dir} holds no training set ({corpus.STATS} missing): build it (TrainingSet).")
    made_of = {"format": FORMAT, "vocabulary": Path(model_dir).name, "vocabulary_sha256": vocabulary_sha256(model_dir),
               "trainingset": stats.get("fingerprint") or _stats_stamp(corpus_dir)}
    digest = hashlib.sha256(json.dumps(made_of, sort_keys=True).encode("utf-8")).hexdigest()
    return {**made_of, "fingerprint": digest}


def _stats_stamp(corpus_dir) -> str:
    """For a training set from before fingerprints: the size and time of its text files."""
    stamps = [(name, (Path(corpus_dir) / name).stat().st_size, (Path(corpus_dir) / name).stat().st_mtime_ns)
              for name in (corpus.TRAIN_TEXT, corpus.VALIDATION_TEXT) if (Path(corpus_dir) / name).exists()]
    return hashlib.sha256(json.dumps(stamps).encode("utf-8")).hexdigest()


def read_info(corpus_dir, model_dir) -> dict | None:
    try:
        info = json.loads((folder(corpus_dir, model_dir) / INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def problem(corpus_dir, model_dir) -> str | None:
    """What is wrong with the tokens on disk for this training set and vocabulary, in words naming the file
    (None: they are sound and current). Sizes and fingerprints only: no token is read."""
    target = folder(corpus_dir, model_dir)
    info = read_info(corpus_dir, model_dir)
    if info is None:
        return f"{target / INFO} is missing or unreadable (tokens never written, or their writing was cut short)"
    want = expected(corpus_dir, model_dir)
    for key, what in (("format", "another version of wikiluigi"), ("vocabulary_sha256", "another vocabulary"),
                      ("trainingset", "another build of the training set")):
        if info.get(key) != want[key]:
            return f"{target / INFO} is of {what} than {Path(corpus_dir).name} and {Path(model_dir).name} now"
    itemsize = ITEM_BYTES.get(info.get("dtype"))
    if itemsize is None:
        return f"{target / INFO} names no dtype wikiluigi writes ({info.get('dtype')!r})"
    for side, _, name in SIDES:
        path = target / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return f"{path} is missing"
        tokens = (info.get(side) or {}).get("tokens")
        if not isinstance(tokens, int) or size != tokens * itemsize:
            return (f"{path} is {size:,} bytes where {INFO} says {tokens!r} tokens of {info['dtype']} "
                    f"({tokens * itemsize if isinstance(tokens, int) else '?'} bytes): cut short or damaged")
    return None


def page_blocks(path, block_bytes: int = BLOCK_BYTES):
    """The text file as blocks (UTF-8 bytes) of whole pages (each ends after an `<|endoftext|>` line), about
    `block_bytes` bytes each: BPE never joins tokens across a page's end marker, so encoding the blocks one by
    one gives the ids of the whole text."""
    end = (corpus.END + "\n").encode("utf-8")
    block, size = [], 0
    with open(path, "rb") as lines:
        for line in lines:
            block.append(line)
            size += len(line)
            if size >= block_bytes and line == end:
                yield b"".join(block)
                block, size = [], 0
    if block:
        yield b"".join(block)


# ------------------------------------------------------------------------------------------ encoding
_worker = {}


def _start_worker(model_dir: str, dtype: str) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"      # one core per process: the processes are the parallelism
    tokenizer = vocabulary.load_tokenizer(model_dir)
    _worker.update(tokenizer=tokenizer, dtype=dtype,
                   missing=[m for m in vocabulary.MARKERS if tokenizer.token_to_id(m) is None])


def _encode(data: bytes) -> bytes:
    """One block's ids as bytes of the dtype. A marker the vocabulary lacks (`<|startoftext|>` in OpenAI's)
    is left out with its line break, as vocabulary.encode_corpus does."""
    import numpy as np
    block = data.decode("utf-8")
    for marker in _worker["missing"]:
        block = block.replace(marker + "\n", "").replace(marker, "")
    # Page by page (each up to and with its end marker, where the text is cut anyway): faster than one long
    # string, and the same ids.
    end = corpus.END + "\n"
    pages = [page + end for page in block.split(end)]
    pages[-1] = pages[-1][:-len(end)]
    little = np.dtype(_worker["dtype"]).newbyteorder("<")
    encoded = _worker["tokenizer"].encode_batch(pages, add_special_tokens=False)
    return b"".join(np.asarray(page.ids, dtype=little).tobytes() for page in encoded)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def encoded_blocks(path, model_dir, dtype: str, workers: int, block_bytes: int = BLOCK_BYTES):
    """(bytes of ids, bytes of text) of each block of `path` in order, encoded by `workers` processes (in this
    process when 1), at most IN_FLIGHT_PER_WORKER blocks a worker ahead of the caller."""
    blocks = page_blocks(path, block_bytes)
    if workers <= 1:
        _start_worker(str(model_dir), dtype)
        for block in blocks:
            yield _encode(block), len(block)
        return
    import multiprocessing
    # forkserver: workers forked from a fresh process that imported this module once (quick to start), never
    # from this one, whatever threads (TensorFlow's, tokenizers') it has started
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with context.Pool(workers, _start_worker, (str(model_dir), dtype)) as pool:
        pending = collections.deque()
        for block in blocks:
            pending.append((pool.apply_async(_encode, (block,)), len(block)))
            if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                result, size = pending.popleft()
                yield result.get(), size
        while pending:
            result, size = pending.popleft()
            yield result.get(), size


def write_tokens(corpus_dir, model_dir, *, workers: int | None = None, progress=None,
                 block_bytes: int = BLOCK_BYTES) -> dict:
    """Encode the training set's train.txt and validation.txt with the model folder's vocabulary into
    folder(corpus_dir, model_dir) and return tokens.json's content. `workers`: processes (default: every
    core; one for a text of a few blocks). `progress(done_bytes, total_bytes)` of text after each block."""
    corpus_dir, model_dir = Path(corpus_dir), Path(model_dir)
    want = expected(corpus_dir, model_dir)
    stats = corpus.read_stats(corpus_dir)
    vocabulary.check_corpus(corpus_dir / corpus.TRAIN_TEXT)
    n_vocab = len(json.loads((model_dir / "encoder.json").read_text(encoding="utf-8")))
    dtype = dtype_for(n_vocab)
    target = folder(corpus_dir, model_dir)
    target.mkdir(parents=True, exist_ok=True)
    (target / INFO).unlink(missing_ok=True)           # the files below are not those of the old tokens.json
    corpus.remove_dead_temporaries(target)             # left by a killed write
    sizes = {side: (corpus_dir / text).stat().st_size if (corpus_dir / text).exists() else 0
             for side, text, _ in SIDES}
    total = sum(sizes.values())
    if workers is None:
        workers = min(default_workers(), max(1, total // block_bytes // 2))
    info = {**want, "dtype": dtype, "n_vocab": n_vocab, "workers": workers}
    done = 0
    for side, text, name in SIDES:
        count = 0
        with pagefiles.open_atomic(target / name) as out:      # a kill leaves a temporary, removed next time
            if sizes[side]:
                for data, size in encoded_blocks(corpus_dir / text, model_dir, dtype, workers, block_bytes):
                    out.write(data)
                    count += len(data)
                    done += size
                    if progress is not None:
                        progress(done, total)
        info[side] = {"tokens": count // ITEM_BYTES[dtype],
                      "pages": (stats.get(side) or {}).get("pages"), "bytes": count}
    pagefiles.write_json(target / INFO, info)
    corpus.record_tokens(corpus_dir, model_dir.name, info["train"]["tokens"])
    log.info("Wrote %s tokens (%s) of %s in %s", f"{info['train']['tokens']:,}", dtype, corpus_dir.name, target)
    return info


def ensure(corpus_dir, model_dir, **options) -> dict:
    """tokens.json of sound, current tokens: written (again) when missing, damaged or stale (logged)."""
    said = problem(corpus_dir, model_dir)
    if said is None:
        return read_info(corpus_dir, model_dir)
    log.info("Writing the tokens of %s: %s", corpus_dir, said)
    return write_tokens(corpus_dir, model_dir, **options)


def open_tokens(corpus_dir, model_dir):
    """(train ids, validation ids, tokens.json) with the ids as read-only numpy memmaps (an empty array for
    an empty side), after checking sizes and fingerprints: a ModelError naming the file and what to do when
    the tokens are missing, damaged or of another training set or vocabulary."""
    import numpy as np
    said = problem(corpus_dir, model_dir)
    if said is not None:
        raise ModelError(f"The tokens of {corpus_dir} in {Path(model_dir).name} cannot be used: {said}. Write them "
                         f"again: run the Tokens task (Train does), or delete {folder(corpus_dir, model_dir)}.")
    info = read_info(corpus_dir, model_dir)
    arrays = []
    for side, _, name in SIDES:
        if info[side]["tokens"]:
            arrays.append(np.memmap(folder(corpus_dir, model_dir) / name, dtype=np.dtype(info["dtype"]).newbyteorder("<"),
                                    mode="r"))
        else:
            arrays.append(np.zeros(0, dtype=info["dtype"]))
    return arrays[0], arrays[1], info
