"""Where the memory of one idle WebSocket subscriber goes, in the API process.

    PYTHONPATH=. .venv/bin/python -m bench.ws_memory [--connections 1000] [--deflate]
        [--mode both|rss|trace] [--depth 8] [--top 25]

Serves the real app (`api.asgi:app`) with uvicorn in a child process, with the options
`wealthwise serve` uses (`api.cli.uvicorn_options`) and uvloop, on a scratch PostgreSQL
database; opens `--connections` graphql-transport-ws connections from this process
(the `websockets` client, like bench/realtime_ws.py, without compression unless
`--deflate`, which offers permessage-deflate as browsers do), in three steps:

  0. a few warm connections, each subscribed (one-time costs: the first parse, caches, pools);
  1. N more connections, each signed in (`connection_init` acknowledged), no subscription;
  2. one `workspaceEvents` subscription on each of those N.

After each step (and a settle) the server runs `gc.collect()` and reports its RSS, its
tasks, its objects by type and, in the `trace` run, a tracemalloc snapshot (`--depth`
frames). Differences divided by N give bytes per connection (1 - 0), per subscription
(2 - 1) and per idle subscriber (2 - 0). The `rss` run has tracemalloc off (its RSS is what
bench/realtime_ws.py measures); the `trace` run's RSS is inflated by tracemalloc itself, so
only its traced bytes count. Top allocation sites are shown grouped by file:line of the
allocating frame and by whole traceback (the innermost frames first).

Results: the summary on stdout and bench/results/ws_memory-<n>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import ctypes
import gc
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.provenance import commit_id
from bench.realtime_ws import (
    DEFAULT_PG_URL,
    RESULTS_DIR,
    Stack,
    _free_port,
    _read_json_line,
    _spawn,
    _tell,
    _wait_ready,
    make_workspaces,
    raise_fd_limit,
    rss_bytes,
    scratch_database,
)

QUERY = "subscription { workspaceEvents { seq type occurredAt transactionId accountIds } }"
STEPS = ("warm", "connected", "subscribed")


# --- the server process ---------------------------------------------------------------


async def server_main(port: int, depth: int, work: str, trim: bool) -> None:
    """uvicorn serving the app; answers `snap NAME` on stdin with one JSON line."""
    import uvicorn

    from api.cli import uvicorn_options
    from domain.core.settings import get_settings

    if depth:
        tracemalloc.start(depth)
    settings = get_settings()
    config = uvicorn.Config(
        "api.asgi:app", host="127.0.0.1", port=port, **uvicorn_options(settings)
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    while True:
        command = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not command or command[0] != "snap":
            break
        name, subscribers = command[1], int(command[2])
        await _quiet(server, subscribers)
        gc.collect()
        types = collections.Counter(_kind(o) for o in gc.get_objects())
        rss = rss_bytes(os.getpid())
        if trim:  # what the C allocator holds free but has not given back
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        answer: dict[str, Any] = {
            "rss": rss,
            "rss_trimmed": rss_bytes(os.getpid()),
            "tasks": len(asyncio.all_tasks()),
            "types": dict(types),
        }
        if depth:
            answer["traced"] = tracemalloc.get_traced_memory()[0]
            path = Path(work) / f"{name}.snapshot"
            tracemalloc.take_snapshot().dump(str(path))
            answer["snapshot"] = str(path)
        print(json.dumps(answer), flush=True)
    server.should_exit = True
    await serving


def _kind(thing: object) -> str:
    """An object's type; for a coroutine or generator, also whose frame it runs."""
    kind = type(thing).__qualname__
    if kind in ("coroutine", "async_generator", "generator"):
        return f"{kind} {getattr(thing, '__qualname__', '?')}"
    return kind


async def _quiet(server: Any, subscribers: int) -> None:
    """Until `subscribers` are live (members of shared feeds, or the hub's own subscribers
    when feeds are off) and no database connection is checked out (every subscription has
    started and is idle), then a second more."""
    state = server.lifespan.state
    hub, fanout, engine = state["hub"], state.get("fanout"), state["services"].engine

    def live() -> int:
        return fanout.metrics().members if fanout is not None else hub.metrics().subscribers

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if live() >= subscribers and engine.pool.checkedout() == 0:
            break
        await asyncio.sleep(0.2)
    else:
        raise RuntimeError(f"not quiet: {live()} of {subscribers} subscribed")
    await asyncio.sleep(1)


