"""The outside watcher as its systemd unit runs it (``python3 -m sparkwatch watcher``, one pass
per run) against a Spark made of real parts on loopback: Debian's sshd and the stand-in vLLM,
with a stand-in smart plug recording every power cycle. Its settings are the deploy's own
(``sparkdeploy.watchdog``) for an inventory of a watcher host and one Spark.

A Spark that still answers SSH or HTTP is left alone; one that answers neither is power-cycled
once, and not again within the window however long it stays dead (the alert says so once).
Also here: the stand-in's wedge and crash modes, which the watchdog's sandbox tests rely on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from loopback_servers import STANDIN_SCRIPT, free_port, stop, wait_until_up

from sparkdeploy.data import PROJECT_ROOT, documented_defaults
from sparkdeploy.plan import validate_inventory
from sparkdeploy.watchdog import to_json, watch_config, watch_secrets

SSHD = "/usr/sbin/sshd"
HOST_PYTHON = "/usr/bin/python3"
MODEL = "openai/gpt-oss-120b"


class Plug:
    """A smart plug's HTTP API: every POST /cycle is one power cycle, recorded."""

    def __init__(self) -> None:
        self.cycles: list[str] = []
        plug = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                plug.cycles.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def spark(tmp_path):
    """A Spark's two faces on loopback: sshd and the stand-in vLLM (both stoppable)."""
    if os.geteuid() != 0 or not Path(SSHD).exists():
        pytest.fail(f"needs root and {SSHD} (scripts/host-packages installs openssh-server)")
    directory = Path(tempfile.mkdtemp(prefix="sparkdeploy-watched-", dir=Path.home()))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / "host")], check=True)
    ssh_port, http_port = free_port(), free_port()
    (directory / "sshd_config").write_text(
        f"Port {ssh_port}\nListenAddress 127.0.0.1\nHostKey {directory}/host\nPidFile {directory}/sshd.pid\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", str(directory / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "vllm.log"
    with log.open("w") as output:
        vllm = subprocess.Popen([sys.executable, str(STANDIN_SCRIPT), "serve", MODEL, "--host", "127.0.0.1",
                                 "--port", str(http_port)], stdout=output, stderr=subprocess.STDOUT)
    wait_until_up(f"http://127.0.0.1:{http_port}/health", vllm, 20, log)
    try:
        yield {"ssh_port": ssh_port, "http_port": http_port, "sshd": sshd, "vllm": vllm}
    finally:
        stop(sshd)
        stop(vllm)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def watcher_pass(spark, tmp_path):
    """One watcher pass, as sparkdeploy-watcher.service runs it, with the deploy's settings."""
    plug = Plug()
    base = {**documented_defaults(), "secrets_dir": str(tmp_path / "secrets")}
    hosts = {
        "spark": {**base, "recipe": "openai-gpt-oss-120b", "ssh_hostname": "127.0.0.1",
                  "ssh_port": spark["ssh_port"], "vllm_expose_to_lan": True,
                  "vllm_params": {"port": spark["http_port"]},
                  "power_cycle_command": f"curl -fsS -X POST {plug.url}/cycle/$SPARKWATCH_HOST"},
        "nas": {**base, "recipe": None, "watcher_enabled": True, "watcher_timeout": 2,
                "watcher_failures_before_power_cycle": 3, "watcher_boot_grace": 0},
    }
    services = validate_inventory(hosts)
    config = watch_config("nas", hosts, services)
    config["state_dir"] = str(tmp_path / "state")  # the one value a test cannot share with a host
    (tmp_path / "config.json").write_text(to_json(config))
    (tmp_path / "secrets.json").write_text(to_json(watch_secrets("nas", hosts)))

    def run() -> list[str]:
        # the host's own python3, as the unit's ExecStart: sparkwatch needs nothing else
        command = [HOST_PYTHON, "-m", "sparkwatch", "--config", str(tmp_path / "config.json"), "watcher"]
        result = subprocess.run(command, cwd=PROJECT_ROOT / "files", capture_output=True, text=True,
                                timeout=60, check=True)
        return result.stdout.splitlines()

    run.plug = plug
    yield run
    plug.server.shutdown()


def test_a_spark_answering_ssh_or_http_is_never_power_cycled(spark, watcher_pass):
    lines = [line for _ in range(4) for line in watcher_pass()]
    assert lines == [] and watcher_pass.plug.cycles == []
    stop(spark["sshd"])  # still serving: its own watchdog and a person can reach it
    lines = [line for _ in range(5) for line in watcher_pass()]
    assert lines == [] and watcher_pass.plug.cycles == []


def test_a_dead_spark_is_power_cycled_exactly_once_per_window(spark, watcher_pass):
    stop(spark["sshd"])
    stop(spark["vllm"])
    lines = [line for _ in range(3) for line in watcher_pass()]
    assert watcher_pass.plug.cycles == ["/cycle/spark"]
    assert [line for line in lines if "(check" in line] == [
        f"<4>spark: no SSH banner on 127.0.0.1:{spark['ssh_port']} nor on "
        f"http://127.0.0.1:{spark['http_port']} (check {n} of 3)" for n in (1, 2, 3)]
    assert sum("power-cycled with its power_cycle_command (exit 0)" in line for line in lines) == 1
    later = [line for _ in range(6) for line in watcher_pass()]
    assert watcher_pass.plug.cycles == ["/cycle/spark"], "power-cycled twice in one window"
    assert sum(line.startswith("<3>ALERT spark: still dead after 1 power cycle(s)") for line in later) == 1
    assert "curl" not in "\n".join(lines + later)  # the command is a secret


def test_the_standins_wedge_holds_completions_while_health_answers(tmp_path):
    faults, port, log = tmp_path / "faults", free_port(), tmp_path / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen([sys.executable, str(STANDIN_SCRIPT), "serve", MODEL, "--host", "127.0.0.1",
                                   "--port", str(port), "--fault-dir", str(faults)],
                                  stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/health", server, 20, log)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=5).status_code == 200
        (faults / "wedge").touch()
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=1.5)
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        assert f'vllm:num_requests_running{{model_name="{MODEL}"}} 1' in metrics
        generated = _generated(metrics)
        time.sleep(0.5)
        assert _generated(httpx.get(f"{url}/metrics", timeout=5).text) == generated
        (faults / "crash").touch()
        assert server.wait(timeout=5) == 70
    finally:
        if server.poll() is None:
            stop(server)


def test_a_new_standin_process_starts_healthy_whatever_triggers_were_left(tmp_path):
    faults, port, log = tmp_path / "faults", free_port(), tmp_path / "server.log"
    faults.mkdir()
    (faults / "wedge").touch()
    (faults / "crash").touch()
    with log.open("w") as output:
        server = subprocess.Popen([sys.executable, str(STANDIN_SCRIPT), "serve", MODEL, "--host", "127.0.0.1",
                                   "--port", str(port), "--fault-dir", str(faults)],
                                  stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", server, 20, log)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=5)
        assert reply.status_code == 200 and server.poll() is None
    finally:
        stop(server)


def test_the_settings_files_hold_no_secret_but_the_secrets_file(watcher_pass, tmp_path):
    assert "curl" not in (tmp_path / "config.json").read_text()
    assert json.loads((tmp_path / "secrets.json").read_text())["power_cycle"]["spark"].startswith("curl ")


def _generated(metrics: str) -> str:
    return next(line.split()[1] for line in metrics.splitlines()
                if line.startswith("vllm:generation_tokens_total{"))
