"""The model stage as Luigi tasks: TrainingSet, BaseModel, Train and Generate over wikiluigi.corpus and gpt2.

TensorFlow is imported by wikiluigi.gpt2 inside the functions run() calls, never when this module loads.
"""
import hashlib
import json
import os
import re

import luigi

from wikiluigi import corpus, gpt2, paths
from wikiluigi.errors import ModelError
from wikiluigi.tasks.base import Reporting

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
    names = "+".join(manifests)
    if len(names) > 60 or not re.fullmatch(r"[A-Za-z0-9_.+-]+", names):
        names = hashlib.sha1(json.dumps(list(manifests)).encode("utf-8")).hexdigest()[:12]
    return f"scratch-{names}-l{n_layer}-e{n_embd}-h{n_head}-c{n_ctx}-v{vocab_size}-s{seed}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds}s"


class TrainingSet(Reporting):
    """Every processed page of the manifests, wrapped in <|startoftext|> ... <|endoftext|>, in one file:
    out/trainingset.txt, with out/trainingset.stats.json (pages, characters, tokens per vocabulary)."""

    manifests = luigi.ListParameter(description='Manifest names, e.g. \'["startrek"]\'; their pages in this order.')

    def requires(self):
        from wikiluigi.tasks.process import Convert
        return [Convert(manifest=name) for name in self.manifests]

    def output(self):
        return luigi.LocalTarget(paths.trainingset())

    def complete(self):
        # One file for every manifest set (the data layout): it is this task's only if made from these manifests.
        return corpus.is_built(self.manifests)

    def run(self):
        stats = corpus.build_trainingset(self.manifests)
        self.report(1, 1, f"{stats['pages']} pages, {stats['characters']:,} characters")


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


class BaseModel(ScratchShape, Reporting):
    """A base model in gpt-2-simple's seven-file layout under out/model/<folder>: OpenAI's 124M, 355M, 774M or
    1558M downloaded (out/model/124M), or `scratch`: random weights and a vocabulary trained on the manifests'
    corpus (out/model/scratch-<manifests>-l<layers>-e<width>-h<heads>-c<n_ctx>-v<vocab>-s<seed>)."""

    name = BaseModelName(default=SCRATCH, description=f"One of {', '.join(BASE_MODELS)}.")
    manifests = luigi.ListParameter(default=(), description="scratch: manifests whose corpus trains the vocabulary.")
    seed = luigi.IntParameter(default=1, description="scratch: seed of the random weights.")

    @property
    def scratch(self) -> bool:
        return self.name == SCRATCH

    def folder(self) -> str:
        if not self.scratch:
            return self.name
        return scratch_folder(self.manifests, seed=self.seed, **self.shape())

    def requires(self):
        return TrainingSet(manifests=self.manifests) if self.scratch else []

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
        built = gpt2.build_scratch_model(target, self.input().path, seed=self.seed, **self.shape())
        corpus.record_tokens(self.folder(), built["tokens"])
        self.report(1, 1, f"{built['n_vocab']} tokens in the vocabulary; corpus of {built['tokens']:,} tokens")


class Train(ScratchShape, Reporting):
    """Train a run, out/checkpoint/<run_name>, from a base model on the manifests' corpus, up to `steps` steps
    in all: a run that stopped, or one asked for more steps, goes on from its latest checkpoint."""

    run_name = RunName(description="Name of the run: its folder under out/checkpoint/ and out/gen/.")
    base_model = BaseModelName(default=SCRATCH, description=f"One of {', '.join(BASE_MODELS)}.")
    manifests = luigi.ListParameter(description='Manifest names whose pages make the corpus, e.g. \'["startrek"]\'.')
    steps = luigi.IntParameter(default=1000, description="Steps in all, counting those of earlier runs.")
    batch_size = luigi.IntParameter(default=1, description="Windows per batch.")
    accumulate = luigi.IntParameter(default=1, description="Batches whose gradients add up to one step.")
    learning_rate = luigi.OptionalFloatParameter(
        default=None, description="Adam's learning rate; default 1e-3 from scratch (1e-4 barely moves a random "
                                  "model), 1e-4 to fine-tune OpenAI's.")
    seed = luigi.IntParameter(default=1, description="Seed of the batches (and of a scratch model's weights).")
    save_every = luigi.IntParameter(default=100, description="Save a checkpoint every this many steps.")
    sample_every = luigi.IntParameter(default=0, description="Write a sample to the run's samples/ every this "
                                                             "many steps (0: never).")
    sample_length = luigi.OptionalIntParameter(default=None, description="Training window in tokens, up to the "
                                                                         "model's n_ctx (default: n_ctx).")

    def base(self) -> BaseModel:
        if self.base_model == SCRATCH:
            return BaseModel(name=SCRATCH, manifests=self.manifests, seed=self.seed, **self.shape())
        return BaseModel(name=self.base_model)

    def requires(self):
        return {"base": self.base(), "corpus": TrainingSet(manifests=self.manifests)}

    def output(self):
        return luigi.LocalTarget(paths.checkpoint_dir(self.run_name))

    def complete(self):
        return gpt2.saved_step(paths.checkpoint_dir(self.run_name)) >= self.steps

    def progress(self, step, total, loss, tokens_per_s, seconds_left):
        self.report(step, total, f"step {step}/{total}, loss {loss:.3f}, {tokens_per_s:,.0f} tokens/s, "
                                 f"{_duration(seconds_left)} left")

    def run(self):
        result = gpt2.train(
            paths.checkpoint_dir(self.run_name), self.input()["base"].path, self.input()["corpus"].path,
            steps=self.steps, batch_size=self.batch_size, accumulate=self.accumulate,
            learning_rate=self.learning_rate or (1e-3 if self.base_model == SCRATCH else 1e-4), seed=self.seed, save_every=self.save_every,
            sample_every=self.sample_every, sample_length=self.sample_length, progress=self.progress)
        if "dataset_tokens" in result:
            corpus.record_tokens(self.base().folder(), result["dataset_tokens"])
        self.report(1, 1, f"step {result['step']}, loss {result['loss']:.3f} (average {result['avg_loss']:.3f})")


