"""The gate a test policy's hook waits at while a test holds a request in its policy
check: `opened`, tests/hook_gates.py's gate "slow check" under the name older tests use."""

from tests.hook_gates import gate

opened = gate("slow check")
