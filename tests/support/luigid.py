"""A real Luigi central scheduler (`luigid`) on 127.0.0.1 for the tests, and the `luigi` command run against it.

Loaded by tests/conftest.py (``pytest_plugins``). The ``luigid`` fixture is a function that starts one::

    def test_x(luigid, tmp_path):
        scheduler = luigid(resources={"wiki_api_127_0_0_1_18931": 8})   # started, answering
        run_luigi(data_dir, "Wikipedia", "--manifest", "trek", *scheduler.worker_args)
        scheduler.task_list("DONE")                                         # {task_id: task, ...}

luigid reads its own luigi.cfg (here one written to its folder and named by LUIGI_CONFIG_PATH): the
scheduler settings *and* ``[resources]`` live there, because resources are counted by the scheduler. A
``[resources]`` section in the workers' luigi.cfg only counts with ``--local-scheduler``.

State, logs and config live in a temporary folder; the server is stopped by its pid (never by name) at the
end of the test, and the port is waited on until it is free again.
"""
from __future__ import annotations

import configparser
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.support import processes
from tests.support.processes import killpg_quiet, port_is_free

from tests.support.luigi_cli import PROJECT_ROOT

# Uncommon ports, away from luigid's 8082 and the local MediaWikis' 18931-18998.
PORT_RANGE = range(18431, 18499)

# DONE tasks stay visible for an hour (luigid's default is 10 minutes); workers count as gone after 60 s.
BASE_CONFIG = """\
[scheduler]
remove_delay = 3600
worker_disconnect_delay = 60
record_task_history = false
"""




def _merged(*texts: str) -> str:
    """luigi.cfg texts as one, a later option overriding an earlier one of the same section."""
    parser = configparser.ConfigParser(interpolation=None)
    for text in texts:
        parser.read_string(text)
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def pick_port() -> int:
    return processes.pick_port(PORT_RANGE)


def resource_name(host: str) -> str:
    """The Luigi resource that caps API requests to a wiki host, as wikiluigi names it: wiki_api_<host>,
    every character other than a letter or digit made '_' (127.0.0.1:18931 -> wiki_api_127_0_0_1_18931)."""
    return "wiki_api_" + re.sub(r"[^A-Za-z0-9]", "_", host)


def luigi_command() -> list[str]:
    luigi = Path(sys.executable).with_name("luigi")  # the console script pip installed beside python
    return [str(luigi)] if luigi.exists() else [sys.executable, "-m", "luigi"]


def luigi_env(env: dict | None = None) -> dict[str, str]:
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})}
    environment.pop("LUIGI_CONFIG_PATH", None)  # the data directory's luigi.cfg is the user's config
    return environment


