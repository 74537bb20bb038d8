"""The model stage as Luigi tasks: TrainingSet, BaseModel, Tokens, Train and Generate over corpus, gpt2, training, sampling.

TensorFlow is imported by wikiluigi.training.backends.gpt2 inside the functions run() calls, never when this module loads.
"""
import json
import math
import os

import luigi

from wikiluigi import paths
from wikiluigi.corpus import tokens as token_files, trainingset as corpus
from wikiluigi.errors import ModelError, WikiluigiError
from wikiluigi.tasks.base import Reporting
from wikiluigi.training import loop as training, report, runfolder, sampling
from wikiluigi.training.backends import gpt2

SCRATCH = "scratch"
BASE_MODELS = (*gpt2.OPENAI_MODELS, SCRATCH)


class BaseModelName(luigi.Parameter):
    """One of OpenAI's GPT-2 sizes, or `scratch`; anything else fails when the task is made."""

    def normalize(self, x):
        x = super().normalize(x)
        if x not in BASE_MODELS:
            raise ModelError(f"Unknown base model {x!r}: choose one of {', '.join(BASE_MODELS)} (OpenAI's GPT-2 "
                             f"sizes, downloaded, or 'scratch', a model built from the corpus).")
        return x


class RunName(luigi.Parameter):
    """A run's name is a folder name under out/checkpoint/ and out/gen/: no path in it."""

    def normalize(self, x):
        x = super().normalize(x)
        separators = {"/", "\\", os.sep, os.altsep} - {None}
        if not x or x.startswith(".") or "\0" in x or any(s in x for s in separators):
            raise ModelError(f"Run name {x!r} must be a plain folder name (it becomes out/checkpoint/<run_name>): "
                             f"no '/' or '\\', no '..', and not starting with a dot.")
        return x


def scratch_folder(manifests, n_layer: int, n_embd: int, n_head: int, n_ctx: int, vocab_size: int, seed: int) -> str:
    """The folder name of a from-scratch model: every option that changes it, and the corpus it learnt its
    vocabulary from, so two different configurations never share a folder."""
    names = paths.manifest_set_name(manifests)
    return f"scratch-{names}-l{n_layer}-e{n_embd}-h{n_head}-c{n_ctx}-v{vocab_size}-s{seed}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds}s"


class Validation:
    """The validation split of a training set; Train and BaseModel pass it on to TrainingSet."""

    validation = luigi.FloatParameter(
        default=corpus.DEFAULT_VALIDATION, description="Pages held out for validation: a fraction of the pages "
        "(below 1) or a number of pages (1 or more); a small corpus still keeps a few, 0: none.")


class TrainingSet(Validation, Reporting):
    """Every processed page of the manifests, wrapped in <|startoftext|> ... <|endoftext|>, some held out for
    validation: out/trainingset/<set>/ with train.txt, validation.txt, train.jsonl, validation.jsonl, stats.json."""

    manifests = luigi.ListParameter(description='Manifest names, e.g. \'["startrek"]\'; their pages in this order.')

    def requires(self):
        from wikiluigi.tasks.process import Convert
        return [Convert(manifest=name) for name in self.manifests]

    def output(self):
        return luigi.LocalTarget(corpus.folder(self.manifests, self.validation))

    def complete(self):
        # Built from these manifests and split, and from their pages, revisions and options as they are now.
        return corpus.is_built(self.manifests, self.validation)

    def run(self):
        stale = corpus.stale_because(self.manifests, self.validation)
        self.report(0, 1, f"building the training set ({stale})")
        stats = corpus.build_trainingset(self.manifests, self.validation,
                                         progress=lambda done, total: self.report(done, total, f"{done:,} of {total:,} pages"))
        self.report(1, 1, f"{stats['pages']} pages, {stats['characters']:,} characters; {stats['validation']['note']}")


