"""Held-out loss with the learning-rate schedule and without, and sampling speed at batch 1 and batch 8.

Run by hand (not a test): `python benchmarks/validation_bench.py [--steps 300 --workdir DIR]`.

Part 1: on two corpora, the demo wiki (shipped) and the startrek fixture (tests/fixtures), each built
by TrainingSet as a user would (10% of pages held out), a scratch model of the demo's shape (4 layers,
256 wide, n_ctx 256) trains the same number of steps from the same weights and batches twice: with the
defaults (warmup, cosine decay, clipping at 1.0) and without (a constant learning rate, no warmup, no
clipping: the loop before the schedule). Printed side by side: the validation loss at the end, the best
one and its step.
Part 2: samples from the demo run's best checkpoint, `length` tokens each, at batch 1 and at batch 8, in
tokens per second from the end of the first batch to the end of the last (graph building and loading
left out).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHAPE = {"n_layer": 4, "n_embd": 256, "n_head": 4, "n_ctx": 256, "vocab_size": 8192, "seed": 1}


def build_training_sets(data: Path) -> None:
    """demo and startrek training sets through the real command line, in a data directory of their own."""
    originals = data / "manifests" / "originals"
    originals.mkdir(parents=True, exist_ok=True)
    (originals / "startrek.yaml").write_text(f"dump: {FIXTURES / 'startrek-dump.xml'}\n"
                                             f"include_categories: [Category:Star Trek]\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    luigi = Path(sys.executable).with_name("luigi")
    for name in ("demo", "startrek"):
        subprocess.run([str(luigi), "--module", "wikiluigi", "TrainingSet", "--manifests", json.dumps([name]),
                        "--local-scheduler"], cwd=data, env=env, check=True, capture_output=True)


def held_out_losses(data: Path, steps: int) -> dict:
    from wikiluigi.corpus import trainingset as corpus
    from wikiluigi.training.backends import gpt2
    from wikiluigi.training import loop as training

    results = {}
    for name in ("demo", "startrek"):
        corpus_dir = data / "out" / "trainingset" / name
        stats = corpus.read_stats(corpus_dir)
        base = data / "out" / "model" / f"bench-{name}"
        if not base.exists():
            gpt2.build_scratch_model(base, [corpus_dir / corpus.TRAIN_TEXT, corpus_dir / corpus.VALIDATION_TEXT],
                                     **SHAPE)
        runs = {
            "schedule": training.Settings(steps=steps, learning_rate=1e-3),
            "no schedule": training.Settings(steps=steps, learning_rate=1e-3, schedule="constant", warmup_steps=0,
                                             grad_clip=0),
        }
        for label, settings in runs.items():
            run = data / "out" / "checkpoint" / f"{name}-{label.replace(' ', '-')}"
            started = time.perf_counter()
            result = training.train(run, base, corpus_dir, settings)
            info = json.loads((run / "run.json").read_text(encoding="utf-8"))
            results[(name, label)] = {"val_loss": result["val_loss"], "best": info["best"], "loss": result["avg_loss"],
                                      "seconds": time.perf_counter() - started, "pages": stats["validation"]["pages"],
                                      "validation_tokens": info["corpus_stats"]["validation_tokens"],
                                      "run": run}
            print(f"  {name:9s} {label:12s} validation loss {result['val_loss']:.3f}, best {info['best']['val_loss']:.3f}"
                  f" at step {info['best']['step']}, training loss (average) {result['avg_loss']:.3f}, "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
    return results


def sampling_speed(run: Path, length: int) -> dict:
    from wikiluigi.training.backends import gpt2
    from wikiluigi.training import runfolder
    from wikiluigi.corpus import vocabulary

    folder, _, _ = runfolder.checkpoint_folder(run, "best")
    hparams = runfolder.read_hparams(folder)
    context = vocabulary.start_context(vocabulary.load_tokenizer(folder))
    speeds = {}
    for batch, nsamples in ((1, 9), (8, 24)):
        marks = []
        gpt2.generate_ids(folder, hparams, context, nsamples=nsamples, length=length, temperature=0.7, top_k=0,
                          top_p=0.0, seed=1, batch_size=batch, progress=lambda done, total: marks.append(
                              (done, time.perf_counter())))
        (first, t0), (last, t1) = marks[0], marks[-1]
        speeds[batch] = (last - first) * length / (t1 - t0)
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per run (the demo's 300)")
    parser.add_argument("--length", type=int, default=200, help="tokens per sample for the sampling speed")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="validation-bench-") as tmp:
        data = args.workdir or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        print(f"model {SHAPE}, {args.steps} steps, batch 1, lr 1e-3; {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        build_training_sets(data)
        results = held_out_losses(data, args.steps)
        speeds = sampling_speed(results[("demo", "schedule")]["run"], args.length)
    print(f"\nheld-out loss after {args.steps} steps (nats per token; lower is better)")
    print(f"{'corpus':10s}{'held-out pages':>15s}{'tokens':>8s}{'with schedule':>27s}{'without':>27s}"
          f"{'difference':>12s}")
    for name in ("demo", "startrek"):
        ours, theirs = results[(name, "schedule")], results[(name, "no schedule")]

        def cell(r):
            return f"{r['val_loss']:.3f} (best {r['best']['val_loss']:.3f}@{r['best']['step']})"
        print(f"{name:10s}{ours['pages']:>15d}{ours['validation_tokens']:>8d}{cell(ours):>27s}"
              f"{cell(theirs):>27s}{ours['val_loss'] - theirs['val_loss']:>+12.3f}")
    print(f"\nsampling, {args.length} tokens a sample, demo model: batch 1 {speeds[1]:,.0f} tokens/s, batch 8 "
          f"{speeds[8]:,.0f} tokens/s ({speeds[8] / speeds[1]:.1f}x)")


if __name__ == "__main__":
    main()
