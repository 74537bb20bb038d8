"""GPT-2 on gpt-2-simple: base models (OpenAI's or built from scratch), a training loop of our own, generation.

The only module that touches TensorFlow, gpt_2_simple and tokenizers, and only inside functions: importing
wikiluigi never loads them. Their errors become ModelError here. Everything on disk keeps gpt-2-simple's
layout, so its own loader, `generate` and `finetune` accept our base models and runs, and the other way round.
"""
import contextlib
import csv
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from wikiluigi.corpus import END, START
from wikiluigi.errors import ModelError

log = logging.getLogger(__name__)

OPENAI_MODELS = ("124M", "355M", "774M", "1558M")
OPENAI_URL = "https://openaipublic.blob.core.windows.net/gpt-2/models/{name}/{file}"
# The layout gpt-2-simple downloads and checks for (is_gpt2_downloaded): a base model is these seven files.
MODEL_FILES = ("checkpoint", "encoder.json", "hparams.json", "model.ckpt.data-00000-of-00001",
               "model.ckpt.index", "model.ckpt.meta", "vocab.bpe")
LOSS_LOG = "loss.csv"
LOSS_PLOT = "loss.png"
LOSS_COLUMNS = ("step", "loss", "avg_loss", "tokens_per_s", "elapsed_s")
RUN_INFO = "run.json"
COUNTER = "counter"          # gpt-2-simple's finetune reads it to resume a run: kept for compatibility
INDEX = "index.json"
_CHECKPOINT_STEP = re.compile(r'^model_checkpoint_path:\s*"(?:.*[/\\])?model-(\d+)"', re.M)


# ---------------------------------------------------------------------------------------------- helpers
def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    return tf


def _session(tf, graph):
    config = tf.compat.v1.ConfigProto()
    config.gpu_options.allow_growth = True
    return tf.compat.v1.Session(graph=graph, config=config)


def _model_vars(tf):
    return [v for v in tf.compat.v1.global_variables() if v.name.startswith("model/")]


@contextlib.contextmanager
def _atomic_dir(target: Path):
    """Yield a fresh temporary folder beside `target`; on success it replaces `target` in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):   # left by a killed build
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        old = target.with_name(f".{target.name}.tmp-old-{os.getpid()}")
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, target)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _positive(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ModelError(f"{name} must be a whole number of at least 1, not {value!r}.")


def _missing_files(model_dir: Path, names=MODEL_FILES) -> list[str]:
    return [name for name in names if not (model_dir / name).is_file()]


def read_hparams(model_dir) -> dict:
    path = Path(model_dir) / "hparams.json"
    try:
        hparams = json.loads(path.read_text(encoding="utf-8"))
        return {key: int(hparams[key]) for key in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")}
    except FileNotFoundError:
        raise ModelError(f"{path} does not exist: {model_dir} is not a GPT-2 model or run folder.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path} is damaged ({exc}); rebuild or re-download the model.") from None


def _hparams_object(hparams: dict):
    from gpt_2_simple.src import model
    result = model.default_hparams()
    result.override_from_dict(hparams)
    return result


def saved_step(run_dir) -> int:
    """The step of the run's latest checkpoint (0 for none), read from the `checkpoint` file without TensorFlow."""
    try:
        state = (Path(run_dir) / "checkpoint").read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return 0
    match = _CHECKPOINT_STEP.search(state)
    if not match or not (Path(run_dir) / f"model-{match.group(1)}.index").is_file():
        return 0
    return int(match.group(1))


def _restore(tf, sess, checkpoint: str, variables, required) -> None:
    """Restore every variable the checkpoint holds; those of `required` must all be there with their shapes."""
    try:
        available = dict(tf.train.list_variables(checkpoint))
    except (tf.errors.OpError, ValueError) as exc:
        raise ModelError(f"Cannot read checkpoint {checkpoint}: {exc}") from None
    required = {v.op.name for v in required}
    present = []
    for var in variables:
        name, shape = var.op.name, var.shape.as_list()
        if available.get(name) == shape:
            present.append(var)
        elif name in required:
            found = f"shape {available[name]}" if name in available else "nothing"
            raise ModelError(f"Checkpoint {checkpoint} does not fit the model's hparams.json: {name} should have "
                             f"shape {shape}, the checkpoint holds {found}.")
    try:
        tf.compat.v1.train.Saver(var_list=present).restore(sess, checkpoint)
    except tf.errors.OpError as exc:
        raise ModelError(f"Cannot restore checkpoint {checkpoint}: {exc.message}") from None


