#!/usr/bin/env python3
"""Is the bot well? `GET /health` where ACCESS_WEBSERVER says the bot listens (default
127.0.0.1:3141; a host of 0.0.0.0 is asked on 127.0.0.1): exit 0 on 200, else 1, with
/health's reason on stdout. The Dockerfile's HEALTHCHECK, the compose healthcheck and
the systemd unit's note run it; `make deploy-check` runs it against a started bot.

    python deploy/healthcheck.py
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins"))
from accessbot.settings import SettingsError, listener  # noqa: E402

DEFAULT = ("127.0.0.1", 3141)


def main() -> int:
    try:
        where = listener()
    except SettingsError as exc:
        print(exc)
        return 1
    if where == "off":
        print("ACCESS_WEBSERVER=off: no /health to ask")
        return 1
    host, port = where or DEFAULT
    host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            print(f"{url}: {answer.status} {answer.read(2000).decode(errors='replace')}")
            return 0
    except urllib.error.HTTPError as exc:
        print(f"{url}: {exc.code} {exc.read(2000).decode(errors='replace')}")
    except OSError as exc:
        print(f"{url}: no answer ({exc})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
