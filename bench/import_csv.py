"""CSV import throughput: a generated file of ``--rows`` profiles uploaded (parsed, checked and
stored in chunks) and run (every chunk as the ``imports.run`` actor takes it), then the same file
again (every row unchanged), on PostgreSQL.

    BENCH_ADMIN_URL=postgresql+psycopg://postgres@127.0.0.1:5432/<db> BENCH_DATABASE=ccm_bench_import \\
        .venv/bin/python bench/import_csv.py [--rows 100000] [--runs 3]

The file has the columns a CRM export has: id, email, first and last name, phone (E.164 or
national French numbers), time zone, locale, country, plan, and an email-consent column; every
200th row has an invalid email (a report line), every 500th repeats an earlier id (a duplicate);
two rows in three grant email consent, the third revokes it (``--without-consent``: the column is
empty, so no consent records are written).
Figures are rows per second of wall time, upload and run apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import REDIS_URL, analyze, database_url, fresh_database, save  # noqa: E402

ZONES = ("Europe/Paris", "America/New_York", "Asia/Tokyo", "Europe/Berlin")


def make_file(rows: int, *, consent: bool = True) -> bytes:
    lines = ["External ID,Email,First Name,Last Name,Phone,Time Zone,Language,Country,Plan,Email Consent"]
    for i in range(rows):
        ident = f"u{i - 1}" if i % 500 == 499 else f"u{i}"
        email = f"broken{i}" if i % 200 == 0 else f"person{i}@example.com"
        phone = f"+33 6 12 {i // 10000 % 100:02d} {i // 100 % 100:02d} {i % 100:02d}" if i % 2 else ""
        decision = ("yes" if i % 3 else "no") if consent else ""
        lines.append(f"{ident},{email},Ann,Smith {i},{phone},{ZONES[i % 4]},fr,FR,pro,{decision}")
    return ("\n".join(lines) + "\n").encode()


def one_run(raw: bytes) -> dict[str, float | int]:
    from ccm.config import Settings
    from ccm.imports.models import ImportJob
    from ccm.imports.service import Upload, create_import, run_import
    from ccm.runtime import create_runtime
    from ccm.workspaces.service import get_or_create_workspace

    settings = Settings(database_url=database_url(), redis_url=REDIS_URL, secret_key="bench", log_level="WARNING")
    runtime = create_runtime(settings)
    figures: dict[str, float | int] = {}
    try:
        for label in ("first", "again"):
            started = time.perf_counter()
            with runtime.db.unit_of_work() as session:
                ws, _ = get_or_create_workspace(session=session, name="bench")
                upload = Upload(filename="bench.csv", raw=raw)
                job = create_import(
                    session=session, workspace_id=ws.id, upload=upload, max_bytes=len(raw), chunk_rows=1000
                ).job
            uploaded = time.perf_counter()
            run_import(runtime.db, job.id, grace=30.0)
            ran = time.perf_counter()
            with runtime.db.read_only() as session:
                done = session.get(ImportJob, job.id)
                assert done is not None and done.status == "completed", done
                counts = {
                    name: getattr(done, name) for name in ("created", "updated", "unchanged", "invalid", "duplicate")
                }
            rows = done.total_rows
            figures[f"{label}_upload_rows_per_s"] = round(rows / (uploaded - started))
            figures[f"{label}_run_rows_per_s"] = round(rows / (ran - uploaded))
            figures[f"{label}_total_rows_per_s"] = round(rows / (ran - started))
            figures[f"{label}_counts"] = counts  # type: ignore[assignment]
            analyze()
    finally:
        runtime.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--without-consent", action="store_true", help="leave the consent column empty")
    args = parser.parse_args()
    raw = make_file(args.rows, consent=not args.without_consent)
    runs = []
    for number in range(args.runs):
        fresh_database()
        runs.append(one_run(raw))
        print(json.dumps({"run": number + 1, **runs[-1]}), flush=True)
    medians = {
        key: statistics.median(run[key] for run in runs)  # type: ignore[type-var]
        for key in runs[0]
        if key.endswith("_per_s")
    }
    print("median:", json.dumps(medians))
    name = "import_csv_without_consent" if args.without_consent else "import_csv"
    save(name, {"rows": args.rows, "bytes": len(raw), "runs": runs, "median": medians})


if __name__ == "__main__":
    main()
