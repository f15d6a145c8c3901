"""Realtime end to end: N WebSocket subscribers on real API processes, events at a steady rate.

One API process (`python -m api serve`, uvicorn, PostgreSQL, the relay in-process), or two
behind a private Redis with the relay in `python -m api worker`. Subscribers speak
graphql-transport-ws from lean client processes (raw `websockets` asyncio connections,
many per process) and subscribe to `workspaceEvents` (or `balanceUpdated`). A producer
process commits outbox events through `domain.realtime.outbox.emit_many`, the path the
ledger uses, at a steady rate, and notes the wall-clock time each commit returned.

    PYTHONPATH=. .venv/bin/python -m bench.realtime_ws [--subscribers 10000] [--rate 1000]
        [--seconds 20] [--processes 1|2] [--per-workspace 10] [--query events|balances]

Reports: commit-to-client latency p50/p99 (the producer's time.time() after COMMIT
returned against the client's time.time() when the message came out of its socket; one
machine, one clock), the server's memory per idle subscriber (RSS growth of the API
process(es) from a few warm connections to all N connected and idle, per connection
added), and CPU (utime+stime from /proc over the steady phase, % of one core) of the API
process(es), the worker, the clients, the producer and our PostgreSQL backends.

Results: a summary on stdout and bench/results/realtime_ws-<n>-<processes>p.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import gc
import json
import math
import os
import platform
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from api.gcwatch import on_long_collections
from bench.provenance import commit_id

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets (issue 4).
TARGET_SUBSCRIBERS = 10_000
TARGET_P99_MS = 50.0
TARGET_BYTES_PER_SUBSCRIBER = 30 * 1024

QUERIES = {
    # Ids and times only: nothing is read from the database per event.
    "events": (
        "workspaceEvents",
        "subscription { workspaceEvents { seq type occurredAt transactionId accountIds } }",
    ),
    # Loads the account (name, balance) per event and subscriber: one read each.
    "balances": (
        "balanceUpdated",
        "subscription { balanceUpdated { seq occurredAt"
        " accounts { id name balance { amount } } } }",
    ),
}
POSTED, BALANCE = 0, 1  # event kinds in the producer's record


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --- /proc ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_delay(pid: int) -> float:
    """Seconds the process's main thread has spent runnable but waiting for a CPU."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def postgres_backends(database: str) -> list[int]:
    """PostgreSQL backends serving our scratch database (their title names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres:") and f" {database} ".encode() in title:
            found.append(int(entry.name))
    return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


@dataclass
class CpuWindow:
    """CPU time of named groups of processes between `start()` and `stop()`."""

    groups: dict[str, list[int]]
    database: str
    began: dict[int, float] = field(default_factory=dict)
    waited: dict[int, float] = field(default_factory=dict)
    began_at: float = 0.0
    began_machine: tuple[float, float] = (0.0, 0.0)

    def start(self) -> None:
        self.began_at = time.monotonic()
        self.began_machine = machine_busy()
        pids = {pid for pids in self.groups.values() for pid in pids}
        pids |= set(postgres_backends(self.database))
        self.began = {pid: cpu_seconds(pid) for pid in pids}
        self.waited = {pid: run_delay(pid) for pid in self.groups.get("api", [])}

    def stop(self) -> dict[str, float]:
        """Per group: % of one core over the window; plus postgres and the machine."""
        wall = time.monotonic() - self.began_at
        shares = {
            name: 100 * sum(cpu_seconds(p) - self.began.get(p, 0.0) for p in pids) / wall
            for name, pids in self.groups.items()
        }
        backends = set(postgres_backends(self.database)) | {
            p for p in self.began if p not in {q for g in self.groups.values() for q in g}
        }
        shares["postgres"] = (
            100 * sum(max(0.0, cpu_seconds(p) - self.began.get(p, 0.0)) for p in backends) / wall
        )
        # How long the API's event loop was ready to run but had no CPU (a shared machine).
        shares["api_waiting"] = 100 * sum(run_delay(p) - w for p, w in self.waited.items()) / wall
        busy, total = machine_busy()
        cores = os.cpu_count() or 1
        shares["machine"] = (
            100 * cores * (busy - self.began_machine[0]) / max(1.0, total - self.began_machine[1])
        )
        return {name: round(value, 1) for name, value in shares.items()}


# --- setup: a scratch database with W workspaces -------------------------------------------


async def _pg_admin(admin_url: str, statement: str) -> None:
    url = make_url(admin_url)
    connection = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database="postgres",
        timeout=10,
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@dataclass
class Workspace:
    id: str
    account: str
    token: str


async def make_workspaces(settings: Any, count: int) -> list[Workspace]:
    """`count` users, each owning one workspace with one account, and a session each.
    No password (no argon2 run): they sign in with the access token we mint here."""
    from api.app import build_services
    from domain.core.db import bind_scope, unit_of_work
    from domain.identity import service as identity
    from domain.ledger.accounts import create_account

    services = build_services(settings)
    made: list[Workspace] = []
    tag = secrets.token_hex(3)
    try:
        async with unit_of_work(services.engine) as session:
            await services.keyring.ensure_system_keys(session)
        for start in range(0, count, 25):
            async with unit_of_work(services.engine) as session:
                for index in range(start, min(start + 25, count)):
                    user = await identity.create_user(
                        session,
                        services.keyring,
                        email=f"bench-{tag}-{index}@example.com",
                        name=f"Bench {index}",
                        password_hash=None,
                    )
                    issued = await identity.start_session(
                        session, services.signer, user.id, settings.refresh_token_days
                    )
                    tenant = await identity.open_tenant(session, services.keyring, user.id, None)
                    await bind_scope(session, workspace_id=tenant.workspace_id)
                    account = await create_account(
                        session, tenant, name="Savings", kind="savings", currency="INR"
                    )
                    made.append(
                        Workspace(str(tenant.workspace_id), str(account.id), issued.access_token)
                    )
    finally:
        await services.engine.dispose()
    return made


# --- processes --------------------------------------------------------------------------


def _preexec() -> None:
    raise_fd_limit()


def _spawn(args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        preexec_fn=_preexec,  # only raises the fd limit before exec
        text=True,
        **kwargs,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(base: str, process: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{base}: the API process exited ({process.returncode})")
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base} did not become ready in {timeout:.0f} s")


def _stop(process: subprocess.Popen[str] | None, timeout: float = 20) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _read_json_line(stream: IO[str] | None, timeout: float, what: str) -> dict[str, Any]:
    """The next line of a child's stdout that is a JSON object (with a deadline)."""
    assert stream is not None
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise RuntimeError(f"{what}: no answer in {timeout:.0f} s")
            line = stream.readline()
            if not line:
                raise RuntimeError(f"{what}: exited")
            if line.startswith("{"):
                parsed: dict[str, Any] = json.loads(line)
                return parsed
    finally:
        selector.close()


