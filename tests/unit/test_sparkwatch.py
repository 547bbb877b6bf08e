"""The host side (files/sparkwatch) against the stand-in vLLM on loopback: probes, the bounded
restart, the hook, the watcher's power cycle, and the states ``sparkdeploy status`` shows.

Docker is the only part faked: ``probe.container`` reports a container, and ``docker compose
restart`` is recorded (and ends the stand-in's wedge, as a restarted engine is healthy again).
"""

from __future__ import annotations

import importlib.util
import io
import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sparkdeploy.data import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "files"))
from sparkwatch import gpu_clock, ledger, probe, status, watchdog, watcher
from sparkwatch.settings import Model, Settings, load_settings

MODEL = "openai/gpt-oss-120b"
_REAL_RUN = subprocess.run


def _standin_module():
    spec = importlib.util.spec_from_file_location("model_server",
                                                  PROJECT_ROOT / "tests" / "standins" / "model_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def engine(tmp_path):
    """The stand-in vLLM with a fault directory; yields (url, fault directory)."""
    faults = tmp_path / "faults"
    faults.mkdir()
    server = _standin_module().StandinServer(("127.0.0.1", 0), [MODEL], io.StringIO(), fault_dir=str(faults))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", faults
    (faults / "wedge").unlink(missing_ok=True)
    server.shutdown()


class Docker:
    """The container engine as the watchdog sees it: one container, restarts recorded."""

    def __init__(self, faults: Path | None, started_ago: float = 3600.0, running: bool = True):
        self.faults = faults
        self.running = running
        self.started_at = time.time() - started_ago
        self.restarts: list[list[str]] = []

    def container(self, name: str) -> probe.Container:
        if not self.running:
            return probe.Container(False, "exited (code 137)")
        return probe.Container(True, "running", self.started_at, "vllm-node", "sha256:feed")

    def run(self, argv, *args, **kwargs):
        if argv[:2] == ["docker", "compose"]:
            self.restarts.append(list(argv))
            if self.faults:
                (self.faults / "wedge").unlink(missing_ok=True)
                time.sleep(0.5)  # the held requests finish (a real restart drops them)
            return subprocess.CompletedProcess(argv, 0, "", "")
        return _REAL_RUN(argv, *args, **kwargs)


@pytest.fixture
def docker(engine, monkeypatch):
    fake = Docker(engine[1])
    monkeypatch.setattr(probe, "container", fake.container)
    monkeypatch.setattr(subprocess, "run", fake.run)
    return fake


def make_settings(tmp_path, url: str, role: str = "head", **watchdog_options) -> Settings:
    options = {"enabled": True, "interval": 1, "probe_timeout": 1, "failures_before_restart": 2,
               "start_grace": 60, "max_restarts": 2, "restart_window": 3600, "use_metrics": True,
               "recovery_timeout": 10, "poll_interval": 0.2, **watchdog_options}
    hook = tmp_path / "hook.jsonl"
    return Settings(host="spark", state_dir=str(tmp_path / "state"), drop_page_cache=False,
                    watchdog=options, models=[Model(MODEL, "openai-gpt-oss-120b", url, "vllm_node",
                                                    "/opt/sparkdeploy/vllm", role=role)],
                    watcher={"enabled": False}, secrets={"notify_command": f"cat >> {hook}"})


def events(tmp_path) -> list[dict]:
    hook = tmp_path / "hook.jsonl"
    return [json.loads(line) for line in hook.read_text().splitlines()] if hook.exists() else []


def journal(capsys) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line]


def test_a_healthy_model_is_never_restarted(engine, docker, tmp_path, capsys):
    settings = make_settings(tmp_path, engine[0])
    for _ in range(25):
        watchdog.run_once(settings)
    assert docker.restarts == []
    assert journal(capsys) == []
    assert events(tmp_path) == []
    assert ledger.load(settings.state_dir, "model", MODEL).failures == 0


