"""``prognos dashboard``: a live web page over what the stream job writes to Redis.

The page (``deploy/web/index.html``, plain HTML and JavaScript, no build step) shows the
fleet summary, the riskiest devices, the open alerts with their explanation (the features
furthest from normal, with values and normal ranges), a device's risk over time and its
alerts' lifecycle, the job's health (throughput, batch time, Kafka lag, dead letters) and
input drift (each sensor's PSI against the training distribution, drift notices).
It updates itself from the server-sent events of ``/events``: a snapshot each second while
anything changed, no page reload.

The server is Starlette on uvicorn; every name and format it reads comes from
:mod:`stream.contract`. When Redis does not answer, the snapshot says so (the page shows
it) and the next one is tried a second later, so the page recovers by itself when Redis
is back.

==========================  ======================================================
``GET /``                   the page
``GET /api/snapshot``       the fleet, the riskiest devices, open alerts, recent
                            alerts, the job's figures, dead letters (JSON)
``GET /api/device/{id}``    one device: latest window, risk history, alert lifecycle
``GET /events``             ``text/event-stream`` of snapshots
==========================  ======================================================
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import threading
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from deploy.errors import DeployError

logger = logging.getLogger(__name__)

__all__ = [
    "DashboardConfig",
    "DashboardData",
    "build_app",
    "make_server",
    "open_socket",
    "run_dashboard_on",
]


@dataclass(frozen=True)
class DashboardConfig:
    """Where the dashboard listens and what it reads.

    Attributes:
        redis_url: the Redis the stream job writes to.
        key_prefix: the job's key prefix.
        host: the address to listen on (``127.0.0.1``; ``0.0.0.0`` for other machines).
        port: the port (8080).
        top: how many of the riskiest devices and recent alerts to show.
        interval_s: how often the page's data is refreshed.
    """

    redis_url: str
    key_prefix: str
    host: str = "127.0.0.1"
    port: int = 8080
    top: int = 10
    interval_s: float = 1.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class DashboardData:
    """Reads the page's data from Redis through the contract's names and formats."""

    def __init__(self, config: DashboardConfig) -> None:
        import redis.asyncio as aioredis

        from stream.contract import Keys

        self.config = config
        self.keys = Keys(config.key_prefix)
        self.client = aioredis.Redis.from_url(
            config.redis_url, socket_timeout=3, socket_connect_timeout=2
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def snapshot(self) -> dict[str, Any]:
        """Everything the page shows but the device view; ``redis`` says if it answered."""
        import redis

        from stream.redis_config import redact_url

        try:
            clean: dict[str, Any] = _finite({"redis": "ok", **await self._snapshot()})
            return clean
        except (redis.RedisError, OSError) as exc:
            return {
                "redis": "down",
                "error": f"Redis at {redact_url(self.config.redis_url)} does not answer "
                f"({exc}); the page retries every second. Start it (`prognos stack up`) or "
                "point --redis-url at the job's Redis.",
            }

    async def _snapshot(self) -> dict[str, Any]:
        from stream.contract import AlertEvent, FleetSummary, JobMetrics

        keys, top = self.keys, self.config.top
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(keys.fleet)
        pipe.hgetall(keys.metrics)
        pipe.hgetall(keys.deadletters)
        pipe.zrevrange(keys.risk_rank, 0, top - 1, withscores=True)
        pipe.srandmember(keys.open, 200)  # a bound on what one page lists
        pipe.scard(keys.open)
        pipe.xrevrange(keys.alerts, count=top)
        pipe.hgetall(keys.drift)
        pipe.hlen(keys.drift_devices)
        pipe.xrevrange(keys.drift_notices, count=5)
        (fleet, metrics, dead, riskiest, open_ids, n_open, recent, drift, drift_devices,
         notices) = await pipe.execute()  # fmt: skip

        open_ids = sorted(_text(d) for d in open_ids)
        pipe = self.client.pipeline(transaction=False)
        for device, _ in riskiest:
            pipe.hmget(keys.device(_text(device)), "window_end", "coverage", "model_version")
        for device in open_ids:
            pipe.lindex(keys.lifecycle(device), -1)
        answers = await pipe.execute()
        details, lasts = answers[: len(riskiest)], answers[len(riskiest) :]

        open_set = set(open_ids)
        risky = []
        for (device, score), (window_end, coverage, version) in zip(riskiest, details, strict=True):
            name = _text(device)
            risky.append(
                {
                    "device_id": name,
                    "risk": float(score),
                    "window_end_ms": int(_text(window_end)) if window_end else None,
                    "coverage": float(_text(coverage)) if coverage else None,
                    "model_version": _text(version) if version else None,
                    "open": name in open_set,
                }
            )
        alerts = []
        for device, last in zip(open_ids, lasts, strict=True):
            if last is None:
                alerts.append({"device_id": device})
                continue
            alerts.append(AlertEvent.from_json(last).to_dict())
        alerts.sort(key=lambda a: -float(a.get("risk") or 0.0))
        summary = FleetSummary.from_hash(fleet)
        job = JobMetrics.from_hash(metrics)
        return {
            "fleet": asdict(summary) if summary else None,
            "job": asdict(job) if job else None,
            "dead_letters": {_text(k): int(_text(v)) for k, v in dead.items()},
            "riskiest": risky,
            "open_alerts": alerts,
            "open_total": int(n_open),
            "recent": [AlertEvent.from_json(f[b"event"]).to_dict() for _, f in recent],
            "drift": _drift(drift, drift_devices, notices),
        }

    async def device(self, device_id: str) -> dict[str, Any] | None:
        """One device's latest window, risk history and alert lifecycle; None if unknown."""
        from stream.contract import AlertEvent, parse_history

        keys = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(keys.device(device_id))
        pipe.lrange(keys.history(device_id), 0, -1)
        pipe.lrange(keys.lifecycle(device_id), 0, -1)
        pipe.sismember(keys.open, device_id)
        pipe.hget(keys.drift_devices, device_id)
        fields, history, lifecycle, is_open, drift = await pipe.execute()
        if not fields:
            return None
        latest = {_text(k): _text(v) for k, v in fields.items() if _text(k) != "state"}
        return {
            "device_id": device_id,
            "latest": latest,
            "open": bool(is_open),
            "history": parse_history(history),
            "lifecycle": [AlertEvent.from_json(e).to_dict() for e in lifecycle],
            "drift": _text(drift) if drift else None,
        }


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity as None: JSON has no such numbers, and one
    figure a writer left unset must not blank the whole page."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _drift(raw: Any, devices: int, notices: Any) -> dict[str, Any] | None:
    """The ``P:drift`` hash and the latest notices as the page shows them."""
    from stream.contract import DriftNotice

    if not raw:
        return None
    fields = {_text(k): _text(v) for k, v in raw.items()}
    return {
        "psi": {
            k[4:]: float(v)
            for k, v in fields.items()
            if k.startswith("psi:") and math.isfinite(float(v))
        },
        "drifting": [s for s in fields.get("drifting", "").split(",") if s],
        "windows": int(fields.get("windows", "0")),
        "threshold": float(fields.get("threshold", "0.25")),
        "devices": int(devices),
        "notices": [asdict(DriftNotice.from_json(f[b"notice"])) for _, f in notices],
    }


