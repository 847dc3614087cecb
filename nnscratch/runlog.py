"""The per-epoch metrics log of a run: ``log.jsonl`` (one JSON object a line) and ``log.csv``.

Both are appended to after every epoch, so a resumed run continues the same files and an
interrupted run keeps every finished epoch.
"""
from __future__ import annotations

import csv
import json
import os


class RunLog:
    def __init__(self, out_dir):
        self.jsonl = os.path.join(out_dir, "log.jsonl")
        self.csv = os.path.join(out_dir, "log.csv")

    def read(self):
        """Every record so far, as a list of dicts (empty if the run is new)."""
        if not os.path.exists(self.jsonl):
            return []
        with open(self.jsonl) as f:
            return [json.loads(line) for line in f if line.strip()]

    def truncate(self, epochs_done):
        """Keep the records of the first ``epochs_done`` epochs (resuming from a checkpoint
        older than the log drops the epochs that will be run again)."""
        records = [r for r in self.read() if r["epoch"] <= epochs_done]
        self._rewrite(records)

    def append(self, record):
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(record) + "\n")
        self._rewrite(self.read())

    def _rewrite(self, records):
        with open(self.jsonl, "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        keys = []
        for r in records:
            keys += [k for k in r if k not in keys]
        with open(self.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(records)
