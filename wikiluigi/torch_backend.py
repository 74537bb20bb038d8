"""The torch backend of wikiluigi.training: torch_model's Trainer restored, stepped, evaluated, saved, sampled.

A checkpoint folder (a run's latest/ or best/) holds model.pt, float32 weights in hparams.json's shapes, and
in latest/ optimizer.pt for resuming. A base model is read from its model.pt when it has one, else from its
TensorFlow checkpoint (wikiluigi.torch_convert, which needs TensorFlow). Under torchrun every process runs
the same training loop; only rank 0 writes checkpoints (see `train_distributed`). torch's errors become
ModelError here; torch is imported inside the functions, so importing this module loads nothing heavy.
"""
import contextlib
from pathlib import Path

from wikiluigi.errors import ModelError

NAME = "torch"
WEIGHTS = "model.pt"
OPTIMIZER = "optimizer.pt"
DEVICE_OPTIONS = ("device", "precision", "compile")


def make_trainer(hparams: dict, *, learning_rate: float = 1e-4, seed: int = 1, device: str = "auto",
                 precision: str = "auto", compile="auto"):
    """A torch_model.Trainer; a bad device option is a ModelError saying what to give instead."""
    from wikiluigi import torch_model
    try:
        return torch_model.Trainer(hparams, learning_rate=learning_rate, device=device, precision=precision,
                                   compile=compile, seed=seed)
    except ValueError as exc:
        raise ModelError(f"torch backend: {exc}") from None


@contextlib.contextmanager
def open_backend(hparams: dict, base_dir, resume, settings):
    """A TorchModel restored from `resume` (a run's latest/ folder) or the base model's weights."""
    options = {name: getattr(settings, name, "auto") for name in DEVICE_OPTIONS}
    model = TorchModel(make_trainer(hparams, learning_rate=settings.learning_rate, seed=settings.seed, **options),
                       settings)
    load(model.trainer, Path(resume) if resume else Path(base_dir), optimizer=resume is not None)
    yield model


class TorchModel:
    """wikiluigi.training's protocol over a Trainer (step, evaluate, save, sample)."""

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
    from wikiluigi import torch_convert
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


def load_weights_file(path: Path, hparams: dict) -> dict:
    """A model.pt as a state dict, checked against hparams; a missing or damaged file is a ModelError."""
    import torch
    from wikiluigi import torch_convert
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"{path} is missing: {path.parent} holds no torch weights (a TensorFlow model converts "
                         f"with `wikiluigi convert`).") from None
    except Exception as exc:     # torch raises RuntimeError, pickle's and zipfile's errors on a damaged file
        raise ModelError(f"Cannot read the torch weights {path}: {exc}. The file is damaged: train or convert "
                         f"again.") from None
    if not isinstance(state, dict):
        raise ModelError(f"{path} holds no state dict of weights: train or convert again.")
    torch_convert.check_shapes(state, hparams, path)
    return state


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
