"""Syslog over UDP within what receivers must accept (issue 29 item 20): an escalation
line with 120 approvers made a ~2,780-octet datagram, and RFC 5424 receivers need only
take 2,048. A longer line is split into marked parts of at most 2,048 octets each, and
`audit verify --against` joins them again from a syslog server's file."""

from accessbot.audit_copy import read_copy
from tests.builders import Deployment
from tests.conftest import FakeClock, accessbot
from tests.fake_sinks import SyslogListener
from tests.helpers import eventually

APPROVERS = [f"@approver-number-{n:03d}" for n in range(120)]


def escalation(bot) -> None:
    bot.audit.append(
        "escalated", actor="scheduler", request_id="r00099", approvers=APPROVERS, note="é" * 50
    )


def test_a_long_line_goes_as_marked_parts_each_within_2048_octets(tmp_path):
    listener = SyslogListener("udp")
    bot = Deployment(tmp_path, FakeClock(), {"type": "syslog", "address": listener.address})
    try:
        bot.events(1)
        escalation(bot)
        long_line = bot.local_lines()[-1]
        assert len(long_line) > 2048

        assert bot.ship() == 2
        eventually(lambda: len(listener.messages) >= 3)

        assert all(len(m) <= 2048 for m in listener.messages), [len(m) for m in listener.messages]
        parts = listener.messages[1:]
        assert b" - part 1/2 of seq 2: {" in parts[0]
        assert b" - part 2/2 of seq 2: " in parts[1]
        joined = b"".join(m.split(b" of seq 2: ", 1)[1] for m in parts)
        assert joined == long_line
        assert b" - {" in listener.messages[0]  # a short line goes whole, unmarked
    finally:
        bot.close()
        listener.close()


def test_verify_against_a_syslog_file_joins_the_parts_again(tmp_path):
    listener = SyslogListener("udp")
    bot = Deployment(tmp_path, FakeClock(), {"type": "syslog", "address": listener.address})
    try:
        bot.events(2)
        escalation(bot)
        bot.events(1)
        bot.ship()
        eventually(lambda: len(listener.messages) == 5)
        copy = tmp_path / "messages.log"  # as a syslog server writes them, one a line
        copy.write_bytes(b"".join(m + b"\n" for m in listener.messages))

        code, out, err = accessbot(
            "audit", "verify", str(bot.path), "--against", str(copy), cwd=tmp_path
        )
        assert code == 0, out + err
    finally:
        bot.close()
        listener.close()


def test_a_missing_part_is_named_not_taken_for_tampering():
    events, skipped = read_copy([b'<109>1 - h accessbot 1 escalated - part 1/2 of seq 7: {"seq"'])

    assert events == []
    assert skipped == [
        "note copy line 1: part 1/2 of event 7 only (the rest never arrived); skipped"
    ]