# --- the client side (this process) ---------------------------------------------------


class Clients:
    def __init__(self, url: str, deflate: bool, concurrency: int, pace: float) -> None:
        self.url = url
        self.pace = pace
        self.deflate = deflate
        self.gate = asyncio.Semaphore(concurrency)
        self.sockets: list[Any] = []
        self.readers: list[asyncio.Task[None]] = []
        self.closed = 0

    async def connect(self, tokens: list[str]) -> list[Any]:
        async def one(token: str) -> Any:
            from websockets.asyncio.client import connect

            async with self.gate:
                socket = await connect(
                    self.url,
                    subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                    compression="deflate" if self.deflate else None,
                    open_timeout=60,
                    ping_interval=None,  # the server pings; the client answers
                    close_timeout=1,
                )
                init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
                await socket.send(json.dumps(init))
                ack = json.loads(await asyncio.wait_for(socket.recv(), 60))
                if ack.get("type") != "connection_ack":
                    raise RuntimeError(f"no ack: {ack}")
                return socket

        sockets = await asyncio.gather(*(one(token) for token in tokens))
        self.sockets += sockets
        return sockets

    async def subscribe(self, sockets: list[Any]) -> None:
        message = json.dumps({"id": "1", "type": "subscribe", "payload": {"query": QUERY}})
        for socket in sockets:
            await socket.send(message)
            self.readers.append(asyncio.create_task(self._read(socket)))
            if self.pace:
                await asyncio.sleep(self.pace)

    async def _read(self, socket: Any) -> None:
        try:
            async for raw in socket:
                if json.loads(raw).get("type") == "ping":
                    await socket.send('{"type":"pong"}')
        except Exception:
            pass
        self.closed += 1

    async def close(self) -> None:
        for socket in self.sockets:
            socket.transport.abort()
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


# --- one run: a server, three steps -------------------------------------------------------


def _snap(server: Any, name: str, subscribers: int) -> dict[str, Any]:
    _tell(server, f"snap {name} {subscribers}")
    return _read_json_line(server.stdout, 300, "server")


async def _steps(
    server: Any, url: str, tokens: list[str], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    clients = Clients(url, args.deflate, args.connect_concurrency, args.pace)
    snaps: dict[str, dict[str, Any]] = {}
    loop = asyncio.get_running_loop()
    try:
        warm = await clients.connect(tokens[: args.warm])
        await clients.subscribe(warm)
        await asyncio.sleep(args.settle)
        snaps["warm"] = await loop.run_in_executor(None, _snap, server, "warm", len(warm))
        measured = await clients.connect(tokens[args.warm :])
        await asyncio.sleep(args.settle)
        snaps["connected"] = await loop.run_in_executor(None, _snap, server, "connected", len(warm))
        await clients.subscribe(measured)
        await asyncio.sleep(args.settle)
        snaps["subscribed"] = await loop.run_in_executor(
            None, _snap, server, "subscribed", len(warm) + len(measured)
        )
        if clients.closed:
            raise RuntimeError(f"{clients.closed} connections were closed by the server")
    finally:
        await clients.close()
    return snaps


def _per(after: float, before: float, n: int, digits: int | None) -> float:
    return round((after - before) / n, digits)


def _sites(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, key: str, n: int, top: int
) -> list[dict[str, Any]]:
    noise = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
        tracemalloc.Filter(False, "<unknown>"),
    ]
    before, after = before.filter_traces(noise), after.filter_traces(noise)
    rows = []
    for stat in after.compare_to(before, key, cumulative=False)[:top]:
        # tracemalloc keeps the most recent frames, oldest first: show the innermost first.
        frames = [f"{_short(f.filename)}:{f.lineno}" for f in reversed(stat.traceback)]
        rows.append(
            {
                "bytes_per": round(stat.size_diff / n),
                "count_per": round(stat.count_diff / n, 2),
                "at": frames if key == "traceback" else frames[:1],
            }
        )
    return rows


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/wt-", "/main/"):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/wt-" else tail
    return filename.rsplit("/lib/python3", 1)[-1]


