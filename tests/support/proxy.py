"""A fault-injecting HTTP proxy in front of a real registry, on 127.0.0.1.

Each request is forwarded to the upstream registry; a `fault` callback may change the
upstream's answer before it is sent (status, headers, body, and how the body is delivered:
cut off after some bytes, or stalled), and `request_fault` may change the request's headers
(e.g. drop Range). Every request is recorded with its Range and Authorization headers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive", "content-length",
               "content-encoding"}


@dataclass
class Answer:
    """What the proxy is about to send; a fault may change any field.

    `cut_after`: send only that many body bytes, then drop the connection (Content-Length
    still announces the whole body). `stall`: seconds to wait after the first half of the body.
    `content_length`: announce this instead of len(body).
    """

    method: str
    path: str
    request_headers: dict[str, str]
    status: int
    headers: dict[str, str]
    body: bytes
    cut_after: int | None = None
    stall: float = 0.0
    content_length: int | None = None


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    range: str | None
    authorization: bool


@dataclass
class FaultProxy:
    upstream: str
    fault: Callable[[Answer], None] | None = None
    request_fault: Callable[[str, dict[str, str]], None] | None = None
    seen: list[Seen] = field(default_factory=list)

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                proxy.seen.append(Seen(self.command, self.path, headers.get("Range"),
                                       "Authorization" in headers))
                if proxy.request_fault:
                    proxy.request_fault(self.path, headers)
                upstream = requests.request(self.command, proxy.upstream + self.path,
                                            headers=headers, allow_redirects=False, timeout=30)
                answer = Answer(self.command, self.path, headers, upstream.status_code,
                                {k: v for k, v in upstream.headers.items()
                                 if k.lower() not in _HOP_BY_HOP}, upstream.content)
                if proxy.fault:
                    proxy.fault(answer)
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                length = answer.content_length
                self.send_header("Content-Length", str(len(answer.body) if length is None
                                                       else length))
                self.end_headers()
                if self.command == "HEAD":
                    return
                body = answer.body
                if answer.cut_after is not None:
                    self.wfile.write(body[:answer.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if answer.stall:
                    half = len(body) // 2
                    self.wfile.write(body[:half])
                    self.wfile.flush()
                    time.sleep(answer.stall)
                    body = body[half:]
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_HEAD = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def requests_for(self, suffix: str) -> list[Seen]:
        """Requests whose path ends with `suffix` (e.g. a blob digest)."""
        return [s for s in self.seen if s.path.endswith(suffix)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
