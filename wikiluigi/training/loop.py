"""The training loop every backend shares: batches, learning-rate schedule, validation, best checkpoint, early stop.

A backend (wikiluigi.training.backends.gpt2 for TensorFlow; others register in BACKENDS) only loads, steps, evaluates, saves
and samples a model; everything written goes through wikiluigi.training.runfolder, so runs look the same whatever
trained them. A backend module provides

    NAME = "tensorflow"
    open_backend(hparams, base_dir, resume, settings) -> context manager yielding a Backend, where
        resume is the run's latest/ folder to restore (weights and optimiser state), or None to start
        from the base model's weights in base_dir; settings is a Settings.

and the Backend object:

    step(batches, learning_rate) -> float    one optimiser step over `accumulate` int32 arrays of shape
                                             (batch_size, window); the mean next-token loss; gradients
                                             clipped to settings.grad_clip (global norm; 0: off)
    evaluate(windows) -> (float, int)        summed next-token loss over windows (k, w) and how many
                                             predictions (k * (w - 1)); no update
    save(folder, step, optimizer) -> None    a checkpoint of step `step` into an empty folder: weights, and
                                             the optimiser's state when `optimizer` (latest/ has it, best/ not)
    sample(context, nsamples, length) -> list of lists of ids written after `context` (top_k 40)

The module may also provide check_base_model(base_dir) -> hparams (a clear error for an incomplete base
model; default: runfolder.read_hparams) and, for Generate, generate_ids(folder, hparams, context, ...)
(see wikiluigi.training.sampling).
"""
import dataclasses
import importlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from wikiluigi.corpus import tokens as token_files, trainingset as corpus, vocabulary
from wikiluigi.errors import ModelError
from wikiluigi.training import report, runfolder

BACKENDS = {"tensorflow": "wikiluigi.training.backends.gpt2", "torch": "wikiluigi.training.backends.torch_backend"}
SCHEDULES = ("cosine", "linear", "constant")
FINAL_SAMPLES, FINAL_SAMPLE_TOKENS = 3, 200     # for the report: a few, short enough to cost little memory