def run_server(
    mode: str, env: dict[str, str], tokens: list[str], args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    port = _free_port()
    depth = args.depth if mode == "trace" else 0
    stack = Stack()
    log = stack.log(work / f"api-{mode}.log")
    server = stack.add(
        _spawn(
            [
                "-m",
                "bench.ws_memory",
                "--role",
                "server",
                str(port),
                str(depth),
                str(work),
                "trim" if args.trim else "keep",
            ],
            env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, server, timeout=600)  # tracing slows the start ~10x
        time.sleep(2)  # start-up settles (gc.freeze, a relay round)
        url = base.replace("http", "ws", 1) + "/graphql"
        snaps = asyncio.run(_steps(server, url, tokens, args))
    finally:
        with contextlib.suppress(Exception):
            _tell(server, "stop")
        stack.close()
    n = len(tokens) - args.warm
    result: dict[str, Any] = {"mode": mode}
    warm, connected, subscribed = (snaps[step] for step in STEPS)
    for what in ("rss", "rss_trimmed", "traced", "tasks"):
        if what not in warm or (what == "rss_trimmed" and not args.trim):
            continue
        digits = 2 if what == "tasks" else None
        result[what] = {
            "per_connection": _per(connected[what], warm[what], n, digits),
            "per_subscription": _per(subscribed[what], connected[what], n, digits),
            "per_idle_subscriber": _per(subscribed[what], warm[what], n, digits),
        }
    growth = {
        name: round((subscribed["types"].get(name, 0) - warm["types"].get(name, 0)) / n, 2)
        for name in set(subscribed["types"]) | set(warm["types"])
    }
    result["objects_per_idle_subscriber"] = dict(
        sorted(((k, v) for k, v in growth.items() if abs(v) >= 0.5), key=lambda kv: -kv[1])[
            : args.top
        ]
    )
    if mode == "trace":
        before = tracemalloc.Snapshot.load(warm["snapshot"])
        after = tracemalloc.Snapshot.load(subscribed["snapshot"])
        middle = tracemalloc.Snapshot.load(connected["snapshot"])
        result["by_line"] = _sites(before, after, "lineno", n, args.top)
        result["by_traceback"] = _sites(before, after, "traceback", n, args.top)
        result["by_file"] = _sites(before, after, "filename", n, args.top)
        result["by_line_connection"] = _sites(before, middle, "lineno", n, args.top)
        result["by_line_subscription"] = _sites(middle, after, "lineno", n, args.top)
        for step in STEPS:
            if args.keep is not None:
                args.keep.mkdir(parents=True, exist_ok=True)
                Path(snaps[step]["snapshot"]).rename(args.keep / f"{step}.snapshot")
            with contextlib.suppress(OSError):
                Path(snaps[step]["snapshot"]).unlink()
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    from domain.core.migrate import upgrade
    from domain.core.settings import Settings

    raise_fd_limit()
    total = args.connections + args.warm
    workspaces_count = max(1, -(-total // args.per_workspace))
    report: dict[str, Any] = {
        "commit": commit_id(),
        "connections": args.connections,
        "warm": args.warm,
        "deflate": args.deflate,
        "runs": [],
    }
    with (
        tempfile.TemporaryDirectory(prefix="wealthwise-ws-memory-") as tmp,
        scratch_database(args.pg_url) as (_database, url),
    ):
        work = Path(tmp)
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            "WEALTHWISE_DATABASE_URL": url,
            "WEALTHWISE_DATA_DIR": str(work / "data"),
            "WEALTHWISE_KEK": base64.b64encode(secrets.token_bytes(32)).decode(),
            "WEALTHWISE_JWT_SECRET": secrets.token_urlsafe(32),
            "WEALTHWISE_LOG_LEVEL": "WARNING",
            "WEALTHWISE_GRAPHIQL": "false",
            "WEALTHWISE_ACCESS_TOKEN_MINUTES": "1440",
            "WEALTHWISE_WS_MAX_CONNECTIONS_PER_USER": str(args.per_workspace + 10),
        }
        for name in ("websocket", "subscription", "cost", "ip_cost"):
            env[f"WEALTHWISE_RATE_LIMIT_{name.upper()}_PER_MINUTE"] = "100000000"
            env[f"WEALTHWISE_RATE_LIMIT_{name.upper()}_BURST"] = "100000000"
        env.pop("WEALTHWISE_REDIS_URL", None)
        settings = Settings(
            database_url=url,
            data_dir=work / "data",
            kek=env["WEALTHWISE_KEK"],  # type: ignore[arg-type]
            jwt_secret=env["WEALTHWISE_JWT_SECRET"],  # type: ignore[arg-type]
            access_token_minutes=1440,
            log_level="WARNING",
        )
        settings.ensure_data_dir()
        upgrade(settings)
        workspaces = asyncio.run(make_workspaces(settings, workspaces_count))
        tokens = [workspaces[i // args.per_workspace].token for i in range(total)]
        modes = ["rss", "trace"] if args.mode == "both" else [args.mode]
        for mode in modes:
            print(f"-- {mode} run: {args.connections:,} connections", flush=True)
            report["runs"].append(run_server(mode, env, tokens, args, work))
    return report


def summary(report: dict[str, Any]) -> str:
    lines = [
        f"== {report['connections']:,} idle connections, one workspaceEvents subscription each"
        f" (permessage-deflate {'offered' if report['deflate'] else 'off'}), at {report['commit']}"
    ]
    for result in report["runs"]:
        lines.append(f"- {result['mode']} run")
        for what in ("rss", "rss_trimmed", "traced", "tasks"):
            if what in result:
                figures = result[what]
                unit = "" if what == "tasks" else " B"
                lines.append(
                    f"  {what:>11}: {figures['per_connection']:,}{unit} per connection + "
                    f"{figures['per_subscription']:,}{unit} per subscription = "
                    f"{figures['per_idle_subscriber']:,}{unit} per idle subscriber"
                )
        objects = ", ".join(f"{k} {v:g}" for k, v in result["objects_per_idle_subscriber"].items())
        lines.append(f"  gc objects per idle subscriber: {objects}")
        for key, title in (
            ("by_line", "top sites (file:line) per idle subscriber"),
            ("by_line_connection", "... of the connection alone"),
            ("by_line_subscription", "... of the subscription alone"),
            ("by_traceback", "top tracebacks (innermost first)"),
        ):
            if key not in result:
                continue
            lines.append(f"  {title}:")
            for row in result[key]:
                where = " <- ".join(row["at"][:4]) if key == "by_traceback" else row["at"][0]
                lines.append(f"    {row['bytes_per']:>7,} B {row['count_per']:>6g}x  {where}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--role", choices=["bench", "server"], default="bench")
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=1_000)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--per-workspace", type=int, default=10)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--mode", choices=["both", "rss", "trace"], default="both")
    parser.add_argument("--depth", type=int, default=8, help="tracemalloc frames")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--settle", type=float, default=3, help="seconds before each snapshot")
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument(
        "--pace", type=float, default=0, help="seconds between two subscribes (0: at once)"
    )
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--json", type=Path, default=None, help="where to write the result")
    parser.add_argument(
        "--trim",
        action="store_true",
        help="also RSS after malloc_trim(0) at each step (memory the C allocator held free)",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the snapshots here")
    args = parser.parse_args(argv)
    if args.role == "server":
        port, depth, work, trim = args.files
        import uvloop

        uvloop.run(server_main(int(port), int(depth), work, trim == "trim"))
        return
    report = run(args)
    print(summary(report), flush=True)
    target = args.json or RESULTS_DIR / f"ws_memory-{args.connections}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {target}", flush=True)


if __name__ == "__main__":
    main()
