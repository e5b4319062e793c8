"""Print the benchmark results in bench/results/*.json as the Markdown tables the README shows.

    python bench/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def ingest_table(data: dict) -> str:
    """Markdown table of ``bench/results/ingest.json``."""
    lines = ["| path | feed | format | records/s | ceiling XADD/s | ratio |", "|---|---|---|---:|---:|---:|"]
    for row in data["replay"]:
        lines.append(f"| replay | {row['feed']} | {row['format']} | {row['records_per_s']:,} | "
                     f"{row['ceiling_xadd_per_s']:,} | {row['ratio_to_ceiling']:.2f} |")
    for row in data["http"]:
        lines.append(f"| HTTP, {row['clients']} client{'s' if row['clients'] > 1 else ''}, {row['batch']:,}/request | "
                     f"{row['feed']} | {row['format']} | {row['records_per_s']:,} | {row['ceiling_xadd_per_s']:,} | "
                     f"{row['ratio_to_ceiling']:.2f} |")
    lines.append("")
    lines.append(f"({data['records_per_run']:,} records per run, {data['when'][:10]}, Redis {data['redis_version']}, "
                 f"Python {data['machine']['python']}, {data['machine']['cpus']} CPUs.)")
    return "\n".join(lines)


def main() -> int:
    print(ingest_table(json.loads((RESULTS / "ingest.json").read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
