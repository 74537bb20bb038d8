"""The training end at scale (not a test):

    python benchmarks/corpus_bench.py [--sizes 10k,100k] [--work /tmp/corpus-bench] [--vocab-size 8192]

For each size, synthetic converted pages (the scale benchmark's synthetic articles, tests/support/
synthetic_wiki.py, eight paragraphs with the links and bold turned into Markdown: about 3 KB a page, as
English Wikipedia's 20 GB of Markdown over 6.8 million articles) in processed/, a derived manifest and a
revisions log, kept in --work between runs. Each stage runs in a process of its own; printed: wall
seconds, cost per page, the ratio to the floor, the peak RSS of the whole process tree (polled every 50 ms):
  floor        one plain read of every processed file
  trainingset  build_trainingset: the two passes, train/validation text and JSON Lines, stats.json
  uptodate     is_built: the fingerprint check TrainingSet, Tokens and Train make before any work
  vocabulary   the BPE vocabulary learnt from train.txt (--vocab-size)
  tokenizer/1  the tokenizer alone on one core: encode the first --rate-mb MB of train.txt, write nothing
  tokens       write_tokens on every core (train.bin, validation.bin, tokens.json)
  first step   training.train (torch, a 2-layer model) from its call to the end of its first step
Then the flatness from the smallest size to the largest (of this run and of the whole runs of other sizes
kept in --work as results-<pages>.json), the tokenizer's scaling (tokens with N workers
against N times the one-core rate) and the projection for English Wikipedia on one 16-core machine.
Targets (issue 18): peak RSS under 1 GiB and at most 1.25x (+256 MiB) of the smallest size's; cost per
page flat within 1.5x; N workers at least 0.8 x N x the one-core rate; first step under 10 s; training set
plus tokens for English Wikipedia under one hour on 16 cores.
"""
import argparse
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))

from measure import run_measured, size  # noqa: E402

ENWIKI_ARTICLES = 6_800_000
ENWIKI_MARKDOWN_BYTES = 20e9
MANIFEST, HOST = "synth", "synth.example"

STAGES = {
    "floor": """
import os
T0 = time.perf_counter()
folder = paths.processed_dir(HOST)
total = 0
with os.scandir(folder) as entries:
    for entry in entries:
        if entry.name.endswith('.md'):
            with open(entry.path, 'rb') as f:
                total += len(f.read())
result = {'bytes': total, 'work_s': time.perf_counter() - T0}
""",
    "trainingset": """
from wikiluigi.corpus import trainingset
T0 = time.perf_counter()
stats = trainingset.build_trainingset([MANIFEST])
result = {'work_s': time.perf_counter() - T0, 'pages': stats['pages'], 'bytes': stats['train']['bytes'] + stats['validation']['bytes']}
""",
    "uptodate": """
from wikiluigi.corpus import trainingset
T0 = time.perf_counter()
result = {'built': trainingset.is_built([MANIFEST])}
result['work_s'] = time.perf_counter() - T0
""",
    "vocabulary": """
from wikiluigi.corpus import trainingset, vocabulary
corpus = trainingset.folder([MANIFEST])
T0 = time.perf_counter()
result = {'n_vocab': vocabulary.build_vocabulary(corpus / trainingset.TRAIN_TEXT, MODEL, VOCAB_SIZE)}
result['work_s'] = time.perf_counter() - T0
""",
    "tokenizer/1": """
from wikiluigi.corpus import tokens, trainingset
corpus = trainingset.folder([MANIFEST])
tokens._start_worker(str(MODEL), 'uint16')
T0 = time.perf_counter()
C0 = time.process_time()
done = ids = 0
for block in tokens.page_blocks(corpus / trainingset.TRAIN_TEXT):
    ids += len(tokens._encode(block)) // 2
    done += len(block)
    if done >= RATE_BYTES:
        break
result = {'bytes': done, 'tokens': ids, 'work_s': time.perf_counter() - T0, 'work_cpu_s': time.process_time() - C0}
""",
    "tokens": """
from wikiluigi.corpus import tokens, trainingset
T0 = time.perf_counter()
info = tokens.write_tokens(trainingset.folder([MANIFEST]), MODEL)
result = {'work_s': time.perf_counter() - T0, 'tokens': info['train']['tokens'] + info['validation']['tokens'], 'workers': info['workers'],
          'bytes': sum((trainingset.folder([MANIFEST]) / name).stat().st_size for name in ('train.txt', 'validation.txt'))}
""",
    "first step": """
import shutil, time
from wikiluigi.corpus import tokens, trainingset
from wikiluigi.training import loop as training
run = MODEL.parent.parent / 'checkpoint' / 'bench'
shutil.rmtree(run, ignore_errors=True)
T0 = time.perf_counter()
train, held, _ = tokens.open_tokens(trainingset.folder([MANIFEST]), MODEL)
training.draw_batches(train, training.Settings(steps=1, batch_size=4, window=128).resolved(128), 1)
windows = training.validation_windows(held, 128, 32)
data_s = time.perf_counter() - T0
first = []
training.train(run, MODEL, trainingset.folder([MANIFEST]),
               training.Settings(steps=1, batch_size=4, window=128, validate_every=0, device='cpu', compile='false'),
               backend='torch', progress=lambda *args: first.append(time.perf_counter() - START))
result = {'first_step_s': first[0], 'data_s': data_s, 'work_s': time.perf_counter() - T0}
""",
}
PRELUDE = """
import json, sys, time
START = time.perf_counter()
from pathlib import Path
from wikiluigi import paths
MANIFEST, HOST = {manifest!r}, {host!r}
MODEL = paths.model_dir('bench')
VOCAB_SIZE, RATE_BYTES = {vocab_size}, {rate_bytes}
"""