class ScratchShape:
    """The options of a model built from scratch (BaseModel --name scratch); Train passes them on."""

    n_layer = luigi.IntParameter(default=4, description="scratch: transformer blocks.")
    n_embd = luigi.IntParameter(default=256, description="scratch: width (embedding size), a multiple of n_head.")
    n_head = luigi.IntParameter(default=4, description="scratch: attention heads.")
    n_ctx = luigi.IntParameter(default=256, description="scratch: context window in tokens.")
    vocab_size = luigi.IntParameter(default=8192, description="scratch: BPE vocabulary size (at most; a small "
                                                                "corpus may give fewer).")

    def shape(self) -> dict:
        return {"n_layer": self.n_layer, "n_embd": self.n_embd, "n_head": self.n_head, "n_ctx": self.n_ctx,
                "vocab_size": self.vocab_size}


class BaseModel(ScratchShape, Validation, Reporting):
    """A base model in gpt-2-simple's seven-file layout under out/model/<folder>: OpenAI's 124M, 355M, 774M or
    1558M downloaded (out/model/124M), or `scratch`: random weights and a vocabulary trained on the manifests'
    corpus (out/model/scratch-<manifests>-l<layers>-e<width>-h<heads>-c<n_ctx>-v<vocab>-s<seed>)."""

    name = BaseModelName(default=SCRATCH, description=f"One of {', '.join(BASE_MODELS)}.")
    manifests = luigi.ListParameter(default=(), description="scratch: manifests whose training pages (not the "
                                                            "held-out ones) train the vocabulary.")
    seed = luigi.IntParameter(default=1, description="scratch: seed of the random weights.")

    @property
    def scratch(self) -> bool:
        return self.name == SCRATCH

    def folder(self) -> str:
        if not self.scratch:
            return self.name
        return scratch_folder(self.manifests, seed=self.seed, **self.shape())

    def requires(self):
        return TrainingSet(manifests=self.manifests, validation=self.validation) if self.scratch else []

    def output(self):
        return luigi.LocalTarget(paths.model_dir(self.folder()))

    def complete(self):
        return all((paths.model_dir(self.folder()) / name).is_file() for name in gpt2.MODEL_FILES)

    def run(self):
        target = paths.model_dir(self.folder())
        if not self.scratch:
            self.report(0, 1, f"downloading GPT-2 {self.name}")
            gpt2.download_openai_model(target, self.name)
            return
        self.report(0, 1, "training the vocabulary and writing random weights")
        # The vocabulary is learnt from the training pages alone: the held-out ones must stay unseen.
        built = gpt2.build_scratch_model(target, os.path.join(self.input().path, corpus.TRAIN_TEXT),
                                         seed=self.seed, count_tokens=False, **self.shape())
        self.report(1, 1, f"{built['n_vocab']} tokens in the vocabulary")


def base_model(name: str, manifests, seed: int, validation: float, shape: dict) -> BaseModel:
    """The BaseModel task a Train (or Tokens) of these parameters starts from."""
    if name == SCRATCH:
        return BaseModel(name=SCRATCH, manifests=manifests, seed=seed, validation=validation, **shape)
    return BaseModel(name=name)


