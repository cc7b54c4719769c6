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


def test_connections_over_the_cap_are_refused_with_a_message(tmp_path):
    server = _server(tmp_path, max_connections=4, max_per_uid=3)
    held: list[socket.socket] = []
    try:
        for _ in range(3):
            held.append(_connect(server))
        assert _until(lambda: server.connections() == 3)
        extra = _connect(server)
        reply = _reply(extra)
        assert reply["ok"] is False and "too many connections from your user" in reply["message"]
        assert _closed(extra)
        extra.close()
        # the held ones still work
        held[0].sendall(b'{"op":"ping","args":{}}\n')
        assert _reply(held[0])["ok"] is True
        # one goes away: a new one is admitted
        held.pop().close()
        assert _until(lambda: server.connections() == 2)
        with _connect(server) as s:
            s.sendall(b'{"op":"ping","args":{}}\n')
            assert _reply(s)["ok"] is True
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
