"""MQTT 5: a publish the ACL denies gets PUBACK 0x87 and an `error` notice on im/sys/{me}.

usage: denied_v5.py HOST PORT ALICE_TOKEN

alice publishes as bob (im/dm/carol/bob): the sender segment is not hers.
"""

import json

from roost_session import Session, arguments, check, run

NOT_AUTHORIZED = 0x87


def main():
    a = arguments("alice_token").parse_args()

    alice = Session(a.host, a.port, "alice", a.alice_token, v5=True)
    check(alice.connected, f"alice refused: CONNACK {alice.connack}")
    code = alice.subscribe("im/sys/alice")
    check(code == 1, f"im/sys/alice granted {code}, expected QoS 1")

    body = {"id": "spoof-1", "kind": "text", "body": "I am bob"}
    code = alice.publish("im/dm/carol/bob", json.dumps(body))
    check(code == NOT_AUTHORIZED, f"PUBACK reason {code:#x}, expected 0x87")

    _, msg = alice.expect("message")
    check(msg.topic == "im/sys/alice", f"notice on {msg.topic}")
    notice = json.loads(msg.payload)
    check(notice.get("type") == "error", f"notice {notice}")
    check(notice.get("code") == "forbidden", f"notice {notice}")
    check(notice.get("id") == "spoof-1", f"notice {notice}")
    alice.close()


run(main)
