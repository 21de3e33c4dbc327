"""``FakeCarrier``: its settings and state, starting and stopping it, and helpers for tests."""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from messaging.fake_carrier.behaviour import CarrierBehaviour
from messaging.fake_carrier.routes import Handler, MessagesApiRoutes, Server
from messaging.fake_carrier.wire import DEFAULT_ACCOUNT_SID, FakeMessage


class FakeCarrier(MessagesApiRoutes, CarrierBehaviour):
    """A threaded HTTP server imitating Twilio's Messages API. See the package docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        fail_rate: float = 0.0,
        fail_status: int = 500,
        drop_rate: float = 0.0,
        throttle_rate: float = 0.0,
        stop_rate: float = 0.0,
        undelivered_rate: float = 0.0,
        callback_base: str = "",
        callback_delay: float = 0.5,
        callback_workers: int = 8,
        callbacks: bool = True,
        auth_token: str = "",
        account_sid: str = DEFAULT_ACCOUNT_SID,
        check_auth: bool = False,
        unsubscribed: Iterable[str] = (),
        log: str | Path | None = None,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.latency_ms = latency_ms
        self.fail_rate = fail_rate
        self.fail_status = fail_status
        self.drop_rate = drop_rate
        self.throttle_rate = throttle_rate
        self.stop_rate = stop_rate
        self.undelivered_rate = undelivered_rate
        self.callback_base = callback_base.rstrip("/")
        self.callback_delay = callback_delay
        self.callback_workers = callback_workers
        self.send_callbacks = callbacks
        self.auth_token = auth_token
        self.account_sid = account_sid
        self.check_auth = check_auth
        self.unsubscribed: set[str] = set(unsubscribed)
        self.log_path = Path(log) if log else None

        #: Every accepted message as logged (sid, to, from, messaging_service_sid, body, time).
        self.received: list[dict] = []
        #: Every message by sid, for GET.
        self.messages: dict[str, FakeMessage] = {}
        #: Counts of answers and callbacks: accepted, throttled, failed, rejected, callbacks...
        self.stats: Counter[str] = Counter()
        #: The most recent callbacks posted: url, params, signature, HTTP status (or error).
        self.callbacks: deque[dict] = deque(maxlen=10_000)

        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._by_to: dict[str, list[str]] = {}
        self._pairs: Counter[tuple[str, str]] = Counter()
        self._log_file = None
        self._server: Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        # Scheduled transitions: (due monotonic time, sequence, action, sid).
        self._events: list[tuple[float, int, str, str]] = []
        self._events_cv = threading.Condition(self._lock)
        self._seq = itertools.count()
        self._running = False
        self._scheduler: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._http = threading.local()

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL to give the SDK (``TWILIO_API_BASE_URL``), e.g. ``http://127.0.0.1:8975``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeCarrier:
        if self._running:
            return self
        if self.log_path:
            self._log_file = self.log_path.open("a", encoding="utf-8")
        self._server = Server((self.host, self.port), Handler)
        self._server.carrier = self
        self.port = self._server.server_address[1]
        self._running = True
        self._pool = ThreadPoolExecutor(self.callback_workers, thread_name_prefix="fake-callback")
        self._scheduler = threading.Thread(
            target=self._run_events, name="fake-carrier-events", daemon=True
        )
        self._scheduler.start()
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="fake-carrier",
            daemon=True,
        )
        self._serve_thread.start()
        return self

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            # Idle keep-alive connections would keep their handler threads reading.
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._events_cv.notify_all()
        self._scheduler.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> FakeCarrier:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _count(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self.stats[name] += 1

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
                self.stats["connections"] += 1
            else:
                self._connections.discard(conn)

    # --- helpers for tests and benches -----------------------------------------------------

    def duplicates(self) -> list[tuple[str, str]]:
        """(to, body) pairs accepted more than once."""
        with self._lock:
            return [pair for pair, n in self._pairs.items() if n > 1]

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        """Poll ``predicate()`` until true or ``timeout`` seconds pass (for callback tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return bool(predicate())
