"""Stamped delivery with paho-mqtt (docs/protocol.md section 4, "Delivery"): bob and
alice's other device get alice's message once it is stored, as sent plus the server's
conv, seq, ts and from (equal to alice's ack); a retry is acked again, not delivered again.

usage: stamped.py HOST PORT ALICE_TOKEN BOB_TOKEN [--v5]
"""

import argparse
import json

from roost_session import Session, check, run


def chat(session, topic):
    """The next message on `topic`, as JSON (other messages before it are a failure)."""
    _, msg = session.expect("message")
    check(msg.topic == topic, f"got a message on {msg.topic}, expected {topic}")
    return json.loads(msg.payload)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("alice_token")
    p.add_argument("bob_token")
    p.add_argument("--v5", action="store_true")
    a = p.parse_args()

    bob = Session(a.host, a.port, "bob", a.bob_token, v5=a.v5)
    check(bob.subscribe("im/dm/bob/+") == 1, "bob's subscription")
    tablet = Session(a.host, a.port, "alice", a.alice_token, v5=a.v5, client_id="alice:tablet")
    check(tablet.subscribe("im/dm/+/alice") == 1, "alice's tablet's subscription")
    alice = Session(a.host, a.port, "alice", a.alice_token, v5=a.v5, client_id="alice:phone")
    check(alice.subscribe("im/sys/alice") == 1, "alice's notices")

    sent = {"id": "py-s1", "kind": "text", "body": "stamped", "ts": 123, "extra": {"n": [1, 2]}}
    check(alice.publish("im/dm/bob/alice", json.dumps(sent)) == 0, "PUBACK")
    ack = chat(alice, "im/sys/alice")
    check(ack["type"] == "ack" and ack["id"] == "py-s1", f"expected the ack, got {ack}")

    for who, session in [("bob", bob), ("alice's tablet", tablet)]:
        got = chat(session, "im/dm/bob/alice")
        for key in ["id", "kind", "body", "extra"]:
            check(got[key] == sent[key], f"{who}: {key} is {got.get(key)!r}, sent {sent[key]!r}")
        stamp = {k: got.get(k) for k in ["conv", "seq", "ts"]}
        check(stamp == {k: ack[k] for k in stamp}, f"{who}: stamp {stamp}, ack {ack}")
        check(got["from"] == "alice", f"{who}: from {got.get('from')!r}")
        check(got["ts"] != 123, f"{who}: ts is the client's, not the server's")

    # The retry: acked again as the stored message, and not delivered a second time (the
    # next thing bob and the tablet get is the next message).
    check(alice.publish("im/dm/bob/alice", json.dumps(sent)) == 0, "PUBACK of the retry")
    again = chat(alice, "im/sys/alice")
    check(again == ack, f"the retry's ack {again} differs from {ack}")
    check(alice.publish("im/dm/bob/alice", json.dumps(dict(sent, id="py-s2"))) == 0, "PUBACK")
    for who, session in [("bob", bob), ("alice's tablet", tablet)]:
        got = chat(session, "im/dm/bob/alice")
        check(got["id"] == "py-s2", f"{who} got {got['id']} again")
        check(got["seq"] == ack["seq"] + 1, f"{who}: seq {got['seq']} after {ack['seq']}")
    for s in (alice, tablet, bob):
        s.close()


run(main)
