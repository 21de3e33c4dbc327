"""SMS backends: the console, locmem and simulator backends keep the contract of tests/backends.py,
and what each one adds."""

from __future__ import annotations

import io
import time

import pytest

from messaging.backends import OutgoingSms, SendOutcome, locmem, simulator
from messaging.models import InboundMessage, MessageEvent, MessageStatus
from tests.backends import (
    INVALID_NUMBER,
    OUR_NUMBER,
    SERVICE_SID,
    BackendContract,
    sms,
)
from tests.factories import OutboundMessageFactory, us_number

# --- console and locmem --------------------------------------------------------------------


class TestConsoleBackend(BackendContract):
    backend_path = "messaging.backends.console.ConsoleBackend"
    validates_numbers = False
    reconciles = False

    @pytest.fixture
    def stream(self):
        return io.StringIO()

    @pytest.fixture
    def backend_options(self, stream):
        return {"stream": stream}

    def test_prints_sender_recipient_and_body(self, backend, stream):
        backend.send_messages([sms(7, body="See you at 9")])
        output = stream.getvalue()
        assert f"{OUR_NUMBER} -> {us_number(5007)}" in output
        assert "See you at 9" in output


class TestLocmemBackend(BackendContract):
    backend_path = "messaging.backends.locmem.LocmemBackend"
    validates_numbers = False
    reconciles = False

    @pytest.fixture(autouse=True)
    def empty_outbox(self):
        locmem.reset()
        yield
        locmem.reset()

    def test_keeps_accepted_texts_in_the_outbox(self, backend):
        backend.send_messages([sms(1), sms(2)])
        assert [m.message_id for m in locmem.outbox] == [1, 2]

    def test_answers_drive_a_refusal_without_a_network(self, backend):
        locmem.answers[INVALID_NUMBER] = {
            "outcome": SendOutcome.REJECTED,
            "error_code": "21211",
            "error_text": "invalid",
        }
        results = backend.send_messages([sms(1), sms(2, to=INVALID_NUMBER)])
        assert results[1].outcome == SendOutcome.REJECTED
        assert results[1].error_code == "21211"
        assert [m.message_id for m in locmem.outbox] == [1]


# --- simulator -----------------------------------------------------------------------------


@pytest.fixture
def no_pending_reports():
    simulator.reset()
    yield
    simulator.reset()


