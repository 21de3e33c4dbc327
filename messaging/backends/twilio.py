"""Sends through Twilio with the real ``twilio`` SDK: the one module allowed to import it.

Batches go out concurrently on the SDK's asynchronous client (aiohttp), bounded by the
``concurrency`` option, on an event loop that lives in a background thread for as long as the
backend is open, so connections are kept alive from one ``send_messages`` call to the next. Use
the backend as a context manager (or call ``open()``/``close()``) to get that reuse: like
Django's e-mail backends, a ``send_messages`` on a closed backend opens it for that call only.

How Twilio's answers become outcomes (``messaging.backends.base``):

* 201: ``accepted`` with the message SID and Twilio's status (``queued``, or ``accepted``
  through a Messaging Service).
* 429 or code 20429: ``retry`` (Twilio refused before processing), after ``Retry-After``.
* 503 (20503 "service unavailable, try again with back-off"): ``retry``, after ``Retry-After``.
* 500, 502, 504 and any other 5xx: ``unknown``. Twilio documents error 20500 as a failure or
  timeout while it was handling the request, and warns that retrying an SMS send after one can
  deliver the text twice; a 502 or 504 comes from a gateway that may have lost the origin's
  answer. The sender reconciles ``unknown`` texts with :meth:`find_sent` and sends again only
  those Twilio does not have: a little later, never twice. The ``retry_5xx`` option widens the
  ``retry`` set for a deployment that prefers speed over that guarantee.
* 401 / code 20003 (wrong credentials): ``retry`` after 60 s with the code, so a bad secret
  holds the queue rather than failing every message; it is logged as an error.
* Any other 4xx: ``rejected`` with Twilio's code and message (21211, 21610, 21614, ...).
* Connection refused, DNS failure, TLS handshake failure, connect timeout: ``retry`` (the
  request never left).
* Read timeout, connection reset or closed after the request went out, an unparsable answer:
  ``unknown``: Twilio may hold the message; :meth:`find_sent` reconciles.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import datetime as dt
import email.utils
import logging
import os
import re
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from messaging.backends.base import (
    BaseSmsBackend,
    CarrierReport,
    OutgoingSms,
    SendOutcome,
    SendResult,
)
from messaging.pacing import StartGate

__all__ = [
    "STATUS_CALLBACK_PATH",
    "TwilioBackend",
    "TwilioCredentials",
    "compute_signature",
    "credentials_for",
    "rewrite_twilio_url",
    "validate_signature",
]

logger = logging.getLogger(__name__)

STATUS_CALLBACK_PATH = "/sms/twilio/status/"
# 5xx answers that say "not processed, try again" (see the module docstring for 500/502/504).
RETRYABLE_5XX = frozenset({503})
AUTH_RETRY_SECONDS = 60.0
# Every Twilio API host (api., messaging., regional and edge names) over https.
_TWILIO_HOST_RE = re.compile(r"^https://(?:[a-z0-9-]+\.)*twilio\.com(?=[/?]|$)", re.IGNORECASE)
_ACCOUNT_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


# --- credentials and signatures ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TwilioCredentials:
    account_sid: str
    auth_token: str


def credentials_for(carrier_account: str = "default") -> TwilioCredentials:
    """The Twilio credentials of a registration's carrier account, from the environment.

    ``default`` reads the ``TWILIO_ACCOUNT_SID`` / ``TWILIO_AUTH_TOKEN`` settings; any other NAME
    reads ``TWILIO_<NAME>_ACCOUNT_SID`` / ``TWILIO_<NAME>_AUTH_TOKEN``. A missing one raises
    :class:`ImproperlyConfigured` naming the variable. Secrets never live in the database.
    """
    name = carrier_account or "default"
    if not _ACCOUNT_NAME_RE.match(name):
        raise ImproperlyConfigured(
            f"Carrier account {name!r}: use letters, digits and underscores only."
        )
    if name.lower() == "default":
        pairs = [
            ("TWILIO_ACCOUNT_SID", settings.TWILIO_ACCOUNT_SID),
            ("TWILIO_AUTH_TOKEN", settings.TWILIO_AUTH_TOKEN),
        ]
    else:
        prefix = f"TWILIO_{name.upper()}_"
        pairs = [
            (f"{prefix}ACCOUNT_SID", os.environ.get(f"{prefix}ACCOUNT_SID", "")),
            (f"{prefix}AUTH_TOKEN", os.environ.get(f"{prefix}AUTH_TOKEN", "")),
        ]
    for variable, value in pairs:
        if not value:
            raise ImproperlyConfigured(
                f"Set the {variable} environment variable (Twilio carrier account {name!r})."
            )
    return TwilioCredentials(account_sid=pairs[0][1], auth_token=pairs[1][1])


def compute_signature(url: str, params: Mapping, auth_token: str) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for a POST of ``params`` to ``url``."""
    return RequestValidator(auth_token).compute_signature(url, params)