def test_a_wedge_is_restarted_after_k_failed_probes_and_the_next_probe_succeeds(engine, docker, tmp_path,
                                                                               capsys):
    settings = make_settings(tmp_path, engine[0])
    watchdog.run_once(settings)  # healthy: the generation counter is remembered
    (engine[1] / "wedge").touch()
    watchdog.run_once(settings)
    first = journal(capsys)
    assert len(first) == 1 and first[0].startswith("<4>") and "probe 1 of 2 failed" in first[0], first
    assert "/health answers but a 1-token completion got no reply within 1 s" in first[0]
    assert "generation counter frozen at" in first[0] and "1 requests running" in first[0]
    assert docker.restarts == []

    watchdog.run_once(settings)
    lines = journal(capsys)
    assert docker.restarts == [["docker", "compose", "--project-directory", "/opt/sparkdeploy/vllm",
                                "restart"]]
    restarted = [line for line in lines if "restarted after 2 failed probes" in line]
    assert len(restarted) == 1 and "restart 1 of at most 2" in restarted[0], lines
    assert [event["event"] for event in events(tmp_path)] == ["restarted"]
    assert events(tmp_path)[0]["subject"] == MODEL and events(tmp_path)[0]["host"] == "spark"

    watchdog.run_once(settings)
    assert journal(capsys) == []
    record = ledger.load(settings.state_dir, "model", MODEL)
    assert record.failures == 0 and "restarted after 2 failed probes" in record.last_action["what"]


def test_restarts_stop_at_the_bound_and_the_alert_is_raised_once_per_window(engine, docker, tmp_path,
                                                                            capsys):
    settings = make_settings(tmp_path, engine[0])
    model = settings.models[0]
    start = time.time()
    for _ in range(2):
        watchdog.check(settings, model, start)  # healthy: the generation counter is remembered
        (engine[1] / "wedge").touch()
        watchdog.check(settings, model, start)
        watchdog.check(settings, model, start)
    assert len(docker.restarts) == 2
    (engine[1] / "wedge").touch()
    for _ in range(6):
        watchdog.check(settings, model, start + 60)
    assert len(docker.restarts) == 2, "restarted past watchdog_max_restarts"
    alerts = [line for line in journal(capsys) if line.startswith("<3>ALERT")]
    assert len(alerts) == 1, alerts
    assert "already restarted 2 times in the last 3600 s" in alerts[0] and "for a person" in alerts[0]
    assert [event["event"] for event in events(tmp_path)] == ["restarted", "restarted", "gave-up"]

    # once the window has passed, the watchdog may act again
    watchdog.check(settings, model, start + 3601)
    assert len(docker.restarts) == 3


def test_an_engine_refusing_the_probe_is_no_wedge(engine, docker, tmp_path, capsys):
    """While a deploy switches models, the settings may name the model the engine no longer serves."""
    settings = make_settings(tmp_path, engine[0])
    switched = replace(settings, models=[replace(settings.models[0], name="org/another-model")])
    for _ in range(6):
        watchdog.run_once(switched)
    assert docker.restarts == [] and events(tmp_path) == []
    lines = journal(capsys)
    assert len(lines) == 1 and "refuses the probe (HTTP 404" in lines[0] and "not counted" in lines[0], lines
    assert _state(switched) == "error"


def test_a_busy_engine_is_not_counted_as_wedged(docker, tmp_path, monkeypatch, capsys):
    counter = iter([100.0, 140.0, 190.0])
    monkeypatch.setattr(probe, "health", lambda url, timeout: True)
    monkeypatch.setattr(probe, "completion",
                        lambda *args: probe.Answer(False, "no reply within 1 s", 1.0))
    monkeypatch.setattr(probe, "metrics", lambda *args: probe.Metrics(next(counter), 8))
    settings = make_settings(tmp_path, "http://127.0.0.1:9")
    for _ in range(3):
        watchdog.run_once(settings)
    assert docker.restarts == []
    lines = journal(capsys)
    assert "probe 1 of 2 failed" in lines[0]  # nothing to compare the first counter with
    assert all("busy, not wedged" in line for line in lines[1:]) and len(lines) == 3, lines


