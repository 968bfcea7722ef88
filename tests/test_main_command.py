"""The README's main command, ``python -m keen``, runs the tour against the embedded server."""

from __future__ import annotations

import os
import subprocess
import sys


def _run_tour() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEN_")}
    done = subprocess.run(
        [sys.executable, "-m", "keen"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "talking to the embedded Keen server at http://127.0.0.1:" in done.stdout
    answers = {}
    for line in done.stdout.splitlines()[1:-1]:
        label, _, value = line.partition("  ")
        answers[label.strip()] = value.strip()
    return answers


def test_main_command_sends_events_and_prints_every_answer() -> None:
    answers = _run_tour()
    assert answers["add_events({...})"] == (
        '{"purchases": [{"success": true}, {"success": true}, {"success": true}], '
        '"sign_ups": [{"success": true}, {"success": true}]}'
    )
    assert answers["add_event with keen.timestamp, read back"] == '["2012-07-06T02:09:10.141Z"]'
    expected = {
        "count('purchases')": "3",
        "sum('purchases', 'price')": "31",
        "minimum('purchases', 'price')": "5",
        "maximum('purchases', 'price')": "20",
        "median('purchases', 'price')": "6",
        "percentile('purchases', 'price', 90)": "20",
        "count_unique('purchases', 'user.id')": "2",
        "select_unique('purchases', 'user.email')": '["lloyd@example.com", "one@example.com"]',
        "sum('purchases', 'price', group_by='item.id')": (
            '[{"item.id": 7, "result": 20}, {"item.id": 123, "result": 11}]'
        ),
        "funnel([sign_ups, purchases])": "[3, 2]",
        "funnel(..., all_keys=True) keys": '["result", "steps"]',
        "saved_queries.results('cheap-purchases')": "2",
        "count('purchases') with a scoped key for u1": "2",
        "delete_events('backfill')": "true",
    }
    for label, value in expected.items():
        assert answers[label] == value, label
    assert float(answers["average('purchases', 'price')"]) == 31 / 3
    assert float(answers["standard_deviation('purchases', 'price')"]) > 0
