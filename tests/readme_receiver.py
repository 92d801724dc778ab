"""A webhook receiver for accessbot: signed, fresh, idempotent on the signed key, no grant
after its revoke, and it ends access at expires_at."""

import hashlib
import hmac
import json
import os
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("PROD_DB_HOOK_SECRET", "").encode()
clock = time.time  # unix seconds
answers = {}  # the signed idempotency_key -> the answer given: a retry or replay changes nothing
revoked = set()  # grant_ids revoked: a grant or extend for one of them comes too late
grants = {}  # (resource, user) -> unix time the access ends, whether or not a revoke comes


def holds(resource, user):
    return grants.get((resource, user), 0) > clock()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        stamp = self.headers.get("X-Access-Timestamp", "")
        mac = hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(self.headers.get("X-Access-Signature", ""), "sha256=" + mac):
            return self.reply(401, {"error": "bad signature"})
        if not stamp.isdigit() or abs(clock() - int(stamp)) > 300:
            return self.reply(401, {"error": "older than 5 minutes"})
        call = json.loads(body)
        key = call.get("idempotency_key")  # signed, unlike the Idempotency-Key header
        if not key or (call["action"] == "list" and key in answers):
            return self.reply(409, {"error": "replayed or without idempotency_key"})
        if call["action"] == "list":  # who holds the resource now: each signed list once
            answers[key] = None
            held = [u for (r, u) in grants if r == call["resource"] and holds(r, u)]
            return self.reply(200, {"members": [{"user": u, "account": u} for u in held]})
        if key not in answers:
            if call["action"] != "revoke" and call["grant_id"] in revoked:
                return self.reply(409, {"error": "grant_id already revoked"})
            who = (call["resource"], call["user"])
            if call["action"] == "revoke":  # expires_at is null in a standing removal: unused
                grants.pop(who, None)
                revoked.add(call["grant_id"])
            else:  # grant or extend: until expires_at, no longer
                ends = datetime.fromisoformat(call["expires_at"]).timestamp()
                if ends > clock():
                    grants[who] = ends
            answers[key] = {"account": call["account"] or call["user"]}  # your stable user id
        self.reply(200, answers[key])

    def reply(self, status, answer):
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", 8080), Receiver).serve_forever()