@pytest.mark.usefixtures("no_pending_reports")
class TestSimulatorBackend(BackendContract):
    backend_path = "messaging.backends.simulator.SimulatorBackend"
    # Configured to validate (the demo default accepts every text: see the test below).
    validates_numbers = True
    reconciles = False

    @pytest.fixture
    def backend_options(self):
        # Reports wait an hour, so only flush() runs them: in this thread, inside the test's
        # transaction.
        return {"delay": 3600, "validate_numbers": True}

    def send(self, backend, message, **fields) -> str:
        """Hand ``message`` to the backend and store the carrier id, as the sender does."""
        outgoing = OutgoingSms(
            message_id=message.id,
            to=message.to,
            body=message.body,
            from_number=message.transport_code.number,
            **fields,
        )
        [result] = backend.send_messages([outgoing])
        assert result.outcome == SendOutcome.ACCEPTED
        assert result.carrier_sid.startswith("SM")
        assert len(result.carrier_sid) == 34
        message.status = MessageStatus.SENT
        message.carrier_sid = result.carrier_sid
        message.save()
        return result.carrier_sid

    def test_by_default_accepts_every_text(self):
        backend = simulator.SimulatorBackend(delay=3600)
        [result] = backend.send_messages([sms(1, to=INVALID_NUMBER)])
        assert result.outcome == SendOutcome.ACCEPTED

    def test_options_default_to_the_environment(self, monkeypatch):
        monkeypatch.setenv("SIMULATOR_DELAY_SECONDS", "7")
        monkeypatch.setenv("SIMULATOR_STOP_RATE", "0.5")
        backend = simulator.SimulatorBackend(failed_rate=0.2)
        assert (backend.delay, backend.stop_rate, backend.failed_rate) == (7, 0.5, 0.2)
        assert backend.undelivered_rate == 0.03

    def test_delivery_is_reported_through_message_record_status(self, db, make_backend):
        backend = make_backend(undelivered_rate=0, failed_rate=0, stop_rate=0)
        message = OutboundMessageFactory(status=MessageStatus.SENDING)
        sid = self.send(backend, message)
        assert simulator.pending() == 1
        assert simulator.flush() == 1
        message.refresh_from_db()
        assert message.status == MessageStatus.DELIVERED
        assert message.delivered_at is not None
        event = MessageEvent.objects.get(message=message, kind=MessageEvent.Kind.CALLBACK)
        assert event.status == "delivered"
        assert message.carrier_sid == sid
        assert simulator.pending() == 0

    @pytest.mark.parametrize(
        ("rates", "status", "code"),
        [
            ({"undelivered_rate": 1, "failed_rate": 0}, MessageStatus.UNDELIVERED, "30003"),
            ({"undelivered_rate": 0, "failed_rate": 1}, MessageStatus.FAILED, "30006"),
        ],
    )
    def test_failures_are_reported_with_their_code(self, db, make_backend, rates, status, code):
        backend = make_backend(stop_rate=0, **rates)
        message = OutboundMessageFactory(status=MessageStatus.SENDING)
        self.send(backend, message)
        simulator.flush()
        message.refresh_from_db()
        assert message.status == status
        assert message.error_code == code
        assert MessageEvent.objects.filter(message=message, error_code=code).exists()

    def test_a_report_before_the_sender_stored_the_id_finds_the_message_by_id(
        self, db, make_backend
    ):
        backend = make_backend(undelivered_rate=0, failed_rate=0, stop_rate=0)
        message = OutboundMessageFactory(status=MessageStatus.SENDING)
        [result] = backend.send_messages(
            [OutgoingSms(message_id=message.id, to=message.to, body=message.body)]
        )
        simulator.flush()
        message.refresh_from_db()
        assert message.carrier_sid == result.carrier_sid
        assert message.status == MessageStatus.DELIVERED

    def test_a_stop_reply_goes_through_inbound_receive(self, db, make_backend):
        backend = make_backend(undelivered_rate=0, failed_rate=0, stop_rate=1)
        message = OutboundMessageFactory(status=MessageStatus.SENDING)
        self.send(backend, message)
        simulator.flush()
        inbound = InboundMessage.objects.get()
        assert (inbound.from_number, inbound.to_number) == (
            message.to,
            message.transport_code.number,
        )
        assert inbound.body == "STOP"
        assert inbound.business_unit == message.business_unit
        assert inbound.carrier_sid.startswith("SM")

    def test_no_stop_reply_when_our_number_is_unknown(self, db, make_backend):
        backend = make_backend(undelivered_rate=0, failed_rate=0, stop_rate=1)
        message = OutboundMessageFactory(status=MessageStatus.SENDING)
        [result] = backend.send_messages(
            [
                OutgoingSms(
                    message_id=message.id,
                    to=message.to,
                    body="x",
                    messaging_service_sid=SERVICE_SID,
                )
            ]
        )
        simulator.flush()
        assert not InboundMessage.objects.exists()

    def test_a_seed_makes_the_outcomes_repeatable(self, db, make_backend):
        def run() -> list[str]:
            backend = make_backend(seed=7, undelivered_rate=0.3, failed_rate=0.3, stop_rate=0)
            messages = [OutboundMessageFactory(status=MessageStatus.SENDING) for _ in range(12)]
            for message in messages:
                self.send(backend, message)
            simulator.flush()
            return [m.status for m in (m.__class__.objects.get(pk=m.pk) for m in messages)]

        first, second = run(), run()
        assert first == second
        assert len(set(first)) > 1  # the rates really mixed the outcomes

    @pytest.mark.django_db(transaction=True)
    def test_the_background_thread_reports_after_the_delay(self, make_backend):
        backend = make_backend(delay=0.05, undelivered_rate=0, failed_rate=0, stop_rate=0)
        message = OutboundMessageFactory(status=MessageStatus.SENDING)
        self.send(backend, message)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message.refresh_from_db()
            if message.status == MessageStatus.DELIVERED:
                break
            time.sleep(0.02)
        assert message.status == MessageStatus.DELIVERED
        assert simulator.pending() == 0