class Tokens(ScratchShape, Validation, Reporting):
    """The training set's tokens in the base model's vocabulary, written once for every Train on them:
    out/trainingset/<set>/tokens/<model folder>/ with train.bin, validation.bin (uint16 or uint32 token ids)
    and tokens.json. Complete when the training set is current and the files are sound and of it and of
    the vocabulary (sizes and fingerprints); otherwise written again, on every core."""

    manifests = luigi.ListParameter(description='Manifest names, e.g. \'["startrek"]\'.')
    base_model = BaseModelName(default=SCRATCH, description=f"One of {', '.join(BASE_MODELS)}.")
    seed = luigi.IntParameter(default=1, description="Seed of a scratch model's weights (its folder's name).")
    processes = luigi.IntParameter(default=0, description="Processes that encode (0: every core).",
                                   significant=False)

    def base(self) -> BaseModel:
        return base_model(self.base_model, self.manifests, self.seed, self.validation, self.shape())

    def requires(self):
        return {"base": self.base(), "corpus": TrainingSet(manifests=self.manifests, validation=self.validation)}

    def output(self):
        return luigi.LocalTarget(token_files.folder(corpus.folder(self.manifests, self.validation),
                                                    paths.model_dir(self.base().folder())))

    def complete(self):
        model_dir = paths.model_dir(self.base().folder())
        corpus_dir = corpus.folder(self.manifests, self.validation)
        if not self.base().complete() or not corpus.is_built(self.manifests, self.validation):
            return False
        return token_files.problem(corpus_dir, model_dir) is None

    def run(self):
        corpus_dir, model_dir = self.input()["corpus"].path, self.input()["base"].path
        said = token_files.problem(corpus_dir, model_dir)
        self.report(0, 1, f"encoding: {said}")
        info = token_files.write_tokens(
            corpus_dir, model_dir, workers=self.processes or None,
            progress=lambda done, total: self.report(done, total, f"{done / 1e6:,.0f} of {total / 1e6:,.0f} MB encoded"))
        self.report(1, 1, f"{info['train']['tokens']:,} training and {info['validation']['tokens']:,} validation "
                          f"tokens ({info['dtype']}) with {info['workers']} process(es)")


