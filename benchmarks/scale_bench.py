"""Whole-wiki scale, side by side in one run (not a test):

    python benchmarks/scale_bench.py [--sizes 10k,100k,1m] [--workers 2] [--convert-max 200k] [--api-pages 5000]

For each size, a synthetic wiki written as a Wikimedia multistream dump with its index (prose pages,
titles ordered unlike page ids, a category tree, a redirect every 20th page; tests/support/synthetic_wiki.py),
kept in --work between runs. Each size prints, per stage: wall seconds, cost per page, the ratio to the
floor, the peak RSS and PSS (shared pages counted once) of the whole process tree (luigi and every
worker it forks, polled every 50 ms) and the number of Luigi tasks scheduled:
  floor          one plain pass over the dump: decompress and parse every page, write nothing
  DeriveManifest the category walk over the dump (one pass) and the stream of each title from the index
  Scrape         every page into raw/, each chunk reading only its own streams
  Convert        every page through pandoc and the filters (up to --convert-max pages)
  Wikipedia      the whole run, from an empty data directory (up to --convert-max pages)
  no-op rerun    Wikipedia (or Scrape, past --convert-max) again with everything done
  plain: ...     the same wiki as one plain .xml (up to --plain-max): its floor, DeriveManifest and
                 Scrape (SplitDump reads it once for all chunks)
Then the same stages over the real local MediaWiki's API for --api-pages pages (0: skip), and the
projection for the whole English Wikipedia. Targets: cost per page flat within 1.5x from the smallest
size to the largest; Scrape within 3x of the floor; no-op rerun under 2 s at 200k and 5 s at 1M; peak
RSS under 1 GiB; at most 2,000 tasks.
"""
import argparse
import os
import re
import shutil
import sys
import time
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from tests.support import synthetic_wiki  # noqa: E402
from measure import run_measured, size  # noqa: E402  (benchmarks/measure.py)

# English Wikipedia, pages-articles-multistream (the figures): 6.8 million articles, 22 GB of bz2.
ENWIKI_ARTICLES = 6_800_000
ENWIKI_BZ2_BYTES = 22e9
CONFIG = """[core]
log_level = INFO
[http]
user_agent = wikiluigi-scale-bench (bench@example.invalid)
"""


