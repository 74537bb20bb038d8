"""A training run's folder, the one place every training backend writes through: run.json, the loss log, checkpoints.

Layout of out/checkpoint/<run>/ (whatever the backend):

    run.json          what the run is (base model, corpus, backend: a run only resumes as itself), the settings
                      of its latest Train, its latest and best checkpoints, an early stop; rewritten atomically
    loss.csv          a row per step: step, loss, avg_loss, learning_rate, tokens_per_s, elapsed_s, val_loss
                      (val_loss only on validation steps, empty elsewhere)
    loss.png, report.html    drawn from the two above by wikiluigi.training.report
    hparams.json, encoder.json, vocab.bpe    the model's shape and vocabulary, copied from the base model
    latest/           the checkpoint to resume from: weights and optimiser state, in the backend's own files
    best/             the weights with the lowest validation loss so far
    samples/          text sampled while training (step-000100.txt ...)

Each checkpoint folder also holds checkpoint.json ({"step", "val_loss", "backend", ...}, written last) and
copies of hparams.json, encoder.json and vocab.bpe, so that it is a model folder of its own: gpt-2-simple
loads `<run>/latest` or `<run>/best` as a run. The backend writes a checkpoint's files into an empty
temporary folder; `writing` renames it into place (the old one moved aside first, removed after), so a
SIGKILL at any moment leaves either the old checkpoint or the new one, and `open` puts back whichever
a kill left aside. loss.csv is flushed before a checkpoint is published, so it holds every step up to the
latest checkpoint; rows after it (and a line a kill cut short) are dropped when the run resumes.

How the training loop (wikiluigi.training.loop) uses it for any backend, which only loads, steps and saves:

    folder = RunFolder(run_dir)
    state = folder.open(identity, settings, base_dir)  # repairs what a kill left, checks the run is this one
    resume = folder.latest if state.step else None     # the backend restores from here, else the base model
    folder.append(row)                                 # after each step; row["val_loss"] on validation steps
    with folder.writing(LATEST, step, backend="torch") as tmp:   # the backend writes its files into tmp
        model.save(tmp, step=step, optimizer=True)
    folder.close(stopped=None)                         # run.json's end state
"""
import contextlib
import csv
import io
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from wikiluigi import durable, pagefiles
from wikiluigi.errors import ModelError, shorten

RUN_INFO = "run.json"
LOSS_LOG = "loss.csv"
LOSS_COLUMNS = ("step", "loss", "avg_loss", "learning_rate", "tokens_per_s", "elapsed_s", "val_loss")
CHECKPOINT_INFO = "checkpoint.json"
LATEST, BEST = "latest", "best"
MODEL_FILES = ("hparams.json", "encoder.json", "vocab.bpe")    # the model's shape and vocabulary
SAMPLES = "samples"
IDENTITY_KEYS = ("backend", "base_model", "corpus")          # what a run must keep to be resumed


@dataclass
class RunState:
    """Where a run stands when it (re)starts."""
    step: int = 0                         # of the latest checkpoint (0: a new run)
    best_step: int | None = None          # of the best checkpoint
    best_loss: float = math.inf
    rows: list[dict] = field(default_factory=list)   # loss.csv up to `step`

    @property
    def evaluations_since_best(self) -> int:
        """Validation losses logged after the best one: what early stopping's patience counts."""
        after = self.best_step or 0
        return sum(1 for row in self.rows if row.get("val_loss") is not None and row["step"] > after)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None


def write_text_atomic(path: Path, text: str) -> None:
    pagefiles.write_atomic(path, text)