class Train(ScratchShape, Validation, Reporting):
    """Train a run, out/checkpoint/<run_name>, from a base model on the manifests' training set, up to `steps`
    steps in all: a run that stopped, or one asked for more steps, goes on from its latest checkpoint. It
    keeps the best checkpoint by validation loss besides the latest, and writes loss.csv, loss.png,
    run.json and report.html. A run only resumes on its own corpus, validation split and base model."""

    run_name = RunName(description="Name of the run: its folder under out/checkpoint/ and out/gen/.")
    base_model = BaseModelName(default=SCRATCH, description=f"One of {', '.join(BASE_MODELS)}.")
    backend = luigi.ChoiceParameter(default="tensorflow", choices=tuple(training.BACKENDS),
                                    description="Training backend: " + ", ".join(training.BACKENDS) + ".")
    manifests = luigi.ListParameter(description='Manifest names whose pages make the corpus, e.g. \'["startrek"]\'.')
    steps = luigi.IntParameter(default=1000, description="Steps in all, counting those of earlier runs.")
    batch_size = luigi.IntParameter(default=1, description="Windows per batch.")
    accumulate = luigi.IntParameter(default=1, description="Batches whose gradients add up to one step.")
    learning_rate = luigi.OptionalFloatParameter(
        default=None, description="Peak learning rate (Adam); default 1e-3 from scratch (1e-4 barely moves a "
                                  "random model), 1e-4 to fine-tune OpenAI's.")
    schedule = luigi.ChoiceParameter(default="cosine", choices=training.SCHEDULES,
                                     description="Decay of the learning rate after the warmup, down to "
                                                 "min_lr_ratio at the last step: cosine, linear or constant.")
    warmup_steps = luigi.OptionalIntParameter(default=None, description="Steps of linear warmup; default 5% of "
                                                                        "the steps, at most 100.")
    min_lr_ratio = luigi.FloatParameter(default=0.1, description="The learning rate at the last step, as a "
                                                                 "fraction of the peak.")
    grad_clip = luigi.FloatParameter(default=1.0, description="Clip gradients to this global norm (0: off).")
    seed = luigi.IntParameter(default=1, description="Seed of the batches (and of a scratch model's weights).")
    save_every = luigi.IntParameter(default=100, description="Save the latest checkpoint every this many steps.")
    validate_every = luigi.IntParameter(default=50, description="Validation loss every this many steps and at "
                                                                "the end (0: only at the end).")
    validation_windows = luigi.IntParameter(default=32, description="Windows of the held-out pages the "
                                                                    "validation loss is measured on (a fixed set).")
    patience = luigi.IntParameter(default=0, description="Early stopping: stop after this many validations "
                                                         "without a better loss (0: never).")
    sample_every = luigi.IntParameter(default=0, description="Write a sample to the run's samples/ every this "
                                                             "many steps (0: never).")
    sample_length = luigi.OptionalIntParameter(default=None, description="Training window in tokens, up to the "
                                                                         "model's n_ctx (default: n_ctx).")
    device = luigi.Parameter(default="auto", description="torch backend: auto (a GPU if torch sees one), cpu, cuda "
                                                         "or cuda:N.")
    precision = luigi.ChoiceParameter(default="auto", choices=("auto", "bf16", "fp32"),
                                      description="torch backend: auto (bf16 autocast on a GPU that has it, else "
                                                  "fp32), bf16 or fp32.")
    compile = luigi.ChoiceParameter(default="auto", choices=("auto", "true", "false"),
                                    description="torch backend: torch.compile the training step; auto: on a GPU.")
    processes = luigi.IntParameter(default=1, description="torch backend: processes (one a GPU) that torchrun "
                                                          "starts to train with DDP; batch_size is split among them.")

    def base(self) -> BaseModel:
        return base_model(self.base_model, self.manifests, self.seed, self.validation, self.shape())

    def requires(self):
        return {"base": self.base(), "corpus": TrainingSet(manifests=self.manifests, validation=self.validation),
                "tokens": Tokens(manifests=self.manifests, validation=self.validation, base_model=self.base_model,
                                 seed=self.seed, **self.shape())}

    def output(self):
        return luigi.LocalTarget(paths.checkpoint_dir(self.run_name))

    def complete(self):
        # Never complete over another run of that name, nor when the corpus's inputs changed since (new, edited,
        # reconverted or lost pages): run() then says what differs.
        run_dir = paths.checkpoint_dir(self.run_name)
        if not (run_dir / runfolder.RUN_INFO).exists():
            return False
        try:
            now = corpus.inputs(self.manifests, self.validation)["fingerprint"]
        except WikiluigiError:
            return False
        identity = training.identity_of(self.backend, paths.model_dir(self.base().folder()),
                                        corpus.folder(self.manifests, self.validation), fingerprint=now)
        return training.finished(run_dir, self.steps, self.patience, identity)

    def settings(self) -> training.Settings:
        return training.Settings(
            steps=self.steps, batch_size=self.batch_size, accumulate=self.accumulate, window=self.sample_length,
            learning_rate=self.learning_rate or (1e-3 if self.base_model == SCRATCH else 1e-4),
            schedule=self.schedule, warmup_steps=self.warmup_steps, min_lr_ratio=self.min_lr_ratio,
            grad_clip=self.grad_clip, seed=self.seed, save_every=self.save_every, validate_every=self.validate_every,
            validation_windows=self.validation_windows, patience=self.patience, sample_every=self.sample_every,
            device=self.device, precision=self.precision, compile=self.compile)

    def progress(self, step, total, loss, tokens_per_s, seconds_left):
        self.report(step, total, f"step {step}/{total}, loss {loss:.3f}, {tokens_per_s:,.0f} tokens/s, "
                                 f"{_duration(seconds_left)} left")

    def run(self):
        if self.processes != 1:
            from wikiluigi.training.backends import torch_backend
            result = torch_backend.train_distributed(
                paths.checkpoint_dir(self.run_name), self.input()["base"].path, self.input()["corpus"].path,
                self.settings(), backend=self.backend, processes=self.processes)
        else:
            result = training.train(paths.checkpoint_dir(self.run_name), self.input()["base"].path,
                                    self.input()["corpus"].path, self.settings(), backend=self.backend,
                                    progress=self.progress)
        if "dataset_tokens" in result:
            corpus.record_tokens(self.input()["corpus"].path, self.base().folder(), result["dataset_tokens"])
        best = result.get("best") or {}
        said = f", best validation loss {best['val_loss']:.3f} at step {best['step']}" if best else ""
        stopped = f"; {result['stopped']['reason']}" if result.get("stopped") else ""
        self.report(1, 1, f"step {result['step']}, loss {result.get('loss', math.nan):.3f} (average "
                          f"{result.get('avg_loss', math.nan):.3f}){said}{stopped}")