def build_app(config: DashboardConfig, closing: threading.Event | None = None) -> Any:
    """The Starlette application (the page, its JSON and its event stream).

    ``closing``, once set, ends the open event streams (within a quarter second), so a
    server stopping with pages open closes their connections instead of waiting on them.
    """
    closing = closing or threading.Event()
    import contextlib

    import redis
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
    from starlette.routing import Route

    page = resources.files("deploy").joinpath("web", "index.html").read_text()
    holder: dict[str, DashboardData] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> Any:
        holder["data"] = DashboardData(config)
        try:
            yield
        finally:
            await holder["data"].close()

    async def index(_: Request) -> HTMLResponse:
        return HTMLResponse(page.replace("{{PREFIX}}", config.key_prefix))

    async def snapshot(_: Request) -> JSONResponse:
        return JSONResponse(await holder["data"].snapshot())

    async def device(request: Request) -> JSONResponse:
        try:
            found = await holder["data"].device(request.path_params["device_id"])
        except (redis.RedisError, OSError) as exc:
            return JSONResponse({"error": f"Redis does not answer: {exc}"}, status_code=503)
        if found is None:
            return JSONResponse({"error": "no such device"}, status_code=404)
        return JSONResponse(_finite(found))

    async def events(request: Request) -> StreamingResponse:
        async def stream() -> Any:
            last = None
            ticks = 0
            while not closing.is_set() and not await request.is_disconnected():
                text = json.dumps(await holder["data"].snapshot(), separators=(",", ":"))
                if text != last or ticks % 15 == 0:  # and a keep-alive now and then
                    yield f"event: snapshot\ndata: {text}\n\n"
                    last = text
                ticks += 1
                waited = 0.0
                while waited < config.interval_s and not closing.is_set():
                    await asyncio.sleep(0.25)
                    waited += 0.25

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/snapshot", snapshot),
            Route("/api/device/{device_id:path}", device),
            Route("/events", events),
        ],
        lifespan=lifespan,
    )


def open_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a port in use is a clear message.

    Raises:
        DeployError: the port is in use or cannot be bound.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DeployError(
            f"the dashboard cannot listen on {host}:{port}: {exc.strerror or exc}. Choose "
            "another --port (or --host), or stop the process holding it "
            f"(`ss -ltnp 'sport = :{port}'` names it)"
        ) from exc
    sock.listen(64)
    return sock


def make_server(config: DashboardConfig) -> Any:
    """The uvicorn server of the dashboard; ``server.run(sockets=[sock])`` serves it and
    ``server.should_exit = True`` stops it (tests run it in a thread)."""
    import uvicorn

    closing = threading.Event()

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            closing.set()  # end the event streams first: pages reconnect to nothing
            super().handle_exit(sig, frame)

    return Server(
        uvicorn.Config(
            build_app(config, closing),
            log_level="warning",
            lifespan="on",
            access_log=False,
            timeout_graceful_shutdown=3,  # open event streams end with the server
        )
    )


def run_dashboard_on(config: DashboardConfig, sock: socket.socket) -> None:
    """Serve the dashboard on a bound socket (:func:`open_socket`) until Ctrl-C or SIGTERM."""
    logger.info(
        "dashboard of key prefix %s at http://%s:%d/", config.key_prefix, config.host, config.port
    )
    make_server(config).run(sockets=[sock])
