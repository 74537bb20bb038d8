"""How fast is the convert stage? Run by hand: `python benchmarks/convert_bench.py [--quick]`.

On every non-redirect article of the real English Wikipedia excerpt (../shared/fixtures), side by side in
one run:
  ours    convert_pages in chunks of 200 (ProcessPages' path): 2 pandoc processes per chunk + filters
  bare    one pandoc process, mediawiki -> gfm, over the concatenated wikitext: the limit for pandoc alone
  naive   one pypandoc.convert_text call per page (the design this replaces)
and where our time goes (prepare, reader, filters, JSON, writer).

pandoc's reader rejects some real pages outright (bare would then produce nothing), so bare runs on the
pages that pandoc can read alone, and ours is timed on that same set as well as on all pages. Timings on
a shared machine are noisy: both wall time and CPU time (this process and its children) are printed;
the ratios use CPU time. --quick times naive on 30 pages spread over the set instead of all of them.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wikiluigi import convert  # noqa: E402
from wikiluigi.convert import ConvertOptions, convert_pages  # noqa: E402
from wikiluigi.dump import iter_pages  # noqa: E402
from wikiluigi.manifest import DEFAULT_DROP_SECTIONS  # noqa: E402

ENWIKI = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "wikipedia" / "enwiki-articles-sample.xml.bz2"
CHUNK = 200
OPTIONS = ConvertOptions(drop_sections=DEFAULT_DROP_SECTIONS)


def cpu() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


class Clock:
    def __init__(self):
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), cpu()
        return self

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._wall
        self.cpu += cpu() - self._cpu


def ours(pages: dict[str, str]):
    titles = list(pages)
    failed = 0
    with Clock() as clock:
        for start in range(0, len(titles), CHUNK):
            chunk = {t: pages[t] for t in titles[start:start + CHUNK]}
            failed += sum(not r.ok for r in convert_pages(chunk, OPTIONS).values())
    return clock, failed


def bare(pages: dict[str, str]):
    data = "\n\n".join(pages.values()).encode("utf-8")
    with Clock() as clock:
        done = subprocess.run([convert.pandoc_path(), "--from=mediawiki", "--to=gfm", "--wrap=none"],
                              input=data, capture_output=True)
    if done.returncode:
        raise SystemExit(f"bare pandoc failed: {done.stderr.decode()[:300]}")
    return clock


def naive(pages: dict[str, str]):
    import pypandoc

    failed = []
    with Clock() as clock:
        for title, text in pages.items():
            try:
                pypandoc.convert_text(text, "gfm", format="mediawiki", extra_args=["--wrap=none"])
            except RuntimeError:
                failed.append(title)
    return clock, failed


def readable_alone(pages: dict[str, str]) -> set[str]:
    """Titles pandoc's reader accepts on their own (untimed, in parallel)."""
    def ok(item):
        done = subprocess.run([convert.pandoc_path(), "--from=mediawiki", "--to=json"],
                              input=item[1].encode("utf-8"), capture_output=True)
        return item[0], done.returncode == 0

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        return {title for title, good in pool.map(ok, pages.items()) if good}


