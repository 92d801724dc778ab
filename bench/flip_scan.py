"""The full flip scan (issue 26, item 2): every single-byte change (a bit flipped, XOR
0x01) of `access.json`, the journal and the archive of a store holding pending, active
and finished requests, each opened as the bot's start opens it. Prints, per file, how
many were silent / refused to start / degraded / unaffected (tests/flip_scan.py says
what each means). Silent or refused is a failure: exit status 1.

    python bench/flip_scan.py [--sample N]

Not one of the `make bench` scripts (it takes minutes); the suite runs a sample of
offsets (tests/test_store_integrity.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from tests import flip_scan  # noqa: E402
from tests.fakes import WebhookTarget  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, help="offsets per file (default: every one)")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # thousands of damaged stores, each logged
    target = WebhookTarget(secret="s3cret")
    try:
        with tempfile.TemporaryDirectory() as scratch:
            fixture = flip_scan.build(Path(scratch), target.url)
            started = time.perf_counter()
            found = flip_scan.scan(fixture, Path(scratch) / "work", args.sample)
            took = time.perf_counter() - started
    finally:
        target.close()
    total = 0
    print(f"{'file':<24}{'bytes':>7}" + "".join(f"{v:>12}" for v in flip_scan.VERDICTS))
    for name, counts in found.items():
        size = sum(counts.values())
        total += size
        print(f"{name:<24}{size:>7}" + "".join(f"{counts[v]:>12}" for v in flip_scan.VERDICTS))
    print(f"{total} single-byte changes in {took:.1f} s")
    for name, offset, verdict in fixture.failures:
        print(f"  {verdict}: {name} byte {offset}")
    return 1 if fixture.failures else 0


if __name__ == "__main__":
    sys.exit(main())
