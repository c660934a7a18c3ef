#!/usr/bin/env python3
"""Check an Autobahn|TestSuite fuzzingclient report (index.json).

Prints one summary line per agent, e.g. (wrapped here)::

    autobahn: 298 OK, 3 INFORMATIONAL, 0 NON-STRICT, 0 FAILED, 0 UNIMPLEMENTED,
    0 other of 301 cases

then lists every case that is not plainly OK, and exits

* 0 if every case passed: ``behavior`` and ``behaviorClose`` are both ``OK``,
  or ``behavior`` is ``INFORMATIONAL`` (7.1.6, 7.13.1 and 7.13.2 are reported
  that way by the suite and have no right answer);
* 1 if any case failed (NON-STRICT, FAILED, UNIMPLEMENTED, a close verdict
  such as WRONG CODE or UNCLEAN, ...) or the report has fewer cases than
  ``--expected``;
* 2 if the report cannot be read.

Each case is counted once in the summary: by its ``behavior``, except that a
case whose ``behavior`` is OK but whose ``behaviorClose`` is not counts as
FAILED (close verdict FAILED) or "other" (WRONG CODE, UNCLEAN, ...).

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OK = "OK"
INFORMATIONAL = "INFORMATIONAL"
NON_STRICT = "NON-STRICT"
FAILED = "FAILED"
UNIMPLEMENTED = "UNIMPLEMENTED"
OTHER = "other"
BUCKETS = (OK, INFORMATIONAL, NON_STRICT, FAILED, UNIMPLEMENTED, OTHER)

DETAIL_LIMIT = 300


class ReportError(Exception):
    """The report is missing or malformed."""


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    behavior: str
    behavior_close: str
    remote_close_code: int | None
    duration_ms: int | None
    report_file: str | None

    @property
    def passed(self) -> bool:
        if self.behavior == INFORMATIONAL:
            return True
        return self.behavior == OK and self.behavior_close == OK

    @property
    def bucket(self) -> str:
        if self.behavior == OK and self.behavior_close != OK:
            return FAILED if self.behavior_close == FAILED else OTHER
        return self.behavior if self.behavior in BUCKETS else OTHER


def case_sort_key(case_id: str) -> tuple[int | str, ...]:
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def load_index(path: Path) -> dict[str, list[CaseResult]]:
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ReportError(f"{path}: no such file (did wstest run?)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot read report: {exc}") from exc
    if not isinstance(raw, dict):
        raise ReportError(f"{path}: expected a JSON object of agents")

    agents: dict[str, list[CaseResult]] = {}
    for agent, cases in raw.items():
        if not isinstance(cases, dict):
            msg = f"{path}: agent {agent!r}: expected a JSON object of cases"
            raise ReportError(msg)
        results: list[CaseResult] = []
        for case_id, entry in cases.items():
            if not isinstance(entry, dict):
                raise ReportError(f"{path}: case {case_id}: expected a JSON object")
            results.append(
                CaseResult(
                    case_id=str(case_id),
                    behavior=str(entry.get("behavior", "MISSING")),
                    behavior_close=str(entry.get("behaviorClose", "MISSING")),
                    remote_close_code=_opt_int(entry.get("remoteCloseCode")),
                    duration_ms=_opt_int(entry.get("duration")),
                    report_file=_opt_str(entry.get("reportfile")),
                )
            )
        results.sort(key=lambda r: case_sort_key(r.case_id))
        agents[str(agent)] = results
    return agents


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def one_line(text: str, limit: int = DETAIL_LIMIT) -> str:
    """Collapse whitespace and the suite's HTML markup, and truncate."""
    text = re.sub(r"<br\s*/?>", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"</?(?:b|i|tt)>", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def case_details(report_dir: Path, result: CaseResult) -> dict[str, str]:
    """Description and verdict texts from the per-case JSON report, if present."""
    if result.report_file is None:
        return {}
    path = report_dir / result.report_file
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    details: dict[str, str] = {}
    for key in ("description", "result", "resultClose", "remoteCloseReason"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            details[key] = one_line(value)
    if result.behavior not in (OK, INFORMATIONAL):
        # What the suite saw against what it would have accepted, per verdict.
        for key in ("received", "expected"):
            if data.get(key):
                details[key] = one_line(json.dumps(abbreviate(data[key])))
    return details


def abbreviate(value: object, limit: int = 40) -> object:
    """Shorten long strings inside a JSON value (payloads can be megabytes)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}...({len(value)} chars)"
    if isinstance(value, list):
        return [abbreviate(v, limit) for v in value]
    if isinstance(value, dict):
        return {k: abbreviate(v, limit) for k, v in value.items()}
    return value


def summary_line(results: list[CaseResult]) -> str:
    counts = Counter(r.bucket for r in results)
    parts = ", ".join(f"{counts[b]} {b}" for b in BUCKETS)
    return f"autobahn: {parts} of {len(results)} cases"


def describe(report_dir: Path, result: CaseResult) -> list[str]:
    verdict = "info" if result.passed else "FAIL"
    head = (
        f"  {verdict} {result.case_id}: behavior={result.behavior}"
        f" behaviorClose={result.behavior_close}"
        f" remoteCloseCode={result.remote_close_code}"
    )
    if result.duration_ms is not None:
        head += f" duration={result.duration_ms}ms"
    details = case_details(report_dir, result)
    return [head] + [f"      {k}: {v}" for k, v in details.items()]


def check_agent(agent: str, results: list[CaseResult], report_dir: Path, expected: int | None) -> int:
    """Print one agent's summary and non-OK cases; return its failure count.

    Cases that the run was expected to produce but did not count as failures.
    """
    print(summary_line(results))
    not_ok = [r for r in results if not (r.behavior == OK and r.behavior_close == OK)]
    failed = [r for r in not_ok if not r.passed]
    if not_ok:
        n_info = len(not_ok) - len(failed)
        print(f"cases not OK ({len(failed)} failing, {n_info} informational):")
        for result in not_ok:
            for line in describe(report_dir, result):
                print(line)
    problem = None
    if not results:
        problem = "report has no cases"
    elif expected is not None and len(results) != expected:
        problem = f"expected {expected} cases, report has {len(results)} (did the server stop answering?)"
    if problem is not None:
        print(f"check_report: agent {agent}: {problem}", file=sys.stderr)
        return len(failed) + max((expected or 0) - len(results), 1)
    return len(failed)


def check(index: Path, expected: int | None) -> int:
    try:
        agents = load_index(index)
    except ReportError as exc:
        print(f"check_report: error: {exc}", file=sys.stderr)
        return 2
    if not agents:
        print(f"check_report: error: {index}: report has no agents", file=sys.stderr)
        return 1

    n_passed = n_failed = 0
    for agent, results in sorted(agents.items()):
        if len(agents) > 1:
            print(f"agent {agent}:")
        n_failed += check_agent(agent, results, index.parent, expected)
        n_passed += sum(1 for r in results if r.passed)
    # Plain closing line, in the form CI log readers recognise.
    print(f"autobahn: {n_passed} passed, {n_failed} failed")
    return 0 if n_failed == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check an Autobahn|TestSuite fuzzingclient report (index.json)."
    )
    parser.add_argument("index", type=Path, help="path of the report's index.json")
    parser.add_argument(
        "--expected",
        type=int,
        default=None,
        metavar="N",
        help="number of cases the run was supposed to produce (fail if different)",
    )
    args = parser.parse_args(argv)
    return check(args.index, args.expected)


if __name__ == "__main__":
    sys.exit(main())