def _load(path: str) -> Any:
    return json.loads(Path(path).read_text())


def _dump(path: str, value: Any) -> None:
    Path(path).write_text(json.dumps(value))


# --- the client process ---------------------------------------------------------------------


async def client_main(plan_path: str, out_path: str) -> None:
    """Open this process's connections, report, record every event, dump on `stop`."""
    from websockets.asyncio.client import ClientConnection, connect

    raise_fd_limit()
    gc.set_threshold(50_000, 10, 10)
    plan = _load(plan_path)
    field_name, query = QUERIES[plan["query"]]
    # (connection, workspace index, seq, receipt time, occurredAt) per message
    receipts: list[tuple[int, int, int, float, float]] = []
    errors: list[str] = []
    sockets: list[ClientConnection] = []
    gate = asyncio.Semaphore(plan["concurrency"])
    subscribe = json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}})
    record = receipts.append
    now = time.time
    parse_time = dt.datetime.fromisoformat
    # This process's own collections of 20 ms or more: (wall-clock start, ms, generation).
    # Receipts are stamped late by as much, so they are reported beside the latency.
    pauses: list[tuple[float, float, int]] = []
    on_long_collections(
        20, lambda at, ms, info: pauses.append((at, round(ms, 1), int(info["generation"])))
    )

    async def run(
        number: int, url: str, token: str, index: int, ready: asyncio.Future[None]
    ) -> None:
        try:
            async with gate:
                socket = await connect(
                    url,
                    subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                    compression=None,
                    max_size=2**16,
                    max_queue=16,
                    write_limit=2**12,
                    open_timeout=120,
                    ping_interval=None,  # the server pings (uvicorn, 20 s); we answer
                    close_timeout=1,
                )
                sockets.append(socket)
                init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
                await socket.send(json.dumps(init))
                ack = json.loads(await asyncio.wait_for(socket.recv(), 120))
                if ack.get("type") != "connection_ack":
                    raise RuntimeError(f"no ack: {ack}")
                await socket.send(subscribe)
            ready.set_result(None)
        except Exception as error:
            ready.set_exception(error)
            return
        try:
            async for raw in socket:
                received = now()
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "next":
                    payload = message["payload"]
                    if "errors" in payload:
                        errors.append(json.dumps(payload["errors"])[:300])
                        continue
                    event = payload["data"][field_name]
                    at = parse_time(event["occurredAt"]).timestamp()
                    record((number, index, event["seq"], received, at))
                elif kind == "ping":
                    await socket.send('{"type":"pong"}')
                elif kind in ("error", "complete"):
                    errors.append(str(raw)[:300])
        except Exception as error:  # a close: count it
            errors.append(f"{type(error).__name__}: {error}"[:300])

    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    connections = plan["connections"]

    async def open_more(upto: int) -> None:
        started = time.monotonic()
        readies = []
        for number in range(len(tasks), upto):
            url, token, index = connections[number]
            ready = loop.create_future()
            readies.append(ready)
            tasks.append(asyncio.create_task(run(number, url, token, index, ready)))
        outcomes = await asyncio.gather(*readies, return_exceptions=True)
        failed = [repr(o)[:200] for o in outcomes if isinstance(o, BaseException)]
        answer = {
            "connected": len(outcomes) - len(failed),
            "failed": len(failed),
            "failures": failed[:5],
            "seconds": round(time.monotonic() - started, 1),
        }
        print(json.dumps(answer), flush=True)

    # Commands on stdin, one per line: "more" (the rest of the connections after the first
    # `warm`), "count" (messages recorded so far), "stop" (close, dump, exit).
    await open_more(min(plan["warm"], len(connections)))
    while True:
        command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if command == "more":
            await open_more(len(connections))
            # The measuring side must not add pauses of its own: thousands of connections
            # make each full collection here take seconds (the API tunes its own, see
            # gc_young_threshold), and receipts would be stamped that late. Even young
            # collections took 40-140 ms here at 5,000 connections, in both client
            # processes at once (they see the same traffic): the latency spikes every
            # ~10 s of the earlier runs. So none at all until the run ends (a run of
            # minutes leaves some cyclic garbage uncollected, which is fine here).
            gc.collect()
            gc.freeze()
            gc.disable()
        elif command == "count":
            print(json.dumps({"count": len(receipts)}), flush=True)
        else:
            break
    for socket in sockets:
        socket.transport.abort()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    _dump(
        out_path,
        {
            "receipts": receipts,
            "errors": errors[:50],
            "error_count": len(errors),
            "gc_pauses": pauses,
        },
    )
    print(json.dumps({"done": len(receipts), "errors": len(errors)}), flush=True)


