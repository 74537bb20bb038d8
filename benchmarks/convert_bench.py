"""How fast is the convert stage? Run by hand: `python benchmarks/convert_bench.py [--quick] [--peers-only] [--rounds N]`.

On every non-redirect article of the real English Wikipedia excerpt (tests/fixtures; 54 KB a page),
then of the Star Trek wiki (small pages, 1.5 KB), side by side in one run:
  ours            convert_within_budget in ProcessPages' batches (stage.convert_batches: 100 pages with
                  pandoc; with the fast path, until 100 pages and 2M characters, or 1,000 pages): a child
                  process per batch under the page budget, 2 pandoc processes per batch + filters
  bare, one run   one pandoc process, mediawiki -> gfm, over the concatenated wikitext: pandoc alone
  bare, per page  one pandoc process per page, mediawiki -> gfm: pandoc alone, without the cross-page cost
  naive           one pypandoc.convert_text call per page (the design this replaces)
and where our time goes (prepare, reader, filters, JSON, writer). Beside them, the engines and the peer:
  fast (auto)           convert_within_budget with `engine = auto` (the fast reader and Markdown writer,
                        pandoc for the pages it leaves): pages per CPU-second, pages sent to pandoc
  pandoc                the same with `engine = pandoc` (today's path for every page)
  WikiExtractor 3.1.0   its Extractor on the same wikitext, one page after another in this process (its
                        text output, not Markdown): the peer that corpus builders pick
and an end-to-end row: `Wikipedia` (all_pages, one worker, from an empty data directory) on the enwiki
dump against `python -m wikiextractor.WikiExtractor DUMP --processes 1` on the same file: articles per
CPU-second of the whole process tree; then the same on a dump of the enwiki articles --copies times over
(8: 848 articles, the size of the issue's 760-article dump), where the start of each program (Python,
Luigi, the imports) weighs as it does on a real dump. --peers-only skips the bare and naive pandoc runs.

pandoc's reader rejects some real pages outright, so the bare and naive runs (and ours, for the ratios)
use the pages pandoc can read alone; ours is also timed on all pages. The bare one-process run is cut off
after --bare-limit seconds: on raw Wikipedia text it is superlinear (pandoc's reader is roughly quadratic
in the number of <ref>s in a document) and does not finish on this set in minutes.
Timings on a shared machine are noisy: wall and CPU time (this process and its children) are both
printed; the ratios use CPU time. --quick times naive on 30 pages and cuts the bare run at 30 s.
"""
import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wikiluigi.convert import pandoc as convert  # noqa: E402
from wikiluigi.convert.budget import convert_within_budget  # noqa: E402
from wikiluigi.convert.pandoc import Budget, ConvertOptions, convert_pages  # noqa: E402
from wikiluigi.convert.stage import convert_batches  # noqa: E402
from wikiluigi.sources.dump import iter_pages  # noqa: E402
from wikiluigi.sources.manifest import DEFAULT_DROP_SECTIONS  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
ENWIKI = FIXTURES / "wikipedia" / "enwiki-articles-sample.xml.bz2"
STARTREK = FIXTURES / "startrek-dump.xml"
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


def ours(pages: dict[str, str], engine: str = "pandoc"):
    failed = 0
    engines: dict[str, int] = {}
    with Clock() as clock:
        for batch in convert_batches(pages, engine):  # (ProcessPages' batches: a child process each)
            for result in convert_within_budget(batch, OPTIONS, Budget(), engine=engine).values():
                failed += not result.ok
                if result.ok:
                    engines[result.engine] = engines.get(result.engine, 0) + 1
    ours.engines = engines
    return clock, failed


def wikiextractor(pages: dict[str, str]):
    """WikiExtractor's Extractor on each page's wikitext, in this process."""
    import io

    from wikiextractor.extract import Extractor

    with Clock() as clock:
        for number, (title, text) in enumerate(pages.items()):
            Extractor(number, number, "", title, text.split("\n")).extract(io.StringIO())
    return clock


