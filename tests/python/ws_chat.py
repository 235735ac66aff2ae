"""Two users chat over MQTT over WebSocket through a load balancer (tests/lb_nginx.rs).

usage: ws_chat.py HOST PORT BOB_TOKEN ALICE_TOKEN

wsbob signs in and subscribes, prints `subscribed` and waits for a line on stdin: the test
answers once the cluster knows of his subscription. Then wsalice signs in, sends him a
direct message and waits for its `ack`; wsbob must receive the stamped copy.
"""

import json
import sys

from roost_session import Session, arguments, check, run


def main():
    p = arguments("bob_token", "alice_token")
    a = p.parse_args()
    opts = dict(v5=True, transport="websockets")

    bob = Session(a.host, a.port, "wsbob", a.bob_token, **opts)
    check(bob.connected, f"wsbob refused: CONNACK {bob.connack}")
    code = bob.subscribe("im/dm/wsbob/+")
    check(code == 1, f"wsbob's subscription granted {code}, expected QoS 1")
    print("subscribed", flush=True)
    check(sys.stdin.readline().strip() == "go", "the test did not say go")

    alice = Session(a.host, a.port, "wsalice", a.alice_token, **opts)
    check(alice.connected, f"wsalice refused: CONNACK {alice.connack}")
    check(alice.subscribe("im/sys/wsalice") == 1, "wsalice's notices refused")
    body = {"id": "ws-1", "kind": "text", "body": "over WebSocket"}
    code = alice.publish("im/dm/wsbob/wsalice", json.dumps(body))
    check(code == 0, f"PUBACK reason {code:#x}")

    _, msg = bob.expect("message")
    check(msg.topic == "im/dm/wsbob/wsalice", f"wsbob got topic {msg.topic}")
    got = json.loads(msg.payload)
    check(got.get("body") == body["body"] and got.get("from") == "wsalice", f"wsbob got {got}")
    _, notice = alice.expect("message")
    ack = json.loads(notice.payload)
    check(ack.get("type") == "ack" and ack.get("id") == "ws-1", f"wsalice got {ack}")
    alice.close()
    bob.close()


run(main)
