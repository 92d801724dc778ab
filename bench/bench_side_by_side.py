"""Old and new side by side, alternating, in one window: the comparison issue 28 asks for.

Builds the tree of each older commit with `git worktree add --detach` into /tmp (nothing
of it is committed or kept in this repository), runs the same probes in this tree and in
each old one with this same Python (the shared virtualenv), pair by pair, alternating
which goes first, and prints one table (the worktrees it added are removed at the end,
unless --keep): each side's median, the ratio new/old and the
load average while the pairs ran. Wall-clock numbers move with the machine's load, so
the table also gives counts that do not: fsyncs per request (before its reply, and in
all, counted by wrapping `os.fsync` in the probe's process) and the request's p50 as a
ratio to errbot's `!echo` measured in the same run.

Probes (each a fresh process, importing that tree's own bench scripts):
- `latency`: `!access request` through errbot's TestBot (bench_latency's `run`, no
  history), its p50 and p50/echo p50, and the fsync counts;
- `revocation`: 1,000 of 10,000 grants ending in one second on 20 ms targets with 32
  workers (bench_revocation's `one_burst`): p99 lateness on one resource and spread over
  8 resources (a tree whose bench has only the one-resource layout shows "-");
- `sinks`: audit appends one by one with an http sink shipping them and without
  (bench_audit_sinks' receiver): the rate ratio, and fsyncs per append with and without.

    .venv/bin/python bench/bench_side_by_side.py [--old d2dc9a0] [--baseline REV]
        [--new REV] [--pairs 5] [--keep] [--probes latency,revocation,sinks] [--reps 150]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LATENCY_PROBE = r"""
import json, os, resource, sys, tempfile, threading, time
from pathlib import Path
tree, reps = Path(sys.argv[1]), int(sys.argv[2])
sys.path[:0] = [str(tree / "bench")]
os.chdir(tree)
count = [0]
lock = threading.Lock()
inner = os.fsync
def fsync(fd):
    with lock:
        count[0] += 1
    return inner(fd)
os.fsync = fsync
import bench_latency
from _common import Bot, median, quiet_logs, write_policy
quiet_logs()
result = bench_latency.run(0, reps)
# fsyncs: a few requests more, counted one by one (before the reply, and until the next)
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    write_policy(tmp / "policies", bench_latency.TARGET_URL)
    (tmp / "data").mkdir()
    bot = Bot(tmp / "data", tmp / "policies")
    bot.start()
    before_reply, in_all, cpu = [], [], []
    try:
        for number in range(25):
            begin = resource.getrusage(resource.RUSAGE_SELF)  # microseconds, not ticks
            backend = bot.testbot.bot
            backend.sender = backend.build_identifier(f"user{number}")
            start = count[0]
            bot.testbot.push_message("!access request prod-db 30m INC-42 bench")
            bot.testbot.pop_message(timeout=30)
            before_reply.append(count[0] - start)
            bot.testbot.pop_message(timeout=30)  # the card
            end = resource.getrusage(resource.RUSAGE_SELF)  # the request, its card, marks
            cpu.append(end.ru_utime + end.ru_stime - begin.ru_utime - begin.ru_stime)
            time.sleep(0.3)  # its delivery is marked
            in_all.append(count[0] - start)
    finally:
        bot.stop()
print(json.dumps({
    "request p50 ms": median(result["request"]) * 1000,
    "request p50 / echo p50": median(result["request"]) / median(result["echo"]),
    "fsyncs before reply": median(before_reply[5:]),
    "fsyncs per request": median(in_all[5:]),
    "CPU ms per request (to its card)": sum(cpu[5:]) / len(cpu[5:]) * 1000,
}))
"""

REVOCATION_PROBE = r"""
import inspect, json, os, sys
from pathlib import Path
tree = Path(sys.argv[1])
sys.path[:0] = [str(tree / "bench")]
os.chdir(tree)
import bench_revocation as b
from _common import SECRET, SECRET_ENV, SlowTarget, percentile, quiet_logs
quiet_logs()
os.environ[SECRET_ENV] = SECRET
out = {}
spreads = "spread" in inspect.signature(b.one_burst).parameters
targets = [SlowTarget(b.DELAY) for _ in range(4 if spreads else 1)]
try:
    if spreads:
        one = b.one_burst(targets, 32, spread=False)
        many = b.one_burst(targets, 32, spread=True)
        out["revoke p99 s, 1 resource"] = percentile(one["lateness"], 99)
        out["revoke p99 s, 8 resources"] = percentile(many["lateness"], 99)
    else:
        one = b.one_burst(targets[0], 32)
        out["revoke p99 s, 1 resource"] = percentile(one["lateness"], 99)
finally:
    for target in targets:
        target.close()