class TrainedRun(luigi.ExternalTask):
    """A run trained earlier, as it is: what Generate --existing-run asks for instead of Train."""

    run_name = RunName()

    def output(self):
        return luigi.LocalTarget(paths.checkpoint_dir(self.run_name) / runfolder.LATEST / runfolder.CHECKPOINT_INFO)


class Generate(Reporting):
    """Samples of a run's best checkpoint (by validation loss; --checkpoint latest for the latest) into
    out/gen/<run_name>/: sample-001.txt ... and index.json; the run's report.html then shows a few of them.

    It requires Train(run_name), whose other parameters come from `--Train-...` flags or luigi.cfg's [Train];
    with --existing-run it takes the run as it is. Complete when index.json is of these settings and of the
    checkpoint's step, and the run is trained as far as asked: more training makes new samples.
    """

    run_name = RunName(description="The run to sample from (out/checkpoint/<run_name>).")
    checkpoint = luigi.ChoiceParameter(default=runfolder.BEST, choices=(runfolder.BEST, runfolder.LATEST),
                                       description="best (lowest validation loss) or latest.")
    nsamples = luigi.IntParameter(default=20, description="How many samples.")
    length = luigi.OptionalIntParameter(default=None, description="Tokens per sample; default and most: the "
                                                                  "model's n_ctx minus the context.")
    temperature = luigi.FloatParameter(default=0.7, description="Sampling temperature.")
    top_k = luigi.IntParameter(default=0, description="Sample from the k likeliest tokens (0: all).")
    top_p = luigi.FloatParameter(default=0.0, description="Nucleus sampling, overrides top_k (0: off).")
    prefix = luigi.Parameter(default="", description="Text each sample starts with (default: a new page).")
    truncate = luigi.BoolParameter(default=True, parsing=luigi.BoolParameter.EXPLICIT_PARSING,
                                   description="End a sample at the first end marker (true/false).")
    seed = luigi.OptionalIntParameter(default=None, description="Seed for reproducible samples.")
    batch_size = luigi.IntParameter(default=0, description="Samples drawn at once (0: as many as memory allows).")
    existing_run = luigi.BoolParameter(default=False, description="Sample the run as it is, without Train.")

    def settings(self) -> dict:
        return {"checkpoint": self.checkpoint, "nsamples": self.nsamples, "length": self.length,
                "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p, "prefix": self.prefix,
                "truncate": self.truncate, "seed": self.seed, "batch_size": self.batch_size}

    def requires(self):
        return TrainedRun(run_name=self.run_name) if self.existing_run else Train(run_name=self.run_name)

    def output(self):
        return luigi.LocalTarget(paths.generated_dir(self.run_name))

    def complete(self):
        try:
            index = json.loads((paths.generated_dir(self.run_name) / sampling.INDEX).read_text(encoding="utf-8"))
            folder, info, _ = runfolder.checkpoint_folder(paths.checkpoint_dir(self.run_name), self.checkpoint)
        except (FileNotFoundError, ValueError, ModelError):
            return False
        # Samples of these settings, of the checkpoint as it is now, of a run trained as far as Train asks.
        return (index.get("settings") == self.settings() and index.get("checkpoint") == folder.name
                and index.get("step") == info["step"] and self.requires().complete())

    def run(self):
        run_dir = paths.checkpoint_dir(self.run_name)
        result = sampling.generate(
            run_dir, paths.generated_dir(self.run_name), checkpoint=self.checkpoint, nsamples=self.nsamples,
            length=self.length, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
            prefix=self.prefix, truncate=self.truncate, seed=self.seed, batch_size=self.batch_size,
            progress=lambda done, total: self.report(done, total, f"{done} of {total} samples"))
        report.write(run_dir, samples=result["texts"],
                     samples_from=f"out/gen/{self.run_name}/ ({result['checkpoint']} checkpoint, "
                                  f"step {result['step']})")
        self.report(1, 1, f"{len(result['samples'])} samples of the {result['checkpoint']} checkpoint, step "
                          f"{result['step']}" + "".join(f"; {m}" for m in result["messages"]))