def markdown_page(rng: random.Random, title: str, recent: list[str]) -> str:
    from tests.support import synthetic_wiki
    text = synthetic_wiki.article_text(rng, title, recent, [], paragraphs=8)
    text = re.sub(r"\{\{[^}]*\}\}\n*|<ref>.*?</ref>|<references />|\[\[Category:[^\]]*\]\]", "", text)
    text = re.sub(r"\[\[([^\]|]+)\]\]", lambda m: f"[{m.group(1)}]({m.group(1).replace(' ', '_')})", text)
    text = re.sub(r"'''(.+?)'''", r"**\1**", text)
    return re.sub(r"^== (.*) ==$", r"## \1", text, flags=re.M).strip() + "\n"


def make_pages(data_dir: Path, pages: int) -> None:
    """processed/mediawiki/synth.example/*.md, the derived manifest and a revisions log; once per size."""
    from wikiluigi import pagefiles, paths
    from wikiluigi.sources import derived
    done = data_dir / ".made"
    if done.exists():
        return
    os.chdir(data_dir)
    pagefiles.DURABLE = False         # set-up only: the stages measured write durably
    rng = random.Random(1)
    folder = paths.processed_dir(HOST)
    folder.mkdir(parents=True, exist_ok=True)
    titles, recent = [], []
    raw = paths.raw_dir(HOST)
    raw.mkdir(parents=True, exist_ok=True)
    with open(raw / "revisions-bench.jsonl", "w", encoding="utf-8") as log:
        for n in range(pages):
            title = f"Page {n:07d} " + rng.choice(["Alpha", "Beta", "Gamma", "Delta"])
            (folder / f"{paths.title_to_stem(title)}.md").write_text(markdown_page(rng, title, recent), encoding="utf-8")
            log.write(json.dumps({"title": title, "revision_id": 1_000_000 + n}) + "\n")
            titles.append(title)
            recent = (recent + [title])[-50:]
    meta = derived.Derived(name=MANIFEST, host=HOST, source={"api": f"https://{HOST}/w/api.php"},
                           titles=tuple(sorted(titles)), chunk_size=derived.chunk_size_for(pages, 200), counts={})
    derived.write(paths.derived_manifest(MANIFEST), meta, [], [])
    done.touch()


