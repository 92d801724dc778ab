#!/usr/bin/env python3
"""Demo target for the command strategy: records who holds what under data/grants/.

Reads the strategy's JSON on stdin ({"action": "grant"|"revoke"|"extend"|"list", ...}).
A grant or extend writes data/grants/<resource>/<user>.json; a revoke removes it
(revoking what is already gone is success); a list prints who holds the resource now
({"members": [...]}, for the standing-access sweep). Every change is appended to
data/grants.log.
Replace this with a script that calls your real CLI (vault, kubectl, aws, ...).
"""

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

root = Path(os.environ.get("ACCESS_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))
call = json.load(sys.stdin)
action, resource = call["action"], call["resource"]
if action == "list":
    if "/" in resource or resource.startswith("."):
        sys.exit(f"refusing a strange name: {resource!r}")
    held = sorted((root / "grants" / resource).glob("*.json"))
    members = []
    for path in held:
        grant = json.loads(path.read_text())
        members.append({"user": grant["user"], "user_email": grant.get("user_email")})
    print(json.dumps({"members": members}))
    sys.exit(0)
user = call["user"]
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
