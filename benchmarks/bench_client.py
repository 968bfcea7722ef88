"""Client overhead against the floor: a bare requests.Session doing the same requests.

A stand-in Keen API (http.server, HTTP/1.1 keep-alive, fixed answers) runs in another process.
Each scenario is measured in interleaved rounds (ours, floor, floor, ours...); the table shows
the median time per call of each side and ``ratio``, the median over rounds of our rate
divided by the floor's in the same round (1.00 = as fast as bare requests).

    python benchmarks/bench_client.py            # full run
    python benchmarks/bench_client.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import binascii
import http.server
import json
import multiprocessing
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

import keen
from keen import scoped_keys
from keen.client import KeenClient

PROJECT = "5004ded1163d66114f000000"
WRITE, READ = "W" * 64, "R" * 64
MASTER = "24077ACBCB198BAAA2110EDDB673282F8E34909FD823A15C55A6253A664BE368"

CREATED = b'{"created": true}'
RESULT = b'{"result": 42}'
BATCH_OK = b'{"purchases": []}'


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _answer(self, status: int, body: bytes) -> None:
        # one write per answer (headers + body), so no Nagle / delayed-ACK stalls
        reason = {200: b"OK", 201: b"Created"}[status]
        head = (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (status, reason, len(body)))
        self.wfile.write(head + body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.endswith("/events"):
            self._answer(200, BATCH_OK)
        else:
            self._answer(201, CREATED)

    def do_GET(self) -> None:
        self._answer(200, RESULT)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(port_queue: Any) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_queue.put(server.server_address[1])
    server.serve_forever()


def measure(fn: Callable[[], Any], calls: int) -> float:
    """Seconds per call over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def compare(name: str, ours: Callable[[], Any], floor: Callable[[], Any], calls: int,
            rounds: int) -> dict[str, Any]:
    for _ in range(max(calls, 3)):  # warm up connections, caches and the server's threads
        ours()
        floor()
    ours_times, floor_times = [], []
    for index in range(rounds):
        pair = [(ours, ours_times), (floor, floor_times)]
        for fn, times in (pair if index % 2 == 0 else pair[::-1]):
            times.append(measure(fn, calls))
    ours_median, floor_median = statistics.median(ours_times), statistics.median(floor_times)
    # the ratio of each round's pair, then the median: load from other processes drifts
    # slowly, so adjacent measurements share it and their ratio cancels it out
    pair_ratios = [floor / ours for ours, floor in zip(ours_times, floor_times)]
    return {"scenario": name, "ours_us": ours_median * 1e6, "floor_us": floor_median * 1e6,
            "ratio": statistics.median(pair_ratios)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few calls, for a smoke run")
    parser.add_argument("--rounds", type=int, default=41)
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0

    queue: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue,), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{queue.get(timeout=30)}"
    try:
        client = KeenClient(PROJECT, write_key=WRITE, read_key=READ, base_url=base)
        session = requests.Session()
        project = f"{base}/3.0/projects/{PROJECT}"
        write_headers = {"Content-Type": "application/json", "Authorization": WRITE,
                         "Keen-Sdk": f"python-{keen.__version__}"}
        read_headers = dict(write_headers, Authorization=READ)

        event = {"item": "widget", "price": 9.99, "quantity": 3, "user": {"id": "u-1"},
                 "tags": ["a", "b"]}

        def floor_event() -> None:
            response = session.post(f"{project}/events/purchases", data=json.dumps(event),
                                    headers=write_headers, timeout=305)
            assert response.status_code == 201

        batch = {"purchases": [dict(event, n=n) for n in range(5000)]}

        def floor_batch() -> Any:
            response = session.post(f"{project}/events", data=json.dumps(batch),
                                    headers=write_headers, timeout=305)
            assert response.status_code == 200
            return response.json()

        filters = [{"property_name": "price", "operator": "gte", "property_value": 0.99},
                   {"property_name": "user.id", "operator": "ne", "property_value": "bot"}]
        group_by = ["item", "user.id"]

        def ours_count() -> Any:
            return client.count("purchases", timeframe="this_7_days", filters=filters,
                                group_by=group_by)

        def floor_count() -> Any:
            params = {"event_collection": "purchases", "timeframe": "this_7_days",
                      "filters": json.dumps(filters), "group_by": json.dumps(group_by)}
            response = session.get(f"{project}/queries/count", params=params,
                                   headers=read_headers, timeout=305)
            assert response.status_code == 200
            return response.json()["result"]

        from Crypto.Cipher import AES

        options = {"allowed_operations": ["read"], "filters": filters}
        aes_key = binascii.unhexlify(MASTER)
        scoped = scoped_keys.encrypt(MASTER, options)

        def floor_encrypt() -> bytes:
            plain = json.dumps(options).encode()
            pad = 16 - len(plain) % 16
            iv = os.urandom(16)
            cipher = AES.new(aes_key, AES.MODE_CBC, iv)
            ciphertext = cipher.encrypt(plain + bytes([pad]) * pad)
            return binascii.hexlify(iv) + binascii.hexlify(ciphertext)

        def floor_decrypt() -> Any:
            raw = binascii.unhexlify(scoped)
            plain = AES.new(aes_key, AES.MODE_CBC, raw[:16]).decrypt(raw[16:])
            return json.loads(plain[:-plain[-1]])

        rows = [
            compare("add_event (1 event)", lambda: client.add_event("purchases", event),
                    floor_event, int(40 * scale) or 1, args.rounds),
            compare("add_events (5,000 events)", lambda: client.add_events(batch), floor_batch,
                    max(int(2 * scale), 1), args.rounds),
            compare("count, filters + group_by", ours_count, floor_count,
                    int(40 * scale) or 1, args.rounds),
            compare("scoped key encrypt", lambda: scoped_keys.encrypt(MASTER, options),
                    floor_encrypt, int(300 * scale) or 1, args.rounds),
            compare("scoped key decrypt", lambda: scoped_keys.decrypt(MASTER, scoped),
                    floor_decrypt, int(300 * scale) or 1, args.rounds),
        ]
    finally:
        server.terminate()
        server.join(5)
    print(f"{'scenario':<28} {'keen (us)':>12} {'floor (us)':>12} {'ratio':>7}")
    for row in rows:
        print(f"{row['scenario']:<28} {row['ours_us']:>12.1f} {row['floor_us']:>12.1f} "
              f"{row['ratio']:>7.3f}")
    print(f"(medians of {args.rounds} interleaved rounds; ratio = keen rate / floor rate, "
          "median of the per-round ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