def test_a_loading_model_is_not_counted_within_the_start_grace(tmp_path, monkeypatch, capsys):
    fake = Docker(None, started_ago=10)
    monkeypatch.setattr(probe, "container", fake.container)
    monkeypatch.setattr(subprocess, "run", fake.run)
    settings = make_settings(tmp_path, f"http://127.0.0.1:{_closed_port()}", start_grace=60)
    for _ in range(5):
        watchdog.run_once(settings)
    assert fake.restarts == [] and journal(capsys) == []
    fake.started_at -= 60
    watchdog.run_once(settings)
    assert "probe 1 of 2 failed: /health does not answer" in journal(capsys)[0]


def test_a_stopped_container_is_left_to_compose_and_the_deploy(tmp_path, monkeypatch, capsys):
    fake = Docker(None, running=False)
    monkeypatch.setattr(probe, "container", fake.container)
    monkeypatch.setattr(subprocess, "run", fake.run)
    settings = make_settings(tmp_path, "http://127.0.0.1:9")
    for _ in range(5):
        watchdog.run_once(settings)
    assert fake.restarts == []
    lines = journal(capsys)
    assert len(lines) == 1 and "is exited (code 137); not probing" in lines[0], lines


def test_a_worker_rank_is_never_probed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(probe, "container", lambda name: pytest.fail("a worker rank was looked at"))
    watchdog.run_once(make_settings(tmp_path, "http://127.0.0.1:9", role="worker"))
    assert journal(capsys) == []


def test_the_webhook_gets_the_event_and_its_url_is_never_logged(engine, docker, tmp_path, capsys):
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hooks/t0ps3cret-token"
    settings = replace(make_settings(tmp_path, engine[0]), secrets={"notify_url": url})
    (engine[1] / "wedge").touch()
    for _ in range(2):
        watchdog.run_once(settings)
    server.shutdown()
    assert [event["event"] for event in received] == ["restarted"]
    assert "t0ps3cret" not in capsys.readouterr().out


def test_status_shows_serving_wedged_starting_down_and_worker(engine, docker, tmp_path):
    settings = make_settings(tmp_path, engine[0])
    assert _state(settings) == "serving"
    (engine[1] / "wedge").touch()
    assert _state(settings) == "wedged"
    (engine[1] / "wedge").unlink()
    docker.running = False
    assert _state(settings) == "down"
    docker.running, docker.started_at = True, time.time() - 5
    gone = replace(settings, models=[replace(settings.models[0], url=f"http://127.0.0.1:{_closed_port()}")])
    assert _state(gone) == "starting"
    docker.started_at -= 3600
    assert _state(gone) == "down"
    assert _state(replace(gone, models=[replace(gone.models[0], role="worker")])) == "worker"
    document = status.collect(settings)
    assert document["memory"]["total_kib"] > 0 and document["host"] == "spark"
    assert document["models"][0]["image"] == "vllm-node" and document["models"][0]["container_uptime_s"] > 0


def test_settings_and_secrets_are_read_from_the_files_the_deploy_writes(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "host": "spark", "state_dir": "/var/lib/x", "drop_page_cache": True,
        "watchdog": {"enabled": True}, "watcher": {"enabled": False, "targets": []},
        "models": [{"name": MODEL, "recipe": "r", "url": "http://127.0.0.1:8000", "container": "vllm_node",
                    "compose_dir": "/opt/sparkdeploy/vllm", "api_key_file": None, "role": "head",
                    "tensor_parallel": None}]}))
    assert load_settings(str(tmp_path / "config.json")).secrets == {}
    (tmp_path / "secrets.json").write_text(json.dumps({"notify_command": "true"}))
    settings = load_settings(str(tmp_path / "config.json"))
    assert settings.secrets == {"notify_command": "true"} and settings.models[0].name == MODEL


def test_a_state_file_is_replaced_whole(tmp_path):
    ledger.save(str(tmp_path), "model", "org/model", ledger.Record(failures=2))
    ledger.save(str(tmp_path), "model", "org/model", ledger.Record(failures=3))
    assert [path.name for path in tmp_path.iterdir()] == ["model-org_model.json"]
    assert ledger.load(str(tmp_path), "model", "org/model").failures == 3
    (tmp_path / "model-org_model.json").write_text('{"failures": 4, "recover')  # a torn write
    assert ledger.load(str(tmp_path), "model", "org/model").failures == 0


