"""A hand-written HTTP server for the faults a real MediaWiki can't be made to produce on demand:
dropped connections, 429 with Retry-After, 503, maxlag errors and HTML answers. Everything else is
tested against the real MediaWiki (tests/support/mediawiki.py)."""
import http.server
import json
import threading
from urllib.parse import parse_qs, urlsplit


class FaultServer:
    """Answers requests from a script: each entry is ("drop",), (status, headers, body) or a callable
    taking the query dict and returning one of those. The last entry repeats."""

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
                server.requests.append(query)
                step = server.script[min(len(server.requests), len(server.script)) - 1]
                if callable(step):
                    step = step(query)
                if step[0] == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)  # the client sees the connection dropped
                    return
                status, headers, body = step
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json; charset=utf-8", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/api.php"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
