"""The relay's model endpoint client against a real HTTP server on loopback that answers badly:
every odd answer is a failed turn with a reason, never an exception into the conversation."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "files"))

from sparkrelay.upstream import Upstream

ANSWERS = {
    "null-message": (200, {"choices": [{"message": None}]}),
    "list-content": (200, {"choices": [{"message": {"content": [{"type": "text", "text": "x"}]}}]}),
    "no-choices": (200, {"id": "x"}),
    "not-json": (200, "<html>"),
    "refused": (400, {"error": "context length exceeded"}),
    "fine": (200, {"choices": [{"message": {"content": "hi", "reasoning_content": "hm"},
                                "finish_reason": "length"}], "usage": {"completion_tokens": 1}}),
}


@pytest.fixture(scope="module")
def server():
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            status, answer = ANSWERS[body["model"]]
            data = (answer if isinstance(answer, str) else json.dumps(answer)).encode()
            self.send_response(status)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def complete(url: str, model: str):
    async def run():
        upstream = Upstream(url, "", 10)
        try:
            return await upstream.complete(model, [{"role": "user", "content": "hi"}], {})
        finally:
            await upstream.close()
    return asyncio.run(run())


@pytest.mark.parametrize("model", ["null-message", "list-content", "no-choices", "not-json"])
def test_an_answer_that_is_not_a_chat_completion_is_a_failed_turn(server, model):
    reply = complete(server, model)
    assert reply.error and "not a chat completion" in reply.error and reply.content == ""


def test_an_http_error_is_a_failed_turn_with_the_status(server):
    assert complete(server, "refused").error.startswith("refused answered HTTP 400: ")


def test_a_reply_keeps_its_text_reasoning_and_finish_reason(server):
    reply = complete(server, "fine")
    assert (reply.content, reply.reasoning, reply.finish_reason, reply.error) == ("hi", "hm", "length", None)
