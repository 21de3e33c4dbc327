"""The planner and the dashboard at scale: a 1,000,000-record list next to a 1,000-record one.

Usage::

    .venv/bin/python bench/planner.py [--big 1000000] [--small 1000] [--budget 1000]
        [--repeat 3] [--database-url postgres://...]

A fresh PostgreSQL database (default ``pcsms_bench_planner``) gets two calling lists imported
through the upload job (toll-free numbers, which take their record's zone: a zone where it is
around noon, so every record is due now), each texted by its own running skill on its own code.
For each skill it times one planning pass with the same budget (``plan_skill(limit=...)``: the
filter, the order, the DNC scrub, the windows and the cadence, then the queued texts written) and
one dashboard refresh (``skill_dashboard``: progress, waiting, texts per minute), best of
``--repeat`` (the texts planned are withdrawn between passes, so each pass plans afresh). The
small list is the baseline of the same run; the goal is a cost ratio of at most 2 for both, so
that a list's size does not decide how long a tick or a dashboard takes.
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
        ratio = figures["big"][i] / max(figures["small"][i], 1e-9)
        verdict = "met" if ratio <= GOAL else "NOT met"
        print(
            f"planner: {what}: {args.big:,} records cost {ratio:,.1f}x what {args.small:,} cost "
            f"(goal <= {GOAL:g}x: {verdict})"
        )
    settle(skills["big"], args.failures, reset(skills["big"]))


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


if __name__ == "__main__":
    main()
