"""A page's event stream stops asking the controller once its browser has
gone (no polling left behind by closed tabs). The app runs in uvicorn in this
process with a counting stand-in for the controller. (Starlette's
StreamingResponse itself ends the stream on the client's disconnect, before
the loop's own check: this guards the behaviour, whichever does it.)"""

from __future__ import annotations

import http.client
import socket
import threading
import time

import uvicorn

from fleetslurm.dashboard import data
from fleetslurm.dashboard.app import TokenGate, make_app


class Counting:
    """Answers the Queue page's question, counting them."""

    QUEUE_FIELDS = data.QUEUE_FIELDS

    def __init__(self) -> None:
        self.calls = 0

    def queue(self, **f) -> dict:  # type: ignore[no-untyped-def]
        self.calls += 1
        return {"rows": [], "count": self.calls, "page": 1, "pages": 1,
                "columns": [h for h, _ in data.QUEUE_FIELDS if h != "UID"]}


def test_stream_stops_when_the_client_goes() -> None:
    fake = Counting()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(TokenGate(make_app("t", get=fake), "t"),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/events/queue?token=t")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("content-type").startswith("text/event-stream")
        # the count changes every poll: each poll is a new fragment
        seen = 0
        while seen < 3:
            if resp.fp.readline().startswith(b"event: html"):
                seen += 1
        conn.close()  # the tab closes
        time.sleep(2.0)
        after_close = fake.calls
        time.sleep(2.0)
        assert fake.calls - after_close <= 1, "still polling for a closed page"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