def write_json_atomic(path: Path, document: dict) -> None:
    write_text_atomic(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def checkpoint_info(folder: Path) -> dict | None:
    """A published checkpoint's checkpoint.json ({"step", "val_loss", ...}), or None where there is none."""
    info = read_json(Path(folder) / CHECKPOINT_INFO)
    return info if info and isinstance(info.get("step"), int) else None


def saved_step(run_dir, kind: str = LATEST) -> int:
    """The step of a run's checkpoint (0 for none), from files alone: no backend, no repair."""
    info = checkpoint_info(Path(run_dir) / kind)
    return info["step"] if info else 0


def read_loss_log(run_dir, upto: float = math.inf) -> list[dict]:
    """loss.csv's rows up to step `upto`; a line a kill cut short, or any line that does not parse, is left out."""
    path = Path(run_dir) / LOSS_LOG
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            for values in reader:
                row = _parse_row(header, values)
                if row is not None and row["step"] <= upto:
                    rows.append(row)
    except FileNotFoundError:
        return []
    return rows


def _parse_row(header, values) -> dict | None:
    if not header or len(values) != len(header):
        return None
    try:
        row = {name: (float(value) if value != "" else None) for name, value in zip(header, values)}
        row["step"] = int(row["step"])
        return row if row["loss"] is not None else None
    except (ValueError, TypeError, KeyError):
        return None


def _format_row(row: dict) -> list:
    def number(name, digits):
        value = row.get(name)
        return "" if value is None else f"{value:.{digits}g}" if digits < 0 else f"{value:.{digits}f}"
    return [int(row["step"]), number("loss", 5), number("avg_loss", 5), f"{row.get('learning_rate', 0.0):.4e}",
            number("tokens_per_s", 1), number("elapsed_s", 2), number("val_loss", 5)]


class RunFolder:
    """One run's folder on disk; see the module's docstring for the layout and the protocol."""

    def __init__(self, path):
        self.path = Path(path)
        self.latest = self.path / LATEST
        self.best = self.path / BEST
        self.info: dict = {}
        self._log = None

    # --------------------------------------------------------------------------------------- starting
    def open(self, identity: dict, settings: dict, base_dir) -> RunState:
        """Repair what a kill left, check that the run is the one `identity` describes, record `settings`.

        `identity` has IDENTITY_KEYS: {"backend": "tensorflow", "base_model": {"name": ...},
        "corpus": {"manifests": [...], "validation": ...}}; a run that exists with another identity is a
        ModelError saying what differs. A new run gets the base model's hparams.json and vocabulary.
        """
        base_dir = Path(base_dir)
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / "checkpoint").is_file() and not self.latest.exists():
            raise ModelError(f"{self.path} is a run of an older wikiluigi (its checkpoint at the top, no latest/ "
                             f"folder): delete it to start again, or train under another run name.")
        self.recover()
        self.info = read_json(self.path / RUN_INFO) or {}
        if not (self.path / RUN_INFO).is_file() or not (self.path / "hparams.json").is_file():
            # Not started (run.json is written at the end of the first open): a kill may have left some of
            # the model files; all are copied anew, each atomically, hparams.json last.
            for name in (*[n for n in MODEL_FILES if n != "hparams.json"], "hparams.json"):
                pagefiles.write_atomic(self.path / name, (base_dir / name).read_bytes())
        self._check_identity(identity, base_dir)
        latest, best = checkpoint_info(self.latest), checkpoint_info(self.best)
        state = RunState(step=latest["step"] if latest else 0)
        if best and best.get("val_loss") is not None:
            state.best_step, state.best_loss = best["step"], float(best["val_loss"])
        state.rows = read_loss_log(self.path, upto=state.step)
        self._rewrite_log(state.rows)
        previous = self.info.get("settings")
        history = self.info.get("history", [])
        if previous is not None and previous != settings:
            changed = {k: [previous.get(k), v] for k, v in settings.items() if previous.get(k) != v}
            history.append({"step": state.step, "changed": changed})
        self.info = {**self.info, **identity, "settings": settings, "history": history,
                     "started": self.info.get("started") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.info.pop("stopped", None)
        self._refresh_checkpoints()
        return state

    def recover(self) -> None:
        """Put back a checkpoint a kill left aside mid-publish, and remove every temporary file or folder."""
        for kind in (LATEST, BEST):
            target, aside = self.path / kind, self.path / f".{kind}.old"
            if aside.exists():
                if checkpoint_info(target):
                    shutil.rmtree(aside, ignore_errors=True)
                else:
                    shutil.rmtree(target, ignore_errors=True)
                    os.rename(aside, target)
        leftovers = [*self.path.glob(".*.tmp-*"), *self.path.glob(".tmp-*.part"),   # ours, pagefiles'
                     *(self.path / SAMPLES).glob(".tmp-*.part")]
        for stale in leftovers:
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)

    def _check_identity(self, identity: dict, base_dir: Path) -> None:
        missing = [key for key in IDENTITY_KEYS if key not in identity]
        if missing:
            raise ValueError(f"identity needs {', '.join(missing)}")
        check_identity(self.path, identity, self.info)
        if (self.path / "hparams.json").is_file():
            same = all((self.path / name).is_file() and (base_dir / name).is_file()
                       and (self.path / name).read_bytes() == (base_dir / name).read_bytes() for name in MODEL_FILES)
            if not same:
                started = (self.info.get("base_model") or {}).get("name", "?")
                raise ModelError(f"The run {self.path} was started from another base model ({started}), not "
                                 f"{base_dir}: its hparams.json or vocabulary differ. Choose another run name, or "
                                 f"delete {self.path} to start again.")

    # ----------------------------------------------------------------------------------------- the log
    def append(self, row: dict) -> None:
        """One step's row (LOSS_COLUMNS; val_loss None or absent off validation steps)."""
        if self._log is None:
            self._log = open(self.path / LOSS_LOG, "a", newline="", encoding="utf-8")
            self._writer = csv.writer(self._log)
        self._writer.writerow(_format_row(row))

    def flush(self) -> None:
        """Rows written so far onto the disk (fsync'ed: a checkpoint published after survives a power cut
        with its rows)."""
        if self._log is not None:
            self._log.flush()
            if durable.ENABLED:
                os.fsync(self._log.fileno())

    def _rewrite_log(self, rows: list[dict]) -> None:
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(LOSS_COLUMNS)
        writer.writerows(_format_row(row) for row in rows)
        pagefiles.write_atomic(self.path / LOSS_LOG, text.getvalue())

    # ---------------------------------------------------------------------------------- checkpoints
    @contextlib.contextmanager
    def writing(self, kind: str, step: int, *, backend: str, val_loss: float | None = None):
        """Yield an empty temporary folder for the backend to write a checkpoint into; publish it on success.

        Rows of loss.csv up to `step` are flushed first, so the log always reaches the latest checkpoint.
        """
        if kind not in (LATEST, BEST):
            raise ValueError(kind)
        self.flush()
        tmp = self.path / f".{kind}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            yield tmp
            for name in MODEL_FILES:
                _link_or_copy(self.path / name, tmp / name)
            info = {"step": step, "val_loss": val_loss, "backend": backend,
                    "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            write_json_atomic(tmp / CHECKPOINT_INFO, info)       # last: a folder without it is not a checkpoint
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._publish(tmp, self.path / kind)
        self._refresh_checkpoints()

    def _publish(self, tmp: Path, target: Path) -> None:
        sync_tree(tmp)                               # the checkpoint's files on disk before it is named
        aside = self.path / f".{target.name}.old"
        if target.exists():
            os.rename(target, aside)
        os.rename(tmp, target)
        durable.sync_folder(self.path)             # the new name on disk before the old one goes
        shutil.rmtree(aside, ignore_errors=True)

    def _refresh_checkpoints(self) -> None:
        """run.json's view of the checkpoints, read from the checkpoints themselves."""
        for kind in (LATEST, BEST):
            info = checkpoint_info(self.path / kind)
            self.info[kind] = {"step": info["step"], "val_loss": info.get("val_loss")} if info else None
        write_json_atomic(self.path / RUN_INFO, self.info)

    # -------------------------------------------------------------------------------------- the end
    def record(self, **fields) -> None:
        """Add fields to run.json (corpus figures, results), atomically."""
        self.info.update(fields)
        write_json_atomic(self.path / RUN_INFO, self.info)

    def write_sample(self, name: str, text: str) -> Path:
        folder = self.path / SAMPLES
        folder.mkdir(exist_ok=True)
        write_text_atomic(folder / name, text)
        return folder / name

    def close(self, stopped: dict | None = None) -> None:
        """Flush the log and write run.json's end state; `stopped` says why a run ended early, if it did."""
        if self._log is not None:
            self._log.close()
            self._log = None
        if stopped:
            self.info["stopped"] = stopped
        self._refresh_checkpoints()


def differences(info: dict, identity: dict) -> list[str]:
    """What differs between a run's run.json and an identity (only the fields the identity gives)."""
    said = []
    for key in IDENTITY_KEYS:
        if key not in info or key not in identity:
            continue
        mine, theirs = info[key], identity[key]
        if isinstance(theirs, dict) and isinstance(mine, dict):
            theirs_given = {k: v for k, v in theirs.items() if k in mine}
            mine = {k: v for k, v in mine.items() if k in theirs}
            theirs = theirs_given
        if mine != theirs:
            said.append(f"{key}: it has {_as_json(mine)}, this Train asks for {_as_json(theirs)}")
    return said


def check_identity(run_dir, identity: dict, info: dict | None = None) -> None:
    """A ModelError when the run in `run_dir` exists and is another run than `identity` describes."""
    info = read_json(Path(run_dir) / RUN_INFO) if info is None else info
    said = differences(info or {}, identity)
    if said:
        raise ModelError(f"The run {run_dir} is another run than this Train describes ({'; '.join(said)}). A run "
                         f"only resumes on its own corpus and base model: choose another run name, or delete "
                         f"{run_dir} to start again.")


def load_info(run_dir) -> dict:
    """A run's run.json, or a ModelError saying that there is no such run."""
    info = read_json(Path(run_dir) / RUN_INFO)
    if info is None:
        raise ModelError(f"{run_dir} is not a training run (no {RUN_INFO}): train it first "
                         f"(Train --run-name {Path(run_dir).name}).")
    return info


def checkpoint_folder(run_dir, which: str = BEST) -> tuple[Path, dict, list[str]]:
    """The checkpoint to sample: `best` (falling back to latest, with a message, when the run has no
    validation) or `latest`. Returns the folder, its checkpoint.json and the messages."""
    run_dir = Path(run_dir)
    if which not in (BEST, LATEST):
        raise ModelError(f"checkpoint must be '{BEST}' or '{LATEST}', not {which!r}.")
    messages = []
    if which == BEST and checkpoint_info(run_dir / BEST) is None and checkpoint_info(run_dir / LATEST):
        messages.append(f"{run_dir} has no best checkpoint (no validation pages): sampling the latest.")
        which = LATEST
    info = checkpoint_info(run_dir / which)
    if info is None:
        raise ModelError(f"{run_dir} holds no checkpoint: train the run first (Train --run-name {run_dir.name}).")
    return run_dir / which, info, messages


def read_hparams(model_dir) -> dict:
    path = Path(model_dir) / "hparams.json"
    try:
        hparams = json.loads(path.read_text(encoding="utf-8"))
        return {key: int(hparams[key]) for key in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")}
    except FileNotFoundError:
        raise ModelError(f"{path} does not exist: {model_dir} is not a GPT-2 model or run folder.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path} is damaged ({exc}); rebuild or re-download the model.") from None


@contextlib.contextmanager
def atomic_dir(target: Path):
    """Yield a fresh temporary folder beside `target`; on success it replaces `target` in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):   # left by a killed build
        if "-old-" in stale.name and not target.exists():
            os.rename(stale, target)           # killed between the two renames: the old one is still whole
        else:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        sync_tree(tmp)
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
    durable.sync_folder(target.parent)


def sync_tree(folder: Path) -> None:
    """fsync every file under a folder, then each folder (deepest first): all of it on disk before the
    folder is renamed into place, so that a power cut leaves the old checkpoint or the whole new one."""
    if not durable.ENABLED:
        return
    folders = []
    for root, _, names in os.walk(folder):
        folders.append(Path(root))
        for name in names:
            durable.sync_file(Path(root) / name)
    for each in reversed(folders):
        durable.sync_folder(each)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _as_json(value) -> str:
    return shorten(json.dumps(value, ensure_ascii=False, sort_keys=True))
