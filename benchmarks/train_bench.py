"""Training speed and peak memory: wikiluigi's training loop against gpt_2_simple.finetune, side by side.

Run by hand (not a test): `python benchmarks/train_bench.py [--steps 20 --repeat 2 --batch-size 1 ...]`.

Both contenders train the same from-scratch base model (n_ctx 1024, so that finetune, which hard-codes a
1024-token window, runs unpatched) on the same corpus with the same batch size, learning rate and steps,
each in a process of its own so that its peak RSS is its own. Speed is timed from the end of step 1 to the
end of the last step (graph building, loading, the first step's graph optimisation and the final save left
out), in wall-clock and in CPU seconds (CPU time is the steadier figure on a machine shared with other work).
Contenders alternate when --repeat > 1 and medians are reported.
"""
import argparse
import bz2
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
DUMPS = (FIXTURES / "wikipedia" / "enwiki-articles-sample.xml.bz2", FIXTURES / "startrek-dump.xml")


def corpus_from_dump(dump: Path, out: Path, max_chars: int) -> Path:
    """Articles of a MediaWiki XML export as a training set, up to max_chars (wikitext: enough to time)."""
    opener = bz2.open if dump.suffix == ".bz2" else open
    with opener(dump) as f:
        root = ElementTree.parse(f).getroot()
    ns = {"m": root.tag.split("}")[0][1:]}
    written = 0
    with open(out, "w", encoding="utf-8") as f:
        for page in root.findall("m:page", ns):
            if page.find("m:ns", ns).text == "0" and page.find("m:redirect", ns) is None and written < max_chars:
                text = (page.find("m:revision/m:text", ns).text or "").strip()[:max_chars - written]
                written += f.write(f"<|startoftext|>\n{text}\n<|endoftext|>\n")
    return out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux


class Clock:
    """(wall, CPU) seconds at the end of each step: the step's number -> the two clocks."""

    def __init__(self):
        self.marks = {}

    def mark(self, step: int) -> None:
        self.marks[step] = (time.perf_counter(), time.process_time())

    def figures(self) -> dict:
        first, last = min(self.marks), max(self.marks)
        (wall0, cpu0), (wall1, cpu1) = self.marks[first], self.marks[last]
        return {"steps_per_s": (last - first) / (wall1 - wall0), "cpu_s_per_step": (cpu1 - cpu0) / (last - first)}


def run_ours(args) -> dict:
    sys.path.insert(0, str(ROOT))
    import gpt_2_simple  # noqa: F401  (TensorFlow loaded before the clock starts, as for finetune)
    from wikiluigi.training import loop as training

    # finetune has no validation, no schedule and no clipping: ours runs without them too (a training set
    # folder with the whole corpus for training, a constant rate), so that the loops are compared alone.
    corpus_dir = Path(args.workdir) / f"set-{os.getpid()}"
    corpus_dir.mkdir()
    os.link(args.corpus, corpus_dir / "train.txt")
    (corpus_dir / "validation.txt").write_text("", encoding="utf-8")
    (corpus_dir / "stats.json").write_text(json.dumps({"manifests": ["bench"], "validation": {"asked": 0, "pages": 0}}))
    settings = training.Settings(steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
                                 schedule="constant", warmup_steps=0, grad_clip=0, save_every=args.steps,
                                 window=1024)
    clock = Clock()
    started = time.perf_counter()
    result = training.train(Path(args.workdir) / f"ours-{os.getpid()}", args.model, corpus_dir, settings,
                            progress=lambda step, *_: clock.mark(step))   # called after step 1 and the last step
    return {**clock.figures(), "wall_s": time.perf_counter() - started, "final_loss": result["loss"],
            "peak_rss_mib": peak_rss_mib()}


class StepLines:
    """A stdout for finetune that clocks each of its "[step | seconds] loss=..." lines as it is printed."""

    PATTERN = re.compile(r"^\[(\d+) \| [\d.]+\] loss=([\d.]+)")

    def __init__(self):
        self.clock, self.loss = Clock(), None

    def write(self, text: str) -> int:
        match = self.PATTERN.match(text)
        if match:
            self.clock.mark(int(match.group(1)))
            self.loss = float(match.group(2))
        return len(text)

    def flush(self) -> None:
        pass


