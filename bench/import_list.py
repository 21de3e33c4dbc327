"""How fast a calling list is imported into PostgreSQL, next to a naive importer.

Usage::

    .venv/bin/python bench/import_list.py [--rows 1000000] [--xlsx-rows 100000]
        [--baseline-rows 100000] [--workers 2] [--database-url postgres://...]

It writes (once; the files are deterministic and cached under ``/tmp/pcsms-bench``) a CSV of
``--rows`` rows and two XLSX files of ``--xlsx-rows`` rows: one as openpyxl writes it (inline
strings) and one as Excel saves it (shared strings; written with XlsxWriter, a development
dependency). Rows: four phone formats (``(312) 555-0123``, ``312-555-0123``, ``3125550123``,
``+13125550123``), 2% bad rows (invalid number, empty or repeated ID, bad date), a second phone
column filled on 20% of rows, numbers drawn from 20,000 valid area-code + exchange prefixes.
Each import runs in a fresh child process, into a fresh copy of a migrated database (named by
``--database-url``, default ``postgres://postgres@127.0.0.1:5432/pcsms_bench_import``; the
template ``<name>_template`` is migrated once per run), so each figure is that file's alone;
the lines printed for it give rows/s, where the time went, and the peak RSS of the importing
process and of its largest worker. A calibration line gives how fast python-calamine alone
reads the XLSX on this machine (one process, the whole sheet): the machines these benches run
on differ by a third or more from day to day.

The naive baseline is what one would write first: ``csv.DictReader``, ``phonenumbers.parse`` +
``is_valid_number`` + ``format_number`` per value, and ``bulk_create`` of model instances in
batches of 1,000. It is far too slow for a million rows, so it runs on the first
``--baseline-rows`` rows of the same file, and its rows/s is compared with the import's.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE = Path("/tmp/pcsms-bench")
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/pcsms_bench_import"
HEADER = [
    "ExternalId",
    "FirstName",
    "LastName",
    "PhoneNumber",
    "SMSPhoneNumber",
    "Address",
    "City",
    "State",
    "Zip",
    "AppointmentDate",
]
FIRST = ["Maria", "James", "Li", "Fatima", "Olu", "Ana", "Chen", "Sam", "Noor", "Ivan"]
LAST = ["Garcia", "Smith", "Nguyen", "Khan", "Okafor", "Silva", "Wang", "Brown", "Ali", "Novak"]
CITIES = [("Chicago", "IL", "606"), ("Austin", "TX", "787"), ("Boston", "MA", "021"),
          ("Denver", "CO", "802"), ("Seattle", "WA", "981"), ("Miami", "FL", "331"),
          ("Phoenix", "AZ", "850"), ("Atlanta", "GA", "303")]  # fmt: skip
FORMATS = ("({a}) {b}-{c}", "{a}-{b}-{c}", "{a}{b}{c}", "+1{a}{b}{c}")


def prefixes(count: int, seed: int = 11) -> list[tuple[int, int]]:
    """Valid US area code + exchange pairs (what a national list draws its numbers from)."""
    import phonenumbers

    rng = random.Random(seed)
    found: list[tuple[int, int]] = []
    while len(found) < count:
        npa, nxx = rng.randint(201, 989), rng.randint(200, 999)
        number = phonenumbers.PhoneNumber(country_code=1, national_number=npa * 10**7 + nxx * 10**4)
        if phonenumbers.region_code_for_number(number) == "US" and phonenumbers.is_valid_number(
            number
        ):
            found.append((npa, nxx))
    return found


def generate_rows(count: int, seed: int = 7):
    rng = random.Random(seed)
    pool = prefixes(20_000)
    start = dt.date(2027, 1, 4)
    for index in range(count):
        npa, nxx = pool[rng.randrange(len(pool))]
        phone = FORMATS[index % 4].format(a=npa, b=nxx, c=f"{rng.randrange(10_000):04d}")
        sms = ""
        if rng.random() < 0.2:
            npa2, nxx2 = pool[rng.randrange(len(pool))]
            sms = f"{npa2}{nxx2}{rng.randrange(10_000):04d}"
        city, state, zip3 = CITIES[rng.randrange(len(CITIES))]
        row = [
            f"C{index:08d}",
            FIRST[rng.randrange(10)],
            LAST[rng.randrange(10)],
            phone,
            sms,
            f"{rng.randint(1, 9999)} Main St",
            city,
            state,
            f"{zip3}{rng.randrange(100):02d}",
            (start + dt.timedelta(days=index % 120)).isoformat(),
        ]
        bad = rng.random()
        if bad < 0.005:
            row[3], row[4] = "555-01", ""
        elif bad < 0.010:
            row[0] = ""
        elif bad < 0.015:
            row[0] = f"C{max(index - 1, 0):08d}"  # the previous row's ID again
        elif bad < 0.020:
            row[9] = "31/31/2027"
        yield row


def write_csv(path: Path, count: int) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(generate_rows(count))
    tmp.rename(path)


def write_xlsx(path: Path, count: int) -> None:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("List")
    sheet.append(HEADER)
    for row in generate_rows(count, seed=8):
        sheet.append(row)
    tmp = path.with_suffix(".tmp.xlsx")
    workbook.save(tmp)
    tmp.rename(path)


def write_xlsx_shared(path: Path, count: int) -> None:
    import xlsxwriter

    tmp = path.with_suffix(".tmp.xlsx")
    workbook = xlsxwriter.Workbook(str(tmp))  # (constant_memory would write inline strings)
    sheet = workbook.add_worksheet("List")
    sheet.write_row(0, 0, HEADER)
    for n, row in enumerate(generate_rows(count, seed=8), start=1):
        sheet.write_row(n, 0, row)
    workbook.close()
    tmp.rename(path)


def ensure_files(rows: int, xlsx_rows: int) -> tuple[Path, Path, Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    csv_path = CACHE / f"list-{rows}.csv"
    xlsx_path = CACHE / f"list-{xlsx_rows}.xlsx"
    shared_path = CACHE / f"list-{xlsx_rows}-shared.xlsx"
    files = ((csv_path, rows), (xlsx_path, xlsx_rows), (shared_path, xlsx_rows))
    for path, count in files:
        if not path.exists():
            t0 = time.perf_counter()
            # In a child: XlsxWriter holds the whole sheet in memory, and Linux keeps a
            # process's peak RSS across the exec of its children (the imports measured next).
            subprocess.run(
                [sys.executable, __file__, "--child", "write", str(path), str(count)],
                check=True,
                cwd=ROOT,
            )
            print(f"  wrote {path} ({count:,} rows) in {time.perf_counter() - t0:.1f} s")
    return csv_path, xlsx_path, shared_path


# --- Child processes: one measured import each ------------------------------------------------


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("MEDIA_ROOT", str(CACHE / "media"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pcsms.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def new_list(label: str):
    from pcsms.models import BusinessUnit
    from skills.models import CallingList

    bu, _ = BusinessUnit.objects.get_or_create(name="Bench")
    name = f"{label} {dt.datetime.now():%Y%m%d-%H%M%S.%f}"
    return CallingList.objects.create(business_unit=bu, name=name)


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def cpu_seconds(backend_pid: int) -> tuple[float, float, float]:
    """CPU seconds so far of this process, its finished children, and its PostgreSQL session."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:  # the server runs on this machine in the bench's setup; elsewhere there is no figure
        fields = Path(f"/proc/{backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
        session = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        session = float("nan")
    return (
        own.ru_utime + own.ru_stime,
        children.ru_utime + children.ru_stime,
        session,
    )


def child_import(path: Path, workers: int) -> dict:
    from django.core.files import File

    from skills.importing.service import upload_job_preview, upload_job_run
    from skills.models import UploadJob

    calling_list = new_list("import")
    with path.open("rb") as handle:
        job = UploadJob(calling_list=calling_list, original_name=path.name)
        job.file.save(path.name, File(handle), save=False)
    job.save()
    job.mapping = upload_job_preview(job=job).mapping
    job.status = UploadJob.Status.QUEUED
    job.save()
    from django.db import connection

    backend = connection.connection.info.backend_pid
    cpu0 = cpu_seconds(backend)
    t0 = time.perf_counter()
    job = upload_job_run(job_id=job.pk, workers=workers)
    elapsed = time.perf_counter() - t0
    cpu1 = cpu_seconds(backend)
    own, children = peak_rss_mb()
    counts = job.counts
    return {
        "status": job.status,
        "message": job.message,
        "rows": job.rows_processed,
        "valid": job.rows_valid,
        "invalid": job.rows_invalid,
        "seconds": elapsed,
        "rss_mb": own,
        "worker_rss_mb": children,
        "fast": counts.fast,
        "slow": counts.slow,
        "timings": counts.timings,
        "records": calling_list.records.count(),
        "cpu": [b - a for a, b in zip(cpu0, cpu1, strict=True)],
    }


def child_baseline(path: Path, rows: int) -> dict:
    """The naive importer: DictReader, phonenumbers per value, bulk_create of instances."""
    import phonenumbers

    from skills.models import Destination, Record

    calling_list = new_list("baseline")
    t0 = time.perf_counter()
    done = valid = 0
    seen: set[str] = set()

    def flush(batch):
        records = Record.objects.bulk_create([r for r, _ in batch])
        Destination.objects.bulk_create(
            Destination(record=r, position=i, source_field=f, phone_number=n)
            for r, (_, numbers) in zip(records, batch, strict=True)
            for i, (f, n) in enumerate(numbers)
        )

    batch = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            if done >= rows:
                break
            done += 1
            numbers = []
            for field in ("PhoneNumber", "SMSPhoneNumber"):
                if not row[field]:
                    continue
                try:
                    parsed = phonenumbers.parse(row[field], "US")
                except phonenumbers.NumberParseException:
                    continue
                if phonenumbers.is_valid_number(parsed):
                    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
                    numbers.append((field, e164))
            try:
                expires = dt.date.fromisoformat(row["AppointmentDate"])
            except ValueError:
                continue
            if not numbers or not row["ExternalId"] or row["ExternalId"] in seen:
                continue
            seen.add(row["ExternalId"])
            valid += 1
            record = Record(
                calling_list=calling_list,
                external_id=row["ExternalId"],
                first_name=row["FirstName"],
                last_name=row["LastName"],
                address=row["Address"],
                city=row["City"],
                state=row["State"],
                zip_code=row["Zip"],
                custom={"AppointmentDate": expires.isoformat()},
            )
            batch.append((record, numbers))
            if len(batch) >= 1000:
                flush(batch)
                batch = []
    if batch:
        flush(batch)
    elapsed = time.perf_counter() - t0
    own, _ = peak_rss_mb()
    return {"rows": done, "valid": valid, "seconds": elapsed, "rss_mb": own}


def run_child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _admin(url: str):
    import psycopg

    return psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True)


