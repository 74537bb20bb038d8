"""Hand-written HTTP servers for the faults a real MediaWiki can't be made to produce on demand: dropped
connections, bodies cut short, 429 and 503 with Retry-After, 502 pages in HTML, maxlag errors, a
`continue` that repeats, a 414 for long URLs, an answer too slow. They are the only hand-written
servers of the tests, and only for faults: everything else is tested against the real MediaWiki
(tests/support/mediawiki.py).

- FaultServer answers from a script (unit tests of the API client).
- FaultProxy stands in front of the real local MediaWiki and passes its answers on, spoiling some of them
  as its plan says: a scrape through it must end with the same pages as a scrape of the wiki itself.
"""
import http.client
import http.server
import itertools
import json
import threading
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

MAXLAG_ERROR = {"error": {"code": "maxlag", "info": "Waiting for a database server: 7 seconds lagged."}}
BAD_GATEWAY = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"

# The faults FaultProxy knows, each spoiling one answer.
FAULTS = ("drop", "cut_body", "cut_json", "429", "503", "502_html", "maxlag")  # and "stall", on demand


class _Server:
    """A threading HTTP server on 127.0.0.1, a free port, started and stopped as a context manager."""

    def __init__(self, handler_class):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/api.php"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.thread.join()
        self.httpd.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def read_query(self) -> dict:
        """GET and POST parameters merged, last value of each."""
        query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        if self.command == "POST":
            length = int(self.headers.get("Content-Length", 0))
            self.body = self.rfile.read(length)
            query.update(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))
        else:
            self.body = b""
        return query

    def drop(self) -> None:
        self.close_connection = True
        self.connection.shutdown(2)  # the client sees the connection dropped

    def answer(self, status: int, headers: dict, body, cut_at: int | None = None, length: int | None = None):
        """Send an answer; `cut_at` sends only that many bytes of it and closes (under the full length, or
        under `length` when given)."""
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for key, value in {"Content-Type": "application/json; charset=utf-8", **headers}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload) if length is None else length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload if cut_at is None else payload[:cut_at])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


class FaultServer(_Server):
    """Answers requests from a script: each entry is ("drop",), (status, headers, body) or a callable
    taking the query dict and returning one of those. The last entry repeats."""

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[dict] = []
        server = self

        class Handler(_Handler):
            def do_GET(self):
                query = self.read_query()
                server.requests.append(query)
                step = server.script[min(len(server.requests), len(server.script)) - 1]
                if callable(step):
                    step = step(query)
                if step[0] == "drop":
                    return self.drop()
                self.answer(*step)

            do_POST = do_GET

        super().__init__(Handler)


class FaultProxy(_Server):
    """A proxy in front of a real api.php that spoils answers as planned.

    plan: the fault of each request in turn (a name of FAULTS, or None to pass the answer on); once it
    runs out, every answer passes. `itertools.cycle` makes a plan that never runs out.
    max_query_bytes: a GET whose query string is longer gets 414, as many servers and proxies do.
    loop_continue: every answer says `continue` with the same value (a server bug): a client that
    follows it would ask for ever.
    stall_seconds: how long a "stall" keeps the client waiting before the real answer.
    """

    def __init__(self, upstream_api_url: str, plan=(), max_query_bytes: int | None = None,
                 loop_continue: bool = False, stall_seconds: float = 2.0):
        self.upstream = urlsplit(upstream_api_url)
        self.plan = iter(plan)
        self.max_query_bytes = max_query_bytes
        self.loop_continue = loop_continue
        self.stall_seconds = stall_seconds
        self.lock = threading.Lock()
        self.log: list[tuple[str, dict, str | None]] = []   # (method, query, fault served)
        proxy = self

        class Handler(_Handler):
            def do_GET(self):
                query = self.read_query()
                with proxy.lock:
                    fault = next(proxy.plan, None)
                    if (self.command == "GET" and proxy.max_query_bytes
                            and len(urlsplit(self.path).query) > proxy.max_query_bytes):
                        fault = "414"
                    proxy.log.append((self.command, query, fault))
                proxy.serve(self, query, fault)

            do_POST = do_GET

        super().__init__(Handler)

    def faults_served(self) -> list[str]:
        return [fault for _, _, fault in self.log if fault]

    def serve(self, handler: _Handler, query: dict, fault: str | None) -> None:
        if fault == "drop":
            return handler.drop()
        if fault == "429":
            return handler.answer(429, {"Retry-After": "1", "Content-Type": "text/plain"}, b"Too many requests")
        if fault == "503":
            return handler.answer(503, {"Retry-After": "1", "Content-Type": "text/plain"}, b"Service unavailable")
        if fault == "502_html":
            return handler.answer(502, {"Content-Type": "text/html"}, BAD_GATEWAY)
        if fault == "414":
            return handler.answer(414, {"Content-Type": "text/html"}, b"<html><h1>414 URI Too Long</h1></html>")
        if fault == "maxlag":
            return handler.answer(200, {"Retry-After": "1", "X-Database-Lag": "7"}, MAXLAG_ERROR)
        if fault == "stall":
            time.sleep(self.stall_seconds)
        status, content_type, body = self.forward(handler, query)
        if self.loop_continue and "json" in content_type:
            document = json.loads(body)
            document["continue"] = {"cmcontinue": "page|4c4f4f50|1", "rvcontinue": "1|1", "continue": "-||"}
            body = json.dumps(document).encode()
        headers = {"Content-Type": content_type}
        if fault == "cut_body":  # the full length promised, half of it sent: the client sees IncompleteRead
            return handler.answer(status, headers, body, cut_at=len(body) // 2)
        if fault == "cut_json":  # a complete answer whose JSON stops halfway
            return handler.answer(status, headers, body[:len(body) // 2])
        handler.answer(status, headers, body)

    def forward(self, handler: _Handler, query: dict) -> tuple[int, str, bytes]:
        """The real wiki's answer to the same request (without the looping `continue`, if any)."""
        if self.loop_continue:
            query = {k: v for k, v in query.items() if k not in ("cmcontinue", "rvcontinue", "continue")}
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
        try:
            headers = {"User-Agent": handler.headers.get("User-Agent", "")}
            if handler.command == "POST":
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                connection.request("POST", self.upstream.path, body=urlencode(query), headers=headers)
            else:
                connection.request("GET", f"{self.upstream.path}?{urlencode(query)}", headers=headers)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            connection.close()


def every_request_spoiled_once(faults=FAULTS):
    """A plan in which each fault in turn spoils one request and the request after it passes: every
    call of a client that retries meets one fault, and every kind of fault is met."""
    return itertools.cycle(itertools.chain.from_iterable((fault, None) for fault in faults))
