"""A small OpenAI-compatible HTTP server on loopback whose failures a test scripts.

Each POST takes the next behaviour from ``plan`` (then answers normally): ``500``, ``429``,
``hang`` (answers after the client's timeout), ``close`` (drops the connection), ``malformed``
(200 with a cut JSON body), ``400``. Every request is recorded, so tests can bound counts.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultServer:
    def __init__(self, model: str = "tiny", max_model_len: int = 4096, delay_s: float = 0.0, hang_s: float = 1.5):
        self.model, self.max_model_len, self.delay_s, self.hang_s = model, max_model_len, delay_s, hang_s
        self.plan: list[str] = []
        self.always: str | None = None  # a behaviour for every request (a broken endpoint)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    data = {"object": "list", "data": [{"id": server.model, "object": "model",
                                                        "max_model_len": server.max_model_len}]}
                    self._send(200, json.dumps(data).encode())
                else:
                    self._send(404, b"{}")

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server.lock:
                    behaviour = server.always or (server.plan.pop(0) if server.plan else "ok")
                    server.requests.append({"path": self.path, "body": body, "behaviour": behaviour})
                if "TOO LONG" in json.dumps(body):
                    behaviour = "400"
                if server.delay_s:
                    time.sleep(server.delay_s)
                if behaviour == "500":
                    self._send(500, b'{"error": "boom"}')
                elif behaviour == "429":
                    self._send(429, b'{"error": "slow down"}', {"Retry-After": "0"})
                elif behaviour == "400":
                    self._send(400, b'{"error": "maximum context length exceeded"}')
                elif behaviour == "hang":
                    time.sleep(server.hang_s)
                    with contextlib.suppress(OSError):  # the client has given up by now
                        self._send(200, b"{}")
                elif behaviour == "close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif behaviour == "malformed":
                    self._send(200, b'{"choices": [{"text": "cut')
                else:
                    self._send(200, json.dumps(self._answer(body)).encode())

            def _answer(self, body):
                usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
                if "messages" in body:
                    message = {"role": "assistant", "content": "The answer is \\boxed{4}.",
                               "reasoning_content": "2+2 is 4."}
                    return {"id": "x", "object": "chat.completion", "model": server.model, "usage": usage,
                            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
                return {"id": "x", "object": "text_completion", "model": server.model, "usage": usage,
                        "choices": [{"index": 0, "text": "<think>2+2</think>The answer is \\boxed{4}.",
                                     "finish_reason": "stop"}]}

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def posts(self) -> list[dict]:
        with self.lock:
            return list(self.requests)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
