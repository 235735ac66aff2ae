"""MQTT 3.1.1: presence visibility (docs/protocol.md section 3, "Presence").

usage: presence_visibility.py HOST PORT ALICE_TOKEN --sees USER,USER...

Alice subscribes im/presence/+ and publishes a status of her own as a marker; the presence
she got before it (the retained statuses the node let her see) must be exactly the users
listed, her own included.
"""

import json

from roost_session import Session, arguments, check, run


def main():
    p = arguments("alice_token")
    p.add_argument("--sees", required=True)
    a = p.parse_args()
    want = set(a.sees.split(","))

    alice = Session(a.host, a.port, "alice", a.alice_token)
    check(alice.connected, f"alice refused: CONNACK {alice.connack}")
    check(alice.subscribe("im/presence/+") == 1, "im/presence/+ refused")
    marker = json.dumps({"status": "away", "text": "marker"})
    check(alice.publish("im/presence/alice", marker) == 0, "marker refused")
    seen = set()
    while True:
        _, msg = alice.expect("message")
        user = msg.topic.removeprefix("im/presence/")
        if user == "alice" and json.loads(msg.payload).get("text") == "marker":
            break
        seen.add(user)
    check(seen == want, f"saw {sorted(seen)}, expected {sorted(want)}")
    alice.close()


run(main)
