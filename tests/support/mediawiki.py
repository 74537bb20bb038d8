"""A real MediaWiki (Debian's 1.39, SQLite, ``php -S``) on 127.0.0.1, built from an XML dump.

The MediaWiki code comes from ``scripts/install-mediawiki.sh`` (unpacked .debs, no Apache, no
database server). Each :class:`LocalMediaWiki` gets its own folder (on /dev/shm when there is one)
holding its SQLite files, caches, its own ``LocalSettings.php`` and its logs. The code folder is
shared, read-only, by every wiki: MediaWiki 1.39 reads the settings file named by the
``MW_CONFIG_FILE`` environment variable (``wfDetectLocalSettingsFile``), both in maintenance
scripts and under ``php -S``, so several wikis run side by side without copying or linking the
285 MB code tree.

Typical use (see ``tests/support/wiki_fixtures.py`` for the pytest fixtures)::

    wiki = LocalMediaWiki(FIXTURES / "startrek-dump.xml")
    wiki.start()                # install + import (a few seconds), then serve
    wiki.api_url                # "http://127.0.0.1:18931/api.php"
    wiki.page_text("Spock")     # current wikitext, read from the SQLite file
    wiki.mark_requests()        # forget the requests served so far
    ...                         # run the code under test against wiki.api_url
    wiki.served_requests()      # ["GET /api.php?action=query&...", ...]
    wiki.api_requests()         # [ApiRequest(method="POST", params={...}, status=200, ...)]
    wiki.requested_titles()     # ["Spock", "Worf"]: every titles= value, GET or POST
    wiki.stop()                 # kill the server, delete the folder

Only processes started here are ever signalled, by pid / process group id.
"""

from __future__ import annotations

import bz2
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import weakref
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pytest

from tests.support.processes import killpg_quiet, pick_port, port_is_free

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTALL_COMMAND = "bash scripts/install-mediawiki.sh"
DEFAULT_MEDIAWIKI_ROOT = Path.home() / ".cache" / "wikiluigi" / "mediawiki"
# Default ports are tried in this (uncommon) range; an explicit port is used as given or fails.
DEFAULT_PORT_RANGE = range(18931, 18999)
EXTENSIONS = "Cite,ParserFunctions,CategoryTree"
ADMIN_PASSWORD = "wikiluigi-local-test-admin-password"
REQUIRED_PHP_EXTENSIONS = ("pdo_sqlite", "intl", "mbstring", "xml")

# The readiness probe of start() carries this parameter; it is left out of the request lists.
PROBE_PARAM = "wikiluigiprobe"
_REQUEST_LINE = re.compile(
    r"^(?:\[(?P<pid>\d+)\] )?\[[^\]]*\] (?P<addr>\S+) \[(?P<status>\d{3})\]: (?P<method>[A-Z]+) (?P<uri>\S*)"
)
_ACCEPTED = re.compile(r"^(?:\[\d+\] )?\[[^\]]*\] \S+ Accepted$")
_CLOSING = re.compile(r"^(?:\[\d+\] )?\[[^\]]*\] \S+ Closing$")

# Loaded before every PHP script that `php -S` runs (auto_prepend_file): records the method, URI
# and the GET *and POST* parameters of each request as one JSON line, written when the request
# ends (a shutdown function), which is before php -S closes the connection.
_REQUEST_LOGGER_PHP = r"""<?php
if ( PHP_SAPI === 'cli-server' ) {
	$wikiluigiRequest = [
		'time' => microtime( true ),
		'pid' => getmypid(),
		'method' => $_SERVER['REQUEST_METHOD'] ?? '',
		'uri' => $_SERVER['REQUEST_URI'] ?? '',
		'script' => $_SERVER['SCRIPT_NAME'] ?? '',
		'get' => $_GET,
		'post' => $_POST,
	];
	register_shutdown_function( static function () use ( $wikiluigiRequest ) {
		$wikiluigiRequest['status'] = http_response_code();
		file_put_contents(
			%s,
			json_encode( $wikiluigiRequest, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PARTIAL_OUTPUT_ON_ERROR ) . "\n",
			FILE_APPEND | LOCK_EX
		);
	} );
}
"""


class _PortTaken(Exception):
    pass


class MediaWikiUnavailable(RuntimeError):
    """PHP or the unpacked MediaWiki is missing."""