# -- the outside watcher -----------------------------------------------------------------------

def _banner_server(banner: bytes) -> tuple[socket.socket, int]:
    listener = socket.create_server(("127.0.0.1", 0))

    def greet(connection: socket.socket) -> None:
        if banner:
            connection.sendall(banner)
        time.sleep(0.5)
        connection.close()

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=greet, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1]


def test_an_ssh_banner_is_told_from_a_port_that_only_accepts(tmp_path):
    sshd, ssh_port = _banner_server(b"SSH-2.0-OpenSSH_9.6\r\n")
    silent, silent_port = _banner_server(b"")
    assert watcher.ssh_banner("127.0.0.1", ssh_port, 2)
    assert not watcher.ssh_banner("127.0.0.1", silent_port, 0.3)
    assert not watcher.ssh_banner("127.0.0.1", _closed_port(), 0.3)
    sshd.close()
    silent.close()


def _watcher_settings(tmp_path, ssh_port: int, health_url: str | None) -> Settings:
    plug = tmp_path / "plug.log"
    return Settings(
        host="nas", state_dir=str(tmp_path / "state"), drop_page_cache=False,
        watchdog={"enabled": False}, models=[],
        watcher={"enabled": True, "timeout": 0.3, "failures_before_power_cycle": 3,
                 "max_power_cycles": 1, "window": 3600, "boot_grace": 600, "command_timeout": 10,
                 "targets": [{"host": "spark", "address": "127.0.0.1", "ssh_port": ssh_port,
                              "health_url": health_url}]},
        secrets={"power_cycle": {"spark": f'echo "$SPARKWATCH_HOST" >> {plug}'},
                 "notify_command": f"cat >> {tmp_path / 'hook.jsonl'}"})


def test_a_dead_host_is_power_cycled_once_per_window(tmp_path, capsys):
    settings = _watcher_settings(tmp_path, _closed_port(), f"http://127.0.0.1:{_closed_port()}")
    target = settings.watcher["targets"][0]
    start = time.time()
    for step in range(3):
        watcher.check(settings, target, start + step)
    plug = tmp_path / "plug.log"
    assert plug.read_text() == "spark\n"
    # still dead after its boot grace: checked again, but the bound holds for the window
    for step in range(10):
        watcher.check(settings, target, start + 700 + step)
    assert plug.read_text() == "spark\n"
    lines = journal(capsys)
    assert sum("power-cycled with its power_cycle_command (exit 0) after 3 failed checks" in line
               for line in lines) == 1
    assert sum(line.startswith("<3>ALERT spark: still dead after 1 power cycle") for line in lines) == 1
    assert [event["event"] for event in events(tmp_path)] == ["power-cycled", "gave-up"]
    assert "plug.log" not in "\n".join(lines)  # the command itself is a secret


def test_a_host_that_answers_ssh_or_http_is_left_alone(engine, tmp_path):
    sshd, ssh_port = _banner_server(b"SSH-2.0-OpenSSH_9.6\r\n")
    for settings in (_watcher_settings(tmp_path, ssh_port, None),
                     _watcher_settings(tmp_path, _closed_port(), engine[0])):
        for _ in range(5):
            watcher.run_once(settings)
    sshd.close()
    assert not (tmp_path / "plug.log").exists()


def test_the_gpu_clock_guard_skips_visibly_without_a_gpu_and_caps_with_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_clock.apply(2150) == 0
    skipped = "no GPU here (nvidia-smi not found): the GPU clock cap of 2150 MHz is skipped"
    assert skipped in capsys.readouterr().out
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'called'}\n")
    smi.chmod(0o755)
    assert gpu_clock.apply(2150) == 0
    assert (tmp_path / "called").read_text() == "-lgc 200,2150\n"


def _state(settings: Settings) -> str:
    return status.model_state(settings, settings.models[0])["state"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
