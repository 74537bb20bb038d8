"""The tokenizer of a model folder (gpt-2-simple's encoder.json + vocab.bpe): train one, load it, encode, decode.

Markers are single tokens. A vocabulary built here holds `<|endoftext|>` and `<|startoftext|>` as special
tokens; OpenAI's holds `<|endoftext|>` (id 50256) and no start marker, so for it pages are separated by
`<|endoftext|>` alone, as GPT-2 was trained. Samples are cut at a marker token and never spell one out.
Only `tokenizers` and numpy are imported here, inside functions: backends of every kind share this module.
"""
import json
import os
from pathlib import Path

from wikiluigi.corpus.trainingset import END, START
from wikiluigi.errors import ModelError
from wikiluigi.pagefiles import write_atomic as _write_atomic

MARKERS = (END, START)
VOCABULARY_SAMPLE_BYTES = 1 << 28      # text a vocabulary is learnt from at most (256 MiB: the BPE trainer's memory grows with it)


def corpus_blocks(corpus_path, block_chars: int = 1 << 20):
    """The corpus as blocks of whole lines, about `block_chars` each, so that large corpora stream."""
    block, size = [], 0
    with open(corpus_path, encoding="utf-8") as lines:
        for line in lines:
            block.append(line)
            size += len(line)
            if size >= block_chars:
                yield "".join(block)
                block, size = [], 0
    if block:
        yield "".join(block)


def _without_markers(text: str) -> str:
    for marker in MARKERS:
        text = text.replace(marker, "")
    return text


def check_corpus(corpus_path) -> Path:
    corpus_path = Path(corpus_path)
    if not corpus_path.is_file():
        raise ModelError(f"The corpus {corpus_path} does not exist: build it first (TrainingSet).")
    for block in corpus_blocks(corpus_path):
        if _without_markers(block).strip():
            return corpus_path
    raise ModelError(f"The corpus {corpus_path} holds no text (no tokens to learn from): check that its "
                     f"manifests have processed pages.")


