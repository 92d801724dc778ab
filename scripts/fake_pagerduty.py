#!/usr/bin/env python3
"""A local on-call stand-in for PagerDuty, to try break-glass without a PagerDuty account.

It answers the three calls the bot makes (through pdpyras), shaped as PagerDuty's REST API
answers them: `GET /users?query=` (who has this e-mail), `GET /oncalls` (who is on call
for a schedule, with their e-mails) and `GET /incidents` (open incidents assigned to
someone). Everyone named here is a PagerDuty user; `--on-call` people are on call at
level 1 for `--schedule`, `--incident` people are assigned an open (triggered) incident
of `--service`. The defaults are the ids of policies/break_glass.py.

    .venv/bin/python scripts/fake_pagerduty.py --on-call carol@example.com

It listens on 127.0.0.1 only, takes any API token, and prints the two settings that
point the bot at it. Standard library only; stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SCHEDULE = "PABC123"  # policies/break_glass.py's ON_CALL_SCHEDULE
SERVICE = "PDB0001"  # policies/break_glass.py's DATABASE_SERVICE
TOKEN = "local-stand-in"  # any token is taken; this one is printed for the bot


def people(on_call: list[str], incident: list[str], users: list[str]) -> list[dict]:
    """One PagerDuty user per e-mail named (ids P0000001, P0000002, ...)."""
    emails = list(dict.fromkeys(e.strip().lower() for e in [*on_call, *incident, *users]))
    return [
        {
            "id": f"P{n:07d}",
            "type": "user",
            "name": email.split("@")[0].title(),
            "summary": email.split("@")[0].title(),
            "email": email,
        }
        for n, email in enumerate(emails, start=1)
    ]


def ref(kind: str, ref_id: str) -> dict:
    return {"id": ref_id, "type": f"{kind}_reference", "summary": ref_id}


class Directory:
    """What the stand-in knows: the users, who is on call, who has an open incident."""

    def __init__(self, args):
        self.users = people(args.on_call, args.incident, args.user)
        by_email = {u["email"]: u for u in self.users}
        self.on_call = [by_email[e.strip().lower()] for e in args.on_call]
        self.incident = [by_email[e.strip().lower()] for e in args.incident]
        self.schedule, self.service = args.schedule, args.service

    def answer(self, path: str, params: dict[str, list[str]]) -> tuple[int, dict]:
        if path == "/users":
            query = (params.get("query") or [""])[0].lower()
            found = [u for u in self.users if query in u["email"] or query in u["name"].lower()]
            return 200, page("users", found, params)
        if path.startswith("/users/"):
            found = [u for u in self.users if u["id"] == path.rsplit("/", 1)[1]]
            return (200, {"user": found[0]}) if found else (404, not_found())
        if path == "/oncalls":
            return 200, page("oncalls", self.oncalls(params), params)
        if path == "/incidents":
            return 200, page("incidents", self.incidents(params), params)
        return 404, not_found()

    def oncalls(self, params: dict[str, list[str]]) -> list[dict]:
        schedules, user_ids = params.get("schedule_ids[]"), params.get("user_ids[]")
        if schedules and self.schedule not in schedules:
            return []
        full = "users" in params.get("include[]", [])
        return [
            {
                "escalation_policy": ref("escalation_policy", "PLOCAL1"),
                "escalation_level": 1,
                "schedule": ref("schedule", self.schedule),
                "user": dict(user) if full else ref("user", user["id"]),
                "start": None,
                "end": None,
            }
            for user in self.on_call
            if not user_ids or user["id"] in user_ids
        ]

    def incidents(self, params: dict[str, list[str]]) -> list[dict]:
        services, user_ids = params.get("service_ids[]"), params.get("user_ids[]")
        statuses = params.get("statuses[]")
        if (services and self.service not in services) or (
            statuses and "triggered" not in statuses
        ):
            return []
        return [
            {
                "id": f"QLOCAL{n}",
                "type": "incident",
                "title": "stand-in incident",
                "status": "triggered",
                "service": ref("service", self.service),
                "assignments": [{"assignee": ref("user", user["id"])}],
            }
            for n, user in enumerate(self.incident, start=1)
            if not user_ids or user["id"] in user_ids
        ]


def page(wrapper: str, items: list[dict], params: dict[str, list[str]]) -> dict:
    limit = int((params.get("limit") or ["25"])[0])
    offset = int((params.get("offset") or ["0"])[0])
    return {
        wrapper: items[offset : offset + limit],
        "limit": limit,
        "offset": offset,
        "more": offset + limit < len(items),
        "total": None,
    }


def not_found() -> dict:
    return {"error": {"message": "Not Found", "code": 2100}}


def handler(directory: Directory):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if not self.headers.get("Authorization", "").startswith("Token token="):
                return self.reply(401, {"error": {"message": "Unauthorized", "code": 2006}})
            url = urlsplit(self.path)
            self.reply(*directory.answer(url.path, parse_qs(url.query)))

        def reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):  # one short line a call, on stderr
            sys.stderr.write(f"stand-in PagerDuty: {self.command} {self.path}\n")

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8799, help="0: any free port (default 8799)")
    parser.add_argument("--on-call", action="append", default=[], metavar="EMAIL")
    parser.add_argument("--incident", action="append", default=[], metavar="EMAIL")
    parser.add_argument(
        "--user", action="append", default=[], metavar="EMAIL", help="known, not on call"
    )
    parser.add_argument("--schedule", default=SCHEDULE)
    parser.add_argument("--service", default=SERVICE)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(Directory(args)))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"ACCESS_PAGERDUTY_URL={url}", flush=True)
    print(f"ACCESS_PAGERDUTY_TOKEN={TOKEN}", flush=True)
    on_call = ", ".join(args.on_call) or "nobody"
    print(f"# on call for schedule {args.schedule}: {on_call}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