def make_model(data_dir: Path) -> None:
    """out/model/bench: the vocabulary the 'vocabulary' stage learnt, hparams and random torch weights."""
    code = PRELUDE.format(manifest=MANIFEST, host=HOST, vocab_size=0, rate_bytes=0) + """
import json
from wikiluigi.training.backends import torch_backend
n_vocab = len(json.loads((MODEL / 'encoder.json').read_text()))
hparams = {'n_vocab': n_vocab, 'n_ctx': 128, 'n_embd': 64, 'n_head': 2, 'n_layer': 2}
(MODEL / 'hparams.json').write_text(json.dumps(hparams))
torch_backend.save(torch_backend.make_trainer(hparams, device='cpu', compile=False), MODEL, optimizer=False)
"""
    subprocess.run([sys.executable, "-c", code], cwd=data_dir, check=True,
                   env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})


def run_stage(data_dir: Path, name: str, args) -> dict:
    code = PRELUDE.format(manifest=MANIFEST, host=HOST, vocab_size=args.vocab_size,
                          rate_bytes=int(args.rate_mb * 1e6)) + STAGES[name] + "\nprint(json.dumps(result))\n"
    figures, output = run_measured([sys.executable, "-c", code], name, cwd=data_dir,
                                   env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    return {"seconds": figures["seconds"], "cpu_s": figures["cpu_s"], "rss": figures["rss"],
            **json.loads(output.strip().splitlines()[-1])}


def bench_size(work: Path, pages: int, args) -> dict:
    data_dir = work / f"pages-{pages}"
    data_dir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    make_pages(data_dir, pages)
    print(f"\n{pages:,} pages (set-up {time.perf_counter() - began:.0f} s)", flush=True)
    results = {}
    for name in [stage for stage in STAGES if stage in args.stages]:
        if name == "first step":
            make_model(data_dir)
        results[name] = result = run_stage(data_dir, name, args)
        work = result["work_s"]
        extra = ""
        if name == "tokenizer/1":
            extra = f"  {result['bytes'] / result['work_cpu_s'] / 1e6:.2f} MB/s of text a CPU second"
        if name == "tokens":
            extra = f"  {result['tokens']:,} tokens, {result['workers']} workers, {result['bytes'] / work / 1e6:.2f} MB/s"
        if name == "first step":
            extra = (f"  first step {result['first_step_s']:.1f} s after the process started; tokens opened and "
                     f"first batch drawn in {result['data_s'] * 1e3:.0f} ms")
        print(f"  {name:12s} {result['seconds']:7.1f} s ({work:7.1f} s of work, {result['cpu_s']:7.1f} CPU s)  "
              f"{work / pages * 1e3:7.3f} ms/page  {work / results['floor']['work_s']:6.1f}x floor  "
              f"peak RSS {result['rss'] / 2**20:7.1f} MiB{extra}", flush=True)
    measured = {"pages": pages, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "load_average": os.getloadavg()[0], **results}
    if not set(STAGES) - set(results):          # a whole run: what later runs' summaries compare with
        (data_dir.parent / f"results-{pages}.json").write_text(json.dumps(measured, indent=1))
    return measured


def saved_results(work: Path, results: list[dict]) -> list[dict]:
    """This run's sizes and the whole runs of other sizes saved in --work, smallest first."""
    by_size = {}
    for path in work.glob("results-*.json"):
        with contextlib.suppress(ValueError, OSError):
            entry = json.loads(path.read_text())
            by_size[entry["pages"]] = entry
    by_size.update({entry["pages"]: entry for entry in results})
    return [by_size[pages] for pages in sorted(by_size)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k,100k")
    parser.add_argument("--work", type=Path, default=Path("/tmp/corpus-bench"))
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--rate-mb", type=float, default=20.0, help="text the one-core tokenizer rate is taken on")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="some of them only (floor first), e.g. floor,trainingset,uptodate: no summary then")
    args = parser.parse_args()
    args.stages = args.stages.split(",")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    results = [bench_size(args.work, size(s), args) for s in args.sizes.split(",")]
    if set(STAGES) - set(args.stages):
        return
    results = saved_results(args.work, results)
    small, large = results[0], results[-1]
    print(f"\nfrom {small['pages']:,} to {large['pages']:,} pages (measured {small['date']} and {large['date']}; "
          f"the other sizes' whole runs are kept in {args.work}/results-<pages>.json):")
    for name in STAGES:
        if name in ("first step", "tokenizer/1"):
            continue
        ratio = (large[name]["work_s"] / large["pages"]) / (small[name]["work_s"] / small["pages"])
        cpu_ratio = (large[name]["cpu_s"] / large["pages"]) / (small[name]["cpu_s"] / small["pages"])
        print(f"  {name:12s} cost per page x{ratio:.2f} in wall seconds of work, x{cpu_ratio:.2f} in CPU seconds "
              f"(process start included); peak RSS {small[name]['rss'] / 2**20:.0f} -> {large[name]['rss'] / 2**20:.0f} MiB")
        print(f"  {'':12s} ms of work a page: " + ", ".join(
            f"{entry['pages']:,}: {entry[name]['work_s'] / entry['pages'] * 1e3:.3f}" for entry in results))
    alone = large["tokenizer/1"]
    one_core_wall, one_core_cpu = alone["bytes"] / alone["work_s"], alone["bytes"] / alone["work_cpu_s"]
    workers, text = large["tokens"]["workers"], large["tokens"]["bytes"]
    many = text / large["tokens"]["work_s"]
    efficiency = (text / one_core_cpu) / large["tokens"]["cpu_s"]    # CPU the tokenizer alone needs / CPU spent
    print(f"tokens with {workers} workers: {many / 1e6:.2f} MB/s = {many / one_core_wall / workers:.2f} x {workers} x "
          f"the one-core rate ({one_core_wall / 1e6:.2f} MB/s wall, {one_core_cpu / 1e6:.2f} MB/s a CPU second); "
          f"{efficiency:.2f} of the CPU time spent is the tokenizer's own")
    trainingset_h = large["trainingset"]["cpu_s"] / large["trainingset"]["bytes"] * ENWIKI_MARKDOWN_BYTES / 3600
    tokens_h = ENWIKI_MARKDOWN_BYTES / (one_core_cpu * min(efficiency, 1.0) * 16) / 3600
    from wikiluigi.corpus.vocabulary import VOCABULARY_SAMPLE_BYTES
    vocabulary_h = (large["vocabulary"]["cpu_s"] / min(large["trainingset"]["bytes"], VOCABULARY_SAMPLE_BYTES)
                    * VOCABULARY_SAMPLE_BYTES / 3600)
    trainingset_wall_h = large["trainingset"]["work_s"] / large["trainingset"]["bytes"] * ENWIKI_MARKDOWN_BYTES / 3600
    print(f"English Wikipedia ({ENWIKI_MARKDOWN_BYTES / 1e9:.0f} GB of Markdown, {ENWIKI_ARTICLES / 1e6:.1f}M pages) on "
          f"one 16-core machine, from CPU seconds by bytes: training set {trainingset_h:.2f} h (one process; "
          f"{trainingset_wall_h:.2f} h at this run's wall rate, disk included), tokens "
          f"{tokens_h:.2f} h (16 workers at the efficiency measured), together {trainingset_h + tokens_h:.2f} h; the "
          f"vocabulary {vocabulary_h:.2f} CPU hours (learnt from a {VOCABULARY_SAMPLE_BYTES / 2**20:.0f} MiB sample; "
          f"the BPE trainer's own threads)")


if __name__ == "__main__":
    main()
