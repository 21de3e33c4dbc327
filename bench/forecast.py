"""The forecast against the facts: a skill forecast as it starts, then run on the simulated
carrier until it completes.

Usage::

    .venv/bin/python bench/forecast.py [--records 6000] [--rate 10] [--opens-after 420]
        [--warm-up 500] [--min-retry 2] [--timeout 1800] [--database-url postgres://...]

A fresh PostgreSQL database (default ``pcsms_bench_forecast``) and one django-q2 cluster
(``manage.py qcluster``, the Procfile's worker) sending through the simulator backend, which
reports ``delivered``, ``undelivered`` (30003: retried), ``failed`` (30006) and STOP replies at
its default rates, about two seconds after each text.

First a warm-up skill of ``--warm-up`` records runs to completion, so that the business unit
has the history of outcomes a forecast expects again. Then the skill measured: ``--records``
records on one code at ``--rate`` texts/s, half in a zone where it is around noon and half in
one whose window (a time-zone bounding row) opens ``--opens-after`` seconds after the start,
retried ``--min-retry`` minutes after an undelivered receipt, at most 3 texts a record (its
cadence gives its number 3). It is
started as an administrator starts it (``skill_start``), which keeps the forecast the dashboard
compares with; the bench waits until the planner marks it completed.

It prints the forecast and the actual time to complete, texts forecast and sent, and, as the
baseline in the same run, the naive estimate of records / pace (what a rate-based ETA says
before the start). The forecast is to be within 10% of the actual.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path

import _harness as h

ROOT = Path(__file__).resolve().parent.parent


def shifted_zone(zone: str, hours: int) -> str:
    """The Etc/GMT zone ``hours`` east of ``zone`` (an Etc/GMT zone)."""
    offset = -int(zone[7:] or 0) + hours  # POSIX names: Etc/GMT-5 is UTC+5
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def make_skill(bu, registration, template, name, zones, per_zone, *, min_retry, series):
    from skills.models import CallingList, Destination, Record, Skill
    from skills.services import skill_apply_defaults

    calling_list = CallingList.objects.create(business_unit=bu, name=f"{name} list")
    skill = Skill.objects.create(
        business_unit=bu,
        name=name,
        registration=registration,
        template=template,
        min_retry_minutes=min_retry,
        max_attempts=3,
    )
    skill_apply_defaults(skill=skill)
    skill.cadence_steps.update(attempts=3)  # an undelivered text is tried again, twice
    skill.calling_lists.add(calling_list)
    n = 0
    for zone in zones:
        records = Record.objects.bulk_create(
            [
                Record(
                    calling_list=calling_list,
                    external_id=f"{name[:1]}{n + i}",
                    first_name=f"Name{(n + i) % 89}",
                    time_zone=zone,
                )
                for i in range(per_zone)
            ]
        )
        Destination.objects.bulk_create(
            [
                Destination(
                    record=record,
                    position=0,
                    source_field="SMSPhoneNumber",
                    # Toll-free numbers: no state, no area code rule, the record's zone.
                    phone_number=f"+1888{series:02d}{n + i:05d}",
                    time_zone=zone,
                )
                for i, record in enumerate(records)
            ]
        )
        n += per_zone
    return skill


def wait_completed(skill, timeout: float) -> bool:
    from skills.models import Skill

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        skill.refresh_from_db()
        if skill.state == Skill.State.COMPLETED:
            return True
        time.sleep(1)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--opens-after", type=int, default=420, help="seconds")
    parser.add_argument("--warm-up", type=int, default=500, help="records")
    parser.add_argument("--min-retry", type=int, default=2, help="minutes")
    parser.add_argument("--timeout", type=float, default=1800)
    h.database_url_option(parser, "pcsms_bench_forecast")
    args = parser.parse_args()

    url = h.fresh_postgres(args.database_url)
    work = Path(tempfile.mkdtemp(prefix="pcsms-forecast-"))
    env = h.bench_env(
        url,
        SMS_BACKEND="messaging.backends.simulator.SimulatorBackend",
        MEDIA_ROOT=str(work / "media"),
        Q_WORKERS="2",
        REDIS_URL="",
    )
    h.setup_django(env)

    from django.utils import timezone

    from messaging.models import MessageTemplate, OutboundMessage
    from skills.forecast import skill_forecast
    from skills.models import SkillForecast, TimeZoneBound
    from skills.services import skill_start
    from skills.windows import schedule_zone

    now = timezone.now()
    noon = h.noon_zone(now)
    later = shifted_zone(noon, -1)  # an hour earlier there: its bounding row opens it
    bu, (registration,) = h.make_codes(1, args.rate, prefix=415)
    bu.allowed_time_zones = [noon, later]
    bu.default_time_zone = noon
    bu.save()
    template = MessageTemplate.objects.create(
        business_unit=bu,
        name="Forecast",
        body="Hi {FirstName}, your appointment is tomorrow. Reply STOP to end.",
        is_active=True,
    )
    warm = make_skill(
        bu,
        registration,
        template,
        "Warm-up",
        [noon],
        args.warm_up,
        min_retry=args.min_retry,
        series=10,
    )
    half = args.records // 2
    skill = make_skill(
        bu,
        registration,
        template,
        "Measured",
        [noon, later],
        half,
        min_retry=args.min_retry,
        series=20,
    )

    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        started = time.monotonic()
        skill_start(skill=warm)
        if not wait_completed(warm, args.timeout):
            sys.exit("forecast: the warm-up skill did not complete in time")
        print(
            f"forecast: warm-up of {args.warm_up:,} records completed in "
            f"{time.monotonic() - started:.0f} s"
        )

        start = timezone.now()
        opens = start.astimezone(zoneinfo.ZoneInfo(later)) + dt.timedelta(seconds=args.opens_after)
        TimeZoneBound.objects.update_or_create(
            skill=skill,
            time_zone=later,
            defaults={"start_time": opens.time().replace(microsecond=0), "is_active": True},
        )
        preview = skill_forecast(skill, now=start)
        skill_start(skill=skill)
        if not wait_completed(skill, args.timeout):
            sys.exit("forecast: the measured skill did not complete in time")
        kept = SkillForecast.objects.filter(skill=skill).order_by("-made_at").first()
        forecast = kept or preview
        finishes_at = forecast.finishes_at
        began = skill.forecasts.first().starts_at if kept else start
    finally:
        h.stop([cluster])

    actual = (skill.state_changed_at - began).total_seconds()
    predicted = (finishes_at - began).total_seconds()
    sent = OutboundMessage.objects.filter(attempt__skill=skill, sent_at__isnull=False).count()
    naive = args.records / args.rate
    zone = schedule_zone(bu)
    print(
        f"forecast: {args.records:,} records at {args.rate:g} texts/s; half wait "
        f"{args.opens_after} s for their window; retry after {args.min_retry} min"
    )
    for words in preview.assumptions:
        print(f"  assumes: {words}")
    print(
        f"forecast: started {began.astimezone(zone):%H:%M:%S}, forecast to finish "
        f"{finishes_at.astimezone(zone):%H:%M:%S}, completed "
        f"{skill.state_changed_at.astimezone(zone):%H:%M:%S} ({zone})"
    )
    print(
        f"forecast: time to complete: forecast {predicted:.0f} s, actual {actual:.0f} s, "
        f"off by {100 * (predicted - actual) / actual:+.1f}% (goal: within 10%)"
    )
    print(
        f"forecast: baseline (records / pace): {naive:.0f} s, off by "
        f"{100 * (naive - actual) / actual:+.1f}%"
    )
    print(f"forecast: texts: forecast {forecast.texts:,}, sent {sent:,}")


if __name__ == "__main__":
    main()
