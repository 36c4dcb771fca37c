"""The queue's database queries on a table of many finished studies, before and after the
indexes of migration 0010 (docs/scaling.md: "Where the first bottleneck appears").

    .venv/bin/python benchmarks/bench_queue_queries.py [--rows 300000] [--database-url URL]

On a throw-away schema of the PostgreSQL server (dropped afterwards; default: the test
database), migrated to 0009: `--rows` finished assessments spread over a year (one in
200 with its images deleted, one in 4 with a reference), plus 32 queued and 8 running
ones, made with generate_series. Each repository query the service runs is timed (median
of --repeat runs, through db.repository as the worker and beat call it), then the schema
is upgraded to 0010 and timed again. Prints a Markdown table; writes nothing else.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

DEFAULT_URL = os.environ.get("BONEAGE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

FILL = """
INSERT INTO assessments (id, status, created_at, started_at, finished_at, image_sha256, image_path, sex,
                         attempts, sends, reference, images_deleted_at)
SELECT md5(i::text), 'succeeded', now() - (i * interval '1 second') * (31536000.0 / :rows),
       now() - (i * interval '1 second') * (31536000.0 / :rows),
       now() - (i * interval '1 second') * (31536000.0 / :rows) + interval '2 seconds',
       md5(i::text) || md5(i::text), 'uploads/' || left(md5(i::text), 2) || '/' || md5(i::text) || '.png',
       CASE WHEN i % 2 = 0 THEN 'M' ELSE 'F' END, 1, 1,
       CASE WHEN i % 4 = 0 THEN 'REF-' || (i % 50000) ELSE NULL END,
       CASE WHEN i % 200 = 0 THEN now() ELSE NULL END
FROM generate_series(1, :rows) AS i
"""
PENDING = """
INSERT INTO assessments (id, status, created_at, started_at, image_sha256, image_path, sex, attempts, sends)
SELECT md5('pending' || i::text), CASE WHEN i <= 32 THEN 'queued' ELSE 'running' END,
       now() - (i * interval '1 second'), CASE WHEN i <= 32 THEN NULL ELSE now() END,
       md5('p' || i::text) || md5('p' || i::text), 'uploads/p/' || i || '.png', 'F', 0, 1
FROM generate_series(1, 40) AS i
"""


def timed(run, repeat: int) -> float:
    """Median milliseconds of `repeat` runs (after one warm-up run)."""
    run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def queries(url: str):
    from db.models import utcnow
    from db.session import unit_of_work_factory

    uow = unit_of_work_factory(url)
    now = utcnow()

    def claim_batch():
        with uow() as work:  # rolled back: the same 15 queued rows each time
            work.assessments.claim_queued(15, now=now)

    def recovery_sweep():
        with uow() as work:
            work.assessments.needing_recovery(resend_before=now - timedelta(seconds=300),
                                              stale_before=now - timedelta(seconds=360))

    def retention_scan():
        with uow() as work:
            work.assessments.images_to_delete(finished_before=now - timedelta(days=365))

    def upload_still_needed():
        with uow() as work:
            work.assessments.image_still_needed("uploads/ab/not-there.png", finished_before=now - timedelta(days=30))

    def growth_chart_series():
        with uow() as work:
            work.assessments.series("REF-1234", "M", created_up_to=now)

    return {
        "claim a batch of 15 (every batch)": claim_batch,
        "recovery sweep (beat, every 60 s)": recovery_sweep,
        "retention: rows past a year (daily)": retention_scan,
        "retention: upload still needed? (per expired upload)": upload_still_needed,
        "a child's series (growth chart, per page)": growth_chart_series,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000, help="finished assessments in the table")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="a PostgreSQL server URL (a schema is made in it)")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    import sqlalchemy as sa

    import migrations
    from db.session import dispose_engines

    schema = f"bench_queue_{uuid.uuid4().hex[:10]}"
    server = sa.create_engine(args.database_url)
    with server.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{args.database_url}{'&' if '?' in args.database_url else '?'}options=-csearch_path%3D{schema}"
    try:
        migrations.upgrade(url, "0009")
        engine = sa.create_engine(url)
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(sa.text(FILL), {"rows": args.rows})
            connection.execute(sa.text(PENDING))
        with engine.connect() as connection:
            connection.execute(sa.text("COMMIT"))
            connection.execute(sa.text("ANALYZE assessments"))
        print(f"{args.rows:,} finished + 40 unfinished assessments made in {time.perf_counter() - started:.1f} s; "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}")
        before = {name: timed(run, args.repeat) for name, run in queries(url).items()}
        dispose_engines()
        migrations.upgrade(url, "0010")
        with engine.connect() as connection:
            connection.execute(sa.text("COMMIT"))
            connection.execute(sa.text("ANALYZE assessments"))
        after = {name: timed(run, args.repeat) for name, run in queries(url).items()}
        print(f"\n| query ({args.rows:,} finished rows) | before 0010 (ms) | after (ms) | speed-up |")
        print("|---|---:|---:|---:|")
        for name in before:
            print(f"| {name} | {before[name]:.2f} | {after[name]:.2f} | {before[name] / after[name]:.0f}x |")
        engine.dispose()
    finally:
        dispose_engines()
        with server.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        server.dispose()


if __name__ == "__main__":
    main()
