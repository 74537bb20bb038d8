"""The TensorFlow backend: GPT-2 base models (OpenAI's or built from scratch), training steps and sampling
on gpt-2-simple's model code.

The only module that touches TensorFlow and gpt_2_simple, and only inside functions: importing wikiluigi
never loads them. Their errors become ModelError here. It is a backend of wikiluigi.training.loop (NAME,
open_backend, generate_ids): the loop, the run folder and the vocabulary are shared with every backend.
Everything on disk keeps gpt-2-simple's layout: its loader, `generate` and `finetune` accept our base
models and a run's latest/ and best/ folders.
"""
import contextlib
import json
import logging
import os
from pathlib import Path

from wikiluigi.corpus import vocabulary
from wikiluigi.errors import ModelError
from wikiluigi.pagefiles import write_atomic as _write_atomic
from wikiluigi.training.runfolder import atomic_dir as _atomic_dir, read_hparams

log = logging.getLogger(__name__)

NAME = "tensorflow"
OPENAI_MODELS = ("124M", "355M", "774M", "1558M")
OPENAI_URL = "https://openaipublic.blob.core.windows.net/gpt-2/models/{name}/{file}"
# The layout gpt-2-simple downloads and checks for (is_gpt2_downloaded): a base model is these seven files.
MODEL_FILES = ("checkpoint", "encoder.json", "hparams.json", "model.ckpt.data-00000-of-00001",
               "model.ckpt.index", "model.ckpt.meta", "vocab.bpe")
COUNTER = "counter"          # gpt-2-simple's finetune reads it to resume a run: kept for compatibility


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


def _positive(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ModelError(f"{name} must be a whole number of at least 1, not {value!r}.")


def _missing_files(model_dir: Path, names=MODEL_FILES) -> list[str]:
    return [name for name in names if not (model_dir / name).is_file()]


def _hparams_object(hparams: dict):
    from gpt_2_simple.src import model
    result = model.default_hparams()
    result.override_from_dict(hparams)
    return result


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


# ------------------------------------------------------------------------------------------ base models
def build_scratch_model(model_dir, corpus_paths, *, n_layer: int, n_embd: int, n_head: int, n_ctx: int,
                        vocab_size: int, seed: int, count_tokens: bool = True) -> dict:
    """A GPT-2 with random weights and a vocabulary trained on the corpus, in gpt-2-simple's seven-file layout.

    `corpus_paths`: one text file or several (BaseModel gives a training set's train.txt alone); with
    `count_tokens`, `tokens` in the result counts the first (one more pass over it: BaseModel leaves that to
    the Tokens task). Built in a temporary folder renamed into place at the end: a killed build leaves no
    model folder.
    """
    first = Path(corpus_paths) if isinstance(corpus_paths, (str, os.PathLike)) else Path(corpus_paths[0])
    model_dir = Path(model_dir)
    _positive(n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_ctx=n_ctx)
    if n_embd % n_head:
        raise ModelError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head}).")
    if n_ctx < 2:
        raise ModelError(f"n_ctx must be at least 2, not {n_ctx}.")
    vocabulary.check_corpus(first)
    with _atomic_dir(model_dir) as tmp:
        n_vocab = vocabulary.build_vocabulary(corpus_paths, tmp, vocab_size)
        hparams = {"n_vocab": n_vocab, "n_ctx": n_ctx, "n_embd": n_embd, "n_head": n_head, "n_layer": n_layer}
        _write_atomic(tmp / "hparams.json", json.dumps(hparams, indent=2) + "\n")
        _write_random_weights(tmp, hparams, seed)
        tokens = int(vocabulary.encode_corpus(first, vocabulary.load_tokenizer(tmp)).size) if count_tokens else None
    log.info("Built a GPT-2 from scratch in %s: %s", model_dir, hparams)
    return {**hparams, **({"tokens": tokens} if count_tokens else {})}


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




# ------------------------------------------------------------------------------------- the backend
@contextlib.contextmanager
def open_backend(hparams: dict, base_dir, resume, settings):
    """A TensorFlowModel restored from `resume` (a run's latest/ folder) or the base model's weights."""
    model = TensorFlowModel(hparams, settings)
    try:
        model.restore(Path(resume) if resume else Path(base_dir), with_optimizer=resume is not None)
        yield model
    finally:
        model.close()