# ------------------------------------------------------------------------------------------- vocabulary
def _corpus_blocks(corpus_path: Path, block_chars: int = 1 << 20):
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


def _check_corpus(corpus_path) -> Path:
    corpus_path = Path(corpus_path)
    if not corpus_path.is_file():
        raise ModelError(f"The corpus {corpus_path} does not exist: build it first (TrainingSet).")
    for block in _corpus_blocks(corpus_path):
        if block.replace(START, "").replace(END, "").strip():
            return corpus_path
    raise ModelError(f"The corpus {corpus_path} holds no text (no tokens to learn from): check that its "
                     f"manifests have processed pages.")


def build_vocabulary(corpus_path, model_dir, vocab_size: int) -> int:
    """Train a byte-level BPE on the corpus; write it as gpt-2-simple's encoder.json + vocab.bpe. Returns n_vocab.

    `<|endoftext|>` is a special token with an id of its own. Ids are those gpt_2_simple.src.encoder gives.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus_path, model_dir = _check_corpus(corpus_path), Path(model_dir)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if not isinstance(vocab_size, int) or vocab_size < len(alphabet) + 2:
        raise ModelError(f"vocab_size must be at least {len(alphabet) + 2} (256 bytes, {END} and one merge), "
                         f"not {vocab_size!r}.")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END], initial_alphabet=alphabet,
                                  show_progress=False)
    tokenizer.train_from_iterator(_corpus_blocks(corpus_path), trainer=trainer)
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
    """A fast encoder (tokenizers) from gpt-2-simple's files: gpt-2-simple's ids, `<|endoftext|>` as one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    model_dir = Path(model_dir)
    missing = _missing_files(model_dir, ("encoder.json", "vocab.bpe"))
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
    if END in vocab:
        tokenizer.add_special_tokens([END])
    return tokenizer


def encode_corpus(corpus_path, model_dir):
    """The corpus as one int32 array of token ids, in the vocabulary of `model_dir`."""
    import numpy as np

    corpus_path = _check_corpus(corpus_path)
    tokenizer = load_tokenizer(model_dir)
    arrays = [np.asarray(tokenizer.encode(block).ids, dtype=np.int32) for block in _corpus_blocks(corpus_path)]
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int32)


# ------------------------------------------------------------------------------------------ base models
def build_scratch_model(model_dir, corpus_path, *, n_layer: int, n_embd: int, n_head: int, n_ctx: int,
                        vocab_size: int, seed: int) -> dict:
    """A GPT-2 with random weights and a vocabulary trained on the corpus, in gpt-2-simple's seven-file layout.

    Built in a temporary folder renamed into place at the end: a killed build leaves no model folder.
    """
    model_dir = Path(model_dir)
    _positive(n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_ctx=n_ctx)
    if n_embd % n_head:
        raise ModelError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head}).")
    if n_ctx < 2:
        raise ModelError(f"n_ctx must be at least 2, not {n_ctx}.")
    _check_corpus(corpus_path)
    with _atomic_dir(model_dir) as tmp:
        n_vocab = build_vocabulary(corpus_path, tmp, vocab_size)
        hparams = {"n_vocab": n_vocab, "n_ctx": n_ctx, "n_embd": n_embd, "n_head": n_head, "n_layer": n_layer}
        _write_atomic(tmp / "hparams.json", json.dumps(hparams, indent=2) + "\n")
        _write_random_weights(tmp, hparams, seed)
        tokens = int(encode_corpus(corpus_path, tmp).size)
    log.info("Built a GPT-2 from scratch in %s: %s, corpus of %d tokens", model_dir, hparams, tokens)
    return {**hparams, "tokens": tokens}


