"""What the backend tests share: the contract every SMS backend keeps (``BackendContract``), run
against each backend by its own test module, and the numbers and helpers they use.

Each subclass states what its backend can do (``validates_numbers``, ``reconciles``) and the
shared tests assert that behaviour either way, so nothing is skipped silently. No network but
127.0.0.1.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from django.utils import timezone

from messaging.backends import OutgoingSms, SendOutcome, get_backend
from messaging.pacing import StartGate, max_in_window
from tests.factories import us_number

FIXTURES = Path(__file__).parent / "fixtures" / "twilio"
ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "test-auth-token"
OUR_NUMBER = "+14155550100"
SERVICE_SID = "MG" + "c" * 32
INVALID_NUMBER = "12345"


def sms(n: int, **fields) -> OutgoingSms:
    values = {
        "message_id": n,
        "to": us_number(5000 + n),
        "body": f"Hello number {n}",
        "from_number": OUR_NUMBER,
    }
    values.update(fields)
    return OutgoingSms(**values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BackendContract:
    """What every backend promises the sender. Subclasses set the class attributes below."""

    backend_path: str
    #: True: an invalid number comes back ``rejected`` with 21211. False: the backend passes
    #: numbers through unchecked and accepts it (the sender's own validation must catch it).
    validates_numbers: bool
    #: True: ``find_sent`` asks the carrier. False: it returns None ("cannot tell").
    reconciles: bool

    @pytest.fixture
    def backend_options(self) -> dict:
        return {}

    @pytest.fixture
    def make_backend(self, backend_options):
        return lambda **options: get_backend(self.backend_path, **{**backend_options, **options})

    @pytest.fixture
    def backend(self, make_backend):
        with make_backend() as backend:
            yield backend

    def test_get_backend_builds_the_class_named_by_the_dotted_path(self, backend):
        module, _, name = self.backend_path.rpartition(".")
        assert type(backend).__module__ == module
        assert type(backend).__name__ == name

    def test_a_batch_gets_one_result_per_message_in_order(self, backend):
        batch = [sms(5), sms(3), sms(9), sms(1)]
        results = backend.send_messages(batch)
        assert [r.message_id for r in results] == [5, 3, 9, 1]
        assert {r.outcome for r in results} == {SendOutcome.ACCEPTED}

    def test_an_empty_batch_sends_nothing(self, backend):
        assert backend.send_messages([]) == []

    def test_submit_returns_at_once_and_the_future_holds_the_results(self, backend):
        future = backend.submit([sms(5), sms(3)])
        results = future.result(timeout=10)
        assert [r.message_id for r in results] == [5, 3]
        assert {r.outcome for r in results} == {SendOutcome.ACCEPTED}
        assert all(r.started_at for r in results)  # when each request started

    def test_submit_through_a_gate_keeps_the_window_on_real_starts(self, backend):
        # 25 texts at once through a 10/s gate: they start over ~2 s, never 11 in a second.
        gate = StartGate(10)
        results = backend.submit([sms(n) for n in range(1, 26)], gate=gate).result(timeout=20)
        assert {r.outcome for r in results} == {SendOutcome.ACCEPTED}
        assert max_in_window([r.started_at for r in results]) <= 10

    def test_accepted_texts_get_distinct_carrier_ids_and_a_status(self, backend):
        first = backend.send_messages([sms(1), sms(2), sms(3)])
        second = backend.send_messages([sms(4), sms(5)])
        sids = [r.carrier_sid for r in first + second]
        assert all(sids)
        assert len(set(sids)) == 5
        assert all(r.carrier_status for r in first + second)

    def test_an_invalid_number_is_answered_as_declared(self, backend):
        results = backend.send_messages([sms(1), sms(2, to=INVALID_NUMBER), sms(3)])
        assert results[0].outcome == results[2].outcome == SendOutcome.ACCEPTED
        if self.validates_numbers:
            assert results[1].outcome == SendOutcome.REJECTED
            assert results[1].error_code == "21211"
            assert INVALID_NUMBER in results[1].error_text
            assert not results[1].carrier_sid
        else:
            assert results[1].outcome == SendOutcome.ACCEPTED

    def test_find_sent_answers_as_declared(self, backend):
        since = timezone.now()
        [accepted] = backend.send_messages([sms(1)])
        found = backend.find_sent([sms(1), sms(2)], since)
        if self.reconciles:
            assert set(found) == {1}
            assert found[1].outcome == SendOutcome.ACCEPTED
            assert found[1].carrier_sid == accepted.carrier_sid
        else:
            assert found is None

    def test_open_and_close_can_be_repeated(self, make_backend):
        backend = make_backend()
        backend.open()
        backend.open()
        assert backend.send_messages([sms(1)])[0].outcome == SendOutcome.ACCEPTED
        backend.close()
        backend.close()
        # Closed is not broken: a send opens what it needs for that call.
        assert backend.send_messages([sms(2)])[0].outcome == SendOutcome.ACCEPTED
