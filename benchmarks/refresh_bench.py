"""Refresh against a full scrape without the cache, side by side in one run (not a test):

    python benchmarks/refresh_bench.py [--pages 10000] [--changed 0.01] [--workers 2] [--category-pages 100]

Part 1: a synthetic wiki of --pages articles (tests/support/synthetic_wiki.py, one plain export) on the real
local MediaWiki, as two manifests: taken whole (`all_pages`), and its category tree (Category:Synthetic,
10 branches of 10 leaves). The baseline is a fresh data directory (no HTTP cache): Scrape
(list every page, fetch every page) and then Wikipedia (convert every page). Then a Refresh with nothing
changed (it lists every page and records the wiki's clock), --changed of the pages changed the way editors
change them (edit.php for edits and new pages, deleteBatch.php, moveBatch.php, then runJobs.php), and a
Refresh of those changes twice from the same state: once asking the wiki's recent changes (the default for
an all_pages manifest refreshed within [refresh] recent_changes_days) and once listing every page with its
revision id (recent_changes_days = 0). Requests are those the wiki's server logged.

Part 2: one category of --category-pages pages, 11 of them changed or new (8 edits, 3 new pages; one more
page deleted and one moved besides): the requests of its Refresh, which lists the category (500 pages a
request with each one's revision id) and fetches the 11 by revision id.

Targets: at 1% changed, Refresh sends at most 1/20 of a full scrape's requests and takes at most 1/10 of its
time; the 100-page category with 11 pages changed or new at most 25 requests in all.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from tests.support import synthetic_wiki  # noqa: E402
from tests.support.mediawiki import LocalMediaWiki  # noqa: E402

CONFIG = """[core]
log_level = WARNING
[http]
user_agent = wikiluigi-refresh-bench (bench@example.invalid)
"""


def data_dir_for(root: Path, name: str, manifest: dict, workers: int, port: int, extra: str = "") -> Path:
    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "manifests" / "originals").mkdir(parents=True)
    (folder / "manifests" / "originals" / "synth.yaml").write_text(yaml.safe_dump(manifest))
    (folder / "luigi.cfg").write_text(CONFIG + f"[resources]\nwiki_api_127_0_0_1_{port} = {workers}\n" + extra)
    return folder


def run(wiki: LocalMediaWiki, data_dir: Path, task: str, workers: int) -> dict:
    """One luigi command: seconds, and the requests the wiki's server logged for it."""
    command = [sys.executable, "-m", "luigi", "--module", "wikiluigi", task, "--manifest", "synth",
               "--local-scheduler", "--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("LUIGI_CONFIG_PATH", None)
    wiki.mark_requests()
    start = time.perf_counter()
    result = subprocess.run(command, cwd=data_dir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{task} failed (exit {result.returncode}):\n{result.stderr[-6000:]}")
    return {"seconds": seconds, "requests": len(wiki.api_requests())}


def report_of(data_dir: Path) -> dict:
    return json.loads((data_dir / "out" / "reports" / "synth.refresh.json").read_text())


def change(wiki: LocalMediaWiki, titles: list[str], count: int, prefix: str, categories: str = "") -> dict:
    """`count` pages changed: 70% edited, 20% new, 5% deleted, 5% moved (at least one of each)."""
    deleted = max(1, count * 5 // 100)
    moved = max(1, count * 5 // 100)
    new = max(1, count * 20 // 100)
    edited = max(1, count - deleted - moved - new)
    step = max(1, len(titles) // (edited + deleted + moved))
    picked = titles[::step][:edited + deleted + moved]
    edits, deletes, moves = picked[:edited], picked[edited:edited + deleted], picked[edited + deleted:]
    start = time.perf_counter()
    for title in edits:
        wiki.edit_page(title, f"{prefix}: a new first line.\n\n" + wiki.page_text(title))
    for number in range(new):
        wiki.edit_page(f"{prefix} new page {number}",
                       f"A page written after the scrape, number {number}.\n\n{categories}")
    wiki._maint("deleteBatch.php", "-u", "Admin", "-r", "bench", stdin="".join(f"{t}\n" for t in deletes).encode())
    wiki._maint("moveBatch.php", "-u", "Admin", "-r", "bench",
                stdin="".join(f"{t}|{t} (moved)\n" for t in moves).encode())
    wiki._maint("runJobs.php")
    return {"edited": len(edits), "new": new, "deleted": len(deletes), "moved": len(moves),
            "seconds": time.perf_counter() - start}


def same_pages(one: Path, two: Path) -> bool:
    def pages(folder: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((folder / "raw").rglob("*.mediawiki"))}
    titles = "manifests/derived/synth.titles.txt"
    return pages(one) == pages(two) and (one / titles).read_text() == (two / titles).read_text()


KINDS = {"all_pages": {"all_pages": True}, "categories": {"include_categories": [synthetic_wiki.ROOT_CATEGORY]}}


def whole_wiki(work: Path, pages: int, changed: float, workers: int) -> None:
    plain = synthetic_wiki.write_plain(work / f"refresh-{pages}.xml", pages)
    start = time.perf_counter()
    with LocalMediaWiki(plain.dump, workers=max(2, workers)) as wiki:
        print(f"local MediaWiki of {pages} articles ({plain.pages} pages) built in {time.perf_counter() - start:.0f} s")
        rows: dict[str, dict] = {}
        for kind, manifest in KINDS.items():
            folder = data_dir_for(work, kind, {"api": wiki.api_url, **manifest}, workers, wiki.port)
            scrape = run(wiki, folder, "Scrape", workers)
            convert = run(wiki, folder, "Wikipedia", workers)
            rows[kind] = {"scrape": scrape, "convert": convert, "quiet": run(wiki, folder, "Refresh", workers),
                          "full": {key: scrape[key] + convert[key] for key in ("seconds", "requests")}}
        # New pages join a leaf category, as the synthetic wiki's articles do.
        made = change(wiki, plain.articles, max(1, round(pages * changed)), "Bench", "[[Category:Leaf 0-0]]")
        print(f"changed {made['edited']} edited, {made['new']} new, {made['deleted']} deleted, {made['moved']} moved "
              f"({made['seconds']:.0f} s of maintenance scripts)")
        for kind in KINDS:
            folder, listing = work / kind, work / f"{kind}-listed"
            shutil.rmtree(listing, ignore_errors=True)
            shutil.copytree(folder, listing, symlinks=True)
            with open(listing / "luigi.cfg", "a") as cfg:
                cfg.write("[refresh]\nrecent_changes_days = 0\n")
            rows[kind]["recent"] = run(wiki, folder, "Refresh", workers)
            rows[kind]["recent_report"] = report_of(folder)
            rows[kind]["listed"] = run(wiki, listing, "Refresh", workers)
            rows[kind]["listed_report"] = report_of(listing)
            rows[kind]["same"] = same_pages(folder, listing)
    plain.dump.unlink()
    for kind, row in rows.items():
        report, full = row["recent_report"], row["full"]
        print(f"\n{pages} articles as {kind}, {changed:.0%} changed ({report['changed']} changed, {report['new']} new, "
              f"{report['gone']} gone, {report['unchanged']} unchanged); the same pages either way: {row['same']}")
        print(f"{'':48} {'requests':>9} {'seconds':>9} {'requests':>10} {'time':>8}")
        print(f"{'':48} {'':>9} {'':>9} {'vs full':>10} {'vs full':>8}")
        for name, key in (("full scrape, no cache: Scrape", "scrape"),
                          ("  + convert every page (Wikipedia)", "convert"),
                          ("  = full: list, fetch, convert", "full"),
                          ("Refresh, nothing changed (lists every page)", "quiet"),
                          ("Refresh of the changes: recent changes", "recent"),
                          ("Refresh of the changes: every page listed", "listed")):
            print(f"{name:48} {row[key]['requests']:>9} {row[key]['seconds']:>9.1f} "
                  f"{row[key]['requests'] / full['requests']:>10.3f} {row[key]['seconds'] / full['seconds']:>8.3f}")
        recent, scrape = row["recent"], row["scrape"]
        print(f"{'':48} against the Scrape alone: recent changes {recent['requests'] / scrape['requests']:.3f} "
              f"of its requests, {recent['seconds'] / scrape['seconds']:.3f} of its time")
        print(f"reports: {report['how']}; {row['listed_report']['how']}")


def one_category(work: Path, pages: int, workers: int) -> None:
    titles = [f"Member {number:03d}" for number in range(pages)]
    dump = work / "category.xml"
    with open(dump, "w", encoding="utf-8") as out:
        out.write(synthetic_wiki.HEAD)
        out.write(synthetic_wiki._page_xml("Category:Hundred", 14, 1, "One flat category.", None))
        for number, title in enumerate(titles):
            text = f"'''{title}''' is page {number} of the category.\n\n[[Category:Hundred]]"
            out.write(synthetic_wiki._page_xml(title, 0, number + 2, text, None))
        out.write(synthetic_wiki.TAIL)
    with LocalMediaWiki(dump, workers=max(2, workers)) as wiki:
        folder = data_dir_for(work, "category", {"api": wiki.api_url, "include_categories": ["Category:Hundred"]},
                              workers, wiki.port)
        full = run(wiki, folder, "Wikipedia", workers)
        for title in titles[:80:10]:
            wiki.edit_page(title, f"Edited after the scrape.\n\n{wiki.page_text(title)}")
        for number in range(3):
            wiki.edit_page(f"Newcomer {number}", f"A new member.\n\n[[Category:Hundred]]")
        wiki._maint("deleteBatch.php", "-u", "Admin", "-r", "bench", stdin=f"{titles[-1]}\n".encode())
        wiki._maint("moveBatch.php", "-u", "Admin", "-r", "bench",
                    stdin=f"{titles[-2]}|{titles[-2]} (moved)\n".encode())
        wiki._maint("runJobs.php")
        refreshed = run(wiki, folder, "Refresh", workers)
        report = report_of(folder)
    dump.unlink()
    print(f"\none category of {pages} pages, 8 edited and 3 new (one more deleted, one moved): Refresh "
          f"{refreshed['requests']} requests in {refreshed['seconds']:.1f} s ({report['changed']} changed, "
          f"{report['new']} new, {report['gone']} gone) against {full['requests']} for the first Wikipedia run")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--category-pages", type=int, default=100)
    parser.add_argument("--work", type=Path, default=Path("/tmp/wikiluigi-refresh-bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.category_pages:
        one_category(args.work, args.category_pages, args.workers)
    if args.pages:
        whole_wiki(args.work, args.pages, args.changed, args.workers)


if __name__ == "__main__":
    main()