def mediawiki_root() -> Path:
    """The MediaWiki code folder (holding api.php): $WIKILUIGI_MEDIAWIKI_ROOT or the default."""
    env = os.environ.get("WIKILUIGI_MEDIAWIKI_ROOT")
    return Path(env).expanduser() if env else DEFAULT_MEDIAWIKI_ROOT


def find_mediawiki() -> tuple[Path, str]:
    """Return (code folder, php executable) or raise MediaWikiUnavailable saying what to run."""
    root = mediawiki_root()
    hint = f"run `{INSTALL_COMMAND}` from the project root ({PROJECT_ROOT})"
    if os.environ.get("WIKILUIGI_MEDIAWIKI_ROOT"):
        hint += " with the same WIKILUIGI_MEDIAWIKI_ROOT"
    php = shutil.which("php")
    if php is None:
        raise MediaWikiUnavailable(f"no `php` on PATH: {hint}")
    for needed in ("api.php", "maintenance/install.php", "maintenance/importDump.php", "extensions/Cite"):
        if not (root / needed).exists():
            raise MediaWikiUnavailable(f"no unpacked MediaWiki at {root} (missing {needed}): {hint}")
    check = subprocess.run(
        [php, "-r", "echo implode(',', array_filter(%s, fn($e) => !extension_loaded($e)));"
         % ("[" + ",".join(f"'{e}'" for e in REQUIRED_PHP_EXTENSIONS) + "]")],
        capture_output=True, text=True,
    )
    if check.returncode != 0 or check.stdout.strip():
        raise MediaWikiUnavailable(
            f"PHP lacks extensions {check.stdout.strip() or check.stderr.strip()}: {hint}")
    return root, php


def require_mediawiki() -> tuple[Path, str]:
    """find_mediawiki(), or pytest.fail under CI=true, or pytest.skip elsewhere."""
    try:
        return find_mediawiki()
    except MediaWikiUnavailable as exc:
        problem = str(exc)
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"local MediaWiki unavailable under CI: {problem}", pytrace=False)
    pytest.skip(f"local MediaWiki unavailable: {problem}")




def _pick_port() -> int:
    return pick_port(DEFAULT_PORT_RANGE)


def _dump_sitename(dump: Path) -> str | None:
    opener = bz2.open if dump.suffix == ".bz2" else open
    with opener(dump, "rb") as f:
        head = f.read(8192).decode("utf-8", "replace")
    m = re.search(r"<sitename>([^<]+)</sitename>", head)
    return m.group(1).strip() if m else None


@dataclass
class ApiRequest:
    """One PHP request as seen by the auto_prepend logger (GET and POST parameters merged)."""

    method: str
    uri: str
    script: str
    status: int | None
    params: dict[str, str]
    pid: int | None = None
    time: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def titles(self) -> list[str]:
        """The `titles` parameter split on "|" (empty when absent)."""
        value = self.params.get("titles", "")
        return value.split("|") if value else []