def _name(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?")[0]


def ensure_template(url: str) -> None:
    """A migrated template database for ``url``, made afresh for this run."""
    name = _name(url)
    template = f"{name}_template"
    with _admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'DROP DATABASE IF EXISTS "{template}"')
        conn.execute(f'CREATE DATABASE "{template}"')
    env = {**os.environ, "DATABASE_URL": url.replace(f"/{name}", f"/{template}"), "DEBUG": "true"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], check=True, cwd=ROOT, env=env)


def fresh_database(url: str) -> None:
    """The database of ``url`` as the template is: empty tables, migrated."""
    name = _name(url)
    with _admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{name}_template"')
        # The last import's pages and WAL are written out before this one starts: else the
        # server's checkpoint and the kernel's writeback of a million rows run during it.
        conn.execute("CHECKPOINT")
    os.sync()
    time.sleep(2)


def calamine_alone(path: Path) -> tuple[int, float]:
    """(rows, CPU seconds) for python-calamine to read the whole first sheet, in one process."""
    from python_calamine import CalamineWorkbook

    t0 = time.process_time()
    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    return len(rows) - 1, time.process_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--child", nargs=3, metavar=("KIND", "PATH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, path, n = args.child
        if kind == "write":
            path = Path(path)
            writer = write_csv if path.suffix == ".csv" else write_xlsx
            (write_xlsx_shared if path.stem.endswith("-shared") else writer)(path, int(n))
            return
        setup_django(args.database_url)
        if kind == "calamine":  # no database
            rows, cpu = min((calamine_alone(Path(path)) for _ in range(int(n))), key=lambda r: r[1])
            print(json.dumps({"rows": rows, "cpu": cpu}))
            return
        result = (
            child_baseline(Path(path), int(n))
            if kind == "baseline"
            else child_import(Path(path), int(n))
        )
        print(json.dumps(result))
        return

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"pcsms list import bench: {os.cpu_count()} cores (load average {load}), "
        f"{args.workers} reader processes, PostgreSQL at {args.database_url}"
    )
    csv_path, xlsx_path, shared_path = ensure_files(args.rows, args.xlsx_rows)
    ensure_template(args.database_url)
    url = ["--database-url", args.database_url]
    for label, path in (("inline strings", xlsx_path), ("shared strings", shared_path)):
        # In a child: its memory would count in every later child's peak RSS (Linux keeps a
        # process's peak across the exec of its children).
        r = run_child([*url, "--child", "calamine", str(path), "3"])
        rows, cpu = r["rows"], r["cpu"]
        print(
            f"  calibration: python-calamine alone reads the XLSX with {label} at "
            f"{rows / cpu:,.0f} rows/s on one core ({cpu:.2f} CPU-s for {rows:,} rows, best of 3)"
        )
    results = {}
    # The small files first: right after a million rows, this machine is still busy with
    # their aftermath (page cache, writeback) for a while, whatever the database does.
    files = (("XLSX", xlsx_path), ("XLSX shared strings", shared_path), ("CSV", csv_path))
    for label, path in files:
        fresh_database(args.database_url)
        r = run_child([*url, "--child", "import", str(path), str(args.workers)])
        results[label] = r
        t = {k: f"{v:.2f}" for k, v in r["timings"].items()}
        print(
            f"  import {label} {r['rows']:>9,} rows in {r['seconds']:6.2f} s = "
            f"{r['rows'] / r['seconds']:>8,.0f} rows/s  peak RSS {r['rss_mb']:.0f} MB (largest "
            f"worker {r['worker_rss_mb']:.0f} MB); {r['valid']:,} valid, {r['invalid']:,} "
            f"invalid; status {r['status']}"
        )
        if "ids_seen" not in t:  # staged: the whole file is read, then written in one go
            print(
                f"         read+normalise+stage {t.get('read')} s (COPY {t.get('stage_writes')} "
                f"s), commit {t.get('commit')} s = checks {t.get('checks')} + records and "
                f"destinations {t.get('records')} + report {t.get('report')} + COMMIT "
                f"{t.get('commit_wait')}; phones fast/slow path {r['fast']:,}/{r['slow']:,}"
            )
        else:  # streaming: each chunk is written while the next ones are read
            print(
                f"         read+normalise+write records and destinations {t.get('read')} s "
                f"(of which writing {t.get('stage_writes')} s: IDs seen before "
                f"{t.get('ids_seen')} + records and destinations {t.get('records')}), then checks "
                f"{t.get('checks')} + report {t.get('report')} + COMMIT {t.get('commit_wait')}; "
                f"phones fast/slow path {r['fast']:,}/{r['slow']:,}"
            )
        main, workers, session = r["cpu"]
        print(
            f"         CPU seconds: importing process {main:.2f}, reader processes {workers:.2f}, "
            f"its PostgreSQL session {session:.2f} = {main + workers + session:.2f} on "
            f"{os.cpu_count()} cores"
        )
        parts = ("read", "checks", "report", "commit_wait")
        parts += ("records",) if "ids_seen" not in t else ()
        rest = r["seconds"] - sum(r["timings"].get(k, 0.0) for k in parts)
        print(
            f"         the rest {rest:.2f} s: opening and counting the file, mapping, "
            "starting the workers, claiming the job"
        )
    fresh_database(args.database_url)
    b = run_child([*url, "--child", "baseline", str(csv_path), str(args.baseline_rows)])
    base_rate = b["rows"] / b["seconds"]
    print(
        f"  naive baseline on the first {b['rows']:,} rows of the CSV (a million would take "
        f"~{args.rows / base_rate / 60:.0f} min): {b['seconds']:.1f} s = {base_rate:,.0f} rows/s  "
        f"peak RSS {b['rss_mb']:.0f} MB"
    )
    rate = results["CSV"]["rows"] / results["CSV"]["seconds"]
    print(f"  CSV import vs naive baseline: {rate / base_rate:.1f}x")


if __name__ == "__main__":
    main()