def sampled_blocks(paths: list[Path], most: int | None = None):
    """The files' blocks (corpus_blocks), every one while they hold at most `most` bytes (default
    VOCABULARY_SAMPLE_BYTES), else every k-th, spread evenly over them: the vocabulary of a whole Wikipedia is
    learnt from a sample of it, in bounded time and memory (the BPE trainer keeps every distinct word)."""
    most = VOCABULARY_SAMPLE_BYTES if most is None else most
    every = max(1, -(-sum(path.stat().st_size for path in paths) // max(most, 1)))
    for path in paths:
        for number, block in enumerate(corpus_blocks(path)):
            if number % every == 0:
                yield block


def build_vocabulary(corpus_paths, model_dir, vocab_size: int) -> int:
    """Train a byte-level BPE on the corpus files; write it as gpt-2-simple's encoder.json + vocab.bpe.
    Returns n_vocab. `corpus_paths` is one path or several (BaseModel gives the training pages alone);
    past VOCABULARY_SAMPLE_BYTES of text, an even sample of their blocks (sampled_blocks).

    `<|endoftext|>` (id 0) and `<|startoftext|>` (id 1) are special tokens, never learnt from the text
    (the markers are taken out of what the merges are learnt from). Ids are those gpt_2_simple.src.encoder
    gives.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    paths = [Path(corpus_paths)] if isinstance(corpus_paths, (str, os.PathLike)) else [Path(p) for p in corpus_paths]
    check_corpus(paths[0])
    model_dir = Path(model_dir)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    least = len(alphabet) + len(MARKERS) + 1
    if not isinstance(vocab_size, int) or vocab_size < least:
        raise ModelError(f"vocab_size must be at least {least} (256 bytes, {END}, {START} and one merge), "
                         f"not {vocab_size!r}.")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(MARKERS), initial_alphabet=alphabet,
                                  show_progress=False)
    blocks = (_without_markers(block) for block in sampled_blocks([path for path in paths if path.is_file()]))
    tokenizer.train_from_iterator(blocks, trainer=trainer)
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    model_dir.mkdir(parents=True, exist_ok=True)
    # ASCII JSON: gpt-2-simple opens encoder.json in the locale's encoding (OpenAI's file is ASCII too).
    _write_atomic(model_dir / "encoder.json", json.dumps(dict(sorted(vocab.items(), key=lambda kv: kv[1]))))
    # gpt-2-simple reads vocab.bpe as lines[1:-1]: a header line first, a newline after the last merge.
    lines = [" ".join(m) if isinstance(m, list) else m for m in merges]
    _write_atomic(model_dir / "vocab.bpe", "#version: 0.2\n" + "".join(f"{line}\n" for line in lines))
    return len(vocab)


def load_tokenizer(model_dir):
    """A fast encoder (tokenizers) from gpt-2-simple's files, with gpt-2-simple's ids and every marker the
    vocabulary holds as one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    model_dir = Path(model_dir)
    missing = [name for name in ("encoder.json", "vocab.bpe") if not (model_dir / name).is_file()]
    if missing:
        raise ModelError(f"{model_dir} has no vocabulary: {', '.join(missing)} missing.")
    vocab = json.loads((model_dir / "encoder.json").read_text(encoding="utf-8"))
    lines = (model_dir / "vocab.bpe").read_text(encoding="utf-8").split("\n")[1:-1]
    merges = [tuple(line.split()) for line in lines]
    try:
        tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    except Exception as exc:    # tokenizers raises plain Exception on a merge without its tokens
        raise ModelError(f"The vocabulary in {model_dir} is damaged: {exc}") from None
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    present = [marker for marker in MARKERS if marker in vocab]
    if present:
        tokenizer.add_special_tokens(present)
    return tokenizer


def marker_ids(tokenizer) -> set[int]:
    return {i for i in (tokenizer.token_to_id(m) for m in MARKERS) if i is not None}


def start_context(tokenizer) -> list[int]:
    """How a page starts in the corpus, as token ids: the end of the page before (`<|endoftext|>`), then
    `<|startoftext|>` where the vocabulary has it, each on its line. Empty for a vocabulary without markers."""
    if tokenizer.token_to_id(END) is None:
        return []
    start = f"{START}\n" if tokenizer.token_to_id(START) is not None else ""
    return tokenizer.encode(f"{END}\n{start}").ids


def encode_corpus(corpus_path, tokenizer):
    """The corpus as one int32 array of token ids. A marker the vocabulary lacks (`<|startoftext|>` in
    OpenAI's) is left out rather than spelt in pieces; each marker's line break goes with it."""
    import numpy as np

    corpus_path = check_corpus(corpus_path)
    missing = [marker for marker in MARKERS if tokenizer.token_to_id(marker) is None]
    arrays = []
    for block in corpus_blocks(corpus_path):
        for marker in missing:
            block = block.replace(marker + "\n", "").replace(marker, "")
        arrays.append(np.asarray(tokenizer.encode(block).ids, dtype=np.int32))
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int32)


def decode_sample(tokenizer, ids, *, truncate: bool = True, after_prefix: bool = False) -> str:
    """A sample's text from the ids the model wrote after its context.

    With `truncate` it ends before the first marker token after the text began; a new page's markers and
    blank lines before its text are skipped (not after a prefix: there the text has begun). Without
    `truncate`, markers are written whole. A marker is one token, so no fragment of one can appear.
    """
    ids = [int(i) for i in ids]
    if not truncate:
        return tokenizer.decode(ids, skip_special_tokens=False)
    markers = marker_ids(tokenizer)
    first = 0 if after_prefix else next(
        (n for n, i in enumerate(ids) if i not in markers and tokenizer.decode([i]).strip()), len(ids))
    cut = next((n for n in range(first, len(ids)) if ids[n] in markers), len(ids))
    return tokenizer.decode(ids[first:cut], skip_special_tokens=False)