class TensorFlowModel:
    """One graph for training (Adam, optional accumulation, global-norm clipping, the learning rate fed per
    step), evaluation and sampling, on gpt-2-simple's model code; see wikiluigi.training.loop for the protocol."""

    def __init__(self, hparams: dict, settings):
        tf = self.tf = _tf()
        from gpt_2_simple.src import model, sample

        self.settings, self.hparams = settings, hparams
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.set_random_seed(settings.seed)
            self.context = tf.compat.v1.placeholder(tf.int32, [settings.batch_size, settings.window])
            self.rate = tf.compat.v1.placeholder(tf.float32, [])
            self.loss = self._loss(model.model(hparams=_hparams_object(hparams), X=self.context)["logits"],
                                   self.context)[0]
            weights = self.weights = [v for v in tf.compat.v1.trainable_variables() if v.name.startswith("model/")]
            adam = tf.compat.v1.train.AdamOptimizer(learning_rate=self.rate)
            gradients = tf.gradients(ys=self.loss, xs=weights)
            if settings.accumulate > 1:
                # The sum of each batch's gradients, kept in variables of their own, applied as their mean.
                sums = [tf.compat.v1.Variable(tf.zeros_like(w), trainable=False, name=f"accumulated_{n}")
                        for n, w in enumerate(weights)]
                self.reset = [s.assign(tf.zeros_like(s)) for s in sums]
                self.add = [s.assign_add(g) for s, g in zip(sums, gradients)]
                gradients = [s / settings.accumulate for s in sums]
            if settings.grad_clip:
                gradients, _norm = tf.clip_by_global_norm(gradients, settings.grad_clip)
            self.apply = adam.apply_gradients(zip(gradients, weights))
            # Evaluation: any batch and length, the same weights.
            self.eval_context = tf.compat.v1.placeholder(tf.int32, [None, None])
            eval_logits = model.model(hparams=_hparams_object(hparams), X=self.eval_context, reuse=True)["logits"]
            self.eval_sum = self._loss(eval_logits, self.eval_context)[1]
            self.sample_context = tf.compat.v1.placeholder(tf.int32, [None, None])
            self.sample_length = None
            self.saver = tf.compat.v1.train.Saver(var_list=weights + adam.variables(), max_to_keep=None,
                                                  save_relative_paths=True)
            self.weights_saver = tf.compat.v1.train.Saver(var_list=weights, max_to_keep=None, save_relative_paths=True)
            self.optimizer_variables = adam.variables()
            init = tf.compat.v1.global_variables_initializer()
        self.session = _session(tf, self.graph)
        self.session.run(init)
        self.samplers = {}

    def _loss(self, logits, context):
        """Mean and sum of the next-token loss. The last position gets a stand-in target, left out of both:
        slicing the logits instead (finetune's [:, :-1]) copies a batch x window x n_vocab tensor twice."""
        tf = self.tf
        targets = tf.concat([context[:, 1:], context[:, :1]], axis=1)
        per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)[:, :-1]
        return tf.reduce_mean(input_tensor=per_token), tf.reduce_sum(input_tensor=per_token)

    def restore(self, folder: Path, with_optimizer: bool) -> None:
        checkpoint = self.tf.train.latest_checkpoint(str(folder))
        if checkpoint is None:
            raise ModelError(f"{folder / 'checkpoint'} names no checkpoint: the model folder is damaged.")
        variables = self.weights + (self.optimizer_variables if with_optimizer else [])
        _restore(self.tf, self.session, checkpoint, variables, required=self.weights)

    def step(self, batches, learning_rate: float) -> float:
        run = self.session.run
        try:
            if self.settings.accumulate == 1:
                return float(run((self.apply, self.loss), {self.context: batches[0], self.rate: learning_rate})[1])
            run(self.reset)
            losses = [run((self.add, self.loss), {self.context: batch})[1] for batch in batches]
            run(self.apply, {self.rate: learning_rate})
            return float(sum(losses) / len(losses))
        except self.tf.errors.OpError as exc:
            raise ModelError(f"TensorFlow failed during a training step: {exc.message}") from None

    def evaluate(self, windows) -> tuple[float, int]:
        total = self.session.run(self.eval_sum, {self.eval_context: windows})
        return float(total), int(windows.shape[0] * (windows.shape[1] - 1))

    def save(self, folder: Path, *, step: int, optimizer: bool) -> None:
        saver = self.saver if optimizer else self.weights_saver
        try:
            saver.save(self.session, str(folder / "model"), global_step=step, write_meta_graph=False)
        except self.tf.errors.OpError as exc:
            raise ModelError(f"TensorFlow could not save a checkpoint in {folder}: {exc.message}") from None
        _write_atomic(folder / COUNTER, f"{step}\n")

    def sample(self, context: list[int], nsamples: int, length: int) -> list[list[int]]:
        output = self._sampler(nsamples, length, temperature=1.0, top_k=40, top_p=0.0)
        rows = self.session.run(output, {self.sample_context: [context] * nsamples})
        return [row[len(context):].tolist() for row in rows]

    def _sampler(self, batch_size, length, temperature, top_k, top_p):
        key = (batch_size, length, temperature, top_k, top_p)
        if key not in self.samplers:
            from gpt_2_simple.src import sample
            with self.graph.as_default():
                self.samplers[key] = sample.sample_sequence(
                    hparams=_hparams_object(self.hparams), length=length, context=self.sample_context,
                    batch_size=batch_size, temperature=temperature, top_k=top_k, top_p=top_p)
        return self.samplers[key]

    def close(self) -> None:
        self.session.close()


def generate_ids(folder, hparams: dict, context: list[int], *, nsamples: int, length: int, temperature: float,
                 top_k: int, top_p: float, seed: int | None, batch_size: int, progress=None) -> list[list[int]]:
    """`nsamples` samples of `length` tokens after `context` from the checkpoint in `folder`, `batch_size`
    at a time: the ids the model wrote, context left out."""
    tf = _tf()
    from gpt_2_simple.src import sample

    graph = tf.Graph()
    with graph.as_default():
        if seed is not None:
            tf.compat.v1.set_random_seed(seed)
        context_ph = tf.compat.v1.placeholder(tf.int32, [batch_size, None])
        output = sample.sample_sequence(hparams=_hparams_object(hparams), length=length, context=context_ph,
                                        batch_size=batch_size, temperature=temperature, top_k=top_k, top_p=top_p)
        weights = _model_vars(tf)
    checkpoint = tf.train.latest_checkpoint(str(folder))
    if checkpoint is None:
        raise ModelError(f"{Path(folder) / 'checkpoint'} names no checkpoint: the run folder is damaged.")
    rows = []
    with graph.as_default(), _session(tf, graph) as sess:
        _restore(tf, sess, checkpoint, weights, required=weights)
        try:
            while len(rows) < nsamples:
                rows += [row[len(context):].tolist() for row in sess.run(output, {context_ph: [context] * batch_size})]
                if progress:
                    progress(min(len(rows), nsamples), nsamples)
        except tf.errors.OpError as exc:
            raise ModelError(f"TensorFlow failed while sampling from {folder}: {exc.message}") from None
    return rows[:nsamples]
