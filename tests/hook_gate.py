"""A gate a test policy's hook waits at, so a test can hold a request while its policy is
being checked (tests/test_messages.py: the requester is answered before the hook ends)."""

import threading

opened = threading.Event()
