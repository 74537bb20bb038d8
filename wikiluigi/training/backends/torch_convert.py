"""Weights between gpt-2-simple's TensorFlow checkpoints and the torch backend's run format, both ways.

gpt-2-simple's base models (OpenAI's released GPT-2 and BaseModel's scratch models: model.ckpt.*) and runs
(model-<step>.*) are read with TensorFlow (tf.train.load_checkpoint) where it is installed; where it is not,
the error says where to convert instead. Torch runs are written back as a gpt-2-simple run folder, which
gpt-2-simple and the tensorflow backend sample and go on training. torch and TensorFlow are imported inside
the functions, each only where it is needed.
"""
import json
import re
import shutil
from pathlib import Path

from wikiluigi.errors import ModelError
from wikiluigi.training.runfolder import CHECKPOINT_INFO, write_json_atomic

WEIGHTS = "model.pt"     # a torch model's weights, also beside a base model's model.ckpt.*
VOCABULARY = ("encoder.json", "vocab.bpe")
_CHECKPOINT_PATH = re.compile(r'^model_checkpoint_path:\s*"([^"]+)"', re.M)


def tf_names(n_layer: int) -> dict[str, str]:
    """torch state-dict key -> gpt-2-simple's variable name (linear weights are transposed between the two)."""
    names = {"wte.weight": "model/wte", "wpe.weight": "model/wpe",
             "ln_f.weight": "model/ln_f/g", "ln_f.bias": "model/ln_f/b"}
    for i in range(n_layer):
        for layer in ("ln_1", "ln_2"):
            names[f"h.{i}.{layer}.weight"] = f"model/h{i}/{layer}/g"
            names[f"h.{i}.{layer}.bias"] = f"model/h{i}/{layer}/b"
        for layer in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            scope = layer.replace(".", "/")
            names[f"h.{i}.{layer}.weight"] = f"model/h{i}/{scope}/w"
            names[f"h.{i}.{layer}.bias"] = f"model/h{i}/{scope}/b"
    return names


def _is_linear(key: str) -> bool:
    return key.endswith(".weight") and (".attn." in key or ".mlp." in key)