def run_finetune(args) -> dict:
    import contextlib

    import gpt_2_simple as gpt2s

    model, lines = Path(args.model), StepLines()
    started = time.perf_counter()
    sess = gpt2s.start_tf_sess()
    with contextlib.redirect_stdout(lines):
        gpt2s.finetune(sess, dataset=str(args.corpus), steps=args.steps, model_name=model.name,
                       model_dir=str(model.parent), batch_size=args.batch_size, learning_rate=args.learning_rate,
                       accumulate_gradients=1, restore_from="fresh", run_name=f"finetune-{os.getpid()}",
                       checkpoint_dir=str(args.workdir), sample_every=10 ** 9, save_every=10 ** 9, print_every=1)
    return {**lines.clock.figures(), "wall_s": time.perf_counter() - started, "final_loss": lines.loss,
            "peak_rss_mib": peak_rss_mib()}


def contender(name: str, args, workdir: Path, model: Path, corpus: Path) -> dict:
    command = [sys.executable, __file__, "--contender", name, "--workdir", str(workdir), "--model", str(model),
               "--corpus", str(corpus), "--steps", str(args.steps), "--batch-size", str(args.batch_size),
               "--learning-rate", str(args.learning_rate)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per run (timed from step 1 to the last)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each contender, alternating")
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--dump", type=Path, default=next((d for d in DUMPS if d.exists()), DUMPS[-1]),
                        help="MediaWiki XML export whose articles make the corpus (default: the enwiki sample)")
    parser.add_argument("--corpus-chars", type=int, default=1_000_000, help="corpus size cap in characters")
    parser.add_argument("--corpus", type=Path, help="a ready training set instead of --dump")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    # Used by the parent to start each contender in a process of its own:
    parser.add_argument("--contender", choices=("ours", "finetune"), help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.contender:
        result = (run_ours if args.contender == "ours" else run_finetune)(args)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        corpus = args.corpus or corpus_from_dump(args.dump, workdir / "corpus.txt", args.corpus_chars)
        model = workdir / "model" / "bench"
        sys.path.insert(0, str(ROOT))
        from wikiluigi.training.backends import gpt2
        shape = {"n_layer": args.n_layer, "n_embd": args.n_embd, "n_head": args.n_head, "n_ctx": 1024}
        built = gpt2.build_scratch_model(model, corpus, vocab_size=args.vocab_size, seed=1, **shape)
        print(f"model: {shape}, n_vocab {built['n_vocab']}; corpus {built['tokens']:,} tokens; batch "
              f"{args.batch_size} x 1024 tokens, {args.steps} steps, lr {args.learning_rate}; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
        results = {"ours": [], "finetune": []}
        for i in range(args.repeat):
            for name in ("ours", "finetune"):
                result = contender(name, args, workdir, model, corpus)
                results[name].append(result)
                print(f"  run {i + 1} {name:9s} {result['steps_per_s']:6.3f} steps/s  "
                      f"{result['cpu_s_per_step']:6.3f} CPU s/step  peak RSS {result['peak_rss_mib']:7.1f} MiB  "
                      f"wall {result['wall_s']:5.1f} s  final loss {result['final_loss']:.3f}", flush=True)
    median = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
              for name, runs in results.items()}
    ours, theirs = median["ours"], median["finetune"]
    tokens = args.batch_size * 1024
    print(f"\nmedians of {args.repeat}   {'steps/s':>10s}{'tokens/s':>10s}{'CPU s/step':>12s}{'peak RSS MiB':>14s}")
    for name, m in (("wikiluigi training", ours), ("gpt_2_simple.finetune", theirs)):
        print(f"{name:22s}{m['steps_per_s']:10.3f}{m['steps_per_s'] * tokens:10.0f}{m['cpu_s_per_step']:12.3f}"
              f"{m['peak_rss_mib']:14.1f}")
    ratio = {key: ours[key] / theirs[key] for key in ("steps_per_s", "cpu_s_per_step", "peak_rss_mib")}
    print(f"{'ours / finetune':22s}{ratio['steps_per_s']:9.2f}x{'':10s}{ratio['cpu_s_per_step']:11.2f}x"
          f"{ratio['peak_rss_mib']:13.2f}x")
    print("(steps/s: higher is better; CPU s/step and peak RSS: lower is better)")


if __name__ == "__main__":
    main()
