"""Regenerate the results in README.md and docs/methods/<name>.md from the records in benchmarks/results/.

    python benchmarks/update_docs.py            # after anogen report benchmarks/results/*.jsonl -o benchmarks/report

Tables are made from records only (anogen.report); nothing is typed by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

from anogen import report
from anogen.bench import read_records

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    files = sorted((ROOT / "benchmarks" / "results").glob("*.jsonl"))
    records = report.latest_records(files)  # one record per run across files, as the README's report
    if not records:
        print("no records", file=sys.stderr)
        return 1
    for det, table in report.method_results(records).items():
        doc = ROOT / "docs" / "methods" / f"{det}.md"
        if doc.exists():
            text = ("## Results (generated from benchmark records)\n\n"
                    "CPU scale unless the settings say otherwise; from `benchmarks/results/*.jsonl`, made by the "
                    "commands in `benchmarks/run_cpu.sh`.\n\n" + table)
            report.inject(doc, "results", text)
    without_labels = report.issue14_markdown(records, ROOT / "docs" / "fig")  # selection and drift suites
    if without_labels:
        report.inject(ROOT / "docs" / "selection.md", "results", without_labels)
    inverted = read_records(ROOT / "benchmarks" / "results" / "inverted-digits.jsonl")
    if inverted:
        report.inject(ROOT / "docs" / "selection.md", "inverted", report.markdown(*report.inverted_table(inverted)))
    summary = ROOT / "benchmarks" / "report" / "results.md"
    if summary.exists():
        body = summary.read_text().split("\n", 3)[-1]  # drop the page title
        body = body.replace("\n## ", "\n### ")
        if body.startswith("## "):
            body = "#" + body
        report.inject(ROOT / "README.md", "results", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
