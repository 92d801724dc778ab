#!/usr/bin/env python3
"""Demo target for the command strategy: records who holds what under data/grants/.

Reads the strategy's JSON on stdin ({"action": "grant"|"revoke"|"extend", ...}).
A grant or extend writes data/grants/<resource>/<user>.json; a revoke removes it
(revoking what is already gone is success). Every call is appended to data/grants.log.
Replace this with a script that calls your real CLI (vault, kubectl, aws, ...).
"""

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

root = Path(os.environ.get("ACCESS_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))
call = json.load(sys.stdin)
action, resource, user = call["action"], call["resource"], call["user"]
if "/" in resource or "/" in user or resource.startswith(".") or user.startswith("."):
    sys.exit(f"refusing a strange name: {resource!r} / {user!r}")
holding = root / "grants" / resource / f"{user}.json"
if action in ("grant", "extend"):
    holding.parent.mkdir(parents=True, exist_ok=True)
    holding.write_text(json.dumps(call, indent=2) + "\n")
elif action == "revoke":
    holding.unlink(missing_ok=True)
else:
    sys.exit(f"unknown action {action!r}")
with open(root / "grants.log", "a") as log:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    log.write(f"{now} {action} {resource} {user} until {call.get('expires_at')}\n")
