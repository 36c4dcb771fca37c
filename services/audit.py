"""The daily audit: stored predictions summarised by sex, written as a JSON report."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from core.atomic import write_text_atomic

log = logging.getLogger(__name__)


def run_audit(*, uow, out_dir: Path, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> dict:
    """Summarise succeeded assessments by sex into <out_dir>/<date>.json; returns the report."""
    with uow() as work:
        by_sex = work.assessments.summary_by_sex()
    now = clock()
    report = {"generated_at": now.isoformat(timespec="seconds"), "by_sex": by_sex}
    write_text_atomic(Path(out_dir) / f"{now:%Y-%m-%d}.json", json.dumps(report, indent=2))
    log.info("audit by sex: %s", json.dumps(by_sex))
    return report