def best(runs):
    """The run of least CPU time among (clock, ...) tuples or clocks."""
    return min(runs, key=lambda run: (run[0] if isinstance(run, tuple) else run).cpu)


def peers(label: str, pages: dict[str, str], rounds: int = 3) -> None:
    """The fast engine, the pandoc engine and WikiExtractor on the same pages, in one run: after one
    untimed warm-up of each (imports, the first child process), the best of `rounds` alternated runs
    for the fast engine and WikiExtractor, one run of the pandoc engine (the slow reference)."""
    size = sum(len(t.encode()) for t in pages.values())
    print(f"\n== {label}: {len(pages)} article pages, {size / 1e6:.2f} MB ({size / len(pages) / 1e3:.1f} KB a page)"
          f", best of {rounds} runs")
    warm_up = dict(list(pages.items())[:2])
    ours(warm_up, "auto"), ours(warm_up, "pandoc"), wikiextractor(warm_up)
    fast_runs, peer_runs = [], []
    for _ in range(rounds):
        fast_runs.append(ours(pages, "auto"))
        engines = dict(ours.engines)
        peer_runs.append(wikiextractor(pages))
    (fast, fast_failed), peer = best(fast_runs), best(peer_runs)
    slow, slow_failed = ours(pages, "pandoc")
    rates = {}
    for name, clock, note in (("fast (engine = auto)", fast, f"{fast_failed} failed; {engines.get('pandoc', 0)} "
                               f"of {sum(engines.values())} pages sent to pandoc"),
                              ("pandoc (engine = pandoc)", slow, f"{slow_failed} failed"),
                              ("WikiExtractor 3.1.0", peer, "text, not Markdown")):
        rates[name] = len(pages) / clock.cpu
        print(f"  {name:<27} {clock.wall:7.2f} s wall {clock.cpu:7.2f} s CPU {rates[name]:7.1f} pages/CPU-s  ({note})")
    if pages_are_articles(pages):
        hours = ENWIKI_ARTICLES / (rates["fast (engine = auto)"] * CORES) / 3600
        print(f"  projection: English Wikipedia's {ENWIKI_ARTICLES / 1e6:.1f}M articles at this rate on {CORES} cores: "
              f"{hours:.1f} h of convert (target < 1 h; pandoc engine: "
              f"{ENWIKI_ARTICLES / (rates['pandoc (engine = pandoc)'] * CORES) / 3600:.1f} h)")
    print(f"  fast / WikiExtractor = {rates['fast (engine = auto)'] / rates['WikiExtractor 3.1.0']:.2f}  "
          f"(target >= 1.2 on enwiki)   fast / pandoc = "
          f"{rates['fast (engine = auto)'] / rates['pandoc (engine = pandoc)']:.1f}x  (target >= 3 on small pages)")


ENWIKI_ARTICLES = 6_800_000  # English Wikipedia's articles (scale_bench.py's figure)
CORES = 16


def pages_are_articles(pages: dict[str, str]) -> bool:
    """Whether the pages are Wikipedia-sized (the projection is made from those only)."""
    return sum(len(t) for t in pages.values()) / max(1, len(pages)) > 10_000


def replicated_dump(dump: Path, copies: int, folder: Path) -> Path:
    """The dump's pages `copies` times over (titles of the copies marked "(copy N)", ids moved on) as one
    .xml.bz2: a dump of the size the issue measured (760 articles) made of the fixture's real articles."""
    import bz2
    import re

    text = bz2.decompress(dump.read_bytes()).decode("utf-8")
    head, first = text[:text.index("  <page>")], text.index("  <page>")
    last = text.rindex("</page>") + len("</page>\n")
    pages, tail = text[first:last], text[last:]
    out = [head, pages]
    for copy in range(2, copies + 1):
        renamed = re.sub(r"<title>(.*?)</title>", lambda m: f"<title>{m.group(1)} (copy {copy})</title>", pages)
        out.append(re.sub(r"<id>(\d+)</id>", lambda m: f"<id>{int(m.group(1)) + copy * 10_000_000}</id>", renamed))
    out.append(tail)
    target = folder / f"{dump.name.split('.')[0]}-x{copies}.xml.bz2"
    target.write_bytes(bz2.compress("".join(out).encode("utf-8"), 9))
    return target


