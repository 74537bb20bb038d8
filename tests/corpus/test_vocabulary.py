"""wikiluigi.corpus.vocabulary: gpt-2-simple's ids, markers as single tokens, and samples cut at a marker."""
import json
import re

import pytest

from wikiluigi.corpus import vocabulary
from wikiluigi.corpus.trainingset import END, START, wrap
from wikiluigi.errors import ModelError

FRAGMENT = re.compile(r"<\||\|>|startoftext|endoftext")


def test_vocabulary_ids_are_gpt2_simple_encoder_ids_and_markers_are_single_tokens(tmp_path, corpus):
    from gpt_2_simple.src import encoder

    n_vocab = vocabulary.build_vocabulary(corpus, tmp_path, 600)
    assert n_vocab == 600
    vocab = json.loads((tmp_path / "encoder.json").read_text(encoding="ascii"))   # ASCII: any locale reads it
    assert len(vocab) == 600 and vocab[END] == 0 and vocab[START] == 1
    assert not any(FRAGMENT.search(token) for token in vocab if token not in (END, START))   # no learnt pieces
    bpe = (tmp_path / "vocab.bpe").read_text(encoding="utf-8")
    assert bpe.startswith("#version: 0.2\n") and bpe.endswith("\n")
    assert len(bpe.split("\n")[1:-1]) == 600 - 256 - 2          # every merge read back by gpt-2-simple

    theirs, ours = encoder.get_encoder(str(tmp_path)), vocabulary.load_tokenizer(tmp_path)
    text = corpus.read_text(encoding="utf-8")
    plain = text.replace(END, "").replace(START, "")
    for sample in (plain, "Spock's  ship   isn't\n\n\tthe U.S.S. Enterprise (NCC-1701) – naïve café 😀 ½ 12345"):
        ids = theirs.encode(sample)
        assert ours.encode(sample).ids == ids
        assert theirs.decode(ids) == sample
    # Each marker is one token for us; gpt-2-simple's encoder spells them out, and decodes ours back to them.
    ids = vocabulary.encode_corpus(corpus, ours).tolist()
    assert ids.count(0) == text.count(END) and ids.count(1) == text.count(START)
    assert theirs.decode(ids) == text


def openai_like(tmp_path, corpus):
    """A vocabulary shaped like OpenAI's: `<|endoftext|>` its last id (50256 in OpenAI's), no start marker."""
    vocabulary.build_vocabulary(corpus, tmp_path, 600)
    vocab = json.loads((tmp_path / "encoder.json").read_text(encoding="ascii"))
    del vocab[START], vocab[END]
    vocab = {token: n for n, token in enumerate(sorted(vocab, key=vocab.get))}
    vocab[END] = len(vocab)
    (tmp_path / "encoder.json").write_text(json.dumps(vocab), encoding="ascii")
    return vocabulary.load_tokenizer(tmp_path), vocab[END]


def test_with_openais_kind_of_vocabulary_the_end_marker_is_one_token_and_the_start_marker_goes(tmp_path, corpus):
    tokenizer, end = openai_like(tmp_path, corpus)
    assert end == 598 and tokenizer.encode(f"Spock.{END}").ids[-1] == end
    ids = vocabulary.encode_corpus(corpus, tokenizer).tolist()
    text = corpus.read_text(encoding="utf-8")
    assert ids.count(end) == text.count(END)
    decoded = tokenizer.decode(ids, skip_special_tokens=False)
    assert START not in decoded and FRAGMENT.sub("", decoded.replace(END, "")) == decoded.replace(END, "")
    assert decoded == text.replace(START + "\n", "")
    assert vocabulary.start_context(tokenizer) == tokenizer.encode(f"{END}\n").ids


def test_a_sample_ends_at_the_first_marker_after_its_text(tmp_path, corpus):
    vocabulary.build_vocabulary(corpus, tmp_path, 600)
    tokenizer = vocabulary.load_tokenizer(tmp_path)
    ids = tokenizer.encode(f"\n{START}\nSpock is a Vulcan.\n{END}\n{START}\nKirk").ids
    assert vocabulary.decode_sample(tokenizer, ids) == "Spock is a Vulcan.\n"
    assert vocabulary.decode_sample(tokenizer, ids, truncate=False) == f"\n{START}\nSpock is a Vulcan.\n{END}\n{START}\nKirk"
    after_prefix = tokenizer.encode(f" is a Vulcan.{START}").ids
    assert vocabulary.decode_sample(tokenizer, after_prefix, after_prefix=True) == " is a Vulcan."
    assert vocabulary.start_context(tokenizer) == [0, tokenizer.token_to_id("Ċ"), 1, tokenizer.token_to_id("Ċ")]


def test_markers_in_a_pages_own_text_are_taken_out_of_the_corpus():
    assert wrap(f"GPT-2 ends a text with {END}, or {START} begins one.") == \
        f"{START}\nGPT-2 ends a text with , or  begins one.\n{END}\n"


def test_vocabulary_needs_a_corpus_with_text(tmp_path):
    with pytest.raises(ModelError, match=r"does not exist: build it first"):
        vocabulary.build_vocabulary(tmp_path / "missing.txt", tmp_path / "model", 1000)
    empty = tmp_path / "empty.txt"
    empty.write_text(wrap("") * 3, encoding="utf-8")
    with pytest.raises(ModelError, match=r"holds no text \(no tokens"):
        vocabulary.build_vocabulary(empty, tmp_path / "model", 1000)


def test_a_big_corpus_is_sampled_evenly_for_the_vocabulary(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("".join(f"line {n} of a\n" for n in range(20000)), encoding="utf-8")
    second.write_text("".join(f"line {n} of b\n" for n in range(20000)), encoding="utf-8")
    whole = list(vocabulary.sampled_blocks([first, second]))
    assert "".join(whole) == first.read_text(encoding="utf-8") + second.read_text(encoding="utf-8")
    blocks = [list(vocabulary.corpus_blocks(path, block_chars=1000)) for path in (first, second)]
    size = first.stat().st_size + second.stat().st_size
    from unittest import mock
    with mock.patch.object(vocabulary, "corpus_blocks", lambda path: iter(blocks[0 if path == first else 1])):
        sample = list(vocabulary.sampled_blocks([first, second], most=-(-size // 4)))
    assert sample == blocks[0][::4] + blocks[1][::4]              # every 4th block of each file
