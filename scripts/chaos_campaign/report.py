"""Owns a probe's result (`Row`) and how results are shown: one line per row as it finishes,
the Markdown table at the end, and the JSON file of `--json`."""

import dataclasses
import json


@dataclasses.dataclass
class Row:
    number: int
    probe: str  # what was done
    figure: str  # what was measured
    ok: object  # True (PASS), False (FAIL) or None (SKIP)
    expect: str = ""  # what PASS needs
    seconds: float = 0.0

    @property
    def verdict(self):
        return {True: "PASS", False: "FAIL", None: "SKIP"}[self.ok]


def check(number, probe, figure, ok, expect):
    """A row whose verdict is `ok` (a bool); `expect` says what PASS needs."""
    return Row(number, probe, figure, bool(ok), expect)


def skip(number, probe, reason):
    return Row(number, probe, f"skipped: {reason}", None)


def count(n, of, what):
    """`0 of 5,000 → 5xx` style figures."""
    return f"{n:,} of {of:,} {what}"


def line(row):
    return f"[{row.verdict}] {row.number:>2}. {row.probe}: {row.figure} ({row.seconds:.0f} s)"


def markdown(rows):
    out = ["| # | probe | measured | pass when | result |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        cells = (c.replace("|", "\\|").replace("\n", " ") for c in (r.figure, r.expect))
        out.append(f"| {r.number} | {r.probe} | {' | '.join(cells)} | {r.verdict} |")
    return "\n".join(out)


def write_json(path, rows, meta):
    with open(path, "w") as f:
        json.dump({**meta, "rows": [
            {**dataclasses.asdict(r), "verdict": r.verdict} for r in rows]}, f, indent=2)
        f.write("\n")
