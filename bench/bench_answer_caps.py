"""Issue 26, item 9: what a peer's oversized answer costs the bot.

An audit sink (http) answering a 200 MB body, and a Splunk HEC refusing a batch with a
20 MB `text`, each against the real sink code (tests/builders.py's Deployment, the
receivers of tests/fake_sinks.py on 127.0.0.1), each in a process of its own: the peak
resident memory (VmHWM) before and after the shipment, what the peer got to send, and the
size of the audit log afterwards.

    .venv/bin/python bench/bench_answer_caps.py
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, header, quiet_logs, table

MB = 1024 * 1024


def peak() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(kind: str, answer) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.builders import Deployment
    from tests.conftest import FakeClock
    from tests.fake_sinks import HugeAnswer

    quiet_logs()
    os.environ["BENCH_SINK_SECRET"] = os.environ["BENCH_HEC_TOKEN"] = "bench"
    if kind == "http":
        peer = HugeAnswer(200 * MB)
        sink = {"type": "http", "url": peer.url, "secret_env": "BENCH_SINK_SECRET"}
    else:
        peer = HugeAnswer(20 * MB, 200, prefix=b'{"code": 6, "text": "', suffix=b'"}')
        sink = {"type": "splunk_hec", "url": peer.url, "token_env": "BENCH_HEC_TOKEN"}
    with tempfile.TemporaryDirectory() as tmp:
        bot = Deployment(Path(tmp), FakeClock(), sink)
        bot.events(3)
        before = peak()
        started = time.perf_counter()
        shipped = bot.ship()
        took = time.perf_counter() - started
        answer.put([shipped, before, peak(), peer.sent / MB, bot.path.stat().st_size, took])
        bot.close()
        peer.close()


def main() -> None:
    header("a sink's oversized answer")
    rows = []
    for kind, what in (("http", "http sink, 200 MB answer"), ("splunk", "Splunk, 20 MB refusal")):
        answer = multiprocessing.Queue()
        child = multiprocessing.Process(target=run, args=(kind, answer))
        child.start()
        shipped, before, after, sent, log_bytes, took = answer.get(timeout=300)
        child.join()
        rows.append(
            [
                what,
                str(shipped),
                f"{before:.0f}",
                f"{after:.0f}",
                f"{sent:.1f}",
                f"{log_bytes:,}",
                f"{took:.2f}",
            ]
        )
    table(
        rows,
        ["peer", "lines acked", "peak MB before", "peak MB after", "MB sent", "log bytes", "s"],
    )


if __name__ == "__main__":
    main()