# --- the producer process -------------------------------------------------------------------


async def producer_main(plan_path: str, out_path: str) -> None:
    """Commit `batch` events per transaction (a transaction.posted and a balance.changed,
    as a ledger post does), round-robin over the workspaces, open-loop at `rate` events/s."""
    from domain.core.db import bind_scope, create_engine, unit_of_work
    from domain.core.settings import Settings
    from domain.realtime import outbox
    from domain.realtime.events import EventType

    raise_fd_limit()
    plan = _load(plan_path)
    settings = Settings()
    engine = create_engine(settings)
    workspaces = [(uuid.UUID(w), a) for w, a in plan["workspaces"]]
    batch, rate = int(plan["batch"]), float(plan["rate"])
    commits_total = max(1, int(plan["seconds"] * rate / batch))
    interval = batch / rate
    today = dt.date.today().isoformat()
    commits: list[tuple[int, int, int, float]] = []  # (workspace index, seq, kind, commit time)
    in_flight = asyncio.Semaphore(int(plan["concurrency"]))
    lateness: list[float] = []

    def drafts(account: str) -> list[tuple[EventType, dict[str, Any]]]:
        made: list[tuple[EventType, dict[str, Any]]] = []
        for offset in range(batch):
            if offset % 2 == 0:
                made.append(
                    (
                        EventType.TRANSACTION_POSTED,
                        {
                            "transaction": str(uuid.uuid4()),
                            "accounts": [account],
                            "categories": [],
                            "date": today,
                        },
                    )
                )
            else:
                made.append((EventType.BALANCE_CHANGED, {"accounts": [account]}))
        return made

    async def commit(number: int) -> None:
        index = number % len(workspaces)
        workspace_id, account = workspaces[index]
        events = drafts(account)
        try:
            async with unit_of_work(engine) as session:
                await bind_scope(session, workspace_id=workspace_id)
                seqs = await outbox.emit_many(session, workspace_id, events)
            at = time.time()
            for seq, (kind, _) in zip(seqs, events, strict=True):
                code = POSTED if kind is EventType.TRANSACTION_POSTED else BALANCE
                commits.append((index, seq, code, at))
        finally:
            in_flight.release()

    # No warm-up commits: their events would reach subscribers uncounted (the coordinator
    # waits for the expected deliveries); the first second is left out of the latency.
    print(json.dumps({"start": time.time()}), flush=True)
    tasks = []
    began = time.perf_counter()
    for number in range(commits_total):
        due = began + number * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await in_flight.acquire()
        lateness.append(time.perf_counter() - due)
        tasks.append(asyncio.create_task(commit(number)))
    await asyncio.gather(*tasks)
    took = time.perf_counter() - began
    await engine.dispose()
    _dump(out_path, {"commits": commits})
    lateness.sort()
    print(
        json.dumps(
            {
                "done": len(commits),
                "seconds": round(took, 2),
                "rate": round(len(commits) / took, 1),
                "late_p99_ms": round(1000 * lateness[int(0.99 * (len(lateness) - 1))], 1),
            }
        ),
        flush=True,
    )


