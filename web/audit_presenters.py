"""Readings and audit runs as JSON (the API) and as rows (the pages and the CSV export)."""

from __future__ import annotations

import csv
import io

from flask import url_for


def reading_json(reading) -> dict:
    return {
        "id": reading.id,
        "assessment_id": reading.assessment_id,
        "bone_age_months": reading.bone_age_months,
        "reader": reading.reader,
        "method": reading.method,
        "read_at": reading.read_at.isoformat(),
        "synthetic": reading.synthetic,
    }


def run_summary_json(run) -> dict:
    return {
        "id": run.id,
        "url": url_for("audits_api.get_audit", run_id=run.id),
        "page_url": url_for("audits.run_page", run_id=run.id),
        "trigger": run.trigger,
        "status": run.status,
        "window_start": run.window_start.isoformat(),
        "window_end": run.window_end.isoformat(),
        "model_version_ids": list(run.model_version_ids or []),
        "finding_count": run.finding_count,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "error": run.error,
        "synthetic": run.synthetic,
    }


def run_json(run) -> dict:
    return {**run_summary_json(run), "parameters": run.parameters, "results": run.results,
            "findings": list(run.findings or [])}


def finding_rows(run) -> list[dict]:
    return [{**finding, "run_id": run.id, "window_start": run.window_start.isoformat(),
             "window_end": run.window_end.isoformat()} for finding in (run.findings or [])]


GROUP_KEYS = (("overall", None), ("by_sex", "sex"), ("by_age_band", "age band"), ("by_stage", "stage"),
              ("by_sex_age_band", "sex x age band"))
METRIC_COLUMNS = ("n", "mae", "mae_ci_low", "mae_ci_high", "rmse", "mean_signed_error", "within_12_months",
                  "disagreement_rate", "too_few")


def metric_rows(run) -> list[dict]:
    """One row per model version and group: the run's accuracy table."""
    rows = []
    for version in (run.results or {}).get("versions", []):
        base = {"model_version": version["model_name"]}
        if version.get("too_few"):
            rows.append({**base, "grouping": "overall", "group": "all", "n": version["n"], "too_few": True})
            continue
        for key, grouping in GROUP_KEYS:
            groups = {"all": version[key]} if grouping is None else version.get(key) or {}
            for group, metrics in groups.items():
                ci = metrics.get("mae_ci") or [None, None]
                rows.append({**base, "grouping": grouping or "overall", "group": group,
                             **{c: metrics.get(c) for c in METRIC_COLUMNS if c not in ("mae_ci_low", "mae_ci_high")},
                             "mae_ci_low": ci[0], "mae_ci_high": ci[1], "too_few": bool(metrics.get("too_few"))})
    return rows


def metrics_csv(run) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["model_version", "grouping", "group", *METRIC_COLUMNS])
    writer.writeheader()
    for row in metric_rows(run):
        writer.writerow(row)
    return buffer.getvalue()
