"""``fleetslurm dashboard``: start the web app on localhost with a fresh
token, as Jupyter does, and print the URL that carries it."""

from __future__ import annotations

import secrets
import sys
import threading
from typing import Any, Optional

__all__ = ["serve"]


def serve(port: int = 8787, bind: str = "127.0.0.1", open_browser: bool = False,
          token: Optional[str] = None, read_only: bool = False) -> None:
    """Run until interrupted. The controller is started first if none runs
    (as any command does); the page then asks it as this user."""
    import socket

    import uvicorn

    from ..cli.common import client
    from .app import TokenGate, make_app

    with client():
        pass  # a controller runs (started here if need be)
    token = token or secrets.token_urlsafe(24)
    closing = threading.Event()
    app = TokenGate(make_app(token, read_only=read_only, closing=closing), token)
    # bind first, so the URL printed is one that answers (port 0: any free one)
    # proto given: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it every answer on a kept connection waited ~40 ms for an ACK
    # (Nagle's algorithm against the client's delayed ACK)
    sock = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET,
                         socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind, port))
    except OSError as exc:
        from ..errors import ConfigError

        import errno

        fix = ("choose another with --port" if exc.errno in (errno.EADDRINUSE, errno.EACCES)
               else "give --bind an address of this machine (127.0.0.1: this machine only)")
        raise ConfigError(f"cannot listen on {bind}:{port} ({exc.strerror}); {fix}") from None
    sock.listen(128)  # a browser that follows the URL at once is queued, not refused
    port = sock.getsockname()[1]
    host = f"[{bind}]" if ":" in bind else bind
    url = f"http://{host}:{port}/?token={token}"
    print(f"fleetslurm dashboard: {url}", flush=True)
    if bind not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {bind}, not only this machine; anyone with the "
              "URL can act as you", file=sys.stderr, flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2,
                            access_log=False)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            closing.set()  # open pages' streams end at their next poll
            super().handle_exit(sig, frame)

    Server(config).run(sockets=[sock])