def validate_signature(url: str, params: Mapping, signature: str, auth_token: str) -> bool:
    """True when ``signature`` is Twilio's signature of ``url`` + ``params`` with this token.

    ``url`` is the full URL as the carrier requested it (scheme, host, path and query);
    ``params`` the POST form (a Django ``QueryDict`` or a dict). A missing signature is False.
    """
    if not signature or not auth_token:
        return False
    return RequestValidator(auth_token).validate(url, params or {}, signature)


# --- the HTTP client -----------------------------------------------------------------------


def _basic_auth(login: str, password: str) -> str:
    encode = getattr(aiohttp, "encode_basic_auth", None)  # aiohttp >= 3.14
    if encode is not None:
        return encode(login, password)
    return aiohttp.BasicAuth(login, password).encode()


def rewrite_twilio_url(url: str, base_url: str) -> str:
    """``url`` with its ``https://*.twilio.com`` origin replaced by ``base_url`` (if any)."""
    if not base_url:
        return url
    return _TWILIO_HOST_RE.sub(base_url.rstrip("/"), url, count=1)


class CarrierUnreachable(Exception):
    """The request never left this machine (refused, DNS, TLS, connect timeout): safe to retry."""


class NoAnswer(Exception):
    """The request may have reached the carrier but no answer came back: outcome unknown."""


# The headers of the last answer seen by the current task: a 429's Retry-After is not carried
# by the SDK's exception, and each send runs in its own task (its own context).
_last_headers: contextvars.ContextVar[Mapping | None] = contextvars.ContextVar(
    "twilio_last_headers", default=None
)


# The gate entry of the text whose request this task is about to write (see StartGate.left), in
# a list that the hook empties: aiohttp writes the body from a task of its own, which sees this
# context's list but not a new value set in it.
_gate_start: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "twilio_gate_start", default=None
)


async def _request_left(session, context, params) -> None:
    """aiohttp's hook right before it writes a request's first body bytes, with the headers it
    held back for them, to the socket (nothing that waits comes between): tell the gate when
    the text left. The headers-sent hook comes earlier, before the writing task is even run."""
    pending = _gate_start.get()
    if pending:
        gate, start = pending
        pending.clear()
        gate.left(start)


