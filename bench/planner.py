"""The planner and the dashboard at scale: a 1,000,000-record list next to a 1,000-record one.

Usage::

    .venv/bin/python bench/planner.py [--big 1000000] [--small 1000] [--budget 1000]
        [--repeat 3] [--finals 300000] [--database-url postgres://...]

A fresh PostgreSQL database (default ``pcsms_bench_planner``) gets two calling lists imported
through the upload job (toll-free numbers, which take their record's zone: a zone where it is
around noon, so every record is due now), each texted by its own running skill on its own code.
For each skill it times one planning pass with the same budget (``plan_skill(limit=...)``: the
filter, the order, the DNC scrub, the windows and the cadence, then the queued texts written) and
one dashboard refresh (``skill_dashboard``: progress, waiting, texts per minute), best of
``--repeat`` (the texts planned are withdrawn between passes, so each pass plans afresh). Then,
for each skill, best of ``--repeat`` too, the pages an operator reads: the "Why is nothing
sending?" panel (``skill_why``), the skill dashboard's polled JSON as the admin builds it
(``skill_dashboard(...).as_json()`` with ``dashboard_why``) and the home page's figures
(``skills.home.home``, with only that skill running). Last, ``--finals`` of the large list's
records are made final over the last 4 hours and both dashboards' JSON is timed again: the
outcomes chart then reads those records (``record_final_updated_idx`` is its index), just after
the UPDATE and after a VACUUM. The small list is the baseline of the same run; the goal is a cost
ratio of at most 2 for every figure, so that a list's size does not decide how long a tick or a
page takes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import _harness as h

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GOAL = 2.0


def write_list(path: Path, count: int, first: int, zone: str) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("ExternalId,SMSPhoneNumber,FirstName,TimeZone\n")
        for i in range(count):
            n = first + i  # 800-2xx-xxxx and on: valid toll-free numbers, no zone of their own
            handle.write(f"R{n},+1800{2000000 + n:07d},Name{i % 97},{zone}\n")


def import_list(calling_list, path: Path):
    from skills.importing.service import upload_job_run
    from skills.models import UploadJob

    job = upload_job_run(job_id=h.queued_upload(calling_list, path).pk, workers=2)
    assert job.status == UploadJob.Status.COMPLETED, job.message
    return job


def best_of(repeat: int, run, setup=None) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--budget", type=int, default=1_000, help="Texts one pass may plan.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--failures", type=int, default=10_000, help="Deferred failures one sweep settles."
    )
    parser.add_argument(
        "--finals",
        type=int,
        default=300_000,
        help="Records of the large list made final over the last 4 hours for the outcomes chart.",
    )
    h.database_url_option(parser, "pcsms_bench_planner")
    args = parser.parse_args()

    url = h.fresh_postgres(args.database_url)
    media = tempfile.mkdtemp(prefix="pcsms-bench-planner-")
    h.setup_django(h.bench_env(url, MEDIA_ROOT=media, Q_SYNC="false"))

    from django.utils import timezone

    from messaging.models import MessageStatus, MessageTemplate, OutboundMessage
    from skills.models import CallingList, Destination, Record, Skill
    from skills.planner import plan_skill
    from skills.selectors import skill_dashboard
    from skills.services import skill_apply_defaults

    zone = h.noon_zone(timezone.now())
    bu, registrations = h.make_codes(2, 100)
    bu.allowed_time_zones = [zone]
    bu.save()
    template = MessageTemplate.objects.create(
        business_unit=bu, name="Bench", body="Hi {FirstName}, a reminder. Reply STOP to end."
    )
    skills = {}
    with tempfile.TemporaryDirectory() as folder:
        for (label, count, first), registration in zip(
            [("small", args.small, 0), ("big", args.big, args.small)], registrations, strict=True
        ):
            calling_list = CallingList.objects.create(business_unit=bu, name=f"{label} list")
            path = Path(folder) / f"{label}.csv"
            write_list(path, count, first, zone)
            t0 = time.perf_counter()
            job = import_list(calling_list, path)
            seconds = time.perf_counter() - t0
            print(f"planner: {label} list: {job.rows_valid:,} records imported in {seconds:.1f} s")
            skill = Skill.objects.create(
                business_unit=bu,
                name=f"Bench {label}",
                registration=registration,
                template=template,
                campaign=None,
            )
            skill_apply_defaults(skill=skill)
            skill.calling_lists.add(calling_list)
            # Running, without skill_start's kick: nothing else plans or sends during the bench.
            Skill.objects.filter(pk=skill.pk).update(state=Skill.State.RUNNING)
            skill.refresh_from_db()
            skills[label] = skill

    def reset(skill):
        def run():
            # As before the first pass: no texts, no attempts, every record and number fresh.
            OutboundMessage.objects.filter(source=f"skill:{skill.pk}").delete()
            skill.attempts.all().delete()
            lists = skill.calling_lists.all()
            Record.objects.filter(calling_list__in=lists, attempts__gt=0).update(
                attempts=0, last_attempt_at=None
            )
            Destination.objects.filter(record__calling_list__in=lists, attempts__gt=0).update(
                attempts=0
            )

        return run

    def one_pass(skill):
        return lambda: plan_skill(skill=skill, limit=args.budget, complete=False, kick=False)

    figures = {}
    for label, skill in skills.items():
        plan_seconds, result = best_of(args.repeat, one_pass(skill), setup=reset(skill))
        queued = OutboundMessage.objects.filter(
            source=f"skill:{skill.pk}", status=MessageStatus.QUEUED
        ).count()
        dash_seconds, dashboard = best_of(args.repeat, lambda s=skill: skill_dashboard(s))
        figures[label] = (plan_seconds, dash_seconds)
        if result.planned == 0:
            print(f"planner: {label}: nothing planned: {result}")
        print(
            f"planner: {label} ({skill.calling_lists.get().records.count():,} records): "
            f"a pass planned {result.planned:,} ({queued:,} queued) "
            f"in {plan_seconds * 1000:,.0f} ms; "
            f"the dashboard in {dash_seconds * 1000:,.0f} ms "
            f"({dashboard.progress.records:,} records, {dashboard.waiting} waiting)"
        )
    for i, what in enumerate(("planning pass", "dashboard refresh")):
        verdict(what, figures["small"][i], figures["big"][i], args)
    pages(skills, bu, args)
    settle(skills["big"], args.failures, reset(skills["big"]))
    outcomes_chart(skills, args)


def verdict(what: str, small: float, big: float, args) -> None:
    ratio = big / max(small, 1e-9)
    met = "met" if ratio <= GOAL else "NOT met"
    print(
        f"planner: {what}: {args.big:,} records cost {ratio:,.1f}x what {args.small:,} cost "
        f"(goal <= {GOAL:g}x: {met})"
    )


def dashboard_json(skill) -> dict:
    """The skill dashboard's polled data as skills.admin.dashboards.dashboard_data builds it
    (``build(obj).as_json()`` plus ``extra(obj)``), without its cache, which would make every
    repeat after the first a cache read."""
    from skills.admin.why import dashboard_why
    from skills.selectors import skill_dashboard

    data = skill_dashboard(skill).as_json()
    data.update(dashboard_why(skill))
    return data


def pages(skills: dict, bu, args) -> None:
    """The why panel, the dashboard's JSON and the home page, each beside its small baseline."""
    from django.core.cache import cache

    from skills.diagnosis import skill_why
    from skills.home import home
    from skills.models import Skill

    def home_of(skill):
        def run():
            # skills.home.home itself caches nothing (the admin's index caches its figures
            # for 15 s); cleared anyway, so no repeat can be served by a cache.
            cache.clear()
            return home([bu.pk])

        return run

    figures = {}
    for label, skill in skills.items():
        why_seconds, why = best_of(args.repeat, lambda s=skill: skill_why(s))
        data_seconds, data = best_of(args.repeat, lambda s=skill: dashboard_json(s))
        # Both skills share the business unit: the home page lists every running skill of it,
        # so the other skill is stopped while this one's page is timed (both run again after).
        others = Skill.objects.filter(pk__in=[s.pk for s in skills.values()]).exclude(pk=skill.pk)
        others.update(state=Skill.State.STOPPED)
        try:
            home_seconds, page = best_of(args.repeat, home_of(skill))
        finally:
            others.update(state=Skill.State.RUNNING)
        figures[label] = (why_seconds, data_seconds, home_seconds)
        lines = ", ".join(f"{line.skill.name} {line.records:,} records" for line in page.skills)
        print(
            f"planner: {label}: the why panel in {why_seconds * 1000:,.0f} ms "
            f'("{why.headline}", {len(why.reasons)} reasons); '
            f"the dashboard's data in {data_seconds * 1000:,.0f} ms ({len(data)} keys); "
            f"the home page in {home_seconds * 1000:,.0f} ms ({lines})"
        )
    for i, what in enumerate(("why panel", "dashboard data", "home page")):
        verdict(what, figures["small"][i], figures["big"][i], args)


