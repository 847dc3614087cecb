"""The per-epoch metrics log of a run: ``log.jsonl`` (one JSON object a line) and ``log.csv``.

Both are rewritten after every epoch (to a temporary file, synced, then renamed over the old
one, so an interruption never leaves half a log), so a resumed run continues the same files and an
interrupted run keeps every finished epoch. ``log.jsonl`` is the reference; ``log.csv`` has
one column per key seen in any record (blank where an epoch has no value, e.g. held-out
metrics computed every few epochs only).
"""
from __future__ import annotations

import csv
import io
import json
import os

from .checkpoint import atomic_file
from .rundir import RunDirectoryError, file_kind


class RunLog:
    """The log files ``log.jsonl`` and ``log.csv`` in ``out_dir``."""

    def __init__(self, out_dir):
        self.jsonl = os.path.join(out_dir, "log.jsonl")
        self.csv = os.path.join(out_dir, "log.csv")

    def read(self):
        """Every record so far, as a list of dicts (empty if the run is new).

        Raises ``ValueError`` naming the file and line when a line is not a record (a JSON
        object with an integer ``epoch`` >= 1): the log is never rewritten over a line this
        loop did not write (an edited or foreign file)."""
        if not os.path.exists(self.jsonl):
            return []
        kind = file_kind(self.jsonl, follow=True)
        if kind is not None:            # a FIFO would block the read forever
            raise RunDirectoryError(f"{self.jsonl} is {kind}, not a log file; move it away")
        records = []
        with open(self.jsonl) as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    records.append(self._record(line, number))
        return records

    def _record(self, line, number):
        try:
            record = json.loads(line)
            problem = _not_a_record(record)
        except (ValueError, RecursionError) as err:    # JSONDecodeError, nested too deep
            problem = f"not JSON: {err}"
        if problem:
            raise ValueError(f"{self.jsonl} line {number} is not a log record ({problem}); "
                             "fix or remove that line")
        return record

    def truncate(self, epochs_done):
        """Keep the records of the first ``epochs_done`` epochs (resuming from a checkpoint
        older than the log drops the epochs that will be run again)."""
        records = [r for r in self.read() if r["epoch"] <= epochs_done]
        self._rewrite(records)
        return records

    def append(self, record):
        """Add one epoch's record; returns every record so far."""
        records = self.read() + [record]
        self._rewrite(records)
        return records

    def _rewrite(self, records):
        if not records and not any(os.path.lexists(p) for p in (self.jsonl, self.csv)):
            return                      # a new run: no empty logs (they would look like a run)
        _write_atomic(self.jsonl, "".join(json.dumps(r) + "\n" for r in records))
        keys = []
        for r in records:
            keys += [k for k in r if k not in keys]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        _write_atomic(self.csv, text.getvalue())


def _not_a_record(record):
    """What makes ``record`` no log line, else None."""
    if not isinstance(record, dict):
        return f"JSON {type(record).__name__}, not an object"
    epoch = record.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        return f"'epoch' is {epoch!r}, not an integer >= 1"
    return None


def _write_atomic(path, text):
    """``text`` becomes the file ``path`` whole or not at all, and is on the disk before
    the rename makes it the log: :func:`~nnscratch.training.checkpoint.atomic_file` (a
    power cut after an epoch keeps that epoch's line, as it keeps its checkpoint)."""
    with atomic_file(path) as f:
        f.write(text.encode())