class TrainedRun(luigi.ExternalTask):
    """A run trained earlier, as it is: what Generate --existing-run asks for instead of Train."""

    run_name = RunName()

    def output(self):
        return luigi.LocalTarget(paths.checkpoint_dir(self.run_name) / "checkpoint")


class Generate(Reporting):
    """Samples of a run's latest checkpoint into out/gen/<run_name>/: sample-001.txt ... and index.json.

    It requires Train(run_name), whose other parameters come from `--Train-...` flags or luigi.cfg's [Train];
    with --existing-run it takes the run as it is. Complete when index.json is of these settings and of the
    run's latest step, and the run is trained as far as asked: more training makes new samples.
    """

    run_name = RunName(description="The run to sample from (out/checkpoint/<run_name>).")
    nsamples = luigi.IntParameter(default=20, description="How many samples.")
    length = luigi.OptionalIntParameter(default=None, description="Tokens per sample; default and most: the "
                                                                  "model's n_ctx minus the prefix.")
    temperature = luigi.FloatParameter(default=0.7, description="Sampling temperature.")
    top_k = luigi.IntParameter(default=0, description="Sample from the k likeliest tokens (0: all).")
    top_p = luigi.FloatParameter(default=0.0, description="Nucleus sampling, overrides top_k (0: off).")
    prefix = luigi.Parameter(default="", description="Text each sample starts with (default: a new page).")
    truncate = luigi.BoolParameter(default=True, parsing=luigi.BoolParameter.EXPLICIT_PARSING,
                                   description="End a sample at the first <|endoftext|> (true/false).")
    seed = luigi.OptionalIntParameter(default=None, description="Seed for reproducible samples.")
    batch_size = luigi.IntParameter(default=1, description="Samples drawn at once.")
    existing_run = luigi.BoolParameter(default=False, description="Sample the run as it is, without Train.")

    def settings(self) -> dict:
        return {"nsamples": self.nsamples, "length": self.length, "temperature": self.temperature,
                "top_k": self.top_k, "top_p": self.top_p, "prefix": self.prefix, "truncate": self.truncate,
                "seed": self.seed, "batch_size": self.batch_size}

    def requires(self):
        return TrainedRun(run_name=self.run_name) if self.existing_run else Train(run_name=self.run_name)

    def output(self):
        return luigi.LocalTarget(paths.generated_dir(self.run_name))

    def complete(self):
        try:
            index = json.loads((paths.generated_dir(self.run_name) / gpt2.INDEX).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return False
        # Samples of these settings, of the run's latest step, of a run trained as far as Train asks.
        return (index.get("settings") == self.settings()
                and index.get("step") == gpt2.saved_step(paths.checkpoint_dir(self.run_name))
                and self.requires().complete())

    def run(self):
        result = gpt2.generate(
            paths.checkpoint_dir(self.run_name), paths.generated_dir(self.run_name), nsamples=self.nsamples,
            length=self.length, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
            prefix=self.prefix, truncate=self.truncate, seed=self.seed, batch_size=self.batch_size,
            progress=lambda done, total: self.report(done, total, f"{done} of {total} samples"))
        self.report(1, 1, f"{len(result['samples'])} samples of step {result['step']}"
                          + "".join(f"; {m}" for m in result["messages"]))
