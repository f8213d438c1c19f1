"""A small OpenAI-compatible HTTP server for deterministic tests and fault injection.

Replies depend on the prompt's role (student / reference answer / tutor), so a flow run through it
yields predictable conversations. ``fail_when`` maps a substring of the prompt to an HTTP status the
server answers with instead, to fail chosen rows.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STUDENT = "I don't get how to find the gradient here. Can you just tell me?"
REFERENCE = "The gradient is (2x, 2y), so at (1, 2) it is (2, 4)."
TUTOR = "Good question. What do you notice about how the function changes when only x varies?"


class FakeOpenAI:
    def __init__(self, models=("fake-model",), api_key: str | None = None):
        self.models = list(models)
        self.api_key = api_key
        self.fail_when: dict[str, int] = {}
        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def reply_for(self, messages: list[dict]) -> str:
        system = " ".join(m.get("content", "") for m in messages if m.get("role") == "system")
        if "Socratic" in system:
            return TUTOR
        if "mathematician" in system:
            return REFERENCE
        return STUDENT

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    self._send(401, {"error": {"message": "invalid api key", "type": "auth"}})
                    return False
                return True

            def do_GET(self):
                if not self._authorised():
                    return
                if self.path.rstrip("/").endswith("/v1/models"):
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in fake.models]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                fake.requests += 1
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if not self._authorised():
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}})
                    return
                prompt = json.dumps(body.get("messages", []))
                for needle, status in fake.fail_when.items():
                    if needle in prompt:
                        self._send(status, {"error": {"message": f"injected failure {status}"}})
                        return
                content = fake.reply_for(body.get("messages", []))
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{fake.requests}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", ""),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                    },
                )

        return Handler

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
