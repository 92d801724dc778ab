"""A gate a test policy file waits at while it is imported, so a test can hold the bot in
the middle of its start-up (tests/test_startup.py)."""

import threading

opened = threading.Event()
