"""Does the convert step stay linear on hostile pages? Run by hand: `python benchmarks/cleanup_bench.py`.

Each hostile construct of tests/support/hostile.py (citation stacks, rows of templates, lists, tables and
templates nested hundreds deep, unclosed refs, braces, file links and pre by the thousand, quote storms,
cut-out templates joined by "and", external links and inline tags never closed, spans that cross, ...)
at 10 KB, 100 KB and 1 MB, through
  clean-up   wikitext.prepare, the Python pass before pandoc (the template rules of a manifest included)
  convert    the whole per-page convert step: clean-up, pandoc (reader and writer), filters (--convert)
printed side by side (CPU time, pandoc's included) with the growth ratio from each size to the next: linear time grows ~10x per step,
quadratic ~100x. A call is cut off after --limit seconds (shown as `>limit`), so an old quadratic or
exponential pattern shows up without hanging the benchmark.
"""
import argparse
import resource
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.hostile import CONSTRUCTS, RULES  # noqa: E402
from wikiluigi.convert import wikitext  # noqa: E402

SIZES = (10_000, 100_000, 1_000_000)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (pandoc): a loaded machine's waits left out."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


class CutOff(Exception):
    pass


def _alarm(signum, frame):
    raise CutOff()


def timed(function, limit: float) -> float | str | None:
    """Seconds one call took (the best of a few for short ones), None when cut off at `limit`, the
    exception's name when it raised one."""
    signal.signal(signal.SIGALRM, _alarm)
    best = None
    spent = 0.0
    while spent < 0.3:
        signal.setitimer(signal.ITIMER_REAL, limit)
        started = cpu_seconds()
        try:
            function()
        except CutOff:
            return None
        except Exception as error:  # noqa: BLE001 - the benchmark shows what the old code raised
            return type(error).__name__
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        took = cpu_seconds() - started
        best = took if best is None else min(best, took)
        spent += took
    return best


def cell(seconds, limit: float) -> str:
    if isinstance(seconds, str):
        return seconds[:9].rjust(9)
    return f">{limit:g} s".rjust(9) if seconds is None else f"{seconds * 1000:8.1f}ms" if seconds < 1 else f"{seconds:8.2f}s "


def ratio(small: float | None, large: float | None) -> str:
    if not isinstance(small, float) or not isinstance(large, float) or small <= 0:
        return "     -"
    return f"{large / small:6.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=float, default=30.0, help="seconds before a call is cut off")
    parser.add_argument("--convert", action="store_true", help="also time the whole convert step of a page")
    parser.add_argument("--only", nargs="*", help="constructs to run (default: all)")
    parser.add_argument("--engine", choices=("auto", "pandoc"), help="the convert engine (default: luigi.cfg's)")
    parser.add_argument("--sizes", nargs="*", type=int, default=SIZES, help="page sizes in bytes")
    args = parser.parse_args()
    rules = wikitext.normalised_rules(RULES)
    drop = frozenset({"references", "external links"})
    stages = {"clean-up": lambda text: wikitext.prepare(text, rules, False, drop)}
    if args.convert:
        from wikiluigi.convert.pandoc import Budget, ConvertOptions, convert_pages
        options = ConvertOptions(drop_sections=("References", "External links"), template_rules=RULES)
        budget = Budget(page_seconds=args.limit)
        stages["convert"] = lambda text: convert_pages({"Hostile": text}, options, budget=budget, engine=args.engine)
    for stage, function in stages.items():
        print(f"\n{stage}: time per page at each size, and growth from one size to the next (linear ~10)")
        print(f"  {'construct':<24}" + "".join(f"{s // 1000:>8} KB" for s in args.sizes) + "   growth from each size to the next")
        for name, make in CONSTRUCTS.items():
            if args.only and name not in args.only:
                continue
            times = []
            for size in args.sizes:
                text = make(size)
                times.append(timed(lambda: function(text), args.limit) if not times or isinstance(times[-1], float) else None)
            print(f"  {name:<24}" + "".join(f" {cell(t, args.limit)}" for t in times)
                  + "   " + " ".join(f"{ratio(a, b):>8}" for a, b in zip(times, times[1:])), flush=True)


if __name__ == "__main__":
    main()
