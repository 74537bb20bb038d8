"""Settings, one luigi.Config class per luigi.cfg section; the package's defaults load under the user's."""
from pathlib import Path

import luigi
import luigi.configuration
from luigi.configuration import LuigiConfigParser

DEFAULTS = Path(__file__).resolve().parent / "luigi.cfg"


def load_package_defaults() -> None:
    """Put the shipped luigi.cfg first in Luigi's list, so every other luigi.cfg overrides it.

    Luigi reads /etc/luigi/luigi.cfg, ./luigi.cfg and $LUIGI_CONFIG_PATH, later ones winning; ours goes
    before all of them, so `[retcode]` and the rest hold from any working directory.
    """
    paths = LuigiConfigParser._config_paths
    if str(DEFAULTS) not in paths:
        paths.insert(0, str(DEFAULTS))
        LuigiConfigParser.reload()


DEFAULT_DATA_DIR = "."


def setting(section: str, option: str, default: str) -> str:
    """One raw luigi.cfg value, read straight from the parser: making a luigi.Config object costs ~0.4 ms,
    and every path asks. The stages read luigi.cfg only through this module."""
    return luigi.configuration.get_config().get(section, option, default)


class wikiluigi(luigi.Config):
    data_dir = luigi.Parameter(default=DEFAULT_DATA_DIR, description="Folder holding manifests/, raw/, processed/, out/ and .cache/.")
    machine_name = luigi.Parameter(default="", description=(
        "This machine's name in a shared data directory (its HTTP cache, its revisions log); empty: the host name."))


class http(luigi.Config):
    user_agent = luigi.Parameter(
        default="wikiluigi/0.1 (https://github.com/wikiluigi/wikiluigi; set [http] user_agent to name your contact)",
        description="User-Agent sent to every wiki; public wikis ask for a contact address in it.",
    )
    timeout = luigi.FloatParameter(default=60.0, description="Seconds to wait for a response.")
    retries = luigi.IntParameter(default=6, description="Retries on connection errors, timeouts, 5xx, 429 and maxlag.")
    backoff = luigi.FloatParameter(default=1.0, description="First retry delay in seconds; it doubles each time.")
    max_backoff = luigi.FloatParameter(default=120.0, description="Longest wait between two tries, Retry-After included.")
    maxlag = luigi.IntParameter(default=5, description="maxlag sent with every request (0 to leave it out).")
    cache = luigi.BoolParameter(default=True, description="Keep responses in an SQLite cache under .cache/ of the data directory.")
    titles_per_request = luigi.IntParameter(default=50, description="Titles per content request; 50 is the API's limit for anonymous users.")


class fetch(luigi.Config):
    chunk_size = luigi.IntParameter(default=200, description="Pages per FetchPages/ProcessPages task.")


class pandoc(luigi.Config):
    timeout = luigi.FloatParameter(default=600.0, description="Seconds one pandoc process may take for a batch of pages.")


class convert(luigi.Config):
    page_timeout = luigi.FloatParameter(
        default=60.0, description="Seconds each step of one page's conversion (clean-up, pandoc, filters) may take.")
    page_memory = luigi.IntParameter(
        default=2048, description="MB of memory converting one page may take (pandoc's heap, the converter's growth).")
    engine = luigi.ChoiceParameter(default="auto", choices=["auto", "pandoc"], description=(
        "auto: the fast converter in Python, pandoc for the pages it does not cover; pandoc: every page through pandoc."))


class refresh(luigi.Config):
    max_removed = luigi.FloatParameter(default=0.1, description=(
        "Share of a manifest's pages a Refresh may remove (gone from the wiki or its categories); more stops "
        "it unless --allow-removal."))
    attic_days = luigi.FloatParameter(default=30.0, description=(
        "Days removed pages are kept in attic/ (so that a mistaken Refresh can be undone); 0 keeps them."))
    recent_changes_days = luigi.FloatParameter(default=30.0, description=(
        "A manifest refreshed within this many days asks list=recentchanges what changed since, where that "
        "is cheaper than listing every page again; 0: always list every page."))