print(json.dumps(out))
"""

SINKS_PROBE = r"""
import json, os, sys, tempfile, time
from datetime import UTC, datetime
from pathlib import Path
tree, events = Path(sys.argv[1]), int(sys.argv[2])
sys.path[:0] = [str(tree / "bench")]
os.chdir(tree)
count = [0]
inner = os.fsync
def fsync(fd):
    count[0] += 1
    return inner(fd)
os.fsync = fsync
import bench_audit_sinks as b
from accessbot.audit import AuditLog
b.quiet_logs()
os.environ.setdefault(b.SINK_SECRET_ENV, "bench-sink-secret")
if __name__ == "__main__":
    receiver = b.Receiver()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            audit = AuditLog(data / "alone.jsonl", lambda: datetime.now(UTC), None)
            start, synced = time.perf_counter(), count[0]
            for n in range(events):
                audit.append("requested", actor="carol", request_id=f"r{n}", reason="bench")
            alone, alone_fsyncs = time.perf_counter() - start, count[0] - synced
            audit = AuditLog(data / "audit.jsonl", lambda: datetime.now(UTC), None)
            sinks, store = b.sinks_on(data, audit, receiver.url)
            sinks.start()
            start, synced = time.perf_counter(), count[0]
            for n in range(events):
                audit.append("requested", actor="carol", request_id=f"r{n}", reason="bench")
            appended = time.perf_counter() - start
            b.wait_for(events, receiver)
            sinks.stop()
            with_fsyncs = count[0] - synced
            store.close()
    finally:
        receiver.close()
    print(json.dumps({
        "appends with a sink / without (rate)": alone / appended,
        "fsyncs per append, no sink": alone_fsyncs / events,
        "fsyncs per append, with a sink": with_fsyncs / events,
    }))
"""

PROBES = {"latency": LATENCY_PROBE, "revocation": REVOCATION_PROBE, "sinks": SINKS_PROBE}


MADE: list[Path] = []  # worktrees this run added (removed at the end unless --keep)


def tree_of(rev: str) -> Path:
    """A detached worktree of `rev` in /tmp (made once, reused while it is there)."""
    sha = subprocess.check_output(
        ["git", "-C", str(ROOT), "rev-parse", "--short=10", f"{rev}^{{commit}}"], text=True
    ).strip()
    path = Path("/tmp") / f"accessbot-bench-{sha}"
    if not (path / "plugins" / "accessbot").is_dir():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), sha],
            check=True,
            capture_output=True,
        )
        MADE.append(path)
    return path


def remove_made() -> None:
    for path in MADE:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
            capture_output=True,
        )


def probe(tree: Path, name: str, reps: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "plugins"), str(tree)])}
    args = [sys.executable, "-c", PROBES[name], str(tree)]
    if name == "latency":
        args.append(str(reps))
    if name == "sinks":
        args.append(str(reps * 10))
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1800)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        print(f"   {tree.name} {name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return {}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="d2dc9a0")
    parser.add_argument("--baseline", default=None, help="a second old commit (e.g. main)")
    parser.add_argument("--new", default=None, help="a commit instead of this working tree")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--probes", default="latency,revocation,sinks")
    parser.add_argument("--reps", type=int, default=150)
    parser.add_argument("--keep", action="store_true", help="keep the /tmp worktrees")
    args = parser.parse_args()
    try:
        compare(args)
    finally:
        if not args.keep:
            remove_made()


def compare(args) -> None:
    sides = {"old": tree_of(args.old)}
    if args.baseline:
        sides["baseline"] = tree_of(args.baseline)
    sides["new"] = tree_of(args.new) if args.new else ROOT
    results: dict[str, dict[str, list[float]]] = {side: {} for side in sides}
    loads: list[float] = []
    for number in range(args.pairs):
        order = list(sides) if number % 2 == 0 else list(reversed(sides))
        for name in args.probes.split(","):
            for side in order:
                loads.append(os.getloadavg()[0])
                for measure, value in probe(sides[side], name, args.reps).items():
                    results[side].setdefault(measure, []).append(value)
        print(f"   pair {number + 1}/{args.pairs} done, load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"\n== side by side, {args.pairs} alternating pairs; old = {args.old}", end="")
    print(f", baseline = {args.baseline}" if args.baseline else "")
    measures = list(dict.fromkeys(m for side in results.values() for m in side))
    head = ["measure", *(f"{s} (median)" for s in sides), "new / old"]
    if args.baseline:
        head.append("new / baseline")
    head.append("load (mean)")
    rows = []
    for measure in measures:
        medians = {
            s: statistics.median(results[s][measure]) if results[s].get(measure) else None
            for s in sides
        }
        row = [measure, *(f"{v:.3g}" if v is not None else "-" for v in medians.values())]
        for other in ["old", "baseline"] if args.baseline else ["old"]:
            new, was = medians["new"], medians[other]
            row.append(f"{new / was:.2f}x" if new is not None and was else "-")
        row.append(f"{statistics.mean(loads):.1f}")
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    print("   " + "  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for row in rows:
        print("   " + "  ".join(c.rjust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    main()
