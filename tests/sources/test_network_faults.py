"""A scrape through a proxy that spoils answers (tests/support/faultserver.py) in front of the real local
MediaWiki ends with the same pages, byte for byte, as a scrape of the wiki itself, and again from the
cache with the wiki down; a server whose `continue` repeats stops the run with an error naming it."""
import shutil

from tests.support.faultserver import FAULTS, FaultProxy, every_request_spoiled_once
from tests.support.luigi_cli import TEST_CONFIG, derived, files, make_data_dir, run_luigi

# Small requests and chunks, so that faults meet category walks, title lookups and content requests;
# retry delays kept tiny (Retry-After is capped by max_backoff).
FAULTY_NETWORK = """
[http]
user_agent = wikiluigi-tests/0.1 (tests@example.invalid)
retries = 3
backoff = 0.01
max_backoff = 0.05
timeout = 30
titles_per_request = 5
[fetch]
chunk_size = 10
"""


def trek(api_url):
    return {"trek": {"api": api_url, "include_categories": ["Category:Star Trek"]}}


def raw_folder(data_dir, api_url):
    return data_dir / "raw" / "mediawiki" / api_url.split("/")[2]


def test_a_scrape_through_faults_is_byte_exact_online_and_offline(tmp_path, startrek_wiki):
    direct = make_data_dir(tmp_path / "direct", trek(startrek_wiki.api_url))
    run_luigi(direct, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    expected = files(raw_folder(direct, startrek_wiki.api_url), ".mediawiki")
    assert len(expected) == 27

    with FaultProxy(startrek_wiki.api_url, plan=every_request_spoiled_once()) as proxy:
        proxied = make_data_dir(tmp_path / "proxied", trek(proxy.api_url), config=FAULTY_NETWORK)
        result = run_luigi(proxied, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    assert set(proxy.faults_served()) == set(FAULTS), proxy.faults_served()
    assert "retrying in" in result.stderr
    pages = raw_folder(proxied, proxy.api_url)
    assert derived(proxied, "trek")["titles"] == derived(direct, "trek")["titles"]
    assert files(pages, ".mediawiki") == expected
    assert not list((pages / ".failed").glob("*")) and not list(proxied.rglob(".tmp-*"))

    # Offline: the proxy and the wiki are down; the category walk and every page come from the cache,
    # which holds no spoiled answer.
    shutil.rmtree(proxied / "raw")
    shutil.rmtree(proxied / "manifests" / "derived")
    startrek_wiki.stop_server()
    try:
        run_luigi(proxied, "Scrape", "--manifest", "trek", "--local-scheduler", check_returncode=0)
    finally:
        startrek_wiki.start()
    assert files(pages, ".mediawiki") == expected


def test_a_continue_that_repeats_stops_the_run_naming_the_wiki(tmp_path, startrek_wiki):
    with FaultProxy(startrek_wiki.api_url, loop_continue=True) as proxy:
        data_dir = make_data_dir(tmp_path, trek(proxy.api_url), config=TEST_CONFIG)
        result = run_luigi(data_dir, "Scrape", "--manifest", "trek", "--local-scheduler", timeout=120)
    assert result.returncode != 0
    assert f"wikiluigi: DeriveManifest failed: {proxy.api_url} sent the same 'continue' twice" in result.stderr
    assert len(proxy.log) == 2  # the first answer, and the one that repeated its `continue`
    assert not (data_dir / "raw").exists()