def _write_random_weights(model_dir: Path, hparams: dict, seed: int) -> None:
    tf = _tf()
    from gpt_2_simple.src import model

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        context = tf.compat.v1.placeholder(tf.int32, [1, None])
        model.model(hparams=_hparams_object(hparams), X=context)
        # save_relative_paths: the `checkpoint` file says "model.ckpt", as OpenAI's do, so the folder can move.
        saver = tf.compat.v1.train.Saver(var_list=_model_vars(tf), save_relative_paths=True)
        with _session(tf, graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(model_dir / "model.ckpt"))


def download_openai_model(model_dir, name: str) -> None:
    """OpenAI's GPT-2 `name` (124M, 355M, 774M, 1558M) downloaded by gpt-2-simple into `model_dir`, atomically."""
    if name not in OPENAI_MODELS:
        raise ModelError(f"Unknown GPT-2 model {name!r}: OpenAI's models are {', '.join(OPENAI_MODELS)}; "
                         f"for a model built from the corpus use 'scratch'.")
    import gpt_2_simple
    import requests

    model_dir = Path(model_dir)
    with _atomic_dir(model_dir) as tmp:
        try:
            gpt_2_simple.download_gpt2(model_dir=str(tmp), model_name=name)
        except (requests.RequestException, OSError, KeyError, ValueError) as exc:
            # gpt-2-simple requests the files in order and opens each only once its response came.
            failed = next((f for f in MODEL_FILES if not (tmp / name / f).exists()), MODEL_FILES[-1])
            url = OPENAI_URL.format(name=name, file=failed)
            reason = f"no content-length header ({exc})" if isinstance(exc, KeyError) else exc
            raise ModelError(f"Could not download GPT-2 {name} from {url}: {reason}. Connect to the network, or "
                             f"put its seven files ({', '.join(MODEL_FILES)}) in {model_dir} yourself.") from None
        for file in MODEL_FILES:
            os.replace(tmp / name / file, tmp / file)
        os.rmdir(tmp / name)
        read_hparams(tmp)   # gpt-2-simple saves error pages too: a body that is not JSON fails here
    log.info("Downloaded GPT-2 %s into %s", name, model_dir)


def check_base_model(model_dir) -> dict:
    """The hparams of a complete base model, or a ModelError naming the missing files."""
    model_dir = Path(model_dir)
    missing = _missing_files(model_dir)
    if missing:
        raise ModelError(f"The base model {model_dir} is incomplete: {', '.join(missing)} missing. Build it "
                         f"again (BaseModel) or put OpenAI's files there.")
    return read_hparams(model_dir)


# -------------------------------------------------------------------------------------------- training
def _check_same_base(run_dir: Path, base_dir: Path, hparams: dict) -> None:
    """A run that exists must have been started from this base model (same hparams and vocabulary)."""
    if not (run_dir / "hparams.json").exists():
        return
    info_path = run_dir / RUN_INFO
    same = read_hparams(run_dir) == hparams and all(
        (run_dir / f).is_file() and (run_dir / f).read_bytes() == (base_dir / f).read_bytes()
        for f in ("encoder.json", "vocab.bpe"))
    if not same:
        started = json.loads(info_path.read_text(encoding="utf-8")).get("base_model") if info_path.exists() else "?"
        raise ModelError(f"The run {run_dir} was started from another base model ({started}), not {base_dir}: "
                         f"choose another run name, or delete {run_dir} to start again.")


def _start_run(run_dir: Path, base_dir: Path, hparams: dict, tokens: int) -> None:
    """Give a new run the base model's hparams and vocabulary; record what it trains on."""
    run_dir.mkdir(parents=True, exist_ok=True)
    info_path = run_dir / RUN_INFO
    if not (run_dir / "hparams.json").exists():
        for file in ("encoder.json", "vocab.bpe", "hparams.json"):     # hparams last: it marks a started run
            shutil.copyfile(base_dir / file, run_dir / file)
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    info = {"base_model": base_dir.name, "hparams": hparams, **info, "dataset_tokens": tokens}
    _write_atomic(info_path, json.dumps(info, indent=2) + "\n")


def _read_loss_log(run_dir: Path, upto: int) -> list[dict]:
    """The loss log's rows up to step `upto` (steps after the last checkpoint were lost with the process)."""
    path = run_dir / LOSS_LOG
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return [row for row in rows if row["step"] <= upto]


