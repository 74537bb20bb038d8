"""wikiluigi.training.backends.torch_convert: gpt-2-simple's TensorFlow checkpoints to torch weights and back, on the CPU."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from wikiluigi.errors import ModelError
from wikiluigi.training.backends import torch_backend, torch_convert, torch_model

HPARAMS = {"n_vocab": 300, "n_ctx": 32, "n_embd": 32, "n_head": 2, "n_layer": 2}
ROOT = Path(__file__).resolve().parents[2]


def model_folder(folder: Path, seed: int = 0) -> tuple[Path, dict]:
    """A torch model folder (model.pt, hparams.json, a stand-in vocabulary) with weights far from uniform."""
    torch.manual_seed(seed)
    m = torch_model.GPT2(HPARAMS)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.3) if p.dim() == 2 else p.uniform_(0.5, 1.5)
    folder.mkdir(parents=True)
    (folder / "hparams.json").write_text(json.dumps(HPARAMS))
    (folder / "encoder.json").write_text('{"a": 0}')
    (folder / "vocab.bpe").write_text("#version: 0.2\n")
    state = m.state_dict()
    torch.save(state, folder / torch_convert.WEIGHTS)
    return folder, state


def tf_logits(folder: Path, tokens) -> "numpy.ndarray":
    """Logits of gpt-2-simple's own model code restored from the TensorFlow checkpoint in `folder`."""
    from wikiluigi.training.backends import gpt2
    tf = gpt2._tf()
    from gpt_2_simple.src import model
    graph = tf.Graph()
    with graph.as_default():
        context = tf.compat.v1.placeholder(tf.int32, [None, None])
        logits = model.model(hparams=gpt2._hparams_object(HPARAMS), X=context)["logits"]
        saver = tf.compat.v1.train.Saver(var_list=gpt2._model_vars(tf))
        with tf.compat.v1.Session(graph=graph) as sess:
            saver.restore(sess, tf.train.latest_checkpoint(str(folder)))
            return sess.run(logits, {context: tokens})


@pytest.mark.slow
def test_torch_weights_convert_to_gpt2_simple_and_back_unchanged(tmp_path):
    source, state = model_folder(tmp_path / "torch")
    (source / "checkpoint.json").write_text(json.dumps({"step": 30, "backend": "torch"}))
    done = torch_convert.convert_model(source, tmp_path / "tf")
    assert done == {"from": "torch", "to": "tensorflow", "step": 30, "target": str(tmp_path / "tf")}
    tf_dir = tmp_path / "tf"
    assert (tf_dir / "model-30.index").is_file() and (tf_dir / "counter").read_text() == "30\n"
    assert 'model_checkpoint_path: "model-30"' in (tf_dir / "checkpoint").read_text()   # relative: movable
    assert json.loads((tf_dir / "checkpoint.json").read_text())["backend"] == "tensorflow"
    assert (tf_dir / "encoder.json").read_text() == '{"a": 0}'

    back = torch_convert.convert_model(tf_dir, tmp_path / "again")
    assert back["to"] == "torch" and back["step"] == 30
    again = torch.load(tmp_path / "again" / torch_convert.WEIGHTS, weights_only=True)
    assert again.keys() == state.keys() and all(torch.equal(again[k], state[k]) for k in state)

    # gpt-2-simple's model computes the logits torch computes, from the converted checkpoint.
    tokens = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(1))
    m = torch_model.GPT2(HPARAMS)
    m.load_state_dict(state)
    expected = m(tokens)[0].detach().numpy()
    assert abs(tf_logits(tf_dir, tokens.numpy()) - expected).max() < 1e-4 * abs(expected).max()


@pytest.mark.slow
def test_a_base_model_gets_torch_weights_beside_its_tensorflow_checkpoint(tmp_path):
    source, state = model_folder(tmp_path / "torch")
    torch_convert.convert_model(source, tmp_path / "base")
    assert not (tmp_path / "base" / torch_convert.WEIGHTS).exists()
    done = torch_convert.convert_model(tmp_path / "base", tmp_path / "base")
    assert done["to"] == "torch" and (tmp_path / "base" / "model-0.index").is_file()
    added = torch.load(tmp_path / "base" / torch_convert.WEIGHTS, weights_only=True)
    assert all(torch.equal(added[k], state[k]) for k in state)


@pytest.mark.slow
def test_a_checkpoint_of_other_shapes_is_an_error_naming_the_variable(tmp_path):
    source, _ = model_folder(tmp_path / "torch")
    torch_convert.convert_model(source, tmp_path / "tf")
    (tmp_path / "tf" / "hparams.json").write_text(json.dumps({**HPARAMS, "n_layer": 3}))
    with pytest.raises(ModelError, match=r"has no variable model/h2/ln_1/g"):
        torch_convert.convert_model(tmp_path / "tf", tmp_path / "out")


def test_torch_weights_of_other_shapes_are_an_error_naming_the_weight(tmp_path):
    source, _ = model_folder(tmp_path / "torch")
    (source / "hparams.json").write_text(json.dumps({**HPARAMS, "n_embd": 64}))
    with pytest.raises(ModelError, match=r"wte.weight should have shape \(300, 64\), it holds \(300, 32\)"):
        torch_convert.load_weights_file(source / torch_convert.WEIGHTS, {**HPARAMS, "n_embd": 64})


def test_damaged_or_missing_torch_weights_are_clear_errors(tmp_path):
    source, _ = model_folder(tmp_path / "torch")
    (source / torch_convert.WEIGHTS).write_bytes(b"not a zip file")
    with pytest.raises(ModelError, match="is damaged"):
        torch_convert.load_weights_file(source / torch_convert.WEIGHTS, HPARAMS)
    with pytest.raises(ModelError, match="holds no torch weights"):
        torch_convert.load_weights_file(tmp_path / "nowhere" / torch_convert.WEIGHTS, HPARAMS)


def test_a_folder_without_a_checkpoint_is_named(tmp_path):
    with pytest.raises(ModelError, match="holds no TensorFlow checkpoint"):
        torch_convert.checkpoint_prefix(tmp_path)
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/run/model-5"\n')
    (tmp_path / "model-5.index").write_bytes(b"")
    # An absolute path from another machine (gpt-2-simple's finetune writes those): the file here is meant.
    assert torch_convert.checkpoint_prefix(tmp_path) == str(tmp_path / "model-5")


def test_without_tensorflow_reading_a_checkpoint_says_where_to_convert(tmp_path):
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\n')
    (tmp_path / "model.ckpt.index").write_bytes(b"")
    code = ("import sys; sys.modules['tensorflow'] = None\n"
            "from wikiluigi.training.backends import torch_convert\n"
            f"torch_convert.read_tf_weights({str(tmp_path)!r}, {HPARAMS!r})")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1
    assert "ModelError: Reading the TensorFlow checkpoint" in done.stderr
    assert "needs TensorFlow, which is not installed here" in done.stderr
    assert f"wikiluigi convert {tmp_path}" in done.stderr


def test_the_convert_command_says_what_is_wrong_with_its_source(tmp_path, capsys):
    from wikiluigi import cli
    assert cli.main(["convert", str(tmp_path), str(tmp_path / "out")]) == 2
    assert f"wikiluigi: {tmp_path / 'hparams.json'} does not exist" in capsys.readouterr().err