def checkpoint_prefix(folder) -> str:
    """The checkpoint a gpt-2-simple folder's `checkpoint` file names (model.ckpt or model-<step>), read
    without TensorFlow and relative to the folder wherever the folder has moved."""
    folder = Path(folder)
    try:
        match = _CHECKPOINT_PATH.search((folder / "checkpoint").read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        match = None
    prefix = folder / Path(match.group(1).replace("\\", "/")).name if match else None
    if prefix is None or not prefix.with_name(prefix.name + ".index").is_file():
        raise ModelError(f"{folder} holds no TensorFlow checkpoint (its `checkpoint` file names none, or the "
                         f"files it names are missing): is it a gpt-2-simple model or run folder?")
    return str(prefix)


def read_tf_weights(folder, hparams: dict) -> dict:
    """The model's weights from the TensorFlow checkpoint in `folder`, as a torch state dict (float32)."""
    import os

    import torch
    prefix = checkpoint_prefix(folder)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError:
        raise ModelError(f"Reading the TensorFlow checkpoint {prefix} needs TensorFlow, which is not installed "
                         f"here. Convert it where TensorFlow is (pip install -e '.[train,torch]', then "
                         f"`wikiluigi convert {folder} <torch run folder>`, or for a base model "
                         f"`wikiluigi convert {folder} {folder}`, which adds {WEIGHTS}), and copy the result "
                         f"here.") from None
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as exc:
        raise ModelError(f"Cannot read the TensorFlow checkpoint {prefix}: {exc}") from None
    state = {}
    for key, name in tf_names(hparams["n_layer"]).items():
        if name not in shapes:
            raise ModelError(f"The checkpoint {prefix} has no variable {name}: it does not fit {folder}/hparams.json "
                             f"({hparams}).")
        array = reader.get_tensor(name)
        array = array[0].T if _is_linear(key) else array        # conv1d [1, in, out] -> Linear [out, in]
        state[key] = torch.from_numpy(array.astype("float32").copy())
    check_shapes(state, hparams, prefix)
    return state


def check_shapes(state: dict, hparams: dict, source) -> None:
    from wikiluigi.training.backends.torch_model import GPT2
    import torch

    with torch.device("meta"):
        expected = {key: tuple(value.shape) for key, value in GPT2(hparams).state_dict().items()}
    for key, shape in expected.items():
        if key not in state or tuple(state[key].shape) != shape:
            found = tuple(state[key].shape) if key in state else "nothing"
            raise ModelError(f"{source} does not fit hparams.json {hparams}: {key} should have shape {shape}, "
                             f"it holds {found}.")


def write_tf_checkpoint(state: dict, hparams: dict, folder, step: int) -> None:
    """Save the weights as gpt-2-simple's checkpoint model-<step>.* in `folder`, with a relative `checkpoint`
    file and gpt-2-simple's `counter`, so that its generate and finetune (and the tensorflow backend) load it."""
    import os

    import numpy as np
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError:
        raise ModelError(f"Writing a TensorFlow checkpoint into {folder} needs TensorFlow, which is not installed "
                         f"here: convert where it is (pip install -e '.[train,torch]').") from None
    check_shapes(state, hparams, "the weights to convert")
    folder = Path(folder)
    graph = tf.Graph()
    with graph.as_default():
        variables, values = {}, {}
        for key, name in tf_names(hparams["n_layer"]).items():
            array = state[key].detach().float().cpu().numpy()
            array = array.T[np.newaxis] if _is_linear(key) else array
            variables[name] = tf.compat.v1.get_variable(name, shape=array.shape, dtype=tf.float32)
            values[name] = array
        # Values fed through placeholders, not baked into the graph as constants (a graph is limited to 2 GB).
        feeds = {name: tf.compat.v1.placeholder(tf.float32, values[name].shape) for name in variables}
        assign = [variables[name].assign(feeds[name]) for name in variables]
        saver = tf.compat.v1.train.Saver(var_list=variables, max_to_keep=1, save_relative_paths=True)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(assign, {feeds[name]: values[name] for name in variables})
            saver.save(sess, str(folder / "model"), global_step=step, write_meta_graph=False)
    (folder / "counter").write_text(f"{step}\n", encoding="utf-8")


def copy_model_files(source, target) -> None:
    """hparams.json and the vocabulary, the files that make a folder a model of this shape and vocabulary."""
    source, target = Path(source), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in (*VOCABULARY, "hparams.json"):
        shutil.copyfile(source / name, target / name)


def _step_of(folder: Path) -> int:
    """A checkpoint folder's step (its checkpoint.json, or gpt-2-simple's model-<step>); 0 for a base model."""
    try:
        return int(json.loads((folder / CHECKPOINT_INFO).read_text(encoding="utf-8"))["step"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        pass
    match = re.search(r"model-(\d+)$", checkpoint_prefix(folder)) if (folder / "checkpoint").is_file() else None
    return int(match.group(1)) if match else 0


def has_tf_checkpoint(folder) -> bool:
    return (Path(folder) / "checkpoint").is_file()


def convert_model(source, target) -> dict:
    """Convert one model folder (a base model, or a run's checkpoint folder) to the other format.

    TensorFlow (model.ckpt.* or model-<step>.*) -> torch: `target` gets model.pt; `target` may be `source`,
    which then holds both. torch (model.pt) -> TensorFlow: `target` gets model-<step>.*, `checkpoint` and
    `counter`, a folder gpt-2-simple samples and goes on training as a run. Either way `target` gets
    hparams.json and the vocabulary, and the step is kept (checkpoint.json when the source has one).
    """
    from wikiluigi.training import runfolder

    source, target = Path(source), Path(target)
    hparams = runfolder.read_hparams(source)
    step = _step_of(source)
    same = target.exists() and target.resolve() == source.resolve()
    if target.exists() and not same and any(target.iterdir()):
        raise ModelError(f"{target} exists and is not empty: convert into a new folder.")
    if has_tf_checkpoint(source):
        state = read_tf_weights(source, hparams)
        if not same:
            copy_model_files(source, target)
        _save_torch(state, target / WEIGHTS)
        direction = ("tensorflow", "torch")
    else:
        state = load_weights_file(source / WEIGHTS, hparams)
        copy_model_files(source, target)
        write_tf_checkpoint(state, hparams, target, step)
        direction = ("torch", "tensorflow")
    if (source / CHECKPOINT_INFO).is_file() and not same:
        info = json.loads((source / CHECKPOINT_INFO).read_text(encoding="utf-8"))
        info["backend"] = direction[1]
        write_json_atomic(target / CHECKPOINT_INFO, info)        # last: it makes the folder a checkpoint
    return {"from": direction[0], "to": direction[1], "step": step, "target": str(target)}


BACKENDS = ("tensorflow", "torch")
RUN_FILES = ("hparams.json", "encoder.json", "vocab.bpe", "loss.csv", "loss.png", "report.html")


def convert_run(source, target) -> dict:
    """A whole training run to the other backend, as a new run folder: its latest/ and best/ checkpoints
    converted (weights; the optimiser's state starts afresh), loss.csv, plot, report and samples copied, and
    run.json naming the other backend, so that the other backend resumes it and Generate samples it."""
    from wikiluigi.training import runfolder

    source, target = Path(source), Path(target)
    info = runfolder.load_info(source)
    backend = info.get("backend", "tensorflow")
    if backend not in BACKENDS:
        raise ModelError(f"{source / runfolder.RUN_INFO} names backend {backend!r}: it converts from "
                         f"{' or '.join(BACKENDS)} only.")
    if target.exists():
        raise ModelError(f"{target} exists: convert into a new run folder (a run name not used yet).")
    other = BACKENDS[1 - BACKENDS.index(backend)]
    converted = {}
    with runfolder.atomic_dir(target) as tmp:
        for name in RUN_FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, tmp / name)
        if (source / runfolder.SAMPLES).is_dir():
            shutil.copytree(source / runfolder.SAMPLES, tmp / runfolder.SAMPLES)
        for kind in (runfolder.LATEST, runfolder.BEST):
            if runfolder.checkpoint_info(source / kind):
                converted[kind] = convert_model(source / kind, tmp / kind)["step"]
        if not converted:
            raise ModelError(f"{source} holds no checkpoint to convert: train it first.")
        info.update(backend=other, converted_from={"run": str(source), "backend": backend, **converted})
        runfolder.write_json_atomic(tmp / runfolder.RUN_INFO, info)
    return {"from": backend, "to": other, "checkpoints": converted, "target": str(target)}


def convert(source, target) -> dict:
    """`wikiluigi convert`: a run folder (it has run.json) with convert_run, else one model folder."""
    from wikiluigi.training import runfolder
    if (Path(source) / runfolder.RUN_INFO).is_file():
        return convert_run(source, target)
    return convert_model(source, target)


def _save_torch(state: dict, path: Path) -> None:
    import os

    import torch
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_weights_file(path: Path, hparams: dict) -> dict:
    """A model.pt as a state dict, checked against hparams; a missing or damaged file is a ModelError."""
    import torch
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
    check_shapes(state, hparams, path)
    return state