def end_to_end(dump: Path, rounds: int = 3, engines: tuple[str, ...] = ("auto", "pandoc")) -> None:
    """`Wikipedia` on a dump, one worker, against WikiExtractor on the same file: CPU of the process tree;
    the best of `rounds` alternated runs for `engine = auto` and WikiExtractor, one for `engine = pandoc`."""
    import shutil
    import tempfile

    import yaml

    articles = sum(1 for p in iter_pages(dump) if p.ns == 0 and not p.is_redirect)
    work = Path(tempfile.mkdtemp(prefix="convert-bench-"))
    try:
        (work / "manifests" / "originals").mkdir(parents=True)
        (work / "manifests" / "originals" / "bench.yaml").write_text(
            yaml.safe_dump({"dump": str(dump), "all_pages": True, "host": "bench"}))
        (work / "luigi.cfg").write_text("[core]\nlog_level = WARNING\n")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        env.pop("LUIGI_CONFIG_PATH", None)
        runs: dict[str, list] = {}
        for number, engine in enumerate(list(engines) + ["auto"] * (rounds - 1)):
            folder = work / f"{engine}-{number}"  # (an empty data directory each time)
            shutil.copytree(work / "manifests", folder / "manifests")
            (folder / "luigi.cfg").write_text(f"[core]\nlog_level = WARNING\n[convert]\nengine = {engine}\n")
            with Clock() as clock:
                done = subprocess.run([sys.executable, "-m", "luigi", "--module", "wikiluigi", "Wikipedia",
                                       "--manifest", "bench", "--local-scheduler", "--workers", "1"],
                                      cwd=folder, env=env, capture_output=True, text=True)
            converted = sum(1 for _ in (folder / "processed").rglob("*.md"))
            if done.returncode:
                print(f"  Wikipedia (engine = {engine}) exited {done.returncode}: {done.stdout[-500:]}{done.stderr[-500:]}")
            runs.setdefault(f"Wikipedia, engine = {engine}", []).append((clock, converted))
            if engine == "auto":
                out = work / f"wikiextractor-{number}"
                with Clock() as clock:
                    subprocess.run([sys.executable, "-m", "wikiextractor.WikiExtractor", str(dump), "--processes",
                                    "1", "-o", str(out), "-q"], capture_output=True, env=env)
                documents = sum(f.read_text(encoding="utf-8").count("<doc ") for f in out.rglob("wiki_*"))
                runs.setdefault("WikiExtractor 3.1.0", []).append((clock, documents))
        rows = {name: best(found) for name, found in runs.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n== end to end: {dump.name} ({articles} articles), dump to files, one worker / one process, "
          f"best of {rounds} runs" + (" (pandoc engine: one)" if "pandoc" in engines else ""))
    rates = {}
    for name, (clock, made) in rows.items():
        rates[name] = articles / clock.cpu
        print(f"  {name:<28} {clock.wall:7.2f} s wall {clock.cpu:7.2f} s CPU {rates[name]:7.1f} articles/CPU-s "
              f"({made} files/documents written)")
    print(f"  Wikipedia (auto) / WikiExtractor = "
          f"{rates['Wikipedia, engine = auto'] / rates['WikiExtractor 3.1.0']:.2f}  (target >= 1.0)")


def bare(pages: dict[str, str], limit: float):
    """One pandoc over everything; None when it did not finish within `limit` seconds."""
    data = "\n\n".join(pages.values()).encode("utf-8")
    with Clock() as clock:
        try:
            done = subprocess.run([convert.pandoc_path(), "--from=mediawiki", "--to=gfm", "--wrap=none"],
                                  input=data, capture_output=True, timeout=limit)
        except subprocess.TimeoutExpired:
            return None
    if done.returncode:
        raise SystemExit(f"bare pandoc failed: {done.stderr.decode()[:300]}")
    return clock