def settle(skill, failures: int, reset) -> None:
    """``failures`` texts of one pass failed and left to the sweep (as every failure is: the
    status callback only records it), then one tick's ``outcomes_settle``."""
    from messaging.models import MessageStatus, OutboundMessage
    from skills.models import Attempt
    from skills.outcomes import outcomes_settle
    from skills.planner import plan_skill

    reset()
    result = plan_skill(skill=skill, limit=failures, complete=False, kick=False)
    # 30003 "unreachable": transient, so each record goes back to the list with an attempt used.
    OutboundMessage.objects.filter(source=f"skill:{skill.pk}").update(
        status=MessageStatus.UNDELIVERED, error_code="30003"
    )
    t0 = time.perf_counter()
    settled = outcomes_settle(skill=skill)
    seconds = time.perf_counter() - t0
    left = Attempt.objects.filter(skill=skill, outcome="").count()
    print(
        f"planner: outcomes_settle: {result.planned:,} deferred failures, {settled:,} settled in "
        f"one tick's sweep in {seconds:,.1f} s ({settled / max(seconds, 1e-9):,.0f}/s); "
        f"{left:,} left for the next tick (goal 0, within the minute)"
    )


def outcomes_chart(skills: dict, args) -> None:
    """``args.finals`` records of the large list final over the last 4 hours (the outcomes
    chart's window), then both dashboards' JSON again: the chart reads those records, which the
    partial index record_final_updated_idx (migration skills/0023) finds by range."""
    from django.core.cache import cache
    from django.db import connection
    from django.utils import timezone

    from skills.models import Record

    big_list = skills["big"].calling_lists.get()
    now = timezone.now()
    first = big_list.records.order_by("id").values_list("id", flat=True).first()
    t0 = time.perf_counter()
    # One UPDATE, as a sweep or the receipts finalize records: updated_at spread one a second
    # over the 14,400 seconds of the chart's 4 hours, so every bucket has records.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Record._meta.db_table} SET is_final = true, final_reason = 'delivered', "
            "updated_at = %s - (id %% 14400) * interval '1 second' "
            "WHERE calling_list_id = %s AND id >= %s AND id < %s",
            [now, big_list.pk, first, first + args.finals],
        )
        finals = cursor.rowcount
    seconds = time.perf_counter() - t0
    print(f"planner: {finals:,} records of the big list made final in {seconds:.1f} s")
    # Just after the UPDATE, as after a sweep, the pages it wrote are not yet vacuumed (no
    # visibility map, so no index-only scan of them); after autovacuum they are. Both are timed.
    for when in ("just after the update", "after VACUUM"):
        if when == "after VACUUM":
            with connection.cursor() as cursor:
                cursor.execute(f"VACUUM (ANALYZE) {Record._meta.db_table}")
        # The chart counts its past buckets once and keeps them (skills.selectors.
        # _outcomes_over_time): the first refresh of a bucket counts the whole chart, the
        # next ones its current bucket only. Both are timed.
        for refresh, setup in (("first refresh", cache.clear), ("next refreshes", None)):
            figures = {}
            for label, skill in skills.items():
                dashboard_json(skill)  # the chart's past buckets kept, for "next refreshes"
                seconds, data = best_of(args.repeat, lambda s=skill: dashboard_json(s), setup=setup)
                chart = data["outcomes_over_time"] or {"series": []}
                charted = sum(sum(row["counts"]) for row in chart["series"])
                figures[label] = seconds
                print(
                    f"planner: {label}, {when}, {refresh}: the dashboard's data in "
                    f"{seconds * 1000:,.0f} ms ({charted:,} records on the outcomes chart)"
                )
            verdict(
                f"dashboard data with {finals:,} finals, {when}, {refresh}",
                *figures.values(),
                args,
            )


if __name__ == "__main__":
    main()
