"""The torch backend of wikiluigi.training.loop: torch_model's Trainer restored, stepped, evaluated, saved, sampled.

A checkpoint folder (a run's latest/ or best/) holds model.pt, float32 weights in hparams.json's shapes, and
in latest/ optimizer.pt for resuming. A base model is read from its model.pt when it has one, else from its
TensorFlow checkpoint (wikiluigi.training.backends.torch_convert, which needs TensorFlow). Under torchrun every process runs
the same training loop; only rank 0 writes checkpoints (see `train_distributed`). torch's errors become
ModelError here; torch is imported inside the functions, so importing this module loads nothing heavy.
"""
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from wikiluigi.errors import ModelError
from wikiluigi.training.backends import torch_convert
from wikiluigi.training.backends.torch_convert import WEIGHTS, load_weights_file

NAME = "torch"
OPTIMIZER = "optimizer.pt"
DEVICE_OPTIONS = ("device", "precision", "compile")


def make_trainer(hparams: dict, *, learning_rate: float = 1e-4, seed: int = 1, device: str = "auto",
                 precision: str = "auto", compile="auto"):
    """A torch_model.Trainer; a bad device option is a ModelError saying what to give instead."""
    from wikiluigi.training.backends import torch_model
    try:
        return torch_model.Trainer(hparams, learning_rate=learning_rate, device=device, precision=precision,
                                   compile=compile, seed=seed)
    except ValueError as exc:
        raise ModelError(f"torch backend: {exc}") from None


@contextlib.contextmanager
def open_backend(hparams: dict, base_dir, resume, settings):
    """A TorchModel restored from `resume` (a run's latest/ folder) or the base model's weights."""
    options = {name: getattr(settings, name, "auto") for name in DEVICE_OPTIONS}
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if settings.batch_size % world:
        raise ModelError(f"batch_size {settings.batch_size} does not split among {world} processes: use a multiple "
                         f"of {world} (each process takes batch_size / {world} windows of every batch).")
    model = TorchModel(make_trainer(hparams, learning_rate=settings.learning_rate, seed=settings.seed, **options),
                       settings)
    load(model.trainer, Path(resume) if resume else Path(base_dir), optimizer=resume is not None)
    yield model


class TorchModel:
    """wikiluigi.training.loop's protocol over a Trainer (step, evaluate, save, sample)."""

    def __init__(self, trainer, settings):
        self.trainer, self.settings = trainer, settings

    def step(self, batches, learning_rate: float) -> float:
        return self.trainer.step(batches, learning_rate, clip=self.settings.grad_clip)

    def evaluate(self, windows) -> tuple[float, int]:
        return self.trainer.evaluate(windows, batch_size=len(windows))

    def save(self, folder: Path, *, step: int, optimizer: bool) -> None:
        if self.trainer.rank == 0:           # the other processes of a torchrun hold the same weights
            save(self.trainer, folder, optimizer=optimizer)

    def sample(self, context: list[int], nsamples: int, length: int) -> list[list[int]]:
        if self.trainer.rank != 0:
            return [[] for _ in range(nsamples)]
        return self.trainer.sample(context, length, batch_size=nsamples, temperature=1.0, top_k=40)


def load(trainer, folder, *, optimizer: bool = True) -> None:
    """Weights (and, when resuming, optimiser state) from a checkpoint folder or a base model folder."""
    import torch
    folder = Path(folder)
    if (folder / WEIGHTS).is_file() or not torch_convert.has_tf_checkpoint(folder):
        state = load_weights_file(folder / WEIGHTS, trainer.hparams)
    else:
        state = torch_convert.read_tf_weights(folder, trainer.hparams)
    trainer.model.load_state_dict(state)
    if optimizer and (folder / OPTIMIZER).is_file():
        try:
            trainer.optimizer.load_state_dict(torch.load(folder / OPTIMIZER, map_location=trainer.device,
                                                         weights_only=True))
        except Exception as exc:     # a damaged file: RuntimeError, pickle's or zipfile's errors
            raise ModelError(f"Cannot read the optimiser state {folder / OPTIMIZER}: {exc}. Delete the run to "
                             f"start again.") from None


def save(trainer, folder, *, optimizer: bool = True) -> None:
    """model.pt and, for resuming, optimizer.pt into `folder` (an empty folder the run folder publishes)."""
    import torch
    folder = Path(folder)
    torch.save({key: value.detach().cpu() for key, value in trainer.model.state_dict().items()}, folder / WEIGHTS)
    if optimizer:
        torch.save(trainer.optimizer.state_dict(), folder / OPTIMIZER)