# --- the run ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class Stack:
    """Every process of one run, stopped in reverse order."""

    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    logs: list[tuple[Path, IO[str]]] = field(default_factory=list)

    def log(self, path: Path) -> IO[str]:
        """A file for a server's or the worker's output (read back by `errors`)."""
        handle = path.open("w")
        self.logs.append((path, handle))
        return handle

    def errors(self) -> dict[str, int]:
        """Error events logged by the API processes and the worker, counted by name."""
        counts: dict[str, int] = {}
        for path, handle in self.logs:
            handle.close()
            for line in path.read_text(errors="replace").splitlines():
                if "[error" in line or "[warning" in line:
                    name = line.split("]", 1)[1].split()[0] if "]" in line else line
                    counts[name] = counts.get(name, 0) + 1
                elif line.startswith("ERROR:"):
                    counts[line[:60]] = counts.get(line[:60], 0) + 1
        return dict(sorted(counts.items(), key=lambda item: -item[1])[:10])

    def gc_pauses(self) -> list[float]:
        """Garbage collections the API processes logged as long (`gc_pause`), in ms."""
        pauses: list[float] = []
        for path, _ in self.logs:
            for line in path.read_text(errors="replace").splitlines():
                if "gc_pause" in line and (found := re.search(r"\bms=([0-9.]+)", line)):
                    pauses.append(float(found.group(1)))
        return pauses

    def add(self, process: subprocess.Popen[str]) -> subprocess.Popen[str]:
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                if process.stdin is not None and not process.stdin.closed:
                    process.stdin.close()
            _stop(process)


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[tuple[str, str]]:
    name = f"wealthwise_bench_{secrets.token_hex(4)}"
    asyncio.run(_pg_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield name, make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from domain.core.migrate import upgrade
    from domain.core.settings import Settings

    raise_fd_limit()
    n = args.subscribers
    workspaces_count = max(1, math.ceil(n / args.per_workspace))
    clients = args.clients or (1 if n <= 2_000 else 2)
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit_id(),
        "subscribers": n,
        "per_workspace": args.per_workspace,
        "workspaces": workspaces_count,
        "processes": args.processes,
        "client_processes": clients,
        "rate": args.rate,
        "seconds": args.seconds,
        "batch": args.batch,
        "query": args.query,
        "poll_seconds": args.poll,
        "recheck_seconds": args.recheck or 30,
        "shared_feeds": args.shared == "on",
        "gc_young_threshold": args.gc_young,
        "gc_freeze_seconds": args.gc_freeze,
        "machine": machine(),
        "load_before": os.getloadavg()[0],
    }
    stack = Stack()
    with (
        tempfile.TemporaryDirectory(prefix="wealthwise-ws-bench-") as tmp,
        scratch_database(args.pg_url) as (database, url),
    ):
        work = Path(tmp)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "WEALTHWISE_DATABASE_URL": url,
            "WEALTHWISE_DATA_DIR": str(work / "data"),
            "WEALTHWISE_KEK": base64.b64encode(secrets.token_bytes(32)).decode(),
            "WEALTHWISE_JWT_SECRET": secrets.token_urlsafe(32),
            "WEALTHWISE_LOG_LEVEL": "WARNING",
            "WEALTHWISE_GRAPHIQL": "false",
            "WEALTHWISE_ACCESS_TOKEN_MINUTES": "1440",
            "WEALTHWISE_OUTBOX_POLL_SECONDS": str(args.poll),
            "WEALTHWISE_WS_MAX_CONNECTIONS_PER_USER": str(args.per_workspace + 10),
        }
        # Every subscriber connects from 127.0.0.1: budgets the run cannot spend (the
        # limiter still runs on every upgrade, subscription start and operation cost).
        for name in ("websocket", "subscription", "cost", "ip_cost"):
            env[f"WEALTHWISE_RATE_LIMIT_{name.upper()}_PER_MINUTE"] = "100000000"
            env[f"WEALTHWISE_RATE_LIMIT_{name.upper()}_BURST"] = "100000000"
        if args.recheck:
            env["WEALTHWISE_WS_RECHECK_SECONDS"] = str(args.recheck)
        env["WEALTHWISE_REALTIME_SHARED_FEEDS"] = "true" if args.shared == "on" else "false"
        env["WEALTHWISE_GC_YOUNG_THRESHOLD"] = str(args.gc_young)
        env["WEALTHWISE_GC_FREEZE_SECONDS"] = str(args.gc_freeze)
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
        started = time.perf_counter()
        upgrade(settings)
        print(f"migrated in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        workspaces = asyncio.run(make_workspaces(settings, workspaces_count))
        report["setup_seconds"] = round(time.perf_counter() - started, 1)
        print(f"{workspaces_count:,} workspaces in {report['setup_seconds']} s", flush=True)
        try:
            if args.processes == 2:
                redis_port = _free_port()
                redis_dir = work / "redis"
                redis_dir.mkdir()
                stack.add(
                    subprocess.Popen(
                        [
                            shutil.which("redis-server") or "redis-server",
                            "--port",
                            str(redis_port),
                            "--bind",
                            "127.0.0.1",
                            "--save",
                            "",
                            "--appendonly",
                            "no",
                            "--dir",
                            str(redis_dir),
                            "--maxclients",
                            "1000",
                        ],
                        stdout=subprocess.DEVNULL,
                        text=True,
                    )
                )
                env["WEALTHWISE_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
                _wait_redis(redis_port)
            servers: list[subprocess.Popen[str]] = []
            bases: list[str] = []
            for _ in range(args.processes):
                port = _free_port()
                log = stack.log(work / f"api-{port}.log")
                server = stack.add(
                    _spawn(["-m", "api", "serve", "--port", str(port)], env, stdout=log, stderr=log)
                )
                servers.append(server)
                bases.append(f"http://127.0.0.1:{port}")
            for base, server in zip(bases, servers, strict=True):
                _wait_ready(base, server)
            worker = None
            if args.processes == 2:
                log = stack.log(work / "worker.log")
                worker = stack.add(
                    _spawn(
                        ["-m", "api", "worker", "--concurrency", "2"], env, stdout=log, stderr=log
                    )
                )
            time.sleep(min(2.0, args.settle))  # start-up settles (gc.freeze, a relay round)

            # Subscribers: workspace i's subscribers are i*per .. ; spread over the servers
            # and the client processes round-robin (a workspace spans both servers).
            connections: list[list[list[Any]]] = [[] for _ in range(clients)]
            subscribers_of = [0] * workspaces_count
            for number in range(n):
                index = number // args.per_workspace
                subscribers_of[index] += 1
                base = bases[number % len(bases)]
                ws_url = base.replace("http", "ws", 1) + "/graphql"
                connections[number % clients].append([ws_url, workspaces[index].token, index])
            client_processes = []
            for number, share in enumerate(connections):
                plan_path = work / f"client-{number}.json"
                plan_path.write_text(
                    json.dumps(
                        {
                            "connections": share,
                            "query": args.query,
                            "concurrency": args.connect_concurrency,
                            "warm": max(1, min(50, len(share) // 10)),
                        }
                    )
                )
                client_processes.append(
                    stack.add(
                        _spawn(
                            [
                                "-m",
                                "bench.realtime_ws",
                                "--role",
                                "client",
                                str(plan_path),
                                str(work / f"client-{number}.out.json"),
                            ],
                            env,
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE,
                        )
                    )
                )
            # A few connections first, so that one-time costs (the first parse, caches,
            # pools) are in the baseline; the memory per subscriber is the growth after.
            warm = [_read_json_line(c.stdout, 120, "client") for c in client_processes]
            time.sleep(min(2.0, args.settle))
            rss_before = [rss_bytes(s.pid) for s in servers]
            started = time.perf_counter()
            for client in client_processes:
                _tell(client, "more")
            connected = [_read_json_line(c.stdout, 60 + n / 20, "client") for c in client_processes]
            report["connect_seconds"] = round(time.perf_counter() - started, 1)
            report["connected"] = sum(c["connected"] for c in connected + warm)
            measured = sum(c["connected"] for c in connected)
            report["connect_failures"] = [f for c in connected + warm for f in c["failures"]][:5]
            print(
                f"{report['connected']:,} of {n:,} subscribers connected in "
                f"{report['connect_seconds']} s",
                flush=True,
            )
            groups = {
                "api": [s.pid for s in servers],
                "clients": [c.pid for c in client_processes],
            }
            if worker is not None:
                groups["worker"] = [worker.pid]
            idle = CpuWindow(groups, database)
            idle.start()
            time.sleep(args.settle)
            report["cpu_idle"] = idle.stop()
            rss_idle = [rss_bytes(s.pid) for s in servers]
            report["rss_before_mb"] = [round(r / 2**20, 1) for r in rss_before]
            report["rss_idle_mb"] = [round(r / 2**20, 1) for r in rss_idle]
            report["bytes_per_idle_subscriber"] = round(
                (sum(rss_idle) - sum(rss_before)) / max(1, measured)
            )

            plan_path = work / "producer.json"
            plan_path.write_text(
                json.dumps(
                    {
                        "workspaces": [[w.id, w.account] for w in workspaces],
                        "rate": args.rate,
                        "seconds": args.seconds,
                        "batch": args.batch,
                        "concurrency": args.producer_concurrency,
                    }
                )
            )
            producer = stack.add(
                _spawn(
                    [
                        "-m",
                        "bench.realtime_ws",
                        "--role",
                        "producer",
                        str(plan_path),
                        str(work / "producer.out.json"),
                    ],
                    env,
                    stdout=subprocess.PIPE,
                )
            )
            groups["producer"] = [producer.pid]
            start = _read_json_line(producer.stdout, 60, "producer")["start"]
            report["load_start"] = os.getloadavg()[0]
            warmup = min(args.warmup, args.seconds / 4)
            time.sleep(max(0.0, start + warmup - time.time()))
            steady = CpuWindow(groups, database)
            steady.start()
            time.sleep(max(0.5, start + args.seconds - time.time()))
            report["cpu"] = steady.stop()
            report["load_end"] = os.getloadavg()[0]
            produced = _read_json_line(producer.stdout, 120 + args.seconds, "producer")
            report["producer"] = produced
            commits = json.loads((work / "producer.out.json").read_text())["commits"]
            wanted = {POSTED, BALANCE} if args.query == "events" else {BALANCE}
            expected = sum(subscribers_of[i] for i, _, kind, _ in commits if kind in wanted)
            # Drain: until every expected delivery arrived, or nothing came for `drain` s.
            drained, still = time.monotonic(), 0
            while True:
                total = 0
                for client in client_processes:
                    _tell(client, "count")
                    total += _read_json_line(client.stdout, 60, "client")["count"]
                if total >= expected:
                    break
                if total != still:
                    drained, still = time.monotonic(), total
                elif time.monotonic() - drained > args.drain:
                    break
                time.sleep(0.5)
            report["drain_seconds"] = round(time.time() - start - args.seconds, 1)
            for client in client_processes:
                _tell(client, "stop")
            for client in client_processes:
                _read_json_line(client.stdout, 120, "client")
            committed_at = {(i, seq): at for i, seq, _, at in commits}
            first_commit = min((at for *_, at in commits), default=start)
            latencies: list[float] = []
            occurred: list[float] = []
            delivered = 0
            duplicates = 0
            errors: list[str] = []
            error_count = 0  # subscriptions that ended (closed by the server, errors)
            seen: set[tuple[int, int, int]] = set()
            # Deliveries per API process, against what its subscribers should have had.
            got_by_server = [0] * args.processes
            wanted_by_server = [0] * args.processes
            wanted_of: dict[int, int] = {}
            for index, _, kind, _ in commits:
                if kind in wanted:
                    wanted_of[index] = wanted_of.get(index, 0) + 1
            for number in range(n):
                wanted_by_server[number % args.processes] += wanted_of.get(
                    number // args.per_workspace, 0
                )
            client_pauses: list[float] = []  # ms, the clients' own, from the first commit
            for number in range(clients):
                out = json.loads((work / f"client-{number}.out.json").read_text())
                errors += out["errors"]
                error_count += out["error_count"]
                client_pauses += [ms for at, ms, _ in out["gc_pauses"] if at >= first_commit]
                for connection, index, seq, received, at in out["receipts"]:
                    commit_time = committed_at.get((index, seq))
                    if commit_time is None:
                        continue  # an event from before the run (account creation)
                    key = (number, connection, seq)
                    if key in seen:
                        duplicates += 1
                        continue
                    seen.add(key)
                    delivered += 1
                    got_by_server[(connection * clients + number) % args.processes] += 1
                    if commit_time - first_commit < warmup:
                        continue
                    latencies.append(1000 * (received - commit_time))
                    occurred.append(1000 * (received - at))
            report["client_gc_pauses_ms"] = sorted(client_pauses, reverse=True)[:10]
            report["events"] = len(commits)
            report["expected_deliveries"] = expected
            report["delivered"] = delivered
            report["duplicates"] = duplicates
            report["missing_by_process"] = [
                w - g for w, g in zip(wanted_by_server, got_by_server, strict=True)
            ]
            report["deliveries_per_second"] = round(delivered / max(0.1, args.seconds), 1)
            # What one delivery costs the API process(es), at the rate they kept up with.
            report["api_cpu_us_per_delivery"] = round(
                1e6 * report["cpu"]["api"] / 100 / max(1.0, report["deliveries_per_second"])
            )
            report["client_errors"] = errors[:5]
            report["subscriptions_ended"] = error_count
            report["latency_ms"] = {
                "n": len(latencies),
                "p50": round(percentile(latencies, 50), 1),
                "p90": round(percentile(latencies, 90), 1),
                "p99": round(percentile(latencies, 99), 1),
                "max": round(max(latencies, default=math.nan), 1),
            }
            report["occurred_at_latency_ms"] = {
                "p50": round(percentile(occurred, 50), 1),
                "p99": round(percentile(occurred, 99), 1),
            }
        finally:
            stack.close()
            report["server_errors"] = stack.errors()
            pauses = stack.gc_pauses()
            report["gc_pauses_ms"] = {
                "count": len(pauses),
                "max": max(pauses, default=0.0),
                "total": round(sum(pauses), 1),
            }
            if args.keep is not None:  # the raw receipts, commits and logs, for a post-mortem
                shutil.copytree(work, args.keep, dirs_exist_ok=True, ignore=_not_data)
    return report


def _not_data(directory: str, names: list[str]) -> set[str]:
    return {name for name in names if name in ("data", "redis")}


def _tell(process: subprocess.Popen[str], command: str) -> None:
    assert process.stdin is not None
    process.stdin.write(command + "\n")
    process.stdin.flush()


def _wait_redis(port: int) -> None:
    import redis

    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(port=port).ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def summary(report: dict[str, Any]) -> str:
    latency = report["latency_ms"]
    cpu = report["cpu"]
    per_sub = report["bytes_per_idle_subscriber"]
    verdicts = [
        f"subscribers {report['connected']:,}/{TARGET_SUBSCRIBERS:,}: "
        + ("met" if report["connected"] >= TARGET_SUBSCRIBERS else "below target"),
        f"p99 {latency['p99']} ms (<= {TARGET_P99_MS:g}): "
        + ("met" if latency["p99"] <= TARGET_P99_MS else "MISSED"),
        f"{per_sub / 1024:.1f} KB per idle subscriber (<= 30 KB): "
        + ("met" if per_sub <= TARGET_BYTES_PER_SUBSCRIBER else "MISSED"),
    ]
    lines = [
        f"== {report['subscribers']:,} subscribers ({report['per_workspace']} per workspace, "
        f"{report['workspaces']:,} workspaces), {report['processes']} API process(es), "
        f"{report['client_processes']} client process(es), query {report['query']}",
        f"connected {report['connected']:,} in {report['connect_seconds']} s; "
        f"RSS {report['rss_before_mb']} -> {report['rss_idle_mb']} MB: "
        f"{per_sub:,} B per idle subscriber; idle CPU {report['cpu_idle']}",
        f"events {report['events']:,} at {report['producer']['rate']:,}/s target "
        f"{report['rate']:,.0f}/s (batch {report['batch']}, producer late p99 "
        f"{report['producer']['late_p99_ms']} ms); delivered {report['delivered']:,} of "
        f"{report['expected_deliveries']:,} ({report['deliveries_per_second']:,.0f}/s, "
        f"missing per API process {report['missing_by_process']}, "
        f"{report['duplicates']} duplicates, API CPU {report['api_cpu_us_per_delivery']} us "
        "per delivery)",
        f"commit-to-client ms: p50 {latency['p50']}  p90 {latency['p90']}  p99 {latency['p99']}"
        f"  max {latency['max']}  (n {latency['n']:,}; from occurredAt: p50 "
        f"{report['occurred_at_latency_ms']['p50']} p99 {report['occurred_at_latency_ms']['p99']})",
        "CPU % of one core, steady phase: "
        + ", ".join(f"{name} {value}" for name, value in cpu.items()),
        f"load average {report['load_before']:.2f} / {report['load_start']:.2f} / "
        f"{report['load_end']:.2f}",
        "targets: " + "; ".join(verdicts),
    ]
    pauses = report.get("gc_pauses_ms") or {}
    if pauses.get("count"):
        lines.append(
            f"GC pauses >= 100 ms in the API over the whole run: {pauses['count']}, "
            f"longest {pauses['max']} ms, {pauses['total']} ms in all"
        )
    if report.get("client_gc_pauses_ms"):
        lines.append(
            "the clients' own GC pauses >= 20 ms while events flowed (receipts stamped that"
            f" late): {report['client_gc_pauses_ms']}"
        )
    if report.get("server_errors"):
        lines.append(f"logged by the API/worker: {report['server_errors']}")
    if report["client_errors"] or report["connect_failures"]:
        lines.append(
            f"{report['subscriptions_ended']:,} subscriptions ended during the run; first "
            f"errors: {report['connect_failures'] + report['client_errors']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--role", choices=["bench", "client", "producer"], default="bench")
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--per-workspace", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1_000, help="events/s")
    parser.add_argument("--seconds", type=float, default=20, help="the steady phase")
    parser.add_argument("--processes", type=int, choices=[1, 2], default=1)
    parser.add_argument("--batch", type=int, default=10, help="events per transaction")
    parser.add_argument("--query", choices=sorted(QUERIES), default="events")
    parser.add_argument("--clients", type=int, default=0, help="client processes (auto)")
    parser.add_argument("--poll", type=float, default=0.02, help="outbox_poll_seconds")
    parser.add_argument(
        "--recheck", type=float, default=0, help="ws_recheck_seconds (0: the default, 30)"
    )
    parser.add_argument("--settle", type=float, default=5, help="idle seconds before RSS")
    parser.add_argument("--warmup", type=float, default=1, help="seconds left out of latency")
    parser.add_argument(
        "--drain", type=float, default=10, help="give up when nothing arrived for this long"
    )
    parser.add_argument(
        "--shared",
        choices=["on", "off", "both"],
        default="on",
        help="realtime_shared_feeds; both: off (the baseline), then on, and their ratios",
    )
    parser.add_argument(
        "--gc-young",
        type=int,
        default=50_000,
        help="the API's gc_young_threshold (0: Python's default, 700)",
    )
    parser.add_argument(
        "--gc-freeze",
        type=float,
        default=10,
        help="the API's gc_freeze_seconds (0: off; gc_full_collect_seconds stays 1,800)",
    )
    parser.add_argument("--connect-concurrency", type=int, default=20, help="per client")
    parser.add_argument("--producer-concurrency", type=int, default=4)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--json", type=Path, default=None, help="where to write the result")
    parser.add_argument("--keep", type=Path, default=None, help="copy raw records here")
    args = parser.parse_args(argv)
    if args.role == "client":
        _run_loop(client_main(*args.files))
        return
    if args.role == "producer":
        _run_loop(producer_main(*args.files))
        return
    if args.shared == "both":
        baseline = run(argparse.Namespace(**{**vars(args), "shared": "off"}))
        print(summary(baseline), flush=True)
        report = run(argparse.Namespace(**{**vars(args), "shared": "on"}))
        print(summary(report), flush=True)
        report["baseline_unshared"] = baseline
        print(compare(baseline, report), flush=True)
    else:
        report = run(args)
        print(summary(report), flush=True)
    suffix = "" if args.shared == "on" else f"-{args.shared}"
    name = f"realtime_ws-{args.subscribers}-{args.processes}p{suffix}.json"
    target = args.json or RESULTS_DIR / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {target}", flush=True)


def compare(baseline: dict[str, Any], shared: dict[str, Any]) -> str:
    """Shared feeds against the unshared baseline of the same run."""

    def ratio(key: str, *path: str) -> str:
        before, after = baseline, shared
        for step in (*path, key):
            before, after = before.get(step, {}), after.get(step, {})
        if not isinstance(before, int | float) or not isinstance(after, int | float) or not after:
            return "n/a"
        return f"{before / after:.1f}x"

    return (
        "shared feeds vs unshared (same run, baseline / shared): "
        f"API CPU per delivery {ratio('api_cpu_us_per_delivery')}, "
        f"p50 {ratio('p50', 'latency_ms')}, p99 {ratio('p99', 'latency_ms')}"
    )


def _run_loop(coroutine: Any) -> None:
    try:
        import uvloop

        uvloop.run(coroutine)
    except ImportError:
        asyncio.run(coroutine)


if __name__ == "__main__":
    main()