class LocalMediaWiki:
    """A throw-away MediaWiki built from one XML dump, served by `php -S` on 127.0.0.1.

    Parameters
    ----------
    dump: a MediaWiki XML export, plain ``.xml`` or ``.xml.bz2``.
    port: the port to serve on; default: the first free one in 18931-18998. An explicit port that
        is taken raises at once.
    workers: PHP_CLI_SERVER_WORKERS for php -S (None/1: one process).
    sitename: the wiki's name; default: the dump's <sitename>. It also names the Project
        namespace, so it must not be a prefix of article titles ("Star Trek" would turn
        "Star Trek: Voyager" into a Project-namespace page).
    base_dir: where to create the wiki's folder; default /dev/shm (SQLite there is ~3x faster).
    extra_settings: PHP lines appended to LocalSettings.php.
    refresh_processes: refreshLinks.php processes run side by side (default: min(2, CPUs)).
    search_index: also fill the search index (rebuildtextindex.php) so list=search works.
    keep_main_page: keep the "Main Page" install.php creates even when the dump has none
        (by default it is deleted, so the wiki's pages are exactly the dump's).
    refresh_links: parse every page into the link tables (categories, links); False for pages that
        MediaWiki's own parser cannot take (hostile nesting overflows PHP's stack): the API still
        serves their wikitext, but category members are not known.
    """

    def __init__(
        self,
        dump: str | os.PathLike[str],
        *,
        port: int | None = None,
        workers: int | None = None,
        sitename: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        extra_settings: str = "",
        startup_timeout: float = 60.0,
        refresh_processes: int | None = None,
        search_index: bool = False,
        keep_main_page: bool = False,
        refresh_links: bool = True,
    ) -> None:
        self.dump = Path(dump).resolve()
        if not self.dump.is_file():
            raise FileNotFoundError(self.dump)
        self.code_dir, self.php = find_mediawiki()
        if port is not None and not port_is_free(port):
            raise RuntimeError(f"port {port} on 127.0.0.1 is already in use: pick another one")
        self.port: int = port if port is not None else _pick_port()
        self._auto_port = port is None
        self._served_once = False
        self.workers = workers
        self.sitename = sitename or _dump_sitename(self.dump) or "Wikiluigi Test Wiki"
        if base_dir is None:
            base_dir = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.base_dir = base_dir
        self.extra_settings = extra_settings
        self.startup_timeout = startup_timeout
        self.refresh_processes = refresh_processes or min(2, os.cpu_count() or 1)
        self.search_index = search_index
        self.keep_main_page = keep_main_page
        self.refresh_links = refresh_links
        self.dir: Path | None = None
        self.timings: dict[str, float] = {}
        self.import_output = ""
        self.refresh_output = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_file = None
        self._namespaces: dict[str, int] = {}
        self._ns_case: dict[int, str] = {}
        self._ns_names: dict[int, str] = {}
        self._log_marks = (0, 0)
        self._finalizer: weakref.finalize | None = None
        self._live_pids: list[int] = []

    # ---------------------------------------------------------------- paths & public properties
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api.php"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def settings_file(self) -> Path:
        return self._require_dir() / "LocalSettings.php"

    @property
    def db_file(self) -> Path:
        return self._require_dir() / "db" / "wiki.sqlite"

    @property
    def server_log(self) -> Path:
        """php -S's stderr (one line per request, with its URI, plus PHP errors)."""
        return self._require_dir() / "php-server.log"

    @property
    def request_log(self) -> Path:
        """JSON lines from the auto_prepend logger (parameters of GET and POST requests)."""
        return self._require_dir() / "requests.jsonl"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _require_dir(self) -> Path:
        if self.dir is None:
            raise RuntimeError("wiki not built yet: call start()")
        return self.dir

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MW_", "PHP_CLI_SERVER_"))}
        env["MW_CONFIG_FILE"] = str(self.settings_file)
        return env

    # ---------------------------------------------------------------- build
    def _maint(self, script: str, *args: str, stdin: bytes | None = None, timeout: float = 900) -> str:
        cmd = [self.php, f"maintenance/{script}", *args]
        res = subprocess.run(cmd, cwd=self.code_dir, env=self._env(), input=stdin,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        out = res.stdout.decode("utf-8", "replace")
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{out[-4000:]}")
        return out

    def build(self) -> None:
        """Install a fresh wiki and import the dump (no server). start() calls it when needed."""
        if self.dir is not None:
            return
        t_all = time.perf_counter()
        self.dir = Path(tempfile.mkdtemp(prefix="wikiluigi-mw-", dir=self.base_dir))
        self._log_marks = (0, 0)
        # Shared, mutable list: the finaliser kills whatever server is running at that time.
        self._live_pids: list[int] = []
        self._finalizer = weakref.finalize(self, _cleanup, self._live_pids, str(self.dir))
        try:
            for sub in ("db", "cache", "images", "tmp"):
                (self.dir / sub).mkdir()
            t = time.perf_counter()
            self._maint(
                "install.php", "--dbtype", "sqlite", "--dbpath", str(self.dir / "db"), "--dbname", "wiki",
                "--server", self.base_url, "--scriptpath", "", "--lang", "en", "--pass", ADMIN_PASSWORD,
                "--confpath", str(self.dir), "--extensions", EXTENSIONS, "--skins", "Vector",
                self.sitename, "Admin",
            )
            self.timings["install"] = time.perf_counter() - t
            d = str(self.dir)
            with open(self.settings_file, "a", encoding="utf-8") as f:
                f.write(
                    "\n# --- added by tests/support/mediawiki.py ---\n"
                    "$wgJobRunRate = 0;\n"
                    f"$wgCacheDirectory = {_php_str(d + '/cache')};\n"
                    f"$wgUploadDirectory = {_php_str(d + '/images')};\n"
                    f"$wgTmpDirectory = {_php_str(d + '/tmp')};\n"
                    "$wgEnableUploads = false;\n"
                    "$wgUseInstantCommons = false;\n"
                    "$wgShowExceptionDetails = true;\n"
                    + self.extra_settings + "\n"
                )
            (self.dir / "request-logger.php").write_text(
                _REQUEST_LOGGER_PHP % _php_str(str(self.dir / "requests.jsonl")), encoding="utf-8")

            t = time.perf_counter()
            dump = self.dump
            if dump.suffix == ".bz2":
                # importDump.php needs PHP's bz2 extension for .bz2 (Debian's php-bz2, not installed).
                dump = self.dir / "tmp" / dump.stem
                with bz2.open(self.dump, "rb") as src, open(dump, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            self.timings["decompress"] = time.perf_counter() - t
            t = time.perf_counter()
            # --no-updates: no links update per page during the import. refreshLinks.php below
            # parses every page once and fills the same link tables (checked: identical
            # categorylinks/pagelinks/templatelinks/redirect/category/page_props counts), so
            # each page is parsed once instead of twice (enwiki sample: 35 s instead of 60 s).
            self.import_output = self._maint("importDump.php", "--no-updates", str(dump))
            self.timings["importDump"] = time.perf_counter() - t
            if not self.keep_main_page and not _file_contains(dump, b"<title>Main Page</title>"):
                # install.php created "Main Page"; the dump has none: make the wiki hold only the dump.
                self._maint("deleteBatch.php", "-u", "Admin", "-r", "not in the dump",
                            stdin=b"Main Page\n")
            if dump != self.dump:
                dump.unlink()
            t = time.perf_counter()
            self._maint("runJobs.php")
            self.timings["runJobs"] = time.perf_counter() - t
            t = time.perf_counter()
            if self.refresh_links:
                self._refresh_links()
            self.timings["refreshLinks"] = time.perf_counter() - t
            t = time.perf_counter()
            if self.search_index:
                self._maint("rebuildtextindex.php")
                self.timings["rebuildtextindex"] = time.perf_counter() - t
                t = time.perf_counter()
            self._maint("initSiteStats.php", "--update")
            self.timings["initSiteStats"] = time.perf_counter() - t
        except BaseException:
            self._destroy()
            raise
        self.timings["build"] = time.perf_counter() - t_all

    def _refresh_links(self) -> None:
        """refreshLinks.php, split into page-id ranges of equal text size run side by side.

        Parsing dominates (~0.6 s per 180 KB enwiki article); CLI maintenance connections use
        BEGIN IMMEDIATE and PDO's 60 s busy timeout, so concurrent SQLite writers just queue.
        """
        con = sqlite3.connect(f"file:{self.db_file}?mode=ro", uri=True, timeout=30)
        try:
            rows = con.execute("SELECT page_id, page_len FROM page ORDER BY page_id").fetchall()
        finally:
            con.close()
        n = max(1, min(self.refresh_processes, len(rows)))
        if n == 1:
            self._maint("refreshLinks.php")
            return
        total = sum(length for _, length in rows) or 1
        ranges: list[tuple[int, int]] = []
        first, acc = rows[0][0], 0
        for i, (page_id, length) in enumerate(rows):
            acc += length
            if len(ranges) < n - 1 and acc >= total * (len(ranges) + 1) / n and i < len(rows) - 1:
                ranges.append((first, page_id))
                first = rows[i + 1][0]
        ranges.append((first, rows[-1][0]))
        procs = [
            subprocess.Popen([self.php, "maintenance/refreshLinks.php", str(a), "-e", str(b)],
                             cwd=self.code_dir, env=self._env(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for a, b in ranges
        ]
        self.refresh_output = "".join(p.communicate()[0].decode("utf-8", "replace") for p in procs)
        if any(p.returncode != 0 for p in procs):
            # Should not happen; redo it the plain way rather than leave holes in the link tables.
            self._maint("refreshLinks.php")

    # ---------------------------------------------------------------- serve
    def start(self) -> "LocalMediaWiki":
        """Build the wiki if needed, then serve it; returns once api.php answers.

        An explicit port that is taken fails at once. A port picked here that got taken before
        the first start (another test process) is replaced by a free one; after that the port
        never changes, so restart() and start() after stop_server() keep the same URL.
        """
        if self.running:
            return self
        self.build()
        for attempt in range(5):
            if not port_is_free(self.port):
                if self._auto_port and not self._served_once and attempt < 4:
                    self._move_to_port(_pick_port())
                    continue
                raise RuntimeError(f"port {self.port} on 127.0.0.1 is already in use: cannot start php -S")
            try:
                self._spawn()
            except _PortTaken:
                if self._auto_port and not self._served_once and attempt < 4:
                    self._move_to_port(_pick_port())
                    continue
                raise RuntimeError(f"port {self.port} on 127.0.0.1 is already in use: php -S could not "
                                   f"listen:\n{self._log_tail()}") from None
            self._served_once = True
            return self
        raise AssertionError("unreachable")

    def _move_to_port(self, port: int) -> None:
        self.port = port
        with open(self.settings_file, "a", encoding="utf-8") as f:
            f.write(f"$wgServer = {_php_str(self.base_url)};\n")

    def _spawn(self) -> None:
        assert self.dir is not None
        t = time.perf_counter()
        env = self._env()
        if self.workers and self.workers > 1:
            env["PHP_CLI_SERVER_WORKERS"] = str(self.workers)
        self._stderr_file = open(self.server_log, "ab")
        self._proc = subprocess.Popen(
            [self.php, "-d", f"auto_prepend_file={self.dir / 'request-logger.php'}",
             "-d", "display_errors=stderr",
             "-S", f"127.0.0.1:{self.port}", "-t", str(self.code_dir)],
            cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=self._stderr_file,
            stderr=self._stderr_file, start_new_session=True,  # own process group: workers die with it
        )
        self._live_pids.append(self._proc.pid)
        try:
            self._wait_ready()
        except BaseException:
            self.stop_server()
            raise
        self.timings["start"] = time.perf_counter() - t

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        url = self.api_url + "?" + urllib.parse.urlencode({
            "action": "query", "meta": "siteinfo", "siprop": "general|namespaces|namespacealiases",
            "format": "json", "formatversion": "2", PROBE_PARAM: "1"})
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                if "Address already in use" in self._log_tail():
                    raise _PortTaken()
                raise RuntimeError(
                    f"php -S on 127.0.0.1:{self.port} exited with {self._proc.returncode}:\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    info = json.load(r)
                self._read_namespaces(info["query"])
                return
            except (OSError, ValueError, KeyError) as exc:
                last = exc
                time.sleep(0.05)
        raise RuntimeError(f"api.php on 127.0.0.1:{self.port} did not answer in {self.startup_timeout}s "
                           f"({last}):\n{self._log_tail()}")

    def _read_namespaces(self, query: Mapping[str, Any]) -> None:
        names: dict[str, int] = {}
        case: dict[int, str] = {}
        display: dict[int, str] = {}
        for ns in query["namespaces"].values():
            case[ns["id"]] = ns.get("case", "first-letter")
            display[ns["id"]] = ns.get("name", "")
            for key in ("name", "canonical"):
                if ns.get(key):
                    names[_ns_key(ns[key])] = ns["id"]
        for alias in query.get("namespacealiases", []):
            names[_ns_key(alias["alias"])] = alias["id"]
        self._namespaces, self._ns_case, self._ns_names = names, case, display

    def _log_tail(self, n: int = 4000) -> str:
        try:
            return self.server_log.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop_server(self, timeout: float = 10.0) -> None:
        """Stop php -S (its whole process group, by id) but keep the wiki: start() serves it again."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _kill_group(proc.pid, proc, timeout)
            if proc.pid in self._live_pids:
                self._live_pids.remove(proc.pid)
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    def restart(self) -> "LocalMediaWiki":
        """Stop the server and serve the same wiki again (same port, data kept)."""
        t = time.perf_counter()
        self.stop_server()
        self.start()
        self.timings["restart"] = time.perf_counter() - t
        return self

    def stop(self) -> None:
        """Stop the server (its whole process group, by id) and delete the wiki's folder."""
        self.stop_server()
        self._destroy()

    def _destroy(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> "LocalMediaWiki":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<LocalMediaWiki {self.dump.name} on {self.api_url} dir={self.dir} running={self.running}>"

    # ---------------------------------------------------------------- requests served
    def mark_requests(self) -> None:
        """Forget the requests served so far: served_requests()/api_requests() start after this."""
        self._settle()
        self._log_marks = (_size(self.server_log), _size(self.request_log))

    def _settle(self, timeout: float = 1.0) -> None:
        # php -S logs "Accepted", the request line, then "Closing" before closing the socket, so
        # a finished client request is already logged; this waits out requests still in flight.
        deadline = time.monotonic() + timeout
        while True:
            text = _read_from(self.server_log, 0)
            # only the current server: a killed one may have left a request without "Closing"
            started = text.rfind(" Development Server (")
            lines = text[text.rfind("\n", 0, started) + 1:].splitlines() if started >= 0 else []
            accepted = sum(1 for line in lines if _ACCEPTED.match(line))
            closing = sum(1 for line in lines if _CLOSING.match(line))
            if accepted <= closing or time.monotonic() > deadline:
                return
            time.sleep(0.02)

    def served_requests(self, path: str | None = None) -> list[str]:
        """Request lines php -S logged since the last mark: "GET /api.php?action=...", "POST /api.php".

        POST bodies are not in php -S's log: use api_requests() for their parameters.
        `path` keeps only requests to that script, e.g. "/api.php".
        """
        self._settle()
        out = []
        for line in _read_from(self.server_log, self._log_marks[0]).splitlines():
            m = _REQUEST_LINE.match(line)
            if not m or f"{PROBE_PARAM}=" in m["uri"]:
                continue
            if path is None or urllib.parse.urlsplit(m["uri"]).path == path:
                out.append(f"{m['method']} {m['uri']}")
        return out

    def api_requests(self) -> list[ApiRequest]:
        """api.php requests since the last mark, with GET and POST parameters merged."""
        self._settle()
        out = []
        for line in _read_from(self.request_log, self._log_marks[1]).splitlines():
            if not line.strip():
                continue
            raw = json.loads(line)
            if not raw.get("script", "").endswith("/api.php") or PROBE_PARAM in (raw.get("get") or {}):
                continue
            params: dict[str, str] = {}
            for source in (raw.get("get"), raw.get("post")):
                if isinstance(source, dict):
                    params.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in source.items()})
            out.append(ApiRequest(method=raw.get("method", ""), uri=raw.get("uri", ""),
                                  script=raw.get("script", ""), status=raw.get("status"),
                                  params=params, pid=raw.get("pid"), time=raw.get("time"), raw=raw))
        return out

    def requested_titles(self) -> list[str]:
        """Every title asked for through `titles=` in api.php requests since the mark, in order."""
        return [t for r in self.api_requests() for t in r.titles]

    # ---------------------------------------------------------------- reading / editing the wiki
    def api(self, **params: Any) -> dict[str, Any]:
        """GET api.php (action=query unless given) with format=json&formatversion=2.
        This request goes through the server, so it is logged like any other."""
        query = {"action": "query", "format": "json", "formatversion": "2", **params}
        url = self.api_url + "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=60) as r:
            return json.load(r)

    def split_title(self, title: str) -> tuple[int, str]:
        """(namespace id, DB key) of a title, normalised the way MediaWiki does for en wikis."""
        if not self._namespaces:
            raise RuntimeError("namespaces unknown: start() the wiki first")
        text = re.sub(r"[ _]+", " ", title).strip()
        ns = 0
        if ":" in text:
            prefix, rest = text.split(":", 1)
            key = _ns_key(prefix)
            if key in self._namespaces:
                ns, text = self._namespaces[key], rest.strip()
        if text and self._ns_case.get(ns, "first-letter") == "first-letter":
            text = text[0].upper() + text[1:]
        return ns, text.replace(" ", "_")

    def page_text(self, title: str, *, follow_redirects: bool = False) -> str | None:
        """Current wikitext of `title` read from the SQLite file (not through the server, so it
        is not counted in served_requests). None when the page does not exist."""
        ns, dbkey = self.split_title(title)
        con = sqlite3.connect(f"file:{self.db_file}?mode=ro", uri=True, timeout=30)
        try:
            for _ in range(10 if follow_redirects else 1):
                row = con.execute(
                    "SELECT page_id, page_latest, page_is_redirect FROM page"
                    " WHERE page_namespace = ? AND page_title = ?", (ns, dbkey)).fetchone()
                if row is None:
                    return None
                page_id, rev_id, is_redirect = row
                if follow_redirects and is_redirect:
                    target = con.execute("SELECT rd_namespace, rd_title FROM redirect WHERE rd_from = ?",
                                         (page_id,)).fetchone()
                    if target:
                        ns, dbkey = target[0], _as_text(target[1])
                        continue
                break
            addr = con.execute(
                "SELECT content_address FROM slots JOIN content ON slot_content_id = content_id"
                " JOIN slot_roles ON slot_role_id = role_id"
                " WHERE slot_revision_id = ? AND role_name = 'main'", (rev_id,)).fetchone()
            if addr is None:
                raise RuntimeError(f"no main slot for revision {rev_id} of {title!r}")
            address = _as_text(addr[0])
            if not address.startswith("tt:"):
                raise RuntimeError(f"unsupported content address {address!r}")
            text, flags = con.execute("SELECT old_text, old_flags FROM text WHERE old_id = ?",
                                      (int(address[3:]),)).fetchone()
        finally:
            con.close()
        data = text if isinstance(text, bytes) else str(text).encode("utf-8")
        flag_set = set(_as_text(flags).split(",")) if flags else set()
        if "gzip" in flag_set:
            data = zlib.decompress(data, -15)
        if flag_set & {"object", "external"}:
            raise RuntimeError(f"unsupported text flags {flag_set} for {title!r}")
        return data.decode("utf-8")

    def page_titles(self, namespace: int | None = None) -> list[str]:
        """Every page title in the DB ("Category:Vulcans", "Spock", ...), sorted."""
        con = sqlite3.connect(f"file:{self.db_file}?mode=ro", uri=True, timeout=30)
        try:
            if namespace is None:
                rows = con.execute("SELECT page_namespace, page_title FROM page").fetchall()
            else:
                rows = con.execute("SELECT page_namespace, page_title FROM page WHERE page_namespace = ?",
                                   (namespace,)).fetchall()
        finally:
            con.close()
        out = []
        for ns, t in rows:
            t = _as_text(t).replace("_", " ")
            prefix = self._ns_names.get(ns, "")
            out.append(f"{prefix}:{t}" if prefix else t)
        return sorted(out)

    def edit_page(self, title: str, text: str, summary: str = "wikiluigi test edit") -> None:
        """Save a new revision of `title` (maintenance/edit.php; applies MediaWiki's pre-save
        transform, which strips trailing whitespace). Works while the server runs."""
        self._maint("edit.php", "--summary", summary, "--user", "Admin", title,
                    stdin=text.encode("utf-8"))


# -------------------------------------------------------------------- helpers
def _php_str(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ns_key(name: str) -> str:
    return re.sub(r"[ _]+", " ", name).strip().lower()


def _as_text(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _file_contains(p: Path, needle: bytes) -> bool:
    with open(p, "rb") as f:
        tail = b""
        while chunk := f.read(1 << 20):
            if needle in tail + chunk:
                return True
            tail = chunk[-len(needle):]
    return False


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _read_from(p: Path, offset: int) -> str:
    try:
        with open(p, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _kill_group(pgid: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM the process group led by `pgid` (php -S and its PHP_CLI_SERVER_WORKERS children),
    SIGKILL what is left after `timeout`, and reap our child."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    if proc is not None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            killpg_quiet(pgid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    # Orphaned workers are reparented and reaped by init: wait until the group is gone.
    deadline = time.monotonic() + timeout
    killed = False
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            if killed:
                return
            killpg_quiet(pgid, signal.SIGKILL)
            killed = True
            deadline = time.monotonic() + timeout
        time.sleep(0.02)




def _cleanup(pids: list[int], directory: str) -> None:
    """Finaliser: used if a LocalMediaWiki is dropped or the interpreter exits without stop()."""
    for pid in list(pids):
        _kill_group(pid, None, 2.0)
    shutil.rmtree(directory, ignore_errors=True)


def parse_dump(path: str | os.PathLike[str]) -> dict[str, str]:
    """{title: wikitext of the last revision} of an XML dump (.xml or .xml.bz2), as in the file."""
    import xml.etree.ElementTree as ET

    path = Path(path)
    opener = bz2.open if path.suffix == ".bz2" else open
    out: dict[str, str] = {}
    with opener(path, "rb") as f:
        title = None
        text = None
        for _event, elem in ET.iterparse(f, events=("end",)):
            tag = elem.tag.rsplit("}", 1)[-1]
            if tag == "title":
                title = elem.text or ""
            elif tag == "text":
                text = elem.text or ""
            elif tag == "page":
                if title is not None:
                    out[title] = text or ""
                title = text = None
                elem.clear()
    return out

