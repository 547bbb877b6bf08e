"""The relay (files/sparkrelay) on loopback in front of the stand-in model server, run by the
Python of the proxy's image (the LiteLLM venv: the same Starlette, httpx and MCP SDK).

What each participant was sent is read from the stand-in's request log, so "every participant
sees what the others said" is checked on the wire, not in the relay's own record.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopback_servers import REPO, free_port, standin_server, stop, wait_until_up

MODELS = ("gpt-oss-120b", "qwen3-30b")
TURN_TIMEOUT = 3


@dataclass
class Upstream:
    port: int
    request_log: Path
    fault_dir: Path

    def requests(self) -> list[dict[str, Any]]:
        lines = self.request_log.read_text().splitlines() if self.request_log.exists() else []
        return [json.loads(line)["body"] for line in lines
                if json.loads(line)["path"] == "/v1/chat/completions"]


class RelayProcess:
    """The relay as the host runs it (``python3 -m sparkrelay``), restartable over one data dir."""

    def __init__(self, python: Path, workdir: Path, upstream: Upstream) -> None:
        self.python, self.workdir = python, workdir
        self.port, self.key = free_port(), secrets.token_urlsafe(24)
        self.data_dir = workdir / "conversations"
        self.log = workdir / "relay.log"
        self.config = workdir / "relay.json"
        self.models_file = workdir / "models.json"
        self.models_file.write_text(json.dumps({MODELS[0]: {"context_tokens": 131072}}))
        self.config.write_text(json.dumps({
            "upstream_url": f"http://127.0.0.1:{upstream.port}/v1",
            "models_file": str(self.models_file),
            "default_context_tokens": 8192, "turn_timeout": TURN_TIMEOUT,
            "max_message_chars": 20000, "max_rounds": 10, "max_participants": 4,
            "max_tokens": 4096, "default_max_tokens": 256, "max_body_bytes": 200000,
            "data_dir": str(self.data_dir), "listen_address": "127.0.0.1", "port": self.port}))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "RELAY_CONFIG": str(self.config), "RELAY_API_KEY": self.key,
               "RELAY_UPSTREAM_KEY": "", "PYTHONPATH": str(REPO / "files"),
               "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        with self.log.open("a") as output:
            self.process = subprocess.Popen([str(self.python), "-m", "sparkrelay"], env=env,
                                            stdout=output, stderr=subprocess.STDOUT)
        wait_until_up(f"{self.url}/health", self.process, 30, self.log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def client(self, key: str | None = "") -> httpx.Client:
        key = self.key if key == "" else key
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"Authorization": f"Bearer {key}"} if key else {})


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Iterator[Upstream]:
    workdir = tmp_path_factory.mktemp("relay-upstream")
    with standin_server(workdir, list(MODELS), "--fault-dir", str(workdir / "faults")) as port:
        yield Upstream(port, workdir / "requests.jsonl", workdir / "faults")


@pytest.fixture(scope="module")
def relay(litellm_venv, upstream, tmp_path_factory) -> Iterator[RelayProcess]:
    process = RelayProcess(litellm_venv / "bin" / "python", tmp_path_factory.mktemp("relay"), upstream)
    process.start()
    try:
        yield process
    finally:
        if process.process and process.process.poll() is None:
            stop(process.process)


@pytest.fixture
def api(relay) -> Iterator[httpx.Client]:
    with relay.client() as client:
        yield client


def create(api: httpx.Client, *participants: dict[str, Any], caller: str = "Claude") -> dict[str, Any]:
    response = api.post("/v1/conversations", json={"caller": caller, "participants": list(participants)})
    assert response.status_code == 201, response.text
    return response.json()


def sent_since(upstream: Upstream, before: int) -> list[dict[str, Any]]:
    return upstream.requests()[before:]


ANN = {"name": "Ann", "model": MODELS[0], "system": "You argue for tabs.", "max_tokens": 300,
       "temperature": 0.2}
BOB = {"name": "Bob", "model": MODELS[1], "system": "You argue for spaces."}


def test_one_on_one_sends_the_system_prompt_sampling_and_the_callers_words(api, upstream):
    conversation = create(api, ANN)
    before = len(upstream.requests())
    reply = api.post(f"/v1/conversations/{conversation['id']}/messages", json={"content": "Tabs?"})
    assert reply.status_code == 200, reply.text
    caller, answer = reply.json()["messages"]
    assert (caller["speaker"], caller["to"]) == ("Claude", ["Ann"])
    assert (answer["speaker"], answer["finish_reason"], answer["trimmed"]) == ("Ann", "stop", 0)
    assert answer["content"] and "error" not in answer
    (request,) = sent_since(upstream, before)
    assert (request["model"], request["max_tokens"], request["temperature"]) == (MODELS[0], 300, 0.2)
    system, user = request["messages"]
    assert system["role"] == "system" and system["content"].startswith("You argue for tabs.\n\nYou are Ann")
    assert user == {"role": "user", "content": "[Claude] Tabs?"}


def test_a_debate_gives_each_side_the_whole_history_from_its_own_seat(api, upstream):
    conversation = create(api, ANN, BOB)
    before = len(upstream.requests())
    response = api.post(f"/v1/conversations/{conversation['id']}/rounds",
                        json={"rounds": 2, "opening": "Tabs or spaces? Go."})
    assert response.status_code == 200, response.text
    record = response.json()["messages"]
    assert [m["speaker"] for m in record] == ["Claude", "Ann", "Bob", "Ann", "Bob"]
    said = [m["content"] for m in record]
    requests = sent_since(upstream, before)
    assert [r["model"] for r in requests] == [MODELS[0], MODELS[1], MODELS[0], MODELS[1]]
    assert requests[2]["messages"][1:] == [
        {"role": "user", "content": f"[Claude] {said[0]}"},
        {"role": "assistant", "content": said[1]},
        {"role": "user", "content": f"[Bob] {said[2]}"}]
    assert requests[3]["messages"][0]["content"].startswith("You argue for spaces.")
    assert requests[3]["messages"][1:] == [
        {"role": "user", "content": f"[Claude] {said[0]}\n\n[Ann] {said[1]}"},
        {"role": "assistant", "content": said[2]},
        {"role": "user", "content": f"[Ann] {said[3]}"}]


def test_three_way_the_caller_moderates_and_each_sees_the_replies_before_its_own(api, upstream):
    conversation = create(api, ANN, BOB, caller="Claude")
    before = len(upstream.requests())
    first = api.post(f"/v1/conversations/{conversation['id']}/messages",
                     json={"content": "Both of you: one line each.", "to": ["Ann", "Bob"]}).json()
    more = api.post(f"/v1/conversations/{conversation['id']}/rounds", json={"rounds": 1}).json()
    record = first["messages"] + more["messages"]
    assert [m["speaker"] for m in record] == ["Claude", "Ann", "Bob", "Ann", "Bob"]
    requests = sent_since(upstream, before)
    assert requests[1]["messages"][1:] == [
        {"role": "user", "content": f"[Claude] Both of you: one line each.\n\n[Ann] {record[1]['content']}"}]
    for request in requests:
        note = request["messages"][0]["content"]
        assert "relayed between Claude" in note and ("Ann" in note) and ("Bob" in note)
    full = api.get(f"/v1/conversations/{conversation['id']}").json()
    assert [m["index"] for m in full["messages"]] == [0, 1, 2, 3, 4]


def test_a_reply_cut_by_max_tokens_says_length(api):
    conversation = create(api, {"name": "Thinker", "model": MODELS[1], "max_tokens": 5})
    reply = api.post(f"/v1/conversations/{conversation['id']}/messages",
                     json={"content": "[long] Think it all through."}).json()["messages"][-1]
    assert (reply["finish_reason"], reply["content"]) == ("length", "step0 step1 step2 step3 step4")


def test_a_restart_mid_conversation_loses_nothing(relay, upstream):
    with relay.client() as api:
        conversation = create(api, ANN)
        for text in ("first", "second"):
            api.post(f"/v1/conversations/{conversation['id']}/messages", json={"content": text})
    stop(relay.process)
    relay.start()
    with relay.client() as api:
        kept = api.get(f"/v1/conversations/{conversation['id']}").json()
        assert [m["speaker"] for m in kept["messages"]] == ["Claude", "Ann"] * 2
        before = len(upstream.requests())
        api.post(f"/v1/conversations/{conversation['id']}/messages", json={"content": "third"})
    (request,) = sent_since(upstream, before)
    assert [m["content"] for m in request["messages"] if m["role"] == "user"] == [
        "[Claude] first", "[Claude] second", "[Claude] third"]


def test_killed_while_writing_every_conversation_is_intact_and_goes_on(relay):
    """SIGKILL while several conversations are being written, three times over: each file is
    always the previous or the next complete version, never half of one."""
    with relay.client() as api:
        ids = [create(api, ANN)["id"] for _ in range(3)]
    for attempt in range(3):
        stop_sending = threading.Event()

        def keep_sending(conversation_id: str, stop_sending: threading.Event = stop_sending) -> None:
            with relay.client() as api:
                while not stop_sending.is_set():
                    try:
                        api.post(f"/v1/conversations/{conversation_id}/messages",
                                 json={"content": "x" * 5000})
                    except httpx.HTTPError:
                        return
        senders = [threading.Thread(target=keep_sending, args=(cid,)) for cid in ids]
        for sender in senders:
            sender.start()
        time.sleep(1.0 + 0.37 * attempt)
        relay.kill()
        stop_sending.set()
        for sender in senders:
            sender.join(timeout=30)
        for conversation_id in ids:
            record = json.loads((relay.data_dir / f"{conversation_id}.json").read_text())
            assert [m["index"] for m in record["messages"]] == list(range(len(record["messages"])))
        relay.start()
        with relay.client() as api:
            listed = api.get("/v1/conversations").json()["conversations"]
            assert not [item for item in listed if "corrupt" in item]
            reply = api.post(f"/v1/conversations/{ids[0]}/messages", json={"content": "still here?"})
            assert reply.status_code == 200 and "error" not in reply.json()["messages"][-1]


def test_a_model_that_hangs_is_a_recorded_failed_turn_and_the_relay_carries_on(api, upstream):
    conversation = create(api, ANN, BOB)
    (upstream.fault_dir / "wedge").touch()
    try:
        response = api.post(f"/v1/conversations/{conversation['id']}/messages",
                            json={"content": "Anyone there?", "to": "Ann"})
    finally:
        (upstream.fault_dir / "wedge").unlink()
    assert response.status_code == 200, response.text
    failed = response.json()["messages"][-1]
    assert failed["error"] == f"{MODELS[0]} did not answer within {TURN_TIMEOUT} s"
    before = len(upstream.requests())
    ok = api.post(f"/v1/conversations/{conversation['id']}/messages", json={"content": "Bob?", "to": "Bob"})
    assert "error" not in ok.json()["messages"][-1]
    (request,) = sent_since(upstream, before)
    # the failed turn is in the record, not in what Bob is shown
    assert request["messages"][1:] == [{"role": "user", "content": "[Claude] Anyone there?\n\n[Claude] Bob?"}]
    assert [m.get("error") is not None for m in api.get(f"/v1/conversations/{conversation['id']}")
            .json()["messages"]] == [False, True, False, False]


def test_bad_input_gets_a_clear_4xx(relay, api):
    with relay.client(key=None) as anonymous:
        refused = anonymous.get("/v1/conversations")
        assert refused.status_code == 401 and "relay key" in refused.json()["error"]
        assert anonymous.get("/health").status_code == 200
        assert anonymous.post("/mcp", json={}).status_code == 401
    with relay.client(key="wrong-key-wrong-key") as wrong:
        assert wrong.get("/v1/conversations").status_code == 401
    unknown = api.post("/v1/conversations", json={"participants": [{"model": "llama-9000"}]})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == ("participants[0].model: 'llama-9000' is not served here; "
                                       f"served: {', '.join(MODELS)}")
    missing = api.get("/v1/conversations/c-0123456789abcdef")
    assert (missing.status_code, missing.json()["error"]) == (404, "no conversation c-0123456789abcdef")
    assert api.get("/v1/conversations/not-an-id").status_code == 400
    conversation = create(api, ANN)
    huge = api.post(f"/v1/conversations/{conversation['id']}/messages", json={"content": "z" * 20001})
    assert huge.status_code == 400 and "20001 characters, at most 20000" in huge.json()["error"]
    body = api.post(f"/v1/conversations/{conversation['id']}/messages", content=b"x" * 300000)
    assert body.status_code == 413
    nobody = api.post(f"/v1/conversations/{conversation['id']}/messages", json={"content": "hi", "to": "Eve"})
    assert nobody.status_code == 400 and "'Eve' is not a participant" in nobody.json()["error"]


def test_fork_leaves_a_refusal_behind_and_delete_removes_the_file(relay, api, upstream):
    conversation = create(api, ANN)
    for text in ("keep this", "something refused"):
        api.post(f"/v1/conversations/{conversation['id']}/messages", json={"content": text})
    fork = api.post(f"/v1/conversations/{conversation['id']}/fork", json={"at": 2})
    assert fork.status_code == 201
    copy = fork.json()
    assert copy["forked_from"] == {"id": conversation["id"], "at": 2}
    before = len(upstream.requests())
    api.post(f"/v1/conversations/{copy['id']}/messages", json={"content": "again"})
    (request,) = sent_since(upstream, before)
    assert "something refused" not in json.dumps(request)
    assert api.delete(f"/v1/conversations/{conversation['id']}").status_code == 200
    assert not (relay.data_dir / f"{conversation['id']}.json").exists()
    assert api.get(f"/v1/conversations/{conversation['id']}").status_code == 404


def test_a_corrupt_conversation_is_reported_and_never_overwritten(relay, api):
    broken = relay.data_dir / "c-00000000000000ff.json"
    broken.write_text('{"id": "c-00000000000000ff", "messa')
    response = api.post("/v1/conversations/c-00000000000000ff/messages", json={"content": "hi"})
    assert response.status_code == 409 and "is not valid JSON" in response.json()["error"]
    listed = {item["id"]: item for item in api.get("/v1/conversations").json()["conversations"]}
    assert "corrupt" in listed["c-00000000000000ff"]
    assert broken.read_text() == '{"id": "c-00000000000000ff", "messa'
    broken.unlink()


MCP_CLIENT = """
import asyncio, json, sys
import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

