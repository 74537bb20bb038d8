"""Fetch stage throughput against a real local MediaWiki, side by side in one run (not a test).

    python benchmarks/fetch_bench.py [--rounds 5] [--dump enwiki|startrek]

Contenders, on the same wiki and the same article titles (of the real Wikipedia excerpt, ~50 KB a
page, or of the Star Trek fixture, ~1.5 KB a page):
  stage      wikiluigi's fetch stage as FetchPages runs it (fetch_pages: 50 titles a request, mapping,
             atomic files fsync'ed before their rename, one folder fsync for the chunk, metadata)
  per-page   the same with a folder fsync after every page (no durable.batch)
  no-fsync   the same with nothing fsync'ed (durable.ENABLED off): what durability costs
  bare-50    a bare loop of 50-title requests with requests.Session, no parsing, no files (the limit)
  single     one title per request (the original project's design), also bare
The HTTP cache is off for all three. Target: stage >= 0.8 x bare-50 and >= 10 x single.
"""
import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.mediawiki import LocalMediaWiki  # noqa: E402
from tests.support.wiki_fixtures import ENWIKI_DUMP, STARTREK_DUMP  # noqa: E402
from wikiluigi import durable, paths  # noqa: E402
from wikiluigi.sources.fetch import fetch_pages  # noqa: E402
from wikiluigi.sources.mediawiki import MediaWiki, Settings  # noqa: E402

SETTINGS = Settings(user_agent="wikiluigi-benchmark (bench@example.invalid)", maxlag=5)


def article_titles(wiki: LocalMediaWiki) -> list[str]:
    titles = wiki.page_titles(namespace=0)
    found = MediaWiki(wiki.api_url, SETTINGS).resolve(titles)
    return sorted({final[0] for final in found.values() if final})


STAGE_MODES = ("stage", "per-page", "no-fsync")


def run_stage(wiki, titles, rounds) -> dict[str, float]:
    """Time fetch_pages alone, in each of STAGE_MODES: "stage" (as FetchPages runs it, in a durable batch),
    "per-page" (no batch: each file and its folder fsync'ed at once), "no-fsync". The modes take turns
    round by round, so that a machine's changing load falls on all three; each round writes into a fresh
    data directory, made and checked outside the clock."""
    import luigi.configuration
    seconds = dict.fromkeys(STAGE_MODES, 0.0)
    client = MediaWiki(wiki.api_url, SETTINGS)
    with tempfile.TemporaryDirectory() as root:
        for round_number in range(rounds):
            for mode in STAGE_MODES:
                luigi.configuration.get_config().set("wikiluigi", "data_dir", f"{root}/{mode}-{round_number}")
                durable.ENABLED = mode != "no-fsync"
                batch = durable.batch if mode == "stage" else contextlib.nullcontext
                start = time.perf_counter()
                with batch():
                    report = fetch_pages(client, "bench", titles)
                seconds[mode] += time.perf_counter() - start
                durable.ENABLED = True
                assert report.fetched == len(titles), report
                assert len(list(paths.raw_dir("bench").glob("*.mediawiki"))) == len(titles)
    return seconds


def run_bare(wiki, titles, rounds, per_request) -> float:
    session = requests.Session()
    session.headers["User-Agent"] = SETTINGS.user_agent
    start = time.perf_counter()
    for _ in range(rounds):
        for i in range(0, len(titles), per_request):
            response = session.get(wiki.api_url, params={
                "action": "query", "format": "json", "formatversion": "2", "prop": "revisions",
                "rvprop": "content|ids|timestamp", "rvslots": "main", "maxlag": "5",
                "titles": "|".join(titles[i:i + per_request])})
            response.raise_for_status()
            _ = response.content
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="times each contender fetches every title")
    parser.add_argument("--dump", choices=["enwiki", "startrek"], default="enwiki")
    args = parser.parse_args()
    dump = {"enwiki": ENWIKI_DUMP, "startrek": STARTREK_DUMP}[args.dump]
    with LocalMediaWiki(dump) as wiki:
        titles = article_titles(wiki)
        pages = len(titles) * args.rounds
        run_bare(wiki, titles, 1, 50)  # warm PHP's opcode cache and SQLite's pages for everyone
        timings = {
            **run_stage(wiki, titles, args.rounds),
            "bare-50": run_bare(wiki, titles, args.rounds, 50),
            "single": run_bare(wiki, titles, 1, 1) * args.rounds,  # one round is slow enough to measure
        }
    rate = {name: pages / seconds for name, seconds in timings.items()}
    print(f"{len(titles)} article titles of {dump.name} x {args.rounds} rounds on one php -S")
    print(f"{'contender':<10} {'pages/s':>9} {'vs bare-50':>11} {'vs single':>10} {'ms/page':>8} {'vs no-fsync':>12}")
    for name in timings:
        print(f"{name:<10} {rate[name]:9.1f} {rate[name] / rate['bare-50']:11.2f} {rate[name] / rate['single']:10.1f}"
              f" {1000 * timings[name] / pages:8.2f} {rate[name] / rate['no-fsync']:12.2f}")


if __name__ == "__main__":
    main()
