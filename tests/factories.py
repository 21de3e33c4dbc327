"""factory-boy factories: one per model.

Children take their business unit from their parent (``SelfAttribute``), so
``SkillFactory(business_unit=bu)`` builds a template, registration and code in the same BU.
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from dnc.models import DncEntry, DncGroup
from messaging.models import (
    InboundMessage,
    MessageEvent,
    MessageTemplate,
    OutboundMessage,
    SmsRegistration,
    TransportCode,
)
from pcsms.models import BusinessUnit, CustomTimeZone, KeywordSet, Membership, OptOutScope
from skills.models import (
    Attempt,
    Blackout,
    CadenceStep,
    CallingList,
    Campaign,
    CpaRule,
    CustomField,
    Destination,
    FilterCondition,
    Record,
    RuleHold,
    ScheduleDay,
    SendingWindowPreset,
    Skill,
    SkillForecast,
    SortCriterion,
    StateRuleOverride,
    TimeZoneBound,
    UploadJob,
    XsEvent,
)

SAME_BU = factory.SelfAttribute("..business_unit")
_numbers = itertools.count(1)


def us_number(n: int) -> str:
    """A valid US mobile-format number, distinct for each n (area code 312, Chicago)."""
    return f"+1312{200 + (n // 10_000) % 700:03d}{n % 10_000:04d}"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw")
    is_staff = True


class BusinessUnitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BusinessUnit

    name = factory.Sequence(lambda n: f"BU {n}")
    business_name = factory.LazyAttribute(lambda bu: f"{bu.name} Inc.")
    support_contact = "help@example.com"
    # An opt-out binds the whole BU unless a test is about the scope (test_opt_out_scope.py).
    opt_out_scope = OptOutScope.BUSINESS_UNIT


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    business_unit = factory.SubFactory(BusinessUnitFactory)


class CustomTimeZoneFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomTimeZone

    business_unit = factory.SubFactory(BusinessUnitFactory)
    name = factory.Sequence(lambda n: f"Plant time {n}")
    utc_offset_minutes = -300
    dst_like = "America/New_York"


class DncGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DncGroup

    business_unit = factory.SubFactory(BusinessUnitFactory)
    name = factory.Sequence(lambda n: f"DNC group {n}")


class DncEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DncEntry

    group = factory.SubFactory(DncGroupFactory)
    phone_number = factory.LazyFunction(lambda: us_number(next(_numbers)))
    source = DncEntry.Source.MANUAL


class TransportCodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TransportCode

    business_unit = factory.SubFactory(BusinessUnitFactory)
    number = factory.LazyFunction(lambda: f"+1415{next(_numbers) % 10_000_000 + 2_000_000:07d}")
    kind = TransportCode.Kind.LONG
    messages_per_second = Decimal("5")
    provisioning_status = TransportCode.Provisioning.PROVISIONED
    provisioned_on = factory.LazyFunction(timezone.localdate)


class SmsRegistrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SmsRegistration

    business_unit = factory.SubFactory(BusinessUnitFactory)
    name = factory.Sequence(lambda n: f"Registration {n}")
    transport_code = factory.SubFactory(TransportCodeFactory, business_unit=SAME_BU)


class MessageTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MessageTemplate

    business_unit = factory.SubFactory(BusinessUnitFactory)
    name = factory.Sequence(lambda n: f"Template {n}")
    body = "Hi {FirstName|there}, your appointment is tomorrow. Reply STOP to opt out."
    is_active = True


class OutboundMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OutboundMessage

    business_unit = factory.SubFactory(BusinessUnitFactory)
    registration = factory.SubFactory(SmsRegistrationFactory, business_unit=SAME_BU)
    transport_code = factory.SelfAttribute("registration.transport_code")
    to = factory.LazyFunction(lambda: us_number(next(_numbers)))
    body = "Hello"


class MessageEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MessageEvent

    message = factory.SubFactory(OutboundMessageFactory)
    kind = MessageEvent.Kind.TRANSITION
    status = "queued"


class InboundMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InboundMessage

    business_unit = factory.SubFactory(BusinessUnitFactory)
    from_number = factory.LazyFunction(lambda: us_number(next(_numbers)))
    to_number = "+14155550100"
    body = "STOP"
    carrier_sid = factory.Sequence(lambda n: f"SM{n:032d}")
    received_at = factory.LazyFunction(timezone.now)
    classification = InboundMessage.Classification.OPT_OUT


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    business_unit = factory.SubFactory(BusinessUnitFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")


class CallingListFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CallingList

    business_unit = factory.SubFactory(BusinessUnitFactory)
    name = factory.Sequence(lambda n: f"List {n}")


class CustomFieldFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomField

    calling_list = factory.SubFactory(CallingListFactory)
    name = factory.Sequence(lambda n: f"Field{n}")


class RecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Record

    calling_list = factory.SubFactory(CallingListFactory)
    external_id = factory.Sequence(lambda n: f"EXT-{n:06d}")
    first_name = "Ada"
    last_name = factory.Sequence(lambda n: f"Lovelace{n}")
    time_zone = "America/Chicago"


class DestinationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Destination

    record = factory.SubFactory(RecordFactory)
    position = 0
    phone_number = factory.LazyFunction(lambda: us_number(next(_numbers)))
    time_zone = "America/Chicago"


class UploadJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UploadJob

    calling_list = factory.SubFactory(CallingListFactory)
    file = factory.django.FileField(filename="list.csv", data=b"ExternalId,PhoneNumber\n")
    original_name = "list.csv"
    file_format = UploadJob.Format.CSV


class SkillFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Skill

    business_unit = factory.SubFactory(BusinessUnitFactory)
    name = factory.Sequence(lambda n: f"Skill {n}")
    registration = factory.SubFactory(SmsRegistrationFactory, business_unit=SAME_BU)
    template = factory.SubFactory(MessageTemplateFactory, business_unit=SAME_BU)
    campaign = factory.SubFactory(CampaignFactory, business_unit=SAME_BU)


class CpaRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CpaRule

    skill = factory.SubFactory(SkillFactory)
    match = factory.Sequence(lambda n: str(40000 + n))
    outcome = "transient"


class CadenceStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CadenceStep

    skill = factory.SubFactory(SkillFactory)
    phone_field = factory.Sequence(lambda n: f"Phone{n}")


class FilterConditionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FilterCondition

    skill = factory.SubFactory(SkillFactory)
    field = "State"
    value = "IL"


class SortCriterionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SortCriterion

    skill = factory.SubFactory(SkillFactory)


class ScheduleDayFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScheduleDay

    skill = factory.SubFactory(SkillFactory)
    weekday = 0
    start_time = dt.time(9, 0)
    end_time = dt.time(17, 0)


class TimeZoneBoundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TimeZoneBound

    skill = factory.SubFactory(SkillFactory)
    time_zone = "America/Chicago"


class SendingWindowPresetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SendingWindowPreset
        django_get_or_create = ["code"]

    code = factory.Sequence(lambda n: f"X{n}")
    name = factory.LazyAttribute(lambda p: f"Preset {p.code}")


class AttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Attempt

    skill = factory.SubFactory(SkillFactory)
    record = factory.SubFactory(
        RecordFactory, calling_list__business_unit=factory.SelfAttribute("...skill.business_unit")
    )
    destination = factory.SubFactory(DestinationFactory, record=factory.SelfAttribute("..record"))
    message = factory.SubFactory(
        OutboundMessageFactory, business_unit=factory.SelfAttribute("..skill.business_unit")
    )


class XsEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = XsEvent

    skill = factory.SubFactory(SkillFactory)
    kind = XsEvent.Kind.FINALIZED
    payload = factory.LazyFunction(lambda: {"external_id": "C-1", "outcome": "delivered"})


class StateRuleOverrideFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StateRuleOverride

    business_unit = factory.SubFactory(BusinessUnitFactory)
    preset = factory.SubFactory(SendingWindowPresetFactory)
    start_time = dt.time(10, 0)
    end_time = dt.time(19, 0)


class BlackoutFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Blackout

    business_unit = factory.SubFactory(BusinessUnitFactory)
    states = factory.LazyFunction(lambda: ["LA"])
    starts_at = factory.LazyFunction(timezone.now)
    reason = "State of emergency"


class RuleHoldFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RuleHold

    business_unit = factory.SubFactory(BusinessUnitFactory)
    skill = factory.SubFactory(SkillFactory, business_unit=SAME_BU)
    record = factory.SubFactory(
        RecordFactory, calling_list__business_unit=factory.SelfAttribute("...business_unit")
    )
    phone_number = "+13125550123"
    kind = RuleHold.Kind.HOURS
    rule = "TX: Sunday hours 12:00-21:00"
    held_at = factory.LazyFunction(timezone.now)


class KeywordSetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = KeywordSet

    business_unit = factory.SubFactory(BusinessUnitFactory)
    language = factory.Sequence(lambda n: f"Language {n}")
    opt_out_keywords = factory.LazyFunction(lambda: ["ARRET"])


# Model -> factory, for tests that walk every model (e.g. the admin isolation test).
class SkillForecastFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SkillForecast

    skill = factory.SubFactory(SkillFactory)
    starts_at = factory.LazyFunction(timezone.now)
    finishes_at = factory.LazyAttribute(lambda f: f.starts_at + dt.timedelta(minutes=10))
    records = 100
    texts = 100
    data = factory.LazyFunction(lambda: {"assumptions": ["every text is taken as delivered"]})


FACTORIES = {
    f._meta.model: f
    for f in [
        UserFactory,
        BusinessUnitFactory,
        MembershipFactory,
        CustomTimeZoneFactory,
        DncGroupFactory,
        DncEntryFactory,
        TransportCodeFactory,
        SmsRegistrationFactory,
        MessageTemplateFactory,
        OutboundMessageFactory,
        MessageEventFactory,
        InboundMessageFactory,
        CampaignFactory,
        CallingListFactory,
        CustomFieldFactory,
        RecordFactory,
        DestinationFactory,
        UploadJobFactory,
        SkillFactory,
        CpaRuleFactory,
        CadenceStepFactory,
        FilterConditionFactory,
        SortCriterionFactory,
        ScheduleDayFactory,
        TimeZoneBoundFactory,
        SendingWindowPresetFactory,
        AttemptFactory,
        XsEventFactory,
        StateRuleOverrideFactory,
        BlackoutFactory,
        RuleHoldFactory,
        KeywordSetFactory,
        SkillForecastFactory,
    ]
}
