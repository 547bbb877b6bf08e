"""The stand-in vLLM's multi-node start on loopback: ranks rendezvous before the head serves,
the head reports its tensor-parallel size, and the engine stops when a rank goes away."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from loopback_servers import REPO, free_port, stop, wait_until_up

RENDEZVOUS = REPO / "tests" / "standins" / "images" / "vllm-runtime" / "rendezvous.py"


def start_rank(rank: int, master_port: int, http_port: int, log, interface: str = "lo",
               tp: int = 2) -> subprocess.Popen:
    argv = ["serve", "openai/gpt-oss-120b", "--tensor-parallel-size", str(tp),
            "--host", "127.0.0.1", "--port", str(http_port),
            "--nnodes", "2", "--node-rank", str(rank), "--master-addr", "127.0.0.1",
            "--master-port", str(master_port), *(["--headless"] if rank else [])]
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests" / "standins"),
           "VLLM_HOST_IP": "127.0.0.1", "NCCL_SOCKET_IFNAME": interface}
    return subprocess.Popen([sys.executable, str(RENDEZVOUS), *argv], env=env,
                            stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def ports():
    return free_port(), free_port()


def test_head_serves_at_tp2_only_after_the_worker_joined(tmp_path, ports):
    master, http = ports
    log = (tmp_path / "ranks.log").open("w")
    head = start_rank(0, master, http, log)
    try:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{http}/health", timeout=2)
        worker = start_rank(1, master, http, log)
        wait_until_up(f"http://127.0.0.1:{http}/health", head, 30, tmp_path / "ranks.log")
        reply = httpx.post(f"http://127.0.0.1:{http}/v1/chat/completions", timeout=10, json={
            "model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}]}).json()
        assert "-tp2-" in reply["system_fingerprint"]
        worker.kill()
        assert head.wait(timeout=15) == 1, "the head kept serving without its worker"
    finally:
        stop(head)
    assert "rank 1 went away" in (tmp_path / "ranks.log").read_text()


def test_a_rank_whose_socket_interface_lacks_its_address_does_not_start(tmp_path, ports):
    master, http = ports
    with (tmp_path / "rank.log").open("w") as log:
        rank = start_rank(1, master, http, log, interface="no-such-if0")
        assert rank.wait(timeout=15) == 1
    assert "NCCL_SOCKET_IFNAME=no-such-if0 carries no address" in (tmp_path / "rank.log").read_text()


def test_a_parallel_size_the_nodes_cannot_hold_stops_the_head(tmp_path, ports):
    master, http = ports
    with (tmp_path / "rank.log").open("w") as log:
        head = start_rank(0, master, http, log, tp=4)
        assert head.wait(timeout=15) == 1
    assert "world size 4" in (tmp_path / "rank.log").read_text()