def profile(pages: dict[str, str]) -> dict[str, Clock]:
    """Where convert_pages spends its time: each stage wrapped with a clock."""
    clocks = {name: Clock() for name in ("prepare", "pandoc reader", "pandoc writer", "json load", "json dump",
                                         "filters")}
    real = {name: getattr(convert, name) for name in ("_prepare", "_run_pandoc", "_filter_page")}
    real_json = convert.json

    def timed(clock, function):
        def wrapper(*args, **kwargs):
            with clock:
                return function(*args, **kwargs)
        return wrapper

    class JSON:
        loads = staticmethod(timed(clocks["json load"], real_json.loads))
        dumps = staticmethod(timed(clocks["json dump"], real_json.dumps))

    def run_pandoc(args, data, timeout):
        clock = clocks["pandoc reader" if "--from=mediawiki" in args else "pandoc writer"]
        with clock:
            return real["_run_pandoc"](args, data, timeout)

    convert._prepare = timed(clocks["prepare"], real["_prepare"])
    convert._filter_page = timed(clocks["filters"], real["_filter_page"])
    convert._run_pandoc = run_pandoc
    convert.json = JSON
    try:
        ours(pages)
    finally:
        for name, function in real.items():
            setattr(convert, name, function)
        convert.json = real_json
    return clocks


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="time naive on 30 pages, not all")
    args = parser.parse_args()

    every = {p.title: p.text for p in iter_pages(ENWIKI) if p.ns == 0 and not p.is_redirect}
    size = sum(len(t.encode()) for t in every.values())
    print(f"{len(every)} article pages of {ENWIKI.name}, {size / 1e6:.1f} MB of wikitext; pandoc "
          f"{subprocess.run([convert.pandoc_path(), '--version'], capture_output=True, text=True).stdout.split()[1]}, "
          f"{os.cpu_count()} CPUs")

    if args.quick:
        readable = readable_alone(every)
    else:
        naive_clock, naive_failed = naive(every)
        readable = set(every) - set(naive_failed)
        naive_pages = len(every)
    same = {t: every[t] for t in every if t in readable}
    print(f"pandoc alone rejects {len(every) - len(same)} of them: "
          f"{', '.join(sorted(set(every) - readable))}")
    if args.quick:
        step = max(1, len(same) // 30)
        subset = {t: same[t] for t in list(same)[::step][:30]}
        naive_clock, _ = naive(subset)
        naive_pages = len(subset)

    bare_clock = bare(same)
    ours_same, failed_same = ours(same)
    ours_all, failed_all = ours(every)

    def row(name, pages, clock, note=""):
        print(f"  {name:<34} {pages:>4} pages {clock.wall:7.2f} s wall {pages / clock.wall:7.2f} pages/s"
              f"   {clock.cpu:7.2f} s CPU {pages / clock.cpu:7.2f} pages/CPU-s  {note}")

    print("\nthroughput")
    row("ours, chunks of 200", len(same), ours_same, f"({failed_same} failed)")
    row("ours, all pages", len(every), ours_all, f"({failed_all} failed)")
    row("bare pandoc, one process", len(same), bare_clock)
    row("naive, pypandoc per page", naive_pages, naive_clock, "(a subset: --quick)" if args.quick else "")
    ours_rate = len(same) / ours_same.cpu
    print(f"\n  ours / bare  = {ours_rate / (len(same) / bare_clock.cpu):5.2f}  (CPU; wall "
          f"{(len(same) / ours_same.wall) / (len(same) / bare_clock.wall):.2f})   target >= 0.8")
    print(f"  ours / naive = {ours_rate / (naive_pages / naive_clock.cpu):5.2f}  (CPU; wall "
          f"{(len(same) / ours_same.wall) / (naive_pages / naive_clock.wall):.2f})   target >= 5")

    print("\nwhere ours spends its time (all pages)")
    clocks = profile(every)
    total = sum(c.cpu for c in clocks.values())
    for name, clock in clocks.items():
        print(f"  {name:<14} {clock.wall:6.2f} s wall {clock.cpu:6.2f} s CPU  {clock.cpu / total:5.1%}")
    prepared = "\n\n".join(convert._prepare(t, {}, False) for t in every.values()).encode("utf-8")
    with Clock() as direct:
        subprocess.run([convert.pandoc_path(), *convert.PANDOC_RTS, "--from=mediawiki", "--to=gfm",
                        "--wrap=none"], input=prepared, capture_output=True)
    print(f"  for comparison, pandoc mediawiki -> gfm on the prepared text in one go (no JSON, no filters): "
          f"{direct.cpu:.2f} s CPU; prepared text {len(prepared) / 1e6:.1f} MB of {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
