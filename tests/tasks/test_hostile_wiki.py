"""A hostile wiki: one page per construct of tests/support/hostile.py (citation stacks, rows of templates
and interlanguage links, lists, tables, templates and tags nested hundreds deep, unclosed refs, braces,
file links and pre by the thousand, quote storms, a 2 MB page) beside real English Wikipedia articles,
served by the real local MediaWiki and taken through `luigi ... Wikipedia` as a user would."""
import json
import time

import pytest

from tests.support.hostile import FAILS, KEPT, RULES, hostile_pages, write_dump
from tests.support.luigi_cli import TEST_CONFIG, make_data_dir, run_luigi
from tests.support.wiki_fixtures import ENWIKI_DUMP
from wikiluigi.paths import title_to_stem
from wikiluigi.sources.dump import iter_pages

REAL_ARTICLES = ("Anarchism", "Algeria", "Aristotle", "Autism", "Achilles", "Abraham Lincoln", "Alabama",
                 "Amphibian", "Apollo", "Andorra")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_hostile_wiki_converts_every_real_article_and_names_every_failure(tmp_path, local_mediawiki_factory):
    real = {page.title: page.text for page in iter_pages(ENWIKI_DUMP, REAL_ARTICLES)}
    assert sorted(real) == sorted(REAL_ARTICLES)
    hostile = hostile_pages(30_000, big=2_000_000)
    dump = write_dump(tmp_path / "hostile.xml", {**real, **hostile})
    # MediaWiki's own parser overflows PHP's stack on some of these pages: no link tables (the API
    # serves the wikitext all the same, and the manifest names its pages).
    wiki = local_mediawiki_factory(dump, extra_settings="$wgMaxArticleSize = 4096;", refresh_links=False)
    data_dir = make_data_dir(tmp_path / "data", {"hostile": {
        "api": wiki.api_url, "include_pages": sorted({**real, **hostile}), "template_rules": RULES,
    }}, config=TEST_CONFIG + "[convert]\npage_timeout = 60\npage_memory = 2048\n")

    started = time.monotonic()
    result = run_luigi(data_dir, "Wikipedia", "--manifest", "hostile", "--local-scheduler", timeout=1500)
    seconds = time.monotonic() - started
    print(f"hostile wiki: {len(real)} real articles and {len(hostile)} hostile pages in {seconds:.1f} s")

    host = f"127.0.0.1:{wiki.port}"
    [folder] = (data_dir / "processed" / "mediawiki").glob(f"{host}~*")  # its template_rules: a folder of their own
    converted = {path.name for path in folder.glob("*.md")}
    failures = {record["title"]: record["reason"] for record in
                (json.loads(path.read_text()) for path in (folder / ".failed").glob("*.json"))}
    print("failed:", json.dumps(failures, indent=1))
    assert {f"{title_to_stem(t)}.md" for t in real} <= converted, result.stdout[-3000:]
    # Each hostile page converted with its text kept, or failed alone with its reason; none over its budget.
    assert failures == {f"Hostile {name}": reason for name, reason in FAILS.items()}, failures
    for name, kept in KEPT.items():
        markdown = (folder / f"{title_to_stem('Hostile ' + name)}.md").read_text()
        assert markdown.startswith(f"# Hostile {name}\n\n"), name
        for text in kept:
            assert text in markdown, (name, text, markdown[:300])
    assert result.returncode == 30, result.stderr[-3000:]
    for title in real:
        markdown = (folder / f"{title_to_stem(title)}.md").read_text()
        assert markdown.startswith(f"# {title}\n\n") and "{{" not in markdown and "<ref" not in markdown
    big = (folder / "Hostile big page.md").read_text()
    assert big.count("## Section") > 1000 and "People fished there" in big
