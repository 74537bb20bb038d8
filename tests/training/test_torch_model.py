"""wikiluigi.training.backends.torch_model on the CPU: the GPT-2's outputs, its training step, sampling and the FLOP count."""
import subprocess
import sys
from pathlib import Path

import pytest

import torch  # noqa: E402  (the [torch] extra: installed wherever the tests run)
from wikiluigi.training.backends import torch_model  # noqa: E402

HPARAMS = {"n_vocab": 1000, "n_ctx": 64, "n_embd": 32, "n_head": 2, "n_layer": 2}
ROOT = Path(__file__).resolve().parents[2]


def model(pad=1, seed=0, std=None):
    torch.manual_seed(seed)
    m = torch_model.GPT2(HPARAMS, pad_vocab_to=pad)
    if std:     # weights well away from the initial ones, so that logits are far from uniform
        with torch.no_grad():
            for p in m.parameters():
                if p.dim() == 2:
                    p.normal_(0.0, std)
    return m


def windows(batch=3, length=64, seed=1):
    return torch.randint(0, HPARAMS["n_vocab"], (batch, length), generator=torch.Generator().manual_seed(seed))


def test_importing_wikiluigi_loads_no_torch():
    code = ("import sys, wikiluigi, wikiluigi.training.backends.torch_backend, wikiluigi.training.backends.torch_convert, wikiluigi.tasks.model; "
            "print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"


def test_shapes_follow_hparams_and_the_parameter_count_formula():
    m = model()
    assert m.wte.weight.shape == (1000, 32) and m.wpe.weight.shape == (64, 32)
    assert m.h[0].attn.c_attn.weight.shape == (96, 32)
    assert sum(p.numel() for p in m.parameters()) == torch_model.parameter_count(HPARAMS)
    logits, presents = m(windows())
    assert logits.shape == (3, 64, 1000) and len(presents) == 2


def test_gpt2_124m_counts_as_the_usual_figures():
    shape = {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12}
    assert torch_model.parameter_count(shape) == 124_439_808           # OpenAI's 124M checkpoint
    assert torch_model.flops_per_token(shape, 1024) == pytest.approx(854.4e6, rel=1e-3)   # nanoGPT's count


def test_padding_the_vocabulary_changes_no_result():
    plain, padded = model(std=0.5), torch_model.GPT2(HPARAMS, pad_vocab_to=64)
    padded.load_state_dict(plain.state_dict())
    assert padded.padded_vocab == 1024
    x = windows()
    assert torch.equal(plain(x)[0], padded(x)[0])
    assert plain.loss(x).item() == pytest.approx(padded.loss(x).item(), abs=1e-6)


def test_loss_is_the_mean_over_next_token_predictions_without_the_last_position():
    m, x = model(std=0.5), windows()
    logits, _ = m(x)
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 1000), x[:, 1:].reshape(-1))
    assert m.loss(x).item() == pytest.approx(expected.item(), rel=1e-6)
    assert m.loss(x).item() > 7.5       # far from ln(1000) = 6.9: the weights matter


def test_cached_keys_and_values_give_the_logits_of_the_whole_window():
    m, x = model(std=0.1), windows(length=20)
    whole, _ = m(x)
    logits, past = m(x[:, :8])
    steps = [logits[:, -1]]
    for i in range(8, 19):
        logits, past = m(x[:, i:i + 1], past)
        steps.append(logits[:, -1])
    assert torch.allclose(torch.stack(steps, dim=1), whole[:, 7:19], atol=1e-5)


def test_top_k_and_top_p_keep_the_likeliest_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(torch_model.top_k_top_p(logits, 2, 0.0)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(torch_model.top_k_top_p(logits, 0, 0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(torch_model.top_k_top_p(logits, 0, 0.9)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(torch_model.top_k_top_p(logits, 0, 0.0)).all()


def test_sampling_is_reproducible_with_a_seed_and_stays_in_the_vocabulary():
    trainer = torch_model.Trainer(HPARAMS, learning_rate=1e-3, device="cpu")
    first = trainer.sample([5, 6], 30, batch_size=3, top_k=40, seed=7)
    assert first == trainer.sample([5, 6], 30, batch_size=3, top_k=40, seed=7)
    assert len(first) == 3 and all(len(row) == 30 and all(0 <= t < 1000 for t in row) for row in first)
    assert first != trainer.sample([5, 6], 30, batch_size=3, top_k=40, seed=8)


def test_training_steps_lower_the_loss_of_a_repeated_batch():
    trainer = torch_model.Trainer(HPARAMS, learning_rate=3e-3, device="cpu")
    batch = windows(batch=4).numpy()
    losses = [trainer.step([batch], clip=1.0) for _ in range(15)]
    assert losses[-1] < losses[0] - 1.0
    assert trainer.precision == "fp32" and trainer.compiled is False     # the CPU defaults


def test_accumulated_batches_step_as_their_mean():
    whole, split = (torch_model.Trainer(HPARAMS, learning_rate=1e-3, device="cpu", seed=3) for _ in range(2))
    batch = windows(batch=4).numpy()
    loss_whole = whole.step([batch])
    loss_split = split.step([batch[:2], batch[2:]])
    assert loss_split == pytest.approx(loss_whole, rel=1e-5)
    for a, b in zip(whole.model.parameters(), split.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_evaluate_sums_the_loss_over_every_prediction():
    trainer = torch_model.Trainer(HPARAMS, learning_rate=1e-3, device="cpu")
    batch = windows(batch=5).numpy()
    total, count = trainer.evaluate(batch, batch_size=2)
    assert count == 5 * 63
    assert total / count == pytest.approx(trainer.model.loss(torch.as_tensor(batch)).item(), rel=1e-5)


@pytest.mark.parametrize("options, message", [
    ({"device": "cuda"}, "sees no CUDA GPU"), ({"device": "tpu9"}, "unknown torch device"),
    ({"precision": "fp8"}, "precision must be"),
])
def test_bad_device_options_say_what_to_give(options, message):
    if options.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match=message):
        torch_model.Trainer(HPARAMS, learning_rate=1e-3, **options)