async def main(url, key, model):
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = sorted(tool.name for tool in (await session.list_tools()).tools)
                models = await session.call_tool("list_models", {})
                talk = await session.call_tool("talk", {"model": model, "message": "Hello over MCP"})
                bad = await session.call_tool("talk", {"model": "llama-9000", "message": "x"})
                print(json.dumps({"tools": tools, "models": models.structured_content,
                                  "talk": json.loads(talk.content[0].text),
                                  "bad": [bad.is_error, bad.content[0].text]}))

asyncio.run(main(*sys.argv[1:]))
"""


def test_the_mcp_tools_through_the_official_sdk_client(relay, litellm_venv, tmp_path):
    script = tmp_path / "mcp_client.py"
    script.write_text(MCP_CLIENT)
    result = subprocess.run([str(litellm_venv / "bin" / "python"), str(script), f"{relay.url}/mcp",
                             relay.key, MODELS[1]], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"talk", "start_conversation", "say", "run_rounds", "read_conversation",
            "list_models", "fork_conversation", "delete_conversation"} <= set(seen["tools"])
    assert seen["models"] == {"result": list(MODELS)}
    assert seen["talk"]["reply"]["speaker"] == MODELS[1] and seen["talk"]["reply"]["finish_reason"] == "stop"
    assert seen["bad"][0] is True and "'llama-9000' is not served here" in seen["bad"][1]
    with relay.client() as api:
        kept = api.get(f"/v1/conversations/{seen['talk']['conversation_id']}").json()
    assert kept["messages"][0]["content"] == "Hello over MCP"


def test_a_models_new_context_is_read_without_restarting_the_relay(relay, api):
    pid = relay.process.pid
    relay.models_file.write_text(json.dumps({MODELS[0]: {"context_tokens": 1000}}))
    try:
        refused = api.post("/v1/conversations",
                           json={"participants": [{"model": MODELS[0], "max_tokens": 600}]})
        assert refused.status_code == 400
        assert "half of gpt-oss-120b's context of 1000" in refused.json()["error"]
    finally:
        relay.models_file.write_text(json.dumps({MODELS[0]: {"context_tokens": 131072}}))
    create(api, {"model": MODELS[0], "max_tokens": 600})
    assert relay.process.pid == pid
