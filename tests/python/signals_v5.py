"""MQTT 5: signals on im/sig/... (docs/protocol.md section 3, "Signals").

usage: signals_v5.py HOST PORT ALICE_TOKEN BOB_TOKEN

Alice's typing reaches bob byte for byte; a signal that is not one of the documented
shapes gets PUBACK 0x99 and an `invalid_payload` notice on im/sys/alice, and bob never
gets it (the next signal he sees is the good one sent after it).
"""

import json

from roost_session import Session, arguments, check, run

PAYLOAD_FORMAT_INVALID = 0x99
TOPIC = "im/sig/dm/bob/alice"


def main():
    a = arguments("alice_token", "bob_token").parse_args()

    bob = Session(a.host, a.port, "bob", a.bob_token, v5=True)
    check(bob.connected, f"bob refused: CONNACK {bob.connack}")
    check(bob.subscribe("im/sig/dm/bob/+") == 1, "im/sig/dm/bob/+ refused")
    alice = Session(a.host, a.port, "alice", a.alice_token, v5=True)
    check(alice.connected, f"alice refused: CONNACK {alice.connack}")
    check(alice.subscribe("im/sys/alice") == 1, "im/sys/alice refused")

    start = json.dumps({"type": "typing", "state": "start"})
    check(alice.publish(TOPIC, start) == 0, "typing start refused")
    _, msg = bob.expect("message")
    check(msg.topic == TOPIC and msg.payload.decode() == start, f"{msg.topic} {msg.payload!r}")

    bad = json.dumps({"type": "typing", "state": "start", "who": "mallory"})
    code = alice.publish(TOPIC, bad)
    check(code == PAYLOAD_FORMAT_INVALID, f"PUBACK {code:#x}, expected 0x99")
    _, msg = alice.expect("message")
    check(msg.topic == "im/sys/alice", f"message on {msg.topic}")
    notice = json.loads(msg.payload)
    check(notice.get("code") == "invalid_payload", f"notice {notice}")

    stop = json.dumps({"type": "typing", "state": "stop"})
    check(alice.publish(TOPIC, stop) == 0, "typing stop refused")
    _, msg = bob.expect("message")
    check(msg.payload.decode() == stop, f"bob got {msg.payload!r} before the stop")
    alice.close()
    bob.close()


run(main)
