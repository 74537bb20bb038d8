"""Run the real `luigi` command line, as a user would, in a data directory of the test's own."""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Fast retries for tests that point at a wiki that is down; everything else keeps the shipped defaults.
TEST_CONFIG = """
[http]
user_agent = wikiluigi-tests/0.1 (tests@example.invalid)
retries = 1
backoff = 0.2
"""


def make_data_dir(folder: Path, manifests: dict[str, dict | str], config: str = TEST_CONFIG) -> Path:
    """A data directory with the given manifests (name -> YAML mapping or text) and a luigi.cfg."""
    originals = folder / "manifests" / "originals"
    originals.mkdir(parents=True, exist_ok=True)
    for name, body in manifests.items():
        text = body if isinstance(body, str) else yaml.safe_dump(body, allow_unicode=True)
        (originals / f"{name}.yaml").write_text(text, encoding="utf-8")
    (folder / "luigi.cfg").write_text(config, encoding="utf-8")
    return folder


def run_luigi(data_dir: Path, *args: str, timeout: float = 600, env: dict | None = None,
              check_returncode: int | None = None) -> subprocess.CompletedProcess:
    """`luigi --module wikiluigi ARGS` with the data directory as working directory."""
    luigi = Path(sys.executable).with_name("luigi")  # the console script pip installed beside python
    if "--lock-pid-dir" not in args:  # Luigi's pid lock is machine-wide, per command line: not across test runs
        args = (*args, "--lock-pid-dir", str(Path(tempfile.gettempdir()) / f"wikiluigi-test-locks-{os.getpid()}"))
    command = [str(luigi) if luigi.exists() else sys.executable, *([] if luigi.exists() else ["-m", "luigi"]),
               "--module", "wikiluigi", *args]
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})}
    environment.pop("LUIGI_CONFIG_PATH", None)
    result = subprocess.run(command, cwd=data_dir, capture_output=True, text=True, timeout=timeout, env=environment)
    if check_returncode is not None and result.returncode != check_returncode:
        raise AssertionError(f"luigi exited {result.returncode}, expected {check_returncode}:\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
    return result


def derived(data_dir: Path, name: str) -> dict:
    """The derived manifest's YAML, with its titles (one a line in the .titles.txt beside it) as "titles"."""
    folder = data_dir / "manifests" / "derived"
    document = yaml.safe_load((folder / f"{name}.yaml").read_text(encoding="utf-8"))
    document["titles"] = (folder / document["titles_file"]).read_text(encoding="utf-8").splitlines()
    return document


def files(folder: Path, suffix: str) -> dict[str, bytes]:
    """Every file with that suffix in a folder, name -> bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob(f"*{suffix}"))}


def revisions(folder: Path) -> dict[str, dict]:
    """title -> the last line about it in raw/<host>/revisions-<machine>.jsonl (each machine has its own)."""
    logs = sorted(folder.glob("revisions-*.jsonl"))
    lines = [line for log in logs for line in log.read_text(encoding="utf-8").splitlines()]
    return {entry["title"]: entry for entry in map(json.loads, lines)}
