"""The stand-in's multi-node start: ranks really rendezvous over the link, as vLLM's do.

``vllm serve … --nnodes N --node-rank R --master-addr A --master-port P [--headless]`` (vLLM's
no-Ray multi-node flags): the head listens on A:P and waits for every other rank; a worker
connects from its ``VLLM_HOST_IP``, so the rendezvous travels over the link network and fails
where the link is broken. Like a real engine, the head refuses to start at a parallel size the
nodes cannot hold, serves only once every rank has joined, reports ``-tp<N>-`` in its
``system_fingerprint``, and every rank exits when a peer goes away (a restarted worker is not
taken back: the whole cluster restarts). Each rank also checks what NCCL would need: the
interface ``NCCL_SOCKET_IFNAME`` names carries ``VLLM_HOST_IP``. A single node starts the
model server directly.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import socket
import struct
import sys
import threading
import time

import model_server

_JOIN_SECONDS = 600.0
_SIOCGIFADDR = 0x8915


def main(argv: list[str]) -> None:
    args = _parse(argv)
    if args.nnodes <= 1:
        model_server.main(argv)
        return
    host_ip = os.environ.get("VLLM_HOST_IP", "")
    _check_environment(args, host_ip)
    if args.node_rank == 0:
        peers = _gather(args, host_ip)
        model_server.SYSTEM_FINGERPRINT = f"fp_standin_vllm-tp{args.tp}-nnodes{args.nnodes}"
        _watch(peers, "rank 0")
        _serve_new_peers_refused(args, host_ip)
        model_server.main(argv)
    else:
        head = _join(args, host_ip)
        _log(f"rank {args.node_rank} joined the head at {args.master_addr}:{args.master_port}")
        head.recv(1)
        _fail(f"rank {args.node_rank}: the head at {args.master_addr} went away; the engine stops")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--nnodes", type=int, default=1)
    parser.add_argument("--node-rank", type=int, default=0)
    parser.add_argument("--master-addr", default="127.0.0.1")
    parser.add_argument("--master-port", type=int, default=29501)
    parser.add_argument("--tensor-parallel-size", "-tp", dest="tp", type=int, default=1)
    parser.add_argument("--pipeline-parallel-size", "-pp", dest="pp", type=int, default=1)
    args, _ = parser.parse_known_args(argv)
    return args


def _check_environment(args: argparse.Namespace, host_ip: str) -> None:
    if args.tp * args.pp != args.nnodes:
        _fail(f"world size {args.tp * args.pp} (tp {args.tp} x pp {args.pp}) does not match "
              f"{args.nnodes} nodes with one GPU each")
    interface = os.environ.get("NCCL_SOCKET_IFNAME", "")
    if not host_ip or not interface:
        _fail("VLLM_HOST_IP and NCCL_SOCKET_IFNAME must name this node's link address and interface")
    actual = _interface_address(interface)
    if actual != host_ip:
        _fail(f"NCCL_SOCKET_IFNAME={interface} carries {actual or 'no address'}, "
              f"not VLLM_HOST_IP={host_ip}")


def _interface_address(interface: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            packed = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR,
                                 struct.pack("256s", interface.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def _hello(args: argparse.Namespace, host_ip: str) -> dict[str, object]:
    return {"rank": args.node_rank, "host_ip": host_ip, "nnodes": args.nnodes, "tp": args.tp}


def _gather(args: argparse.Namespace, host_ip: str) -> dict[int, socket.socket]:
    """Wait on the master address for every other rank; each must come from its own address."""
    listener = socket.create_server((args.master_addr, args.master_port), reuse_port=False)
    listener.settimeout(_JOIN_SECONDS)
    peers: dict[int, socket.socket] = {}
    _log(f"rank 0 waiting on {args.master_addr}:{args.master_port} for {args.nnodes - 1} rank(s)")
    while len(peers) < args.nnodes - 1:
        try:
            conn, (address, _) = listener.accept()
        except TimeoutError:
            _fail(f"only {len(peers)} of {args.nnodes - 1} ranks joined within {_JOIN_SECONDS:.0f} s")
        hello = json.loads(conn.makefile().readline() or "{}")
        expected = {**_hello(args, host_ip), "rank": hello.get("rank"), "host_ip": address}
        if hello != expected or hello["rank"] in peers or hello["rank"] == 0:
            _log(f"refused a rank from {address}: {hello} (expected {expected})")
            conn.close()
            continue
        conn.sendall(b"ok\n")
        peers[hello["rank"]] = conn
        _log(f"rank {hello['rank']} joined from {address}")
    listener.close()
    _log(f"all {args.nnodes} ranks joined: tensor parallel {args.tp}")
    return peers


def _join(args: argparse.Namespace, host_ip: str) -> socket.socket:
    """Connect from this node's link address until the head answers, then say who we are."""
    deadline = time.monotonic() + _JOIN_SECONDS
    while True:
        try:
            head = socket.create_connection((args.master_addr, args.master_port), timeout=10,
                                            source_address=(host_ip, 0))
            head.sendall((json.dumps(_hello(args, host_ip)) + "\n").encode())
            if head.makefile().readline().strip() == "ok":
                head.settimeout(None)
                return head
            head.close()
        except OSError:
            pass
        if time.monotonic() > deadline:
            _fail(f"rank {args.node_rank}: no head at {args.master_addr}:{args.master_port} "
                  f"within {_JOIN_SECONDS:.0f} s")
        time.sleep(2)


def _watch(peers: dict[int, socket.socket], who: str) -> None:
    def wait(rank: int, conn: socket.socket) -> None:
        conn.recv(1)
        _fail(f"{who}: rank {rank} went away; the engine stops")

    for rank, conn in peers.items():
        threading.Thread(target=wait, args=(rank, conn), daemon=True).start()


def _serve_new_peers_refused(args: argparse.Namespace, host_ip: str) -> None:
    """A rank that comes back to a running engine is told no, as vLLM's would be (it has no
    way to rejoin): it exits and its restart policy keeps trying until the head restarts."""
    def refuse() -> None:
        with socket.create_server((args.master_addr, args.master_port)) as listener:
            while True:
                conn, (address, _) = listener.accept()
                _log(f"refused rank from {address}: the engine is already running")
                conn.close()

    threading.Thread(target=refuse, daemon=True).start()


def _log(message: str) -> None:
    print(f"stand-in vLLM: {message}", file=sys.stderr, flush=True)


def _fail(message: str) -> None:
    _log(message)
    os._exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