@dataclass(frozen=True)
class Settings:
    """Every setting of a training run; run.json records them all (window and warmup_steps resolved)."""
    steps: int
    batch_size: int = 1
    accumulate: int = 1
    window: int | None = None          # training window in tokens; None: the model's n_ctx
    learning_rate: float = 1e-4        # the peak, reached after the warmup
    schedule: str = "cosine"           # decay after the warmup to min_lr_ratio x learning_rate at `steps`
    warmup_steps: int | None = None    # None: 5% of the steps, at most 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0             # global gradient norm (0: no clipping)
    seed: int = 1
    save_every: int = 100
    validate_every: int = 50           # and at the last step; 0: never
    validation_windows: int = 32       # a fixed set, spread over the validation pages
    patience: int = 0                  # stop after this many validations without a better loss (0: never)
    sample_every: int = 0
    device: str = "auto"               # torch backend: auto (a GPU if there is one), cpu, cuda, cuda:N
    precision: str = "auto"            # torch backend: auto (bf16 autocast on a GPU that has it), bf16, fp32
    compile: str = "auto"              # torch backend: torch.compile the step; auto (on a GPU), true, false

    def resolved(self, n_ctx: int) -> "Settings":
        """Check every value; fill in the window and the warmup."""
        for name in ("steps", "batch_size", "accumulate", "save_every", "validation_windows"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ModelError(f"{name} must be a whole number of at least 1, not {value!r}.")
        for name in ("validate_every", "patience", "sample_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ModelError(f"{name} must be 0 (never) or a number, not {value!r}.")
        if not self.learning_rate > 0:
            raise ModelError(f"learning_rate must be above 0, not {self.learning_rate!r}.")
        if self.schedule not in SCHEDULES:
            raise ModelError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}.")
        if not 0 <= self.min_lr_ratio <= 1 or not self.grad_clip >= 0:
            raise ModelError(f"min_lr_ratio must be from 0 to 1 and grad_clip 0 (off) or more, not "
                             f"{self.min_lr_ratio!r} and {self.grad_clip!r}.")
        window = n_ctx if self.window is None else self.window
        if not isinstance(window, int) or not 2 <= window <= n_ctx:
            raise ModelError(f"The training window {window!r} (sample_length) does not fit the model: its window "
                             f"n_ctx is {n_ctx}; use a window from 2 to {n_ctx}.")
        warmup = min(100, self.steps // 20) if self.warmup_steps is None else self.warmup_steps
        if not isinstance(warmup, int) or warmup < 0:
            raise ModelError(f"warmup_steps must be 0 or more, not {warmup!r}.")
        return dataclasses.replace(self, window=window, warmup_steps=warmup)

    def learning_rate_at(self, step: int) -> float:
        """The learning rate of step `step` (1-based): linear warmup, then the decay down to the last step."""
        peak, warmup = self.learning_rate, self.warmup_steps or 0
        if step <= warmup:
            return peak * step / warmup
        if self.schedule == "constant":
            return peak
        progress = min(1.0, (step - warmup) / max(1, self.steps - warmup))
        factor = 0.5 * (1 + math.cos(math.pi * progress)) if self.schedule == "cosine" else 1 - progress
        return peak * (self.min_lr_ratio + (1 - self.min_lr_ratio) * factor)


def load_backend(name: str):
    if name not in BACKENDS:
        raise ModelError(f"Unknown training backend {name!r}: choose one of {', '.join(BACKENDS)}.")
    return importlib.import_module(BACKENDS[name])


def draw_batches(tokens, settings: Settings, step: int) -> list:
    """The windows of one step, drawn from (seed, step): a resumed run sees the batches it would have seen.
    `tokens` may be a memmap of the token file: only the windows drawn are read. int32 arrays."""
    import numpy as np
    rng = np.random.default_rng([settings.seed, step])
    starts = rng.integers(0, tokens.size - settings.window + 1, size=(settings.accumulate, settings.batch_size))
    return [np.stack([tokens[s:s + settings.window] for s in row]).astype(np.int32) for row in starts]


def validation_windows(tokens, window: int, count: int):
    """A fixed set of at most `count` windows spread evenly over the validation tokens (shorter than `window`
    when the validation pages are), int32; None when there are fewer than two tokens."""
    import numpy as np
    if tokens.size < 2:
        return None
    width = min(window, int(tokens.size))
    starts = np.unique(np.linspace(0, tokens.size - width, num=min(count, tokens.size - width + 1)).astype(int))
    return np.stack([tokens[s:s + width] for s in starts]).astype(np.int32)


def finished(run_dir, steps: int, patience: int, identity: dict | None = None) -> bool:
    """Whether the run reached `steps`, or stopped early with this patience at its latest checkpoint. With
    `identity` (some of run.json's backend, base_model and corpus), a run that is another one is never
    finished: training it then says what differs."""
    info = runfolder.read_json(Path(run_dir) / runfolder.RUN_INFO) or {}
    if identity and runfolder.differences(info, identity):
        return False
    step = runfolder.saved_step(run_dir)
    if step >= steps:
        return True
    stopped = info.get("stopped") or {}
    return bool(patience) and stopped.get("step") == step and stopped.get("patience") == patience


def identity_of(backend: str, base_dir, corpus_dir, hparams: dict | None = None, *, fingerprint: str | None = None,
                token_fingerprint: str | None = None) -> dict:
    """What a run is, as run.json records it: backend, base model, corpus (manifests, validation split, the
    fingerprint of the training set's inputs, and of its tokens). `fingerprint`: the inputs' fingerprint as
    it is now (default: the one the training set was built with)."""
    base = {"name": Path(base_dir).name, **({"hparams": hparams} if hparams else {})}
    described = {"folder": Path(corpus_dir).name}
    stats = corpus.read_stats(corpus_dir)
    if stats:
        described.update(manifests=stats["manifests"], validation=stats["validation"]["asked"])
    fingerprint = fingerprint or (stats or {}).get("fingerprint")
    if fingerprint:
        described["fingerprint"] = fingerprint
    if token_fingerprint:
        described["tokens"] = token_fingerprint
    return {"backend": backend, "base_model": base, "corpus": described}


def train(run_dir, base_dir, corpus_dir, settings: Settings, *, backend: str = "tensorflow", progress=None) -> dict:
    """Train the run in `run_dir` up to `settings.steps` steps in all, resuming from its latest checkpoint.

    `corpus_dir` is a TrainingSet folder (train.txt, validation.txt, stats.json); its tokens in the base
    model's vocabulary are written first when missing or stale (wikiluigi.corpus.tokens), then read as
    windows of a memmap. `progress(step, total,
    loss, tokens_per_s, seconds_left)` is called after the first step, about once a second, and at the end.
    """
    run_dir, base_dir, corpus_dir = Path(run_dir), Path(base_dir), Path(corpus_dir)
    module = load_backend(backend)
    hparams = getattr(module, "check_base_model", runfolder.read_hparams)(base_dir)
    settings = settings.resolved(hparams["n_ctx"])
    stats = corpus.read_stats(corpus_dir)
    if stats is None:
        raise ModelError(f"{corpus_dir} holds no training set ({corpus.STATS} missing): build it (TrainingSet).")
    if not int(os.environ.get("RANK", "0")):      # one process of a torchrun writes them, before the others look
        token_files.ensure(corpus_dir, base_dir)
    tokens, held_out_ids, token_info = token_files.open_tokens(corpus_dir, base_dir)
    identity = identity_of(module.NAME, base_dir, corpus_dir, hparams, token_fingerprint=token_info["fingerprint"])
    _check_identity(run_dir, identity, stats)
    if finished(run_dir, settings.steps, settings.patience):
        info = runfolder.load_info(run_dir)
        return {"start_step": info["latest"]["step"], "step": info["latest"]["step"], "best": info.get("best"),
                "stopped": info.get("stopped")}
    tokenizer = vocabulary.load_tokenizer(base_dir)
    if tokens.size <= settings.window:
        raise ModelError(f"The corpus {corpus_dir / corpus.TRAIN_TEXT} has {tokens.size} tokens, not more than one "
                         f"training window ({settings.window}): add pages or use a shorter sample_length.")
    windows, held_out_tokens = None, 0
    if stats["validation"]["pages"]:
        held_out_tokens = int(held_out_ids.size)
        windows = validation_windows(held_out_ids, settings.window, settings.validation_windows)
    folder = runfolder.RunFolder(run_dir)
    state = folder.open(identity, dataclasses.asdict(settings), base_dir)
    described = dict(stats)            # the held-out titles: in stats.json alone
    described["validation"] = {key: value for key, value in stats["validation"].items() if key != "titles"}
    folder.record(corpus_stats={**described, "train_tokens": int(tokens.size), "validation_tokens": held_out_tokens,
                                "tokens": {key: token_info[key] for key in ("dtype", "fingerprint", "vocabulary")},
                                "validation_windows": list(windows.shape) if windows is not None else None})
    resume = folder.latest if state.step else None
    with module.open_backend(hparams, base_dir, resume, settings) as model:
        loop = _Loop(folder, model, module.NAME, settings, tokens, windows, tokenizer, state, progress)
        return loop.run()


def _check_identity(run_dir: Path, identity: dict, stats: dict) -> None:
    """runfolder.check_identity, saying also what changed in the corpus's inputs since the run began (pages
    added or lost, revisions, conversion options) when that is what differs."""
    try:
        runfolder.check_identity(run_dir, identity)
    except ModelError as exc:
        info = runfolder.read_json(run_dir / runfolder.RUN_INFO) or {}
        before = (info.get("corpus_stats") or {}).get("inputs")
        if before is not None and stats.get("inputs") and before != stats["inputs"]:
            raise ModelError(f"{exc} The corpus changed since the run began: "
                             f"{corpus.changes(before, stats['inputs'])}.") from None
        raise


class _Loop:
    """One Train call's steps, from the run's state to the last step or an early stop."""

    def __init__(self, folder, model, backend, settings, tokens, windows, tokenizer, state, progress):
        self.folder, self.model, self.backend, self.settings = folder, model, backend, settings
        self.tokens, self.windows, self.tokenizer = tokens, windows, tokenizer
        self.state, self.progress = state, progress
        self.ema = [0.0, 0.0]         # gpt-2-simple's running average: decay 0.99, bias-corrected by the weight
        for row in state.rows:
            self.ema = [self.ema[0] * 0.99 + row["loss"], self.ema[1] * 0.99 + 1.0]

    def validate(self, step: int) -> float:
        total, count = 0.0, 0
        for start in range(0, len(self.windows), self.settings.batch_size):
            loss, n = self.model.evaluate(self.windows[start:start + self.settings.batch_size])
            total, count = total + loss, count + n
        return total / count

    def save(self, kind: str, step: int, val_loss=None) -> None:
        with self.folder.writing(kind, step, backend=self.backend, val_loss=val_loss) as tmp:
            self.model.save(tmp, step=step, optimizer=kind == runfolder.LATEST)

    def sample(self, count: int, most: int | None = None) -> list[str]:
        context = vocabulary.start_context(self.tokenizer)
        rows = self.model.sample(context, count, min(self.settings.window - len(context), most or self.settings.window))
        return [vocabulary.decode_sample(self.tokenizer, ids) for ids in rows]

    def run(self) -> dict:
        s, state, folder = self.settings, self.state, self.folder
        start = done = state.step
        elapsed_before = state.rows[-1]["elapsed_s"] if state.rows else 0.0
        step_tokens = s.batch_size * s.accumulate * s.window
        began, last_report, row, stopped = time.perf_counter(), 0.0, None, None
        try:
            for step in range(start + 1, s.steps + 1):
                tick = time.perf_counter()
                rate = s.learning_rate_at(step)
                value = float(self.model.step(draw_batches(self.tokens, s, step), rate))
                if not math.isfinite(value):
                    raise ModelError(f"The loss became {value} at step {step} of {folder.path}: lower learning_rate "
                                     f"(it is {s.learning_rate}); the run stays at its last checkpoint.")
                now = time.perf_counter()
                self.ema = [self.ema[0] * 0.99 + value, self.ema[1] * 0.99 + 1.0]
                row = {"step": step, "loss": value, "avg_loss": self.ema[0] / self.ema[1], "learning_rate": rate,
                       "tokens_per_s": step_tokens / (now - tick), "elapsed_s": elapsed_before + now - began,
                       "val_loss": None}
                due = step == s.steps or (s.validate_every and step % s.validate_every == 0)
                if self.windows is not None and due:
                    row["val_loss"] = self.validate(step)
                folder.append(row)
                state.rows.append(row)
                done = step
                if row["val_loss"] is not None and row["val_loss"] < state.best_loss and step != state.best_step:
                    self.save(runfolder.BEST, step, row["val_loss"])
                    state.best_step, state.best_loss = step, row["val_loss"]
                if s.patience and row["val_loss"] is not None and state.evaluations_since_best >= s.patience:
                    stopped = {"step": step, "patience": s.patience, "best_step": state.best_step,
                               "reason": f"early stop: no better validation loss in {s.patience} validations "
                                         f"since step {state.best_step}"}
                if step % s.save_every == 0 or step == s.steps or stopped:
                    self.save(runfolder.LATEST, step)
                if self.progress and (now - last_report >= 1.0 or step == s.steps or step == start + 1 or stopped):
                    speed = (step - start) / (now - began)
                    self.progress(step, s.steps, value, step_tokens * speed, 0 if stopped else (s.steps - step) / speed)
                    last_report = now
                if s.sample_every and step % s.sample_every == 0:
                    folder.write_sample(f"step-{step:06d}.txt", self.sample(1)[0])
                if stopped:
                    break
        except KeyboardInterrupt:
            if done > runfolder.saved_step(folder.path):
                self.save(runfolder.LATEST, done)
            folder.close()
            raise
        except BaseException:
            folder.close()
            raise
        for n, text in enumerate(self.sample(FINAL_SAMPLES, FINAL_SAMPLE_TOKENS), start=1):
            folder.write_sample(f"final-{n}.txt", text)
        folder.close(stopped)
        report.write(folder.path)
        tokens_per_s = step_tokens * (done - start) / max(time.perf_counter() - began, 1e-9)
        return {"start_step": start, "step": done, "loss": row["loss"], "avg_loss": row["avg_loss"],
                "val_loss": row["val_loss"], "best": folder.info.get(runfolder.BEST), "stopped": stopped,
                "tokens_per_s": tokens_per_s, "elapsed_s": row["elapsed_s"], "dataset_tokens": int(self.tokens.size)}