def run_luigi(data_dir: Path, task: str, workers: int) -> dict:
    command = [sys.executable, "-m", "luigi", "--module", "wikiluigi", task, "--manifest", "synth",
               "--local-scheduler", "--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("LUIGI_CONFIG_PATH", None)
    figures, output = run_measured(command, task, merge_errors=True, cwd=data_dir, env=env)
    tasks = re.search(r"Scheduled (\d+) tasks", output)
    return {"seconds": figures["seconds"], "rss": figures["rss"], "pss": figures["pss"],
            "tasks": int(tasks.group(1)) if tasks else 0}


def floor_pass(path: Path) -> dict:
    """One plain pass, in a process of its own so that its RSS is its own."""
    code = ("import sys, time; from wikiluigi.sources import dump; t = time.perf_counter(); "
            "n = sum(1 for _ in dump.iter_pages(sys.argv[1])); print(n, time.perf_counter() - t)")
    figures, output = run_measured([sys.executable, "-c", code, str(path)], "the floor pass",
                                   env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    pages, seconds = output.split()
    return {"seconds": float(seconds), "rss": figures["rss"], "pss": figures["pss"], "tasks": 0,
            "pages_in_dump": int(pages)}


def data_dir_for(root: Path, name: str, manifest: dict) -> Path:
    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "manifests" / "originals").mkdir(parents=True)
    (folder / "manifests" / "originals" / "synth.yaml").write_text(yaml.safe_dump(manifest))
    (folder / "luigi.cfg").write_text(CONFIG)
    return folder


def wiki_of(work: Path, pages: int) -> synthetic_wiki.SyntheticWiki:
    """The synthetic multistream wiki of that size, written once and kept in `work`."""
    folder = work / f"dump-{pages}"
    done = folder / "done.yaml"
    if done.exists():
        info = yaml.safe_load(done.read_text())
        return synthetic_wiki.SyntheticWiki(dump=folder / info["dump"], index=folder / info["index"],
                                            articles=[], pages=info["pages"])
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    wiki = synthetic_wiki.write_multistream(folder, pages)
    done.write_text(yaml.safe_dump({"dump": wiki.dump.name, "index": wiki.index.name, "pages": wiki.pages}))
    print(f"  wrote {wiki.dump.name} ({pages:,} articles, {wiki.dump.stat().st_size / 1e6:.0f} MB) "
          f"in {time.perf_counter() - start:.0f} s", flush=True)
    return wiki


def bench_size(work: Path, pages: int, workers: int, convert_max: int, plain_max: int) -> dict:
    wiki = wiki_of(work, pages)
    manifest = {"dump": str(wiki.dump), "host": "synth", "include_categories": [synthetic_wiki.ROOT_CATEGORY]}
    rows = {"floor": floor_pass(wiki.dump)}
    folder = data_dir_for(work, f"run-{pages}", manifest)
    rows["DeriveManifest"] = run_luigi(folder, "DeriveManifest", workers)
    rows["Scrape"] = run_luigi(folder, "Scrape", workers)
    converted = pages <= convert_max
    if converted:
        rows["Convert"] = run_luigi(folder, "Convert", workers)
        whole = data_dir_for(work, f"whole-{pages}", manifest)
        rows["Wikipedia"] = run_luigi(whole, "Wikipedia", workers)
        shutil.rmtree(whole)
    rows["no-op rerun"] = run_luigi(folder, "Wikipedia" if converted else "Scrape", workers)
    shutil.rmtree(folder)
    if pages <= plain_max:  # the same wiki as one plain .xml: read once by derive, once by SplitDump
        plain = work / f"dump-{pages}" / "plain.xml"
        if not plain.exists():
            synthetic_wiki.write_plain(plain, pages)
        rows["plain: floor"] = floor_pass(plain)
        plain_manifest = {**manifest, "dump": str(plain)}
        folder = data_dir_for(work, f"plain-{pages}", plain_manifest)
        for stage in ("DeriveManifest", "Scrape"):
            rows[f"plain: {stage}"] = {**run_luigi(folder, stage, workers),
                                       "floor": rows["plain: floor"]["seconds"]}
        shutil.rmtree(folder)
    return {"rows": rows, "dump_bytes": wiki.dump.stat().st_size, "pages": pages}


def bench_api(work: Path, pages: int, workers: int) -> dict:
    from tests.support.mediawiki import LocalMediaWiki
    plain = synthetic_wiki.write_plain(work / f"api-{pages}.xml", pages)
    start = time.perf_counter()
    with LocalMediaWiki(plain.dump, workers=max(2, workers)) as wiki:
        built = time.perf_counter() - start
        manifest = {"api": wiki.api_url, "include_categories": [synthetic_wiki.ROOT_CATEGORY]}
        folder = data_dir_for(work, f"api-run-{pages}", manifest)
        (folder / "luigi.cfg").write_text(CONFIG + f"[resources]\nwiki_api_127_0_0_1_{wiki.port} = {workers}\n")
        rows = {"DeriveManifest": run_luigi(folder, "DeriveManifest", workers),
                "Scrape": run_luigi(folder, "Scrape", workers),
                "no-op rerun": run_luigi(folder, "Scrape", workers)}
    shutil.rmtree(folder)
    plain.dump.unlink()
    return {"rows": rows, "pages": pages, "built": built}


def print_table(results: list[dict], title: str) -> None:
    print(f"\n{title}")
    header = f"{'stage':<22}" + "".join(f"| {r['pages']:>9,} pages: s, ms/page, x floor, RSS, PSS MiB, tasks "
                                        for r in results)
    print(header)
    stages = dict.fromkeys(stage for r in results for stage in r["rows"])
    for stage in stages:
        line = f"{stage:<22}"
        for r in results:
            row = r["rows"].get(stage)
            if row is None:
                line += f"| {'-':>61} "
                continue
            floor = row.get("floor") or r["rows"].get("floor", {}).get("seconds")
            ratio = f"{row['seconds'] / floor:6.2f}x" if floor else "      -"
            line += (f"| {row['seconds']:9.2f} s {1000 * row['seconds'] / r['pages']:8.3f} {ratio} "
                     f"{row['rss'] / 2**20:7.0f} {row['pss'] / 2**20:5.0f} {row['tasks']:6d}      ")
        print(line)


def print_flatness(results: list[dict]) -> None:
    if len(results) < 2:
        return
    small, large = results[0], results[-1]
    print(f"\ncost per page at {large['pages']:,} / at {small['pages']:,} (target <= 1.5):")
    for stage, row in large["rows"].items():
        if stage in small["rows"]:
            ratio = (row["seconds"] / large["pages"]) / (small["rows"][stage]["seconds"] / small["pages"])
            print(f"  {stage:<15} {ratio:5.2f}")


def print_projection(results: list[dict], workers: int) -> None:
    """Whole English Wikipedia from the largest size's costs (convert's from the largest converted size),
    scaled by compressed bytes; the chunked stages spread over every core of every machine, derive's
    pass over the cores of one machine."""
    result = results[-1]
    rows, pages = result["rows"], result["pages"]
    converted = [r for r in results if "Convert" in r["rows"]]
    by_bytes = ENWIKI_BZ2_BYTES / result["dump_bytes"]
    derive_core = rows["DeriveManifest"]["seconds"] * workers * by_bytes   # one process per core of one machine
    scrape_core = rows["Scrape"]["seconds"] * workers * by_bytes   # core-seconds, spreads over cores
    print(f"\nprojection for English Wikipedia ({ENWIKI_ARTICLES:,} articles, {ENWIKI_BZ2_BYTES / 1e9:.0f} GB bz2), "
          f"from {pages:,} pages ({result['dump_bytes'] / 1e6:.0f} MB bz2) x {by_bytes:,.0f} by bytes:")
    convert_core = None
    if converted:
        # pandoc's cost grows with the text: by bytes too (Wikipedia's articles are longer than these pages)
        convert_core = converted[-1]["rows"]["Convert"]["seconds"] * workers * ENWIKI_BZ2_BYTES / converted[-1]["dump_bytes"]
    derive = derive_core / 16
    for machines in (1, 10):
        cores = 16 * machines
        total = derive + scrape_core / cores + (convert_core or 0) / cores
        print(f"  {machines:>2} x 16 cores: derive {derive / 3600:5.2f} h (one machine) + scrape "
              f"{scrape_core / cores / 3600:5.2f} h" + (f" + convert {convert_core / cores / 3600:5.2f} h"
                                                         if convert_core else " (convert not measured)")
              + f" = {total / 3600:5.2f} h")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10k", help="comma-separated article counts: 10k,100k,1m")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="luigi --workers (default: cores)")
    parser.add_argument("--convert-max", default="200k", help="largest size that is also converted")
    parser.add_argument("--plain-max", default="100k", help="largest size also read from a plain .xml dump")
    parser.add_argument("--api-pages", default="0", help="pages for the API path on the local MediaWiki (0: skip)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/wikiluigi-scale-bench"),
                        help="folder for the dumps (kept between runs) and the data directories")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for pages in sorted(size(s) for s in args.sizes.split(",")):
        print(f"{pages:,} articles, --workers {args.workers} ...", flush=True)
        results.append(bench_size(args.work, pages, args.workers, size(args.convert_max), size(args.plain_max)))
        print_table(results[-1:], f"{pages:,} articles")  # as it comes: the largest size takes long
    print_table(results, f"multistream dump, --workers {args.workers} on {os.cpu_count()} cores")
    print_flatness(results)
    if size(args.api_pages):
        api = bench_api(args.work, size(args.api_pages), args.workers)
        print_table([api], f"API of the local MediaWiki (built from the dump in {api['built']:.0f} s)")
    print_projection(results, args.workers)


if __name__ == "__main__":
    main()