class RewritingAsyncHttpClient(AsyncTwilioHttpClient):
    """The SDK's aiohttp client with a sized pool, split timeouts and an optional base URL.

    ``base_url`` (e.g. ``http://127.0.0.1:8975``) replaces ``https://*.twilio.com`` in every
    request, which points the real SDK at the local fake carrier. Create it inside the running
    event loop that will use it.
    """

    def __init__(
        self,
        *,
        base_url: str = "",
        concurrency: int = 64,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
    ) -> None:
        super().__init__(pool_connections=False)
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        # aiohttp's default pool holds 100 connections, which would cap concurrency silently.
        connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
        self._default_timeout = self._timeout()
        trace = aiohttp.TraceConfig()
        trace.on_request_chunk_sent.append(_request_left)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=self._default_timeout, trace_configs=[trace]
        )
        # Per-request work that gives the same answer every time (the worker is CPU-bound at
        # ~1,000 requests/s, so each step of a request counts): the rewritten URL of the
        # account's Messages resource, the Authorization header.
        self._urls: dict[str, str] = {}
        self._auth_headers: dict[tuple[str, str], str] = {}

    def _timeout(self, read: float | None = None) -> aiohttp.ClientTimeout:
        # No total: a batch waiting for a pool slot must not time out as "no answer". The connect
        # timeout (which includes waiting for a slot) fails before anything is sent.
        return aiohttp.ClientTimeout(
            total=None,
            connect=self.connect_timeout,
            sock_connect=self.connect_timeout,
            sock_read=read or self.read_timeout,
        )

    def rewrite(self, url: str) -> str:
        rewritten = self._urls.get(url)
        if rewritten is None:
            rewritten = rewrite_twilio_url(url, self.base_url)
            if len(self._urls) < 1024:  # lookups by recipient vary; creates share a few URLs
                self._urls[url] = rewritten
        return rewritten

    def _authorization(self, login: str, password: str) -> str:
        header = self._auth_headers.get((login, password))
        if header is None:
            header = self._auth_headers[(login, password)] = _basic_auth(login, password)
        return header

    async def request(
        self,
        method: str,
        url: str,
        params=None,
        data=None,
        headers=None,
        auth=None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        headers = dict(headers or {})
        if auth:
            headers["Authorization"] = self._authorization(*auth)
        if isinstance(data, Mapping) and (
            headers.get("Content-Type") == "application/x-www-form-urlencoded"
        ):
            # The same bytes aiohttp would send, encoded here: given a dict, aiohttp builds a
            # FormData, and with it a multipart writer and a random boundary (os.urandom) it
            # then throws away, for every request (~10% of the event loop's CPU).
            data = urlencode(data, doseq=True).encode()
        try:
            async with self.session.request(
                method.upper(),
                self.rewrite(url),
                params=params,
                data=data,
                headers=headers,
                timeout=self._default_timeout if timeout is None else self._timeout(timeout),
                allow_redirects=allow_redirects,
            ) as answer:
                text = await answer.text()
                status, answer_headers = answer.status, answer.headers
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise CarrierUnreachable(f"{type(exc).__name__}: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise NoAnswer(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
        _last_headers.set(answer_headers)
        return Response(status, text, answer_headers)


class _Connection:
    """An event loop in a daemon thread, with the HTTP pool and SDK clients that live on it.

    Synchronous callers (any thread) submit coroutines with :meth:`run`; the pool, the
    concurrency bound and the SDK clients are shared by every call made through it.
    """

    def __init__(self, *, base_url: str, concurrency: int, connect_timeout: float, timeout: float):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="twilio-backend", daemon=True
        )
        self.thread.start()
        self.clients: dict[TwilioCredentials, Client] = {}

        async def make():
            # aiohttp binds its session to the running loop: create both on it.
            return (
                RewritingAsyncHttpClient(
                    base_url=base_url,
                    concurrency=concurrency,
                    connect_timeout=connect_timeout,
                    read_timeout=timeout,
                ),
                asyncio.Semaphore(concurrency),
            )

        self.http, self.semaphore = self.run(make())

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def client(self, carrier_account: str) -> Client:
        credentials = credentials_for(carrier_account)
        client = self.clients.get(credentials)
        if client is None:
            client = self.clients[credentials] = Client(
                username=credentials.account_sid,
                password=credentials.auth_token,
                account_sid=credentials.account_sid,
                http_client=self.http,
            )
        return client

    def close(self) -> None:
        # In a forked child the parent's loop thread does not exist: nothing to stop there.
        if self.pid != os.getpid() or self.loop.is_closed():
            return

        async def shutdown():
            # A call still in flight from another thread ends with CancelledError (its outcome
            # unknown) instead of waiting forever on a stopped loop.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.http.close()

        try:
            self.run(shutdown())
        except Exception:  # closing is best effort
            logger.debug("Closing the Twilio HTTP session failed", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


# --- the backend ---------------------------------------------------------------------------


def _retry_after(headers: Mapping | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    value = (headers or {}).get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


class TwilioBackend(BaseSmsBackend):
    """Sends through the Twilio Messages API.

    Options (``get_backend(path, **options)``):

    * ``base_url``: send to this server instead of ``https://api.twilio.com`` (default: the
      ``TWILIO_API_BASE_URL`` setting; empty means Twilio itself).
    * ``concurrency``: requests in flight at once (default 64; 256 pays at high latency).
    * ``timeout``: seconds to wait for an answer once the request is sent (default 10); past it
      the outcome is ``unknown``.
    * ``connect_timeout``: seconds to get a connection (default 5); past it, ``retry``.
    * ``status_callback``: StatusCallback for messages that carry none. Default:
      ``PUBLIC_BASE_URL`` + ``/sms/twilio/status/``; ``""`` sends none.
    * ``reconcile_slack``: seconds subtracted from ``since`` in :meth:`find_sent`, for clock skew
      and Twilio's whole-second timestamps (default 5).
    * ``retry_5xx``: 5xx statuses that mean "not processed" (``retry``); the others are
      ``unknown``. Default ``{503}``.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        concurrency: int = 64,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        status_callback: str | None = None,
        reconcile_slack: float = 5.0,
        retry_5xx: Iterable[int] = RETRYABLE_5XX,
        **options,
    ) -> None:
        super().__init__(**options)
        self.base_url = settings.TWILIO_API_BASE_URL if base_url is None else base_url
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        if status_callback is None:
            base = getattr(settings, "PUBLIC_BASE_URL", "")
            status_callback = f"{base.rstrip('/')}{STATUS_CALLBACK_PATH}" if base else ""
        self.status_callback = status_callback
        self.reconcile_slack = dt.timedelta(seconds=reconcile_slack)
        self.retry_5xx = frozenset(int(status) for status in retry_5xx)
        self._lock = threading.Lock()
        self._connection: _Connection | None = None
        self._finalizer: weakref.finalize | None = None

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._connection is not None and self._connection.pid == os.getpid()

    def _connect(self) -> _Connection:
        return _Connection(
            base_url=self.base_url,
            concurrency=self.concurrency,
            connect_timeout=self.connect_timeout,
            timeout=self.timeout,
        )

    def open(self) -> bool:
        """Start the event loop thread and the connection pool. Returns True if it opened them."""
        with self._lock:
            if self.is_open:
                return False
            # After a fork the parent's thread and sockets are not ours: start afresh.
            self._connection = self._connect()
            self._warm_up(self._connection)
            # A backend dropped without close() must not leak its thread and sockets.
            self._finalizer = weakref.finalize(self, self._connection.close)
            return True

    def _warm_up(self, connection: _Connection) -> None:
        """Pay the one-off costs before the first text, not during it.

        The SDK imports its API resources on first use (~0.2 s) and the first request opens a
        connection; a sender that paid those inside its first paced call would send that text
        late and the next ones bunched behind it. Best effort: failures are ignored.
        """
        try:
            connection.client("default").api.v2010.account.messages  # noqa: B018 (import)
        except Exception:  # e.g. no default credentials: the first real call will say so
            logger.debug("Twilio client warm-up skipped", exc_info=True)

        async def touch() -> None:
            url = connection.http.rewrite("https://api.twilio.com/")
            async with connection.http.session.get(url, timeout=aiohttp.ClientTimeout(2)) as r:
                await r.read()  # read it all, so the connection goes back to the pool

        try:
            connection.run(touch())
        except Exception:  # any answer will do; the connection is warm all the same
            logger.debug("Twilio connection warm-up failed", exc_info=True)

    def close(self) -> None:
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._connection = self._finalizer = None

    def _call(self, make_coroutine):
        """Run ``make_coroutine(connection)`` on the open connection, or on one made (and
        closed) for this call alone, which no concurrent caller can close under it."""
        connection = self._connection if self.is_open else None
        if connection is not None:
            return connection.run(make_coroutine(connection))
        connection = self._connect()
        try:
            return connection.run(make_coroutine(connection))
        finally:
            connection.close()

    # --- sending ---------------------------------------------------------------------------

    def send_messages(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        if not messages:
            return []
        # Every account's secrets are checked before anything is sent: a missing one fails the
        # whole batch loudly instead of half of it.
        for account in {sms.carrier_account for sms in messages}:
            credentials_for(account)

        async def send_all(connection: _Connection):
            return await asyncio.gather(*(self._send_one(connection, sms) for sms in messages))

        return self._call(send_all)

    def submit(
        self, messages: Sequence[OutgoingSms], *, gate: StartGate | None = None
    ) -> concurrent.futures.Future:
        """Schedule the batch on the open backend's event loop and return at once (no thread
        waits for the carrier). A closed backend falls back to the base class's threads."""
        connection = self._connection if self.is_open else None
        if connection is None or not messages:
            return super().submit(messages, gate=gate)
        for account in {sms.carrier_account for sms in messages}:
            credentials_for(account)

        async def send_all():
            # The SDK client of each account, looked up once for the batch, not per text.
            clients = {
                account: connection.client(account)
                for account in {sms.carrier_account for sms in messages}
            }
            return await asyncio.gather(
                *(
                    self._send_one(connection, sms, gate, clients[sms.carrier_account])
                    for sms in messages
                )
            )

        return asyncio.run_coroutine_threadsafe(send_all(), connection.loop)

    async def _send_one(
        self,
        connection: _Connection,
        sms: OutgoingSms,
        gate: StartGate | None = None,
        client: Client | None = None,
    ) -> SendResult:
        async with connection.semaphore:
            # When the request really starts: the sender records it as the text's send time.
            started = time.time()
            if gate is not None:
                # Nothing that waits runs between the gate and the request going out: the window
                # holds on the moment the text really leaves, however late the loop got to it.
                started, start = await gate.enter_async(sms.cost)
                _gate_start.set([gate, start])
            result = await self._create(connection, sms, client)
        return dataclasses.replace(result, started_at=started)

    async def _create(
        self, connection: _Connection, sms: OutgoingSms, client: Client | None = None
    ) -> SendResult:
        client = client or connection.client(sms.carrier_account)
        params = {"to": sms.to, "body": sms.body}
        if sms.messaging_service_sid:
            params["messaging_service_sid"] = sms.messaging_service_sid
        else:
            params["from_"] = sms.from_number
        callback = sms.status_callback or self.status_callback
        if callback:
            params["status_callback"] = callback
        try:
            message = await client.messages.create_async(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            return self._refused(sms, exc, _last_headers.get())
        except CarrierUnreachable as exc:
            return SendResult(
                message_id=sms.message_id, outcome=SendOutcome.RETRY, error_text=str(exc)
            )
        except NoAnswer as exc:
            return SendResult(
                message_id=sms.message_id,
                outcome=SendOutcome.UNKNOWN,
                error_text=f"No answer from Twilio: {exc}"[:500],
            )
        except (TwilioException, ValueError) as exc:
            # An answer came but could not be read: Twilio may have created the message.
            logger.warning("Unreadable Twilio answer for message %s", sms.message_id)
            return SendResult(
                message_id=sms.message_id,
                outcome=SendOutcome.UNKNOWN,
                error_text=f"Unreadable answer: {exc}"[:500],
            )
        status = getattr(message.status, "value", message.status) or "queued"
        return SendResult(
            message_id=sms.message_id,
            outcome=SendOutcome.ACCEPTED,
            carrier_sid=message.sid,
            carrier_status=str(status),
        )

    def _refused(self, sms: OutgoingSms, exc, headers: Mapping | None) -> SendResult:
        status = int(exc.status or 0)
        code = int(exc.code) if exc.code else status
        text = str(getattr(exc, "msg", None) or getattr(exc, "detail", None) or "")
        text = text or str(getattr(exc, "title", "") or f"HTTP {status}")
        # The SDK prefixes "Unable to create record: "; the code is what matters.
        text = text.removeprefix("Unable to create record: ")[:500]

        def result(outcome: SendOutcome, retry_after: float | None = None) -> SendResult:
            return SendResult(
                message_id=sms.message_id,
                outcome=outcome,
                error_code=str(code),
                error_text=text,
                retry_after=retry_after,
            )

        if status == 429 or code == 20429:
            return result(SendOutcome.RETRY, _retry_after(headers))
        if status == 401 or code == 20003:
            logger.error("Twilio refused the credentials of account %r", sms.carrier_account)
            return result(SendOutcome.RETRY, AUTH_RETRY_SECONDS)
        if status in self.retry_5xx:
            return result(SendOutcome.RETRY, _retry_after(headers))
        if status >= 500:
            return result(SendOutcome.UNKNOWN)
        return result(SendOutcome.REJECTED)

    # --- reconciliation --------------------------------------------------------------------

    def find_sent(
        self, messages: Sequence[OutgoingSms], since: dt.datetime
    ) -> dict[int, SendResult] | None:
        """Ask Twilio which of ``messages`` it holds, by recipient, sender and body.

        Lists each recipient's messages newest first (``To=`` filter) and stops at ``since``
        (minus ``reconcile_slack``) by creation time. The ``DateSent`` filter is deliberately not
        used: a message Twilio still has queued has no send date, and would be missed (then sent
        twice). Each Twilio message matches at most one of ``messages``, oldest first.
        Returns ``None`` if Twilio could not be asked.
        """
        if not messages:
            return {}
        for account in {sms.carrier_account for sms in messages}:
            credentials_for(account)
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        # Twilio's timestamps have whole seconds.
        floor = since.replace(microsecond=0) - self.reconcile_slack
        groups: dict[tuple[str, str], list[OutgoingSms]] = defaultdict(list)
        for sms in messages:
            groups[(sms.carrier_account, sms.to)].append(sms)

        async def find_all(connection: _Connection):
            found = await asyncio.gather(
                *(self._find_group(connection, group, floor) for group in groups.values())
            )
            return {k: v for part in found for k, v in part.items()}

        try:
            return self._call(find_all)
        except (TwilioException, CarrierUnreachable, NoAnswer, ValueError) as exc:
            logger.warning("Reconciliation with Twilio failed: %s", exc)
            return None

    def fetch_statuses(self, sids: dict[str, str]) -> dict[str, CarrierReport] | None:
        """Fetch each message (``GET Messages/{Sid}.json``), a bounded number at once.

        A message Twilio does not know (404) is left out. Returns ``None`` if Twilio could not
        be asked at all.
        """
        if not sids:
            return {}
        for account in set(sids.values()):
            credentials_for(account)

        async def fetch_one(connection: _Connection, sid: str, account: str):
            async with connection.semaphore:
                try:
                    record = await connection.client(account).messages(sid).fetch_async()
                except TwilioRestException as exc:
                    if exc.status == 404:
                        return None
                    raise
            status = getattr(record.status, "value", record.status) or ""
            return CarrierReport(
                carrier_sid=sid,
                carrier_status=str(status),
                error_code=str(record.error_code or ""),
                error_text=record.error_message or "",
                updated_at=record.date_updated,
            )

        async def fetch_all(connection: _Connection):
            reports = await asyncio.gather(
                *(fetch_one(connection, sid, account) for sid, account in sids.items())
            )
            return {report.carrier_sid: report for report in reports if report is not None}

        try:
            return self._call(fetch_all)
        except (TwilioException, CarrierUnreachable, NoAnswer, ValueError) as exc:
            logger.warning("Asking Twilio for message statuses failed: %s", exc)
            return None

    async def _find_group(
        self, connection: _Connection, group: list[OutgoingSms], floor: dt.datetime
    ) -> dict[int, SendResult]:
        client = connection.client(group[0].carrier_account)
        records = []
        async with connection.semaphore:
            page = await client.messages.page_async(to=group[0].to, page_size=100)
            while page is not None:
                older = False
                for record in page:
                    if record.date_created and record.date_created < floor:
                        older = True
                        break
                    records.append(record)
                if older:
                    break
                page = await page.next_page_async()
        records.sort(key=lambda r: (r.date_created or floor, r.sid))
        taken: set[str] = set()
        found = {}
        for sms in group:
            for record in records:
                if record.sid in taken or not str(record.direction or "").startswith("outbound"):
                    continue
                if record.body != sms.body:
                    continue
                if sms.messaging_service_sid:
                    if record.messaging_service_sid != sms.messaging_service_sid:
                        continue
                elif record.from_ != sms.from_number:
                    continue
                taken.add(record.sid)
                status = getattr(record.status, "value", record.status) or ""
                found[sms.message_id] = SendResult(
                    message_id=sms.message_id,
                    outcome=SendOutcome.ACCEPTED,
                    carrier_sid=record.sid,
                    carrier_status=str(status),
                    error_code=str(record.error_code or ""),
                    error_text=record.error_message or "",
                )
                break
        return found
