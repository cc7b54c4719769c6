"""The dashboard's web app (Starlette): server-side pages, server-sent events
that push re-rendered fragments of them, the buttons' one POST, /metrics.

Every request needs the token (``?token=`` or ``Authorization: Bearer``),
static files included: without it the answer is 403.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import re
import threading
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Optional
from urllib.parse import parse_qs

from anyio import to_thread
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, \
    StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import FleetError
from . import data

__all__ = ["make_app", "TokenGate"]

HERE = Path(__file__).parent
#: how often the pushed views ask the controller again (the queue must show a
#: new job within 2 s; an unchanged queue costs it one small question, see
#: queueview); an unchanged fragment is not sent again
POLL = 0.5


class TokenGate:
    """ASGI middleware: the token or 403, on every HTTP request."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token.encode()

    def _given(self, scope: dict) -> bytes:
        for key, value in scope.get("headers") or ():
            if key == b"authorization" and value[:7].lower() == b"bearer ":
                return value[7:].strip()
        qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return (qs.get("token") or [""])[0].encode()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), *_GUARDS])
            await send(message)

        if not hmac.compare_digest(self._given(scope), self.token):
            await PlainTextResponse("403 Forbidden: this dashboard needs its token "
                                    "(the URL `fleetslurm dashboard` printed)",
                                    status_code=403)(scope, receive, guarded)
            return
        await self.app(scope, receive, guarded)


