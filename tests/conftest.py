"""Shared fixtures: a data directory per test, and the real local MediaWiki servers."""
import os

import luigi.configuration
import pytest

# torch's OpenMP threads spin while they wait; on a machine shared with other work (2 cores here) that made
# the torch tests 2-10x slower. Set before anything imports torch (the subprocesses they start inherit it).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

pytest_plugins = ["tests.support.wiki_fixtures", "tests.support.luigid", "tests.support.tiny_gpt2"]


@pytest.fixture
def data_dir(tmp_path):
    """Point [wikiluigi] data_dir at a fresh folder for one test, as a user's luigi.cfg would."""
    config = luigi.configuration.get_config()
    had = config.has_option("wikiluigi", "data_dir")
    old = config.get("wikiluigi", "data_dir", None)
    folder = tmp_path / "data"
    folder.mkdir()
    config.set("wikiluigi", "data_dir", str(folder))
    yield folder
    if had:
        config.set("wikiluigi", "data_dir", old)
    else:
        config.remove_option("wikiluigi", "data_dir")
