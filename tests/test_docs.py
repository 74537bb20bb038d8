"""The README can't drift: every setting, manifest key and task it should document is in it."""
import re
import shlex
from pathlib import Path

import luigi
import pytest

import wikiluigi
from wikiluigi import config
from wikiluigi.sources import manifest

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


def _readme_commands(prefix: str) -> list[str]:
    return [line.strip() for line in README.splitlines() if line.startswith("    ") and prefix in line]


def test_ci_runs_the_readmes_test_command():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    [command] = _readme_commands("bash scripts/install.sh &&")
    install, test = (part.strip() for part in command.split("&&"))
    assert install in ci
    assert test in ci  # CI may add flags after it, never another command


def test_the_readmes_set_up_scripts_exist():
    root = Path(__file__).resolve().parents[1]
    for command in _readme_commands("bash scripts/"):
        for script in re.findall(r"bash (scripts/\S+)", command):
            assert (root / script).is_file(), script


def test_the_help_texts_luigi_commands_parse():
    """`wikiluigi --help` shows luigi command lines: Luigi must accept every flag in them."""
    from luigi.cmdline_parser import CmdlineParser

    from wikiluigi import cli

    commands = [shlex.split(line.strip().split("  ")[0]) for line in cli.RUN_HELP.splitlines()
                if line.strip().startswith("luigi --module wikiluigi")]
    assert len(commands) >= 2
    for command in commands:
        args = [a for a in command[3:] if a != "--local-scheduler"]
        with CmdlineParser.global_instance(args) as parser:
            task = parser.get_task_obj()
        assert task.task_family == args[0]