def bare_per_page(pages: dict[str, str]):
    """One pandoc per page; also which pages pandoc's reader rejects."""
    rejected = []
    with Clock() as clock:
        for title, text in pages.items():
            done = subprocess.run([convert.pandoc_path(), "--from=mediawiki", "--to=gfm", "--wrap=none"],
                                  input=text.encode("utf-8"), capture_output=True)
            if done.returncode:
                rejected.append(title)
    return clock, rejected


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


def profile(pages: dict[str, str]) -> dict[str, Clock]:
    """Where convert_pages spends its time: each stage wrapped with a clock."""
    clocks = {name: Clock() for name in ("prepare", "pandoc reader", "pandoc writer", "json load", "json dump",
                                         "filters")}
    real = {name: getattr(convert, name) for name in ("prepare", "_run_pandoc", "filter_page")}
    real_json = convert.json

    def timed(clock, function):
        def wrapper(*args, **kwargs):
            with clock:
                return function(*args, **kwargs)
        return wrapper

    class JSON:
        loads = staticmethod(timed(clocks["json load"], real_json.loads))
        dumps = staticmethod(timed(clocks["json dump"], real_json.dumps))

    def run_pandoc(args, *rest):
        clock = clocks["pandoc reader" if any(a.startswith("--from=mediawiki") for a in args) else "pandoc writer"]
        with clock:
            return real["_run_pandoc"](args, *rest)

    convert.prepare = timed(clocks["prepare"], real["prepare"])
    convert.filter_page = timed(clocks["filters"], real["filter_page"])
    convert._run_pandoc = run_pandoc
    convert.json = JSON
    try:  # in this process (ours runs each chunk in a child, whose clocks would not come back)
        titles = list(pages)
        for start in range(0, len(titles), CHUNK):
            convert_pages({t: pages[t] for t in titles[start:start + CHUNK]}, OPTIONS)
    finally:
        for name, function in real.items():
            setattr(convert, name, function)
        convert.json = real_json
    return clocks


