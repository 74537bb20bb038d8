"""Session-scoped pytest fixtures serving real local MediaWikis built from the dumps in tests/fixtures.

Loaded by the project's tests/conftest.py (``pytest_plugins = ["tests.support.wiki_fixtures"]``).

* ``startrek_wiki``: tests/fixtures/startrek-dump.xml (49 pages; ~5 s to build).
* ``enwiki_wiki``: tests/fixtures/wikipedia/enwiki-articles-sample.xml.bz2 (206 pages;
  ~20-35 s to build on 2 cores, nearly all of it refreshLinks.php parsing the articles).
* ``enwiki_tables_wiki``: tests/fixtures/wikipedia/enwiki-table-markup.xml.bz2 (5 pages, ~3 s).
* ``local_mediawiki_factory``: builds more wikis from any dump (e.g. one a test may edit);
  each is stopped at the end of the test.

Each fixture yields a started :class:`tests.support.mediawiki.LocalMediaWiki` and stops it (server
killed, folder deleted) when the session ends. The wikis are shared by every test of the session:
call ``wiki.mark_requests()`` before counting requests, and don't edit the shared ones (use the
factory). Without PHP or the unpacked MediaWiki the fixtures skip (pytest.fail under CI=true),
saying to run ``bash scripts/install-mediawiki.sh``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.support.mediawiki import PROJECT_ROOT, LocalMediaWiki, require_mediawiki

# The dumps ship with the tests (tests/fixtures/README.md: sources and licences); WIKILUIGI_FIXTURES_DIR points
# the tests at another folder holding the same file names.
FIXTURES_DIR = Path(os.environ.get("WIKILUIGI_FIXTURES_DIR", PROJECT_ROOT / "tests" / "fixtures"))
STARTREK_DUMP = FIXTURES_DIR / "startrek-dump.xml"
ENWIKI_DUMP = FIXTURES_DIR / "wikipedia" / "enwiki-articles-sample.xml.bz2"
ENWIKI_TABLES_DUMP = FIXTURES_DIR / "wikipedia" / "enwiki-table-markup.xml.bz2"


def _fixture_file(path: Path) -> Path:
    if not path.is_file():
        message = f"fixture dump missing: {path} (the tests' dumps live in tests/fixtures; WIKILUIGI_FIXTURES_DIR, when set, names another folder)"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def _serve(dump: Path, **kwargs: object) -> Iterator[LocalMediaWiki]:
    require_mediawiki()
    wiki = LocalMediaWiki(_fixture_file(dump), **kwargs)  # type: ignore[arg-type]
    try:
        wiki.start()
        yield wiki
    finally:
        wiki.stop()


@pytest.fixture(scope="session")
def startrek_wiki() -> Iterator[LocalMediaWiki]:
    """The Star Trek test wiki (startrek-dump.xml), served on 127.0.0.1."""
    yield from _serve(STARTREK_DUMP)


@pytest.fixture(scope="session")
def enwiki_wiki() -> Iterator[LocalMediaWiki]:
    """The English Wikipedia excerpt (enwiki-articles-sample.xml.bz2), served on 127.0.0.1."""
    yield from _serve(ENWIKI_DUMP)


@pytest.fixture(scope="session")
def enwiki_tables_wiki() -> Iterator[LocalMediaWiki]:
    """5 English Wikipedia pages heavy in table markup (enwiki-table-markup.xml.bz2)."""
    yield from _serve(ENWIKI_TABLES_DUMP)


@pytest.fixture
def local_mediawiki_factory() -> Iterator[Callable[..., LocalMediaWiki]]:
    """make(dump=STARTREK_DUMP, **LocalMediaWiki kwargs) -> a started private wiki, stopped after
    the test. For tests that edit pages or restart the server."""
    require_mediawiki()
    made: list[LocalMediaWiki] = []

    def make(dump: str | os.PathLike[str] = STARTREK_DUMP, **kwargs: object) -> LocalMediaWiki:
        wiki = LocalMediaWiki(_fixture_file(Path(dump)), **kwargs)  # type: ignore[arg-type]
        made.append(wiki)
        return wiki.start()

    try:
        yield make
    finally:
        for wiki in made:
            wiki.stop()