def start_luigi(data_dir: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """`luigi --module wikiluigi ARGS` started in the data directory, not waited for: .communicate() it.
    Like tests.support.luigi_cli.run_luigi, for runs that must overlap with something else."""
    return subprocess.Popen([*luigi_command(), "--module", "wikiluigi", *args], cwd=data_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=luigi_env(env),
                            start_new_session=True)


def finish(process: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    """Wait for a start_luigi() process; on timeout kill its process group (ours) and fail."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        killpg_quiet(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(f"luigi did not finish in {timeout} s:\n{stdout[-4000:]}\n{stderr[-8000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)




class LuigidError(RuntimeError):
    pass


class Luigid:
    """One `luigid` process: state, logs and luigi.cfg in `folder`, listening on 127.0.0.1:`port`."""

    def __init__(self, folder: Path, *, port: int | None = None, resources: dict[str, int] | None = None,
                 config: str = "", startup_timeout: float = 30.0) -> None:
        self.folder = Path(folder)
        if port is not None and not port_is_free(port):
            raise LuigidError(f"port {port} on 127.0.0.1 is already in use: pick another one")
        self.port = port if port is not None else pick_port()
        self.resources = dict(resources or {})
        self.config = config
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None

    # ------------------------------------------------------------------ paths and addresses
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def visualiser_url(self) -> str:
        return f"{self.url}/static/visualiser/index.html"

    @property
    def worker_args(self) -> list[str]:
        """The `luigi` options that send a run to this scheduler."""
        return ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(self.port)]

    @property
    def config_file(self) -> Path:
        return self.folder / "luigi.cfg"

    @property
    def state_path(self) -> Path:
        return self.folder / "state.pickle"

    @property
    def logdir(self) -> Path:
        return self.folder / "logs"

    @property
    def log_file(self) -> Path:
        return self.logdir / "luigi-server.log"

    def log(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------ life cycle
    def start(self) -> "Luigid":
        if self.process is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        self.logdir.mkdir(exist_ok=True)  # luigid --logdir fails when the folder is missing
        text = _merged(BASE_CONFIG, self.config)  # the test's settings override the base ones
        if self.resources:
            text += "\n[resources]\n" + "".join(f"{name} = {amount}\n" for name, amount in self.resources.items())
        self.config_file.write_text(text, encoding="utf-8")
        luigid = Path(sys.executable).with_name("luigid")
        command = [str(luigid)] if luigid.exists() else [sys.executable, "-c",
                                                          "from luigi.cmdline import luigid; luigid()"]
        command += ["--port", str(self.port), "--address", "127.0.0.1", "--state-path", str(self.state_path),
                    "--logdir", str(self.logdir)]
        env = {**os.environ, "LUIGI_CONFIG_PATH": str(self.config_file)}
        self._stderr = open(self.folder / "luigid.stderr", "wb")
        # cwd = its own folder, so no stray ./luigi.cfg is read; a session of its own, so it is signalled alone.
        self.process = subprocess.Popen(command, cwd=self.folder, env=env, stdin=subprocess.DEVNULL,
                                        stdout=self._stderr, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                output = (self.folder / "luigid.stderr").read_text(errors="replace")
                code, self.process = self.process.returncode, None
                self._stderr.close()
                raise LuigidError(f"luigid exited {code} as it started (port {self.port}):\n{output[-4000:]}\n"
                                  f"{self.log()[-4000:]}")
            try:
                self.api("task_list", timeout=2)
                return self
            except (OSError, LuigidError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise LuigidError(f"luigid did not answer on {self.url} within {self.startup_timeout} s:\n"
                                  f"{self.log()[-4000:]}")
            time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM luigid (it saves its state and exits), SIGKILL if it hangs, then wait for the port."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=timeout)
            self._stderr.close()
        deadline = time.monotonic() + timeout
        while not port_is_free(self.port):  # a luigid with many tasks takes a while to let go of it
            if time.monotonic() > deadline:
                raise LuigidError(f"port {self.port} still busy {timeout} s after luigid stopped")
            time.sleep(0.05)

    # ------------------------------------------------------------------ the JSON API
    def api(self, method: str, timeout: float = 10, **data: Any) -> Any:
        """GET /api/<method>?data=<json> -> the "response" of luigid's answer."""
        query = urllib.parse.urlencode({"data": json.dumps(data)})
        try:
            with urllib.request.urlopen(f"{self.url}/api/{method}?{query}", timeout=timeout) as answer:
                body = json.loads(answer.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            raise LuigidError(f"luigid answered {error.code} to {method}: {error.read()[:2000]!r}") from error
        if "response" not in body:
            raise LuigidError(f"luigid's answer to {method} has no 'response': {body!r}")
        return body["response"]

    def task_list(self, status: str = "", **data: Any) -> dict[str, dict]:
        """{task_id: task} with that status (DONE, RUNNING, PENDING, FAILED, ...; '' for every one).
        Each task has name, params, status, progress_percentage, status_message, worker_running..."""
        return self.api("task_list", status=status, upstream_status="", search=None, limit=False, **data)

    def all_tasks(self) -> dict[str, dict]:
        """Every task luigid knows, whatever its status (task_list asks for one status at a time)."""
        tasks: dict[str, dict] = {}
        for status in ("PENDING", "RUNNING", "DONE", "FAILED", "DISABLED", "BATCH_RUNNING", "UNKNOWN"):
            for task_id, task in self.task_list(status).items():
                tasks[task_id] = {**task, "status": task.get("status", status)}
        return tasks

    def worker_list(self) -> list[dict]:
        return self.api("worker_list")

    def resource_list(self) -> list[dict]:
        return self.api("resource_list")


@pytest.fixture
def luigid(tmp_path_factory) -> Iterator[Callable[..., Luigid]]:
    """start(resources=None, config="", port=None) -> a started luigid; every one is stopped after the test."""
    started: list[Luigid] = []

    def start(resources: dict[str, int] | None = None, config: str = "", port: int | None = None) -> Luigid:
        folder = tmp_path_factory.mktemp("luigid")
        scheduler = Luigid(folder, port=port, resources=resources, config=config)
        started.append(scheduler)
        return scheduler.start()

    try:
        yield start
    finally:
        errors = []
        for scheduler in started:
            try:
                scheduler.stop()
            except LuigidError as error:
                errors.append(str(error))
        if errors:
            raise LuigidError("; ".join(errors))