#: every answer: only this origin's scripts, styles and connections (the page
#: loads nothing from elsewhere), never framed, and the token-bearing URL
#: never sent on as a Referer
_GUARDS = [
    (b"content-security-policy", b"default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                 b"img-src 'self' data:; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]


def make_app(token: str, get: Any = None, read_only: bool = False,
             closing: Optional[threading.Event] = None) -> Starlette:
    """The app; ``get`` answers the data questions (by default a
    :class:`.data.Source` of its own; a fake in unit tests). ``read_only``: no buttons, and the action endpoint refuses
    (an admin's dashboard for everyone to look at). ``closing``, once set,
    ends the event streams (the server is stopping: open pages must not
    hold it up until it cancels them)."""
    closing = closing or threading.Event()
    get = get if get is not None else data.Source()
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                      autoescape=select_autoescape(["html"]))
    env.globals["token"] = token
    env.globals["read_only"] = read_only
    env.globals["static"] = lambda name: f"/static/{name}?token={token}"
    env.filters["mb"] = _mb
    env.filters["pct"] = lambda a, b: 0 if not b else min(100, round(100 * (a or 0) / b))
    env.filters["tojson_attr"] = lambda v: json.dumps(v)

    def render(name: str, **ctx: Any) -> str:
        return env.get_template(name).render(**ctx)

    async def fleet_ctx() -> dict:
        f = await to_thread.run_sync(get.fleet)
        # each machine's load over the last hour: the controller's history (data.fleet)
        loads = f.get("loads") or {}
        return dict(f, loads={n["name"]: loads.get(n["name"], [[], []]) for n in f["nodes"]})

    def filters(req: Request) -> dict:
        q = req.query_params
        try:
            page = int(q.get("page") or 1)
            per = int(q.get("per") or data.PAGE_SIZE)
        except ValueError:
            page, per = 1, data.PAGE_SIZE
        return {"user": q.get("user", ""), "state": q.get("state", ""),
                "partition": q.get("partition", ""), "name": q.get("name", ""), "page": page,
                "per": per, "sort": q.get("sort", "")}

    async def queue_ctx(req: Request) -> dict:
        f = filters(req)
        try:
            q = await to_thread.run_sync(lambda: get.queue(**f))
            err = ""
        except FleetError as exc:  # a bad filter, no controller: say so on the page
            q, err = {"rows": [], "count": 0, "page": 1, "pages": 1, "now": None,
                      "columns": [h for h, _ in data.QUEUE_FIELDS if h != "UID"]}, str(exc)
        return dict(q, f=f, error=err, query=_query(f),
                    query_nosort=_query(dict(f, sort="")))

    async def page_fleet(req: Request) -> Response:
        return HTMLResponse(render("fleet.html", nav="fleet", **await fleet_ctx()))

    async def page_queue(req: Request) -> Response:
        return HTMLResponse(render("queue.html", nav="queue", **await queue_ctx(req)))

    async def page_job(req: Request) -> Response:
        jid = req.path_params["job_id"]
        j = await to_thread.run_sync(lambda: get.job(jid))
        if j is None:
            return HTMLResponse(render("job.html", nav="queue", job_id=jid, job=None),
                                status_code=404)
        return HTMLResponse(render("job.html", nav="queue", job_id=jid, job=j))

    async def page_history(req: Request) -> Response:
        try:
            hours = float(req.query_params.get("hours") or 24)
        except ValueError:
            hours = 24.0
        if not math.isfinite(hours):
            hours = 24.0
        h = await to_thread.run_sync(lambda: get.history(hours))
        return HTMLResponse(render("history.html", nav="history", h=h))

    async def api_queue(req: Request) -> Response:
        q = await queue_ctx(req)
        return JSONResponse({k: q.get(k) for k in ("rows", "count", "page", "pages", "error",
                                                    "now")})

    async def api_fleet(req: Request) -> Response:
        return JSONResponse(await fleet_ctx())

    async def api_usage(req: Request) -> Response:
        """The job page's chart: CPU and memory over time (``data.usage``)."""
        jid = req.path_params["job_id"]
        return JSONResponse(await to_thread.run_sync(lambda: get.usage(jid)))

    async def api_action(req: Request) -> Response:
        try:
            body = await req.json()
            name, jid = str(body["action"]), str(body["job"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"ok": False, "message": "expected {action, job}"},
                                status_code=400)
        if read_only:
            return JSONResponse({"ok": False, "message": "this dashboard is read-only "
                                 "(started with --read-only); use scancel/scontrol"})
        reply = await to_thread.run_sync(lambda: get.action(name, jid))
        # a refusal is the controller's answer, not a failed request: 200 with
        # ok false (the page shows its message, as the CLI prints it)
        return JSONResponse(reply)

    async def sse_fragments(req: Request, make: Callable[[], Any]) -> Response:
        """Push a fragment whenever it changed: ``make()`` gives a key that
        changes when the fragment does and a function that renders it (only
        called then). Nothing is sent for an unchanged key but a keep-alive."""
        async def stream() -> AsyncIterator[str]:
            last: Any = object()
            while not closing.is_set() and not await req.is_disconnected():
                try:
                    key, html = await make()
                except Exception as exc:
                    key = text = f'<p class="error">{_esc(str(exc))}</p>'
                    html = lambda: text  # noqa: E731
                if key != last:
                    last = key
                    yield _event("html", html())
                else:
                    yield ": idle\n\n"  # keeps proxies and the browser's timer awake
                await asyncio.sleep(POLL)
        return _sse(stream())

    async def events_fleet(req: Request) -> Response:
        async def make() -> tuple[str, Callable[[], str]]:
            html = render("_cards.html", **await fleet_ctx())
            return html, lambda: html
        return await sse_fragments(req, make)

    async def events_queue(req: Request) -> Response:
        async def make() -> tuple[Any, Callable[[], str]]:
            q = await queue_ctx(req)
            # the view's revision: a running job's TIME moving is no change
            # (the page counts it on from ``since``)
            key = (q.get("rev"), q["error"], q["page"], q["pages"], q["count"])
            return key, lambda: render("_rows.html", **q)
        return await sse_fragments(req, make)

    async def events_job(req: Request) -> Response:
        jid = req.path_params["job_id"]

        async def make() -> tuple[str, Callable[[], str]]:
            j = await to_thread.run_sync(lambda: get.job(jid))
            html = render("_job.html", job=j, job_id=jid)
            return html, lambda: html
        return await sse_fragments(req, make)

    async def events_output(req: Request) -> Response:
        """The job's output as it grows (``fleetslurm tail -f``), then ``end``."""
        jid = req.path_params["job_id"]
        which = "stderr" if req.query_params.get("which") == "stderr" else "stdout"

        async def stream() -> AsyncIterator[str]:
            offset = 0
            while not closing.is_set() and not await req.is_disconnected():
                try:
                    reply = await to_thread.run_sync(lambda: get.output(jid, offset, which))
                except Exception as exc:
                    yield _event("fail", str(exc))
                    return
                if reply.get("data"):
                    offset = reply["offset"]
                    # as JSON: the output's own \r and \n are not SSE's line ends
                    yield _event("data", json.dumps(reply["data"]))
                    continue  # there may be more at once
                if reply.get("finished"):
                    yield _event("end", "")
                    return
                yield ": idle\n\n"
                await asyncio.sleep(POLL)
        return _sse(stream())

    async def metrics(req: Request) -> Response:
        from .metrics import exposition

        body, ctype = await to_thread.run_sync(lambda: exposition(get))
        return Response(body, media_type=ctype)

    routes = [
        Route("/", page_fleet), Route("/queue", page_queue), Route("/job/{job_id}", page_job),
        Route("/history", page_history), Route("/api/queue", api_queue),
        Route("/api/fleet", api_fleet), Route("/api/action", api_action, methods=["POST"]),
        Route("/api/usage/{job_id}", api_usage),
        Route("/events/fleet", events_fleet), Route("/events/queue", events_queue),
        Route("/events/job/{job_id}", events_job),
        Route("/events/output/{job_id}", events_output), Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    async def fleet_error(req: Request, exc: Exception) -> Response:
        """The controller did not answer (stopped, busy): say so, not a traceback."""
        return HTMLResponse(render("error.html", nav="", message=str(exc)), status_code=503)

    return Starlette(routes=routes, exception_handlers={FleetError: fleet_error})


def _sse(gen: AsyncIterator[str]) -> Response:
    return StreamingResponse(gen, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _event(kind: str, text: str) -> str:
    """One server-sent event; each line of the payload is its own data line
    (SSE ends a line at \r, \n or both: all three split here)."""
    lines = re.split(r"\r\n|\r|\n", text)
    return f"event: {kind}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


def _esc(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def _query(f: dict) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in f.items()
                      if v and k != "page" and not (k == "per" and v == data.PAGE_SIZE)})


def _mb(mb: Optional[float]) -> str:
    if mb is None:
        return "?"
    return f"{mb / 1024:.1f}G" if mb >= 1024 else f"{mb:.0f}M"


