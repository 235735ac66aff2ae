"""alice sends bob a direct message through a roost node with paho-mqtt.

usage: dm.py HOST PORT ALICE_TOKEN BOB_TOKEN [--v5] [--ws] [--cafile CA]

With --v5 the message carries a user property, which bob must receive unchanged. bob gets
the stamped copy (the node's default delivery): what alice sent plus conv, seq, ts, from.
"""

import argparse
import json
import uuid

from roost_session import Session, check, run


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("alice_token")
    p.add_argument("bob_token")
    p.add_argument("--v5", action="store_true")
    p.add_argument("--ws", action="store_true", help="MQTT over WebSocket at /mqtt")
    p.add_argument("--cafile", help="TLS, trusting this CA")
    a = p.parse_args()
    transport = "websockets" if a.ws else "tcp"
    opts = dict(v5=a.v5, transport=transport, cafile=a.cafile)

    bob = Session(a.host, a.port, "bob", a.bob_token, **opts)
    check(bob.connected, f"bob refused: CONNACK {bob.connack}")
    code = bob.subscribe("im/dm/bob/+")
    check(code == 1, f"bob's subscription granted {code}, expected QoS 1")

    alice = Session(a.host, a.port, "alice", a.alice_token, **opts)
    check(alice.connected, f"alice refused: CONNACK {alice.connack}")
    # A fresh id per run: a node delivers a (sender, id) once, and some tests run this twice.
    body = {"id": f"py-{uuid.uuid4().hex[:12]}", "kind": "text", "body": "hello from paho"}
    props = [("trace", "t-42")] if a.v5 else []
    code = alice.publish("im/dm/bob/alice", json.dumps(body), props)
    check(code == 0, f"PUBACK reason {code:#x}")

    _, msg = bob.expect("message")
    check(msg.topic == "im/dm/bob/alice", f"bob got topic {msg.topic}")
    got = json.loads(msg.payload)
    # Stamped delivery: the message as sent, plus the server's fields (docs/protocol.md 4).
    sent = {k: got.get(k) for k in body}
    check(sent == body, f"bob got payload {got}")
    check(got.get("from") == "alice" and got.get("seq", 0) >= 1, f"bob got payload {got}")
    if a.v5:
        received = getattr(msg.properties, "UserProperty", None)
        check(received == [("trace", "t-42")], f"bob got user properties {received}")
    alice.close()
    bob.close()


run(main)