def generate_ids(folder, hparams: dict, context: list[int], *, nsamples: int, length: int, temperature: float,
                 top_k: int, top_p: float, seed: int | None, batch_size: int, progress=None,
                 device: str = "auto") -> list[list[int]]:
    """`nsamples` samples of `length` tokens after `context` from the torch checkpoint in `folder`,
    `batch_size` at a time: the ids the model wrote, context left out."""
    trainer = make_trainer(hparams, device=device, compile=False)
    load(trainer, folder, optimizer=False)
    rows = []
    while len(rows) < nsamples:
        batch_seed = None if seed is None else seed + len(rows)
        rows += trainer.sample(context, length, batch_size=batch_size, temperature=temperature, top_k=top_k,
                               top_p=top_p, seed=batch_seed)
        if progress:
            progress(min(len(rows), nsamples), nsamples)
    return rows[:nsamples]


# ------------------------------------------------------------------------------------ several processes
def train_distributed(run_dir, base_dir, corpus_dir, settings, *, backend: str = NAME, processes: int) -> dict:
    """Train with `processes` processes (one a GPU) started by torchrun, DDP averaging their gradients; the
    result of wikiluigi.training.loop.train, as rank 0 returns it. Every process runs the same loop on the same
    batches (each its slice) and validation windows, so they decide alike on saving and stopping; rank 0
    writes the run, the others a private copy of it that is removed at the end."""
    if backend != NAME:
        raise ModelError(f"processes {processes} needs backend {NAME!r} (torchrun and DDP), not {backend!r}.")
    if not isinstance(processes, int) or processes < 1:
        raise ModelError(f"processes must be a whole number of at least 1, not {processes!r}.")
    run_dir = Path(run_dir)
    from wikiluigi.corpus import tokens
    tokens.ensure(corpus_dir, base_dir)     # once, before the processes that read them start
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.parent.glob(f".{run_dir.name}.rank*.tmp-*"):     # left by a killed torchrun
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f".{run_dir.name}.torchrun-", dir=run_dir.parent) as scratch:
        job = {"run_dir": str(run_dir), "base_dir": str(base_dir), "corpus_dir": str(corpus_dir),
               "settings": dataclasses.asdict(settings), "result": str(Path(scratch) / "result.json")}
        (Path(scratch) / "job.json").write_text(json.dumps(job), encoding="utf-8")
        package_root = str(Path(__file__).resolve().parents[3])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
                   "-m", "wikiluigi.training.backends.torch_backend", str(Path(scratch) / "job.json")]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            said = [line for line in done.stderr.splitlines() if "ModelError" in line or "Error:" in line]
            raise ModelError(f"torchrun with {processes} processes failed (exit {done.returncode}) training {run_dir}: "
                             f"{(said or done.stderr.splitlines() or ['no output'])[-1].strip()}")
        return json.loads(Path(job["result"]).read_text(encoding="utf-8"))


def _follower_copy(run_dir: Path, rank: int) -> Path:
    """A private copy of the run for a process other than rank 0: files hard-linked (nothing is written into
    them: checkpoints are replaced by renames), so it resumes exactly where rank 0 does."""
    copy = run_dir.parent / f".{run_dir.name}.rank{rank}.tmp-{os.getpid()}"
    shutil.rmtree(copy, ignore_errors=True)
    if run_dir.exists():
        def link(source, target):
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
        shutil.copytree(run_dir, copy, copy_function=link)
    return copy


def _distributed_main(job_path: str) -> None:
    """One torchrun process: the shared training loop on the run (rank 0) or on a private copy of it."""
    import torch
    import torch.distributed

    from wikiluigi.training import loop as training
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    settings = training.Settings(**job["settings"])
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = settings.device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group("nccl" if cuda else "gloo")
    run_dir = Path(job["run_dir"])
    # The copies are made before rank 0 opens (and may repair or start) the run: all wait here for them.
    own = run_dir if rank == 0 else _follower_copy(run_dir, rank)
    torch.distributed.barrier(device_ids=[local_rank] if cuda else None)
    try:
        result = training.train(own, job["base_dir"], job["corpus_dir"], settings, backend=NAME)
        if rank == 0:
            Path(job["result"]).write_text(json.dumps(result), encoding="utf-8")
    finally:
        if rank != 0:
            shutil.rmtree(own, ignore_errors=True)
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    _distributed_main(sys.argv[1])