def _write_loss_log(run_dir: Path, rows: list[dict]) -> None:
    tmp = run_dir / f".{LOSS_LOG}.tmp-{os.getpid()}"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(LOSS_COLUMNS)
        writer.writerows(_loss_row(row) for row in rows)
    os.replace(tmp, run_dir / LOSS_LOG)


def _loss_row(row: dict) -> list:
    return [int(row["step"]), f"{row['loss']:.5f}", f"{row['avg_loss']:.5f}", f"{row['tokens_per_s']:.1f}",
            f"{row['elapsed_s']:.2f}"]


def plot_loss(run_dir) -> Path:
    """Draw the loss log as a PNG beside it (matplotlib's Agg canvas; no pyplot, no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    run_dir = Path(run_dir)
    rows = _read_loss_log(run_dir, upto=math.inf)
    figure = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    steps = [row["step"] for row in rows]
    axes.plot(steps, [row["loss"] for row in rows], linewidth=0.8, alpha=0.4, label="loss")
    axes.plot(steps, [row["avg_loss"] for row in rows], linewidth=1.6, label="average loss")
    axes.set_xlabel("step")
    axes.set_ylabel("cross-entropy (nats per token)")
    axes.set_title(f"{run_dir.name}: training loss")
    axes.grid(alpha=0.3)
    axes.legend()
    path = run_dir / LOSS_PLOT
    tmp = run_dir / f".{LOSS_PLOT}.tmp-{os.getpid()}.png"
    figure.savefig(tmp)
    os.replace(tmp, path)
    return path


def train(run_dir, base_model_dir, dataset_path, *, steps: int, batch_size: int = 1, accumulate: int = 1,
          learning_rate: float = 1e-4, seed: int = 1, save_every: int = 100, sample_every: int = 0,
          sample_length: int | None = None, progress=None) -> dict:
    """Train the run in `run_dir` up to `steps` steps in all, starting from its latest checkpoint if it has one.

    A new run starts from the base model's weights. `sample_length` is the training window in tokens
    (default and maximum: the model's n_ctx); gpt-2-simple's finetune hard-codes 1024. Each step takes
    `batch_size` x `accumulate` windows. Optimiser state is saved with the weights, so a resumed run goes on
    as if it had not stopped; batches are drawn from (seed, step), so a given step sees the same windows.
    `progress(step, total_steps, loss, tokens_per_s, seconds_left)` is called after the first step, about
    once a second after that, and after the last step.
    """
    run_dir, base_dir = Path(run_dir), Path(base_model_dir)
    _positive(steps=steps, batch_size=batch_size, accumulate=accumulate, save_every=save_every)
    if not isinstance(sample_every, int) or sample_every < 0:
        raise ModelError(f"sample_every must be 0 (never) or a number of steps, not {sample_every!r}.")
    if not learning_rate > 0:
        raise ModelError(f"learning_rate must be above 0, not {learning_rate!r}.")
    hparams = check_base_model(base_dir)
    n_ctx = hparams["n_ctx"]
    window = n_ctx if sample_length is None else sample_length
    if not isinstance(window, int) or not 2 <= window <= n_ctx:
        raise ModelError(f"sample_length {window!r} does not fit the model: its window n_ctx is {n_ctx} "
                         f"({base_dir / 'hparams.json'}); use a sample_length from 2 to {n_ctx}.")
    start = saved_step(run_dir)
    if start >= steps:
        log.info("%s is already at step %d of %d: nothing to train.", run_dir, start, steps)
        rows = _read_loss_log(run_dir, upto=start)
        last = rows[-1] if rows else {"loss": math.nan, "avg_loss": math.nan, "tokens_per_s": 0.0, "elapsed_s": 0.0}
        return {"start_step": start, "step": start, **{k: last[k] for k in LOSS_COLUMNS[1:]}}
    _check_same_base(run_dir, base_dir, hparams)
    tokens = encode_corpus(dataset_path, base_dir)       # the run's vocabulary: the same, as just checked
    if tokens.size <= window:
        raise ModelError(f"The corpus {dataset_path} has {tokens.size} tokens, not more than one training window "
                         f"(sample_length {window}): add pages or use a shorter sample_length.")
    _start_run(run_dir, base_dir, hparams, int(tokens.size))
    log.info("Training %s from step %d to %d on %d tokens, window %d, batch %d x %d", run_dir, start, steps,
             tokens.size, window, batch_size, accumulate)
    return _train_loop(run_dir, base_dir, tokens, hparams, start=start, steps=steps, batch_size=batch_size,
                       accumulate=accumulate, learning_rate=learning_rate, seed=seed, save_every=save_every,
                       sample_every=sample_every, window=window, progress=progress)


def _train_loop(run_dir, base_dir, tokens, hparams, *, start, steps, batch_size, accumulate, learning_rate, seed,
                save_every, sample_every, window, progress) -> dict:
    import numpy as np
    tf = _tf()
    from gpt_2_simple.src import model, sample
    from gpt_2_simple.src.accumulate import AccumulatingOptimizer

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        context = tf.compat.v1.placeholder(tf.int32, [batch_size, window])
        output = model.model(hparams=_hparams_object(hparams), X=context)
        # Each position predicts the next token. finetune slices the logits ([:, :-1]), which copies a
        # batch x window x n_vocab tensor forwards and again backwards (400 MB a window at 50k tokens);
        # here the last position gets a stand-in target and its loss is left out of the mean instead.
        targets = tf.concat([context[:, 1:], context[:, :1]], axis=1)
        per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=output["logits"])
        loss = tf.reduce_mean(input_tensor=per_token[:, :-1])
        weights = [v for v in tf.compat.v1.trainable_variables() if v.name.startswith("model/")]
        adam = tf.compat.v1.train.AdamOptimizer(learning_rate=learning_rate)
        if accumulate > 1:
            accumulating = AccumulatingOptimizer(opt=adam, var_list=weights)
            opt_reset, opt_compute = accumulating.reset(), accumulating.compute_gradients(loss)
            opt_apply = accumulating.apply_gradients()      # returns the mean loss of the accumulated batches
        else:
            opt_apply = adam.apply_gradients(zip(tf.gradients(ys=loss, xs=weights), weights))
        if sample_every:
            sample_context = tf.compat.v1.placeholder(tf.int32, [1, None])
            sample_op = sample.sample_sequence(hparams=_hparams_object(hparams), length=window - 1,
                                               context=sample_context, batch_size=1, temperature=1.0, top_k=40)
        saved = weights + adam.variables()
        saver = tf.compat.v1.train.Saver(var_list=saved, max_to_keep=1, save_relative_paths=True)
        init = tf.compat.v1.global_variables_initializer()

    # The run's checkpoint by name (a `checkpoint` file with absolute paths, as finetune writes, would
    # point to where the run used to be); the base model's through its relative `checkpoint` file.
    resume = str(run_dir / f"model-{start}") if start else None
    source = resume or tf.train.latest_checkpoint(str(base_dir))
    if source is None:
        raise ModelError(f"{base_dir / 'checkpoint'} names no checkpoint: the base model is damaged.")
    rows = _read_loss_log(run_dir, upto=start)
    _write_loss_log(run_dir, rows)
    ema = [0.0, 0.0]        # gpt-2-simple's running average: decay 0.99, bias-corrected by the weight
    for row in rows:
        ema = [ema[0] * 0.99 + row["loss"], ema[1] * 0.99 + 1.0]
    elapsed_before = rows[-1]["elapsed_s"] if rows else 0.0
    step_tokens = batch_size * accumulate * window
    eot = load_tokenizer(run_dir).token_to_id(END)
    decoder = None

    def draw_batches(step):
        rng = np.random.default_rng([seed, step])
        starts = rng.integers(0, tokens.size - window + 1, size=(accumulate, batch_size))
        return [np.stack([tokens[s:s + window] for s in row]) for row in starts]

    def save(step):
        saver.save(sess, str(run_dir / "model"), global_step=step, write_meta_graph=False)
        _write_atomic(run_dir / COUNTER, f"{step}\n")
        log_file.flush()
        plot_loss(run_dir)
        log.info("Saved %s at step %d", run_dir, step)

    def write_sample(step):
        nonlocal decoder
        from gpt_2_simple.src import encoder
        decoder = decoder or encoder.get_encoder(str(run_dir))
        seed_tokens = [eot] if eot is not None else list(draw_batches(step)[0][0][:1])
        out = sess.run(sample_op, feed_dict={sample_context: [seed_tokens]})
        (run_dir / "samples").mkdir(exist_ok=True)
        text = decoder.decode(out[0][len(seed_tokens):].tolist())
        _write_atomic(run_dir / "samples" / f"step-{step:06d}.txt", text)

    with graph.as_default(), _session(tf, graph) as sess, \
            open(run_dir / LOSS_LOG, "a", newline="", encoding="utf-8") as log_file:
        sess.run(init)
        _restore(tf, sess, source, saved, required=weights)
        if resume:
            saver.recover_last_checkpoints([resume])    # so that max_to_keep removes it after the next save
        writer = csv.writer(log_file)
        done, began, last_report, row = start, time.perf_counter(), 0.0, None
        try:
            for step in range(start + 1, steps + 1):
                tick = time.perf_counter()
                batches = draw_batches(step)
                if accumulate > 1:
                    sess.run(opt_reset)
                    for batch in batches:
                        sess.run(opt_compute, feed_dict={context: batch})
                    value = sess.run(opt_apply)
                else:
                    _, value = sess.run((opt_apply, loss), feed_dict={context: batches[0]})
                value = float(value)
                if not math.isfinite(value):
                    raise ModelError(f"The loss became {value} at step {step} of {run_dir}: lower learning_rate "
                                     f"(it is {learning_rate}); the run stays at its last checkpoint.")
                now = time.perf_counter()
                done = step
                ema = [ema[0] * 0.99 + value, ema[1] * 0.99 + 1.0]
                row = {"step": step, "loss": value, "avg_loss": ema[0] / ema[1],
                       "tokens_per_s": step_tokens / (now - tick), "elapsed_s": elapsed_before + now - began}
                writer.writerow(_loss_row(row))
                if progress and (now - last_report >= 1.0 or step == steps or step == start + 1):
                    rate = (step - start) / (now - began)
                    progress(step, steps, value, step_tokens * rate, (steps - step) / rate)
                    last_report = now
                if step % save_every == 0 or step == steps:
                    save(step)
                if sample_every and step % sample_every == 0:
                    write_sample(step)
        except KeyboardInterrupt:
            if done > saved_step(run_dir):
                save(done)
            raise
        except tf.errors.OpError as exc:
            raise ModelError(f"TensorFlow failed while training {run_dir} at step {done + 1}: {exc.message}") from None
    tokens_per_s = step_tokens * (steps - start) / (time.perf_counter() - began)
    return {"start_step": start, "step": steps, "loss": row["loss"], "avg_loss": row["avg_loss"],
            "tokens_per_s": tokens_per_s, "elapsed_s": row["elapsed_s"], "dataset_tokens": int(tokens.size)}


# ------------------------------------------------------------------------------------------ generation
def generate(run_dir, out_dir, *, nsamples: int = 20, length: int | None = None, temperature: float = 0.7,
             top_k: int = 0, top_p: float = 0.0, prefix: str = "", truncate: bool = True, seed: int | None = None,
             batch_size: int = 1, progress=None) -> dict:
    """Write `nsamples` samples from the run's latest checkpoint to `out_dir` (replaced whole, atomically).

    Files: sample-001.txt ... and index.json with the settings as asked, the checkpoint step, the length
    used, messages and the file names. Without a prefix the model starts from `<|endoftext|>`, as
    gpt-2-simple does. A `length` (tokens; default: as many as fit) above n_ctx minus the context is
    clamped, with a message logged and returned. With `truncate`, a sample ends before the first
    `<|endoftext|>` the model writes; a leading `<|startoftext|>` marker is dropped.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    _positive(nsamples=nsamples, batch_size=batch_size)
    if not temperature > 0:
        raise ModelError(f"temperature must be above 0, not {temperature!r}.")
    if not isinstance(top_k, int) or top_k < 0 or not 0.0 <= top_p <= 1.0:
        raise ModelError(f"top_k must be 0 (off) or more and top_p from 0 (off) to 1, not {top_k!r} and {top_p!r}.")
    step = saved_step(run_dir)
    if not step:
        raise ModelError(f"{run_dir} holds no checkpoint: train the run first (Train --run-name {run_dir.name}).")
    hparams = read_hparams(run_dir)
    n_ctx = hparams["n_ctx"]
    tokenizer = load_tokenizer(run_dir)
    if prefix:
        context = tokenizer.encode(prefix).ids
    elif tokenizer.token_to_id(END) is not None:
        context = [tokenizer.token_to_id(END)]
    else:
        raise ModelError(f"The vocabulary of {run_dir} has no {END} to start from: give a prefix.")
    most = n_ctx - len(context)
    if most < 1:
        raise ModelError(f"The prefix is {len(context)} tokens, the model's whole window (n_ctx {n_ctx}): "
                         f"shorten it to at most {n_ctx - 1} tokens.")
    settings = {"nsamples": nsamples, "length": length, "temperature": temperature, "top_k": top_k,
                "top_p": top_p, "prefix": prefix, "truncate": truncate, "seed": seed, "batch_size": batch_size}
    messages = []
    if length is None:
        length = most
    elif not isinstance(length, int) or length < 1:
        raise ModelError(f"length must be a number of tokens of at least 1, not {length!r}.")
    elif length > most:
        messages.append(f"length {length} is more than this model can write: its window n_ctx is {n_ctx} tokens "
                        f"and the context takes {len(context)}, so samples are {most} tokens long.")
        log.warning(messages[-1])
        length = most
    texts = _sample(run_dir, hparams, context, {**settings, "length": length, "step": step}, progress)
    width = max(3, len(str(nsamples)))
    names = [f"sample-{i:0{width}d}.txt" for i in range(1, nsamples + 1)]
    with _atomic_dir(out_dir) as tmp:
        for name, text in zip(names, texts):
            (tmp / name).write_text(text, encoding="utf-8")
        index = {"run": run_dir.name, "step": step, "settings": settings, "length": length, "messages": messages,
                 "samples": names}
        (tmp / INDEX).write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("Wrote %d samples of run %s (step %d) to %s", nsamples, run_dir.name, step, out_dir)
    return {**index, "out_dir": str(out_dir)}


def _sample(run_dir: Path, hparams: dict, context: list[int], settings: dict, progress) -> list[str]:
    tf = _tf()
    from gpt_2_simple.src import encoder, sample

    batch_size, nsamples = settings["batch_size"], settings["nsamples"]
    graph = tf.Graph()
    with graph.as_default():
        if settings["seed"] is not None:
            tf.compat.v1.set_random_seed(settings["seed"])
        context_ph = tf.compat.v1.placeholder(tf.int32, [batch_size, None])
        output = sample.sample_sequence(
            hparams=_hparams_object(hparams), length=settings["length"], context=context_ph, batch_size=batch_size,
            temperature=settings["temperature"], top_k=settings["top_k"], top_p=settings["top_p"])
        weights = _model_vars(tf)
    checkpoint = str(run_dir / f"model-{settings['step']}")
    decoder = encoder.get_encoder(str(run_dir))
    texts = []
    with graph.as_default(), _session(tf, graph) as sess:
        _restore(tf, sess, checkpoint, weights, required=weights)
        try:
            while len(texts) < nsamples:
                for row in sess.run(output, feed_dict={context_ph: [context] * batch_size}):
                    texts.append(_sample_text(decoder.decode(row[len(context):].tolist()), settings))
                if progress:
                    progress(min(len(texts), nsamples), nsamples)
        except tf.errors.OpError as exc:
            raise ModelError(f"TensorFlow failed while sampling from {run_dir}: {exc.message}") from None
    return texts[:nsamples]


def _sample_text(generated: str, settings: dict) -> str:
    if settings["truncate"]:
        generated = generated.split(END, 1)[0]
    text = settings["prefix"] + generated
    stripped = text.lstrip()
    if stripped.startswith(START):
        text = stripped[len(START):].lstrip("\n")
    return text
