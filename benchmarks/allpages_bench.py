"""Deriving every title of a large synthetic dump (`all_pages: true`): time and peak memory, side by side
with one bare pass over the same file in the same run (not a test).

    python benchmarks/allpages_bench.py [--pages 1000000] [--small 100000] [--keep DIR]

The dump is written first (plain XML, short pages: 10% redirects, 1 page in 20 in one of 50 categories,
a few hundred pairs of titles that differ only in case). Each contender runs in a process of its own, so
that its peak resident memory (ru_maxrss, from wait4) is its own:
  bare       one iterparse pass that counts the <page>s and clears each: the floor of any one-pass reader
  index      DumpSource's one pass alone (namespace, redirect and category links of every page)
  derive     what DeriveManifest does with `all_pages: true`: resolve_manifest (that pass, then every page of
             the namespace, exclusions, case variants: sets all through), then derived.write
Both at --small pages and at --pages, so that the ratios show whether time and memory grow linearly.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAD = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="en">
  <siteinfo><sitename>Bench</sitename><dbname>benchwiki</dbname><base>https://bench.example.invalid/wiki/Main</base>
    <case>first-letter</case><namespaces><namespace key="0" case="first-letter" />
    <namespace key="14" case="first-letter">Category</namespace></namespaces></siteinfo>
"""
PAGE = ("  <page><title>{title}</title><ns>0</ns><id>{id}</id>{redirect}<revision><id>{id}</id>"
        "<timestamp>2024-01-01T00:00:00Z</timestamp><text xml:space=\"preserve\">{text}</text></revision></page>\n")


def write_dump(path: Path, pages: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(HEAD)
        for i in range(1, pages + 1):
            title = f"Page {i:07d} of the bench wiki"
            if i % 5000 == 2:  # differs from the page before only in case
                title = f"Page {i - 1:07d} of the bench wiki".upper()
            redirect = ""
            if i % 10 == 0:
                text = f"#REDIRECT [[Page {i - 1:07d} of the bench wiki]]"
                redirect = f'<redirect title="Page {i - 1:07d} of the bench wiki" />'
            elif i % 20 == 1:
                text = f"Some text of page {i}, with a [[link]]. [[Category:Group {i // 20 % 50}]]"
            else:
                text = f"Some text of page {i}, with a [[link]] and '''bold''' words."
            out.write(PAGE.format(title=title, id=i, redirect=redirect, text=text))
        out.write("</mediawiki>\n")


def bare(dump: str) -> dict:
    import xml.etree.ElementTree as ET
    start = time.perf_counter()
    count = 0
    root = None
    for event, elem in ET.iterparse(dump, events=("start", "end")):
        if event == "start":
            root = root if root is not None else elem
        elif elem.tag.endswith("}page"):
            count += 1
            root.clear()
    return {"pages": count, "seconds": time.perf_counter() - start}


def derive(dump: str) -> dict:
    import logging
    import luigi.configuration
    from wikiluigi.sources import derived
    from wikiluigi.sources.derive import resolve_manifest
    from wikiluigi.sources.manifest import parse
    from wikiluigi.sources.source import DumpSource

    logging.getLogger("wikiluigi").setLevel(logging.ERROR)  # one warning per case-variant pair
    folder = Path(dump).parent
    luigi.configuration.get_config().set("wikiluigi", "data_dir", str(folder))
    manifest = parse(f"dump: {dump}\nall_pages: true\nexclude_categories: [Group 7]\n", folder / "bench.yaml", "bench")
    start = time.perf_counter()
    resolution = resolve_manifest(DumpSource(Path(dump)), manifest)  # the dump's pass happens in here
    resolved = time.perf_counter()
    resolved_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = derived.Derived(name="bench", host="bench", source={"dump": dump}, titles=tuple(resolution.titles),
                             chunk_size=200, counts=resolution.counts)
    derived.write(folder / "bench.derived.yaml", result, resolution.categories, resolution.warnings)
    return {"pages": len(resolution.titles), "resolve_s": resolved - start,
            "resolved_peak_mib": resolved_peak,
            "seconds": time.perf_counter() - start,
            "write_s": time.perf_counter() - resolved, "case_variants": len(resolution.case_variants),
            "excluded": resolution.counts["excluded"]}


def index(dump: str) -> dict:
    from wikiluigi.sources.source import DumpSource
    start = time.perf_counter()
    built = DumpSource(Path(dump))._build_index()
    return {"pages": len(built.namespace_of), "seconds": time.perf_counter() - start}


def measure(contender: str, dump: Path) -> dict:
    """Run one contender in a child process: its answer, its time (imports left out) and its peak RSS in MiB."""
    child = subprocess.Popen([sys.executable, __file__, "--child", contender, str(dump)], stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{contender} failed ({child.returncode})")
    return {**json.loads(output), "peak_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="write the dumps here and keep them (default: a temporary folder)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        contender, dump = args.child
        print(json.dumps({"bare": bare, "index": index, "derive": derive}[contender](dump)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for pages in (args.small, args.pages):
            dump = folder / f"bench-{pages}.xml"
            if not dump.exists():
                started = time.perf_counter()
                write_dump(dump, pages)
                print(f"wrote {dump} ({dump.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.0f} s",
                      flush=True)
            base, indexed, ours = measure("bare", dump), measure("index", dump), measure("derive", dump)
            assert base["pages"] == indexed["pages"] == pages, (base, indexed)
            rows.append((pages, base, ours))
            print(f"{pages:>9} pages: bare {base['seconds']:6.1f} s {base['peak_mib']:5.0f} MiB | index "
                  f"{indexed['seconds']:6.1f} s {indexed['peak_mib']:5.0f} MiB | derive {ours['seconds']:6.1f} s "
                  f"{ours['peak_mib']:5.0f} MiB, {ours['resolved_peak_mib']:.0f} MiB before the write (pass and "
                  f"resolve {ours['resolve_s']:.1f} s, "
                  f"write {ours['write_s']:.1f} s) -> {ours['pages']} titles, {ours['excluded']} excluded, "
                  f"{ours['case_variants']} case-variant groups; derive/bare {ours['seconds'] / base['seconds']:.1f}x",
                  flush=True)
        (small, small_bare, small_ours), (large, large_bare, large_ours) = rows
        scale = large / small
        print(f"\n{large // small}x the pages: bare {large_bare['seconds'] / small_bare['seconds']:.1f}x time; derive "
              f"{large_ours['seconds'] / small_ours['seconds']:.1f}x time, "
              f"{large_ours['peak_mib'] / small_ours['peak_mib']:.1f}x peak memory "
              f"({(large_ours['peak_mib'] - small_ours['peak_mib']) * 2**20 / (large - small):.0f} bytes a page "
              f"beyond the first {small}); linear is {scale:.0f}x")


if __name__ == "__main__":
    main()
