"""The README can't drift: every setting, manifest key and task it should document is in it."""
from pathlib import Path

import luigi
import pytest

import wikiluigi
from wikiluigi import config, manifest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
SECTIONS = [config.wikiluigi, config.http, config.fetch, config.pandoc]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.__name__)
def test_every_luigi_cfg_option_is_in_the_readme(section):
    for name, _ in section.get_params():
        assert f"| `[{section.__name__}]` | `{name}` |" in README, f"[{section.__name__}] {name}"


def test_every_shipped_default_is_a_documented_option():
    shipped = luigi.configuration.LuigiConfigParser()
    shipped.read(config.DEFAULTS)
    for section in ("wikiluigi", "http", "fetch", "pandoc"):
        for option in shipped.options(section):
            assert f"| `[{section}]` | `{option}` |" in README, f"[{section}] {option}"


def test_every_manifest_key_is_in_the_readme():
    for key in manifest.KEYS:
        assert f"| `{key}` |" in README, key


def test_every_task_is_in_the_readme():
    for name in wikiluigi.tasks.__all__:
        assert f"`{name}" in README, name


def test_every_shipped_manifest_is_in_the_readme():
    for name in manifest.available():
        assert f"| `{name}` |" in README, name
