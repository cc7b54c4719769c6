"""The controller's socket server keeps within limits whatever a client sends:
a bounded request line, an idle timeout, a cap on connections, and every
refused connection answered and closed at once (issue 10, case 15). Real
Unix sockets against a real ``rpc.Server``."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from fleetslurm.rpc import Server


def _server(tmp_path: Path, **limits) -> Server:
    calls: list[str] = []

    def handler(op: str, args: dict, uid: int) -> object:
        calls.append(op)
        return {"op": op, "n": len(json.dumps(args))}

    server = Server(tmp_path / "s" / "ctl.sock", handler, **limits)
    server.calls = calls  # type: ignore[attr-defined]
    server.start()
    return server


def _connect(server: Server) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(server.path))
    return s


def _reply(s: socket.socket) -> dict:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return json.loads(buf) if buf else {}


def _closed(s: socket.socket) -> bool:
    """Whether the server closed its end (EOF on a read)."""
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def _until(pred, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def test_a_request_over_the_line_limit_is_refused_and_closed(tmp_path):
    server = _server(tmp_path, max_line=1 << 20, small_line=4096)
    try:
        s = _connect(server)
        # 3 MiB without a newline: the server stops reading after 1 MiB
        payload = b'{"op":"ping","args":{"x":"' + b"a" * (3 << 20)
        sender = threading.Thread(target=lambda: _send_quietly(s, payload), daemon=True)
        sender.start()
        reply = _reply(s)
        assert reply["ok"] is False and "request too large" in reply["message"]
        assert _closed(s)
        assert server.calls == []  # type: ignore[attr-defined]
        assert _until(lambda: server.connections() == 0)
        s.close()
        # the server still answers
        with _connect(server) as s2:
            s2.sendall(b'{"op":"ping","args":{}}\n')
            assert _reply(s2)["ok"] is True
    finally:
        server.close()


def _send_quietly(s: socket.socket, data: bytes) -> None:
    try:
        s.sendall(data)
    except OSError:
        pass  # the server closed on us, as it should


def test_a_big_but_allowed_request_is_answered(tmp_path):
    server = _server(tmp_path, max_line=8 << 20, small_line=4096, big_slots=1)
    try:
        with _connect(server) as s:
            big = {"op": "echo", "args": {"script": "x" * (5 << 20)}}
            s.sendall(json.dumps(big).encode() + b"\n")
            reply = _reply(s)
            assert reply["ok"] is True and reply["result"]["n"] > 5 << 20
            # the slot for big lines was given back: a second one goes through too
            s.sendall(json.dumps(big).encode() + b"\n")
            assert _reply(s)["ok"] is True
    finally:
        server.close()


def test_an_idle_connection_is_closed(tmp_path):
    server = _server(tmp_path, idle_timeout=0.5)
    try:
        s = _connect(server)
        s.sendall(b'{"op":"ping","args":{}}\n')
        assert _reply(s)["ok"] is True
        assert server.connections() == 1
        # nothing more is sent: the server hangs up (well before the client's 10 s)
        assert _closed(s)
        assert _until(lambda: server.connections() == 0)
        s.close()
        # half a request, then silence: closed as well
        s = _connect(server)
        s.sendall(b'{"op":"pi')
        assert _closed(s)
        s.close()
        assert server.calls == ["ping"]  # type: ignore[attr-defined]
    finally:
        server.close()


def test_a_users_connections_past_the_cap_wait_then_are_refused(tmp_path):
    server = _server(tmp_path, max_connections=10, max_per_uid=3, max_parked=1)
    held: list[socket.socket] = []
    try:
        for _ in range(3):
            held.append(_connect(server))
        assert _until(lambda: server.connections() == 3)
        # the fourth waits (no thread serves it) for one of this user's to close
        waiting = _connect(server)
        waiting.sendall(b'{"op":"ping","args":{}}\n')
        waiting.settimeout(0.5)
        with pytest.raises(socket.timeout):
            waiting.recv(1)
        # past the waiting room: refused with a message, closed
        extra = _connect(server)
        reply = _reply(extra)
        assert reply["ok"] is False and "too many connections from your user" in reply["message"]
        assert _closed(extra)
        extra.close()
        # the held ones still work
        held[0].sendall(b'{"op":"ping","args":{}}\n')
        assert _reply(held[0])["ok"] is True
        # one goes away: the waiting one is served
        held.pop().close()
        waiting.settimeout(10)
        assert _reply(waiting)["ok"] is True
        assert server.connections() == 3
        waiting.close()
        assert _until(lambda: server.connections() == 2)
    finally:
        for s in held:
            s.close()
        server.close()


def test_past_the_total_cap_clients_wait_for_a_free_connection(tmp_path):
    server = _server(tmp_path, max_connections=2, max_per_uid=10)
    held = [_connect(server), _connect(server)]
    try:
        assert _until(lambda: server.connections() == 2)
        waiting = _connect(server)  # in the listen queue: not refused
        waiting.sendall(b'{"op":"ping","args":{}}\n')
        waiting.settimeout(0.5)
        with pytest.raises(socket.timeout):
            waiting.recv(1)  # no thread serves it while two are open
        assert server.connections() == 2
        held.pop().close()
        waiting.settimeout(10)
        assert _reply(waiting)["ok"] is True
        waiting.close()
    finally:
        for s in held:
            s.close()
        server.close()


@pytest.mark.parametrize("line", [
    b"not json",
    b"[1, 2]",
    b'{"args": {}}',
    b'{"op": 5, "args": {}}',
    b'{"op": "ping", "args": [1]}',
    b"[" * 100000 + b"]" * 100000,
    b"\xff\xfe{}",
])
def test_a_malformed_line_is_answered_and_the_connection_closed(tmp_path, line):
    server = _server(tmp_path)
    try:
        s = _connect(server)
        s.sendall(line + b"\n")
        reply = _reply(s)
        assert reply["ok"] is False and "malformed request" in reply["message"]
        assert _closed(s)  # at once, not when the garbage collector gets to it
        s.close()
        assert _until(lambda: server.connections() == 0)
        assert server.calls == []  # type: ignore[attr-defined]
    finally:
        server.close()


_EXITING_SERVER = """
import os, sys, threading, time
from pathlib import Path
from fleetslurm.rpc import Server

asked = threading.Event()
def handler(op, args, uid):
    asked.set()
    time.sleep(0.3)  # the answer is still on its way when the process ends
    return "bye"
server = Server(Path(sys.argv[1]), handler)
server.start()
print("ready", flush=True)
asked.wait()
server.close()
os._exit(0)  # as the controller's process ends once its loop returns
"""


def test_an_answer_in_flight_goes_out_before_the_process_ends(tmp_path):
    """``shutdown``'s own answer raced the controller's exit (CI saw
    "the controller closed the connection" from ``scontrol reconfigure``):
    close() waits for the answers being made."""
    import subprocess
    import sys

    path = tmp_path / "s.sock"
    proc = subprocess.Popen([sys.executable, "-c", _EXITING_SERVER, str(path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(path))
        sock.sendall(b'{"op":"shutdown","args":{}}\n')
        sock.settimeout(10)
        reply = sock.makefile("rb").readline()
        assert json.loads(reply) == {"ok": True, "result": "bye"}
        assert proc.wait(10) == 0
    finally:
        proc.kill()
