"""A CSV logger whose history survives a resumed run.

Lightning's `CSVLogger` deletes `metrics.csv` when a run starts in a folder that already has one ("Previous
log files in this directory will be deleted"), so a resumed run kept only the epochs after the resume. This
logger keeps the file: on resume, `keep_history(until_epoch)` drops the rows of epochs after the checkpoint
(the resumed run logs those epochs again) and the new rows are appended, so `csv/metrics.csv` holds every
epoch once.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)


class HistoryWriter(ExperimentWriter):
    """Lightning's CSV experiment writer, appending to an existing `metrics.csv` instead of deleting it."""

    def _check_log_dir_exists(self) -> None:
        """Keep what is there; remember the existing header so new columns are merged into it."""
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as file:
                self.metrics_keys = next(csv.reader(file), [])


class CSVLogger(LightningCSVLogger):
    """`lightning.pytorch.loggers.CSVLogger` that keeps the log history of a resumed run (see module doc)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> HistoryWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = HistoryWriter(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def keep_history(self, until_epoch: int) -> int:
        """Drop the rows of epochs after `until_epoch` from an existing metrics.csv (written to a temporary
        file, then renamed); returns the number of rows kept."""
        return trim_metrics_csv(Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE, until_epoch)


def trim_metrics_csv(path: Path, until_epoch: int) -> int:
    """Keep the rows of `path` whose `epoch` is <= `until_epoch` (rows without an epoch are kept) and that
    hold no test measure (the resumed run tests again); returns the number of rows kept (0: no file)."""
    if not path.is_file():
        return 0
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    test_columns = [f for f in fields if f.startswith("test/")]
    kept = [r for r in rows
            if not _after(r.get("epoch"), until_epoch) and not any(r.get(c) for c in test_columns)]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
    os.replace(tmp, path)
    if len(kept) < len(rows):
        log.info("resumed after epoch %d: dropped %d log row(s) of later epochs or of the test from %s (the "
                 "resumed run logs them again)", until_epoch, len(rows) - len(kept), path)
    return len(kept)


def _after(epoch: Any, until_epoch: int) -> bool:
    try:
        return int(float(epoch)) > until_epoch
    except (TypeError, ValueError):
        return False
