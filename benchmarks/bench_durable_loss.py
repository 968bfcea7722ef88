"""What a kill -9 loses in durable "group" mode, measured with real processes.

Run: ``python benchmarks/bench_durable_loss.py`` (``--runs 20``, ``--load 2``).

Each run starts a producer process that adds events as fast as it can to
``DurableDelivery(path=..., durability="group")`` with the server unreachable (so every event it
committed stays in the file), printing for each ``add_event`` that returned its number and the
time the call began. A random 0.2-0.6 s after its first event the parent kills it with SIGKILL,
reads the file, and counts the events that returned but are not in it. Reported: how many were
lost per run, and how long before the last ``add_event`` began the oldest lost one began. The
README's bound is ``commit_interval`` (0.05 s). ``--load N`` keeps N busy processes running
meanwhile (CPU contention, as on a loaded host), which is what made the writer thread fall
behind.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def produce(path: str) -> None:
    from keen._delivery import DurableDelivery
    from keen.client import KeenClient

    client = KeenClient("5eb1f5c3d3a2b40001e0a1b2", write_key="bench-write-key",
                        base_url="http://127.0.0.1:9",  # nothing listens: nothing leaves the file
                        delivery=DurableDelivery(path=path, durability="group"))
    n = 0
    clock = time.monotonic
    while True:
        began = clock()
        client.add_event("bench", {"n": n, "user": {"id": f"u{n % 1000}", "plan": "pro"},
                                   "action": "click", "price": 9.99, "tags": ["a", "b"]})
        print(n, began, flush=True)
        n += 1


def burn() -> None:
    while True:
        pass


def one_run(workdir: str, index: int) -> tuple[int, int, float]:
    """(events returned, events lost, seconds from the oldest lost to the last begun)."""
    path = os.path.join(workdir, f"run{index}.sqlite3")
    producer = subprocess.Popen([sys.executable, __file__, "--produce", path],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    began: dict[int, float] = {}
    started = threading.Event()

    def read() -> None:
        assert producer.stdout is not None
        for line in producer.stdout:
            fields = line.split()
            if len(fields) == 2:
                began[int(fields[0])] = float(fields[1])
                started.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert started.wait(60), "the producer did not start"
    time.sleep(random.uniform(0.2, 0.6))  # (the producer runs meanwhile; when it dies is random)
    producer.send_signal(signal.SIGKILL)
    producer.wait(30)
    reader.join(30)
    conn = sqlite3.connect(path)
    try:
        stored = {json.loads(body)["n"] for (body,) in conn.execute("SELECT body FROM events")}
    finally:
        conn.close()
    lost = sorted(set(began) - stored)
    if not lost:
        return len(began), 0, 0.0
    return len(began), len(lost), began[max(began)] - began[lost[0]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--load", type=int, default=0, help="busy processes meanwhile")
    parser.add_argument("--produce", help=argparse.SUPPRESS)
    parser.add_argument("--burn", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.produce:
        produce(options.produce)
        return
    if options.burn:
        burn()
        return
    burners = [subprocess.Popen([sys.executable, __file__, "--burn"])
               for _ in range(options.load)]
    try:
        workdir = tempfile.mkdtemp(prefix="keen-loss-")
        results = [one_run(workdir, index) for index in range(options.runs)]
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(10)
    ages = [age for _returned, _lost, age in results]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {options.load} busy "
          f"process(es); {options.runs} kill -9 runs of a group-commit producer")
    print(f"  events returned per run   median {statistics.median(r for r, _, _ in results):,.0f}")
    print(f"  events lost per run       median {statistics.median(n for _, n, _ in results):,.0f}"
          f", max {max(n for _, n, _ in results):,}")
    print(f"  oldest lost event (s)     median {statistics.median(ages):.3f}, "
          f"max {max(ages):.3f}  (bound: commit_interval = 0.05)")


if __name__ == "__main__":
    main()
