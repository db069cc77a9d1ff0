"""A fault-injecting HTTP proxy in front of a real registry, on 127.0.0.1.

Each request is forwarded to the upstream registry; a `fault` callback may replace the
upstream's answer (status, headers, body) before it is sent, to test what the client does with
a lying or broken server. Requests seen are recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive", "content-length",
               "content-encoding"}


@dataclass
class Answer:
    """What the proxy is about to send; a fault may change any field."""

    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: bytes


Fault = Callable[[Answer], None]


@dataclass
class FaultProxy:
    upstream: str
    fault: Fault | None = None
    seen: list[str] = field(default_factory=list)

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream = requests.request(self.command, proxy.upstream + self.path,
                                            headers=headers, allow_redirects=False, timeout=30)
                answer = Answer(self.command, self.path, upstream.status_code,
                                {k: v for k, v in upstream.headers.items()
                                 if k.lower() not in _HOP_BY_HOP}, upstream.content)
                proxy.seen.append(f"{self.command} {self.path}")
                if proxy.fault:
                    proxy.fault(answer)
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)

            do_GET = do_HEAD = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