def compare(label: str, every: dict[str, str], quick: bool, limit: float) -> None:
    size = sum(len(t.encode()) for t in every.values())
    print(f"\n== {label}: {len(every)} article pages, {size / 1e6:.2f} MB of wikitext "
          f"({size / len(every) / 1e3:.1f} KB a page)")
    per_page_clock, rejected = bare_per_page(every)
    same = {t: text for t, text in every.items() if t not in rejected}
    if rejected:
        print(f"pandoc alone rejects {len(rejected)} of them: {', '.join(rejected)}")
    naive_pages = same
    if quick and len(same) > 30:
        step = max(1, len(same) // 30)
        naive_pages = {t: same[t] for t in list(same)[::step][:30]}
    naive_clock, _ = naive(naive_pages)
    bare_clock = bare(same, limit)
    ours_same, failed_same = ours(same)
    ours_all, failed_all = ours(every) if rejected else (None, 0)

    def row(name, pages, clock, note=""):
        if clock is None:
            print(f"  {name:<27} {pages:>4} pages   did not finish in {limit:g} s: "
                  f"< {pages / limit:.2f} pages/s {note}")
            return
        print(f"  {name:<27} {pages:>4} pages {clock.wall:7.2f} s wall {pages / clock.wall:7.2f} pages/s"
              f" {clock.cpu:7.2f} s CPU {pages / clock.cpu:7.2f} pages/CPU-s {note}")

    row("ours, chunks of 200", len(same), ours_same, f"({failed_same} failed)")
    if ours_all:
        row("ours, all pages", len(every), ours_all, f"({failed_all} failed)")
    row("bare pandoc, one process", len(same), bare_clock)
    row("bare pandoc, one per page", len(every), per_page_clock)
    row("naive, pypandoc per page", len(naive_pages), naive_clock, "(a subset: --quick)" if naive_pages != same else "")

    def ratio(name, pages, clock, target=""):
        if clock is None:
            print(f"  ours / {name:<17} > {len(same) / ours_same.cpu / (pages / limit):5.2f}  {target}")
            return
        by_cpu = (len(same) / ours_same.cpu) / (pages / clock.cpu)
        by_wall = (len(same) / ours_same.wall) / (pages / clock.wall)
        print(f"  ours / {name:<17} = {by_cpu:5.2f} by CPU, {by_wall:5.2f} by wall  {target}")

    ratio("bare one process", len(same), bare_clock)
    ratio("bare per page", len(every), per_page_clock)
    ratio("naive", len(naive_pages), naive_clock, "target >= 5")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="naive on 30 pages, bare one-run cut at 30 s")
    parser.add_argument("--bare-limit", type=float, default=None, help="seconds for the bare one-process run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of the fast engine and WikiExtractor (alternated) whose best is printed")
    parser.add_argument("--copies", type=int, default=8,
                        help="the second end-to-end row: the enwiki articles this many times over in one dump; "
                             "the small pages are also converted 5 times this many times over")
    parser.add_argument("--peers-only", action="store_true",
                        help="only the engines, WikiExtractor and the end-to-end row (no bare or naive pandoc runs)")
    args = parser.parse_args()
    limit = args.bare_limit or (30.0 if args.quick else 120.0)
    version = subprocess.run([convert.pandoc_path(), "--version"], capture_output=True, text=True).stdout.split()[1]
    print(f"pandoc {version}, {os.cpu_count()} CPUs, ProcessPages' batches, ratios by CPU time (this process and "
          f"its children) and by wall time")

    every = {p.title: p.text for p in iter_pages(ENWIKI) if p.ns == 0 and not p.is_redirect}
    small = {p.title: p.text for p in iter_pages(STARTREK) if p.ns == 0 and not p.is_redirect}
    peers(f"English Wikipedia ({ENWIKI.name})", every, args.rounds)
    peers(f"small pages ({STARTREK.name})", small, args.rounds)
    many = {f"{title} ({copy})": text for copy in range(1, args.copies * 5 + 1) for title, text in small.items()}
    peers(f"small pages, {args.copies * 5} times over (full batches, as in a wiki of thousands)", many, args.rounds)
    end_to_end(ENWIKI, args.rounds)
    import tempfile
    with tempfile.TemporaryDirectory(prefix="convert-bench-dump-") as folder:
        end_to_end(replicated_dump(ENWIKI, args.copies, Path(folder)), args.rounds, engines=("auto",))
    if args.peers_only:
        return
    compare(f"English Wikipedia ({ENWIKI.name})", every, args.quick, limit)
    compare(f"small pages ({STARTREK.name})", small, args.quick, limit)

    print("\nwhere ours spends its time (English Wikipedia, all pages)")
    clocks = profile(every)
    total = sum(c.cpu for c in clocks.values())
    for name, clock in clocks.items():
        print(f"  {name:<14} {clock.wall:6.2f} s wall {clock.cpu:6.2f} s CPU  {clock.cpu / total:5.1%}")
    size = sum(len(t.encode()) for t in every.values())
    drop = frozenset(s.casefold() for s in OPTIONS.drop_sections)
    prepared = "\n\n".join(convert.prepare(t, {}, False, drop) for t in every.values()).encode("utf-8")
    print(f"  the prepared text pandoc reads: {len(prepared) / 1e6:.1f} MB of {size / 1e6:.1f} MB")
    for to in ("json", "gfm"):
        with Clock() as direct:
            subprocess.run([convert.pandoc_path(), *convert.PANDOC_RTS, "--from=mediawiki", f"--to={to}",
                            "--wrap=none"], input=prepared, capture_output=True)
        print(f"  pandoc mediawiki -> {to:<4} on the prepared text in one go: {direct.cpu:6.2f} s CPU")
    print("  (so the JSON round trip is the cheap way: gfm written straight from the reader's AST, a Str per "
          "word, costs several times the reading; our writer gets a Str per run of words)")


if __name__ == "__main__":
    main()
