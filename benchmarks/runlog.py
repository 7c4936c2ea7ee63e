"""Finished benchmark runs kept in a JSONL file, so that a rerun (or a parallel invocation) resumes."""

import os

from recbole_diffusion.quick_start.report import append_jsonl, read_jsonl


class RunLog:
    """Rows appended to ``<out>.jsonl`` as each run ends; a row is reused only under the same ``settings``."""

    def __init__(self, out, settings):
        self.path = os.path.splitext(out)[0] + ".jsonl"
        self.settings = settings

    def find(self, **key):
        """The last successful row with these key fields and settings, or None."""
        matches = [
            row for row in read_jsonl(self.path)
            if row.get("settings") == self.settings and "error" not in row and all(row.get(k) == v for k, v in key.items())
        ]
        return matches[-1] if matches else None

    def add(self, row):
        row["settings"] = self.settings
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        append_jsonl(self.path, row)
        return row
