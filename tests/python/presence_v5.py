"""MQTT 5: a user's own presence status is validated (docs/protocol.md section 3).

usage: presence_v5.py HOST PORT ALICE_TOKEN

A status outside the documented set gets PUBACK 0x99 and an `invalid_payload` notice on
im/sys/alice; a documented one is accepted and delivered to a reader of the topic.
"""

import json

from roost_session import Session, arguments, check, run

PAYLOAD_FORMAT_INVALID = 0x99


def main():
    a = arguments("alice_token").parse_args()

    alice = Session(a.host, a.port, "alice", a.alice_token, v5=True)
    check(alice.connected, f"alice refused: CONNACK {alice.connack}")
    check(alice.subscribe("im/sys/alice") == 1, "im/sys/alice refused")

    code = alice.publish("im/presence/alice", json.dumps({"status": "sleeping"}))
    check(code == PAYLOAD_FORMAT_INVALID, f"PUBACK {code:#x}, expected 0x99")
    _, msg = alice.expect("message")
    check(msg.topic == "im/sys/alice", f"message on {msg.topic}")
    notice = json.loads(msg.payload)
    check(notice.get("code") == "invalid_payload", f"notice {notice}")

    check(alice.subscribe("im/presence/alice") == 1, "im/presence/alice refused")
    # The node's retained "online" first.
    _, msg = alice.expect("message")
    check(json.loads(msg.payload).get("status") == "online", f"{msg.payload!r}")
    code = alice.publish("im/presence/alice", json.dumps({"status": "away", "text": "lunch"}))
    check(code == 0, f"PUBACK {code:#x}")
    _, msg = alice.expect("message")
    status = json.loads(msg.payload)
    check(msg.topic == "im/presence/alice" and status.get("status") == "away", f"{status}")
    alice.close()


run(main)
