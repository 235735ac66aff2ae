"""A client id is cluster-wide (docs/cluster.md, "Takeover"): paho-mqtt connected to node
A as alice is disconnected when alice connects on node B (MQTT 5: reason 0x8E, session
taken over; 3.1.1: the connection closes), and the connection on B stays usable.

usage: takeover.py HOST PORT_A PORT_B ALICE_TOKEN [--v5]
"""

from roost_session import Session, arguments, check, run

SESSION_TAKEN_OVER = 0x8E


def main():
    p = arguments("port_b", "alice_token")
    p.add_argument("--v5", action="store_true")
    a = p.parse_args()

    old = Session(a.host, a.port, "alice", a.alice_token, v5=a.v5)
    check(old.connected, f"alice refused on A: CONNACK {old.connack}")
    check(old.subscribe("im/dm/alice/+") == 1, "im/dm/alice/+ refused on A")

    new = Session(a.host, int(a.port_b), "alice", a.alice_token, v5=a.v5)
    check(new.connected, f"alice refused on B: CONNACK {new.connack}")

    _, code = old.expect("disconnect")
    if a.v5:
        check(code == SESSION_TAKEN_OVER, f"old connection: DISCONNECT {code:#x}, expected 0x8e")
    # The new connection works: a subscription is granted and a publish acknowledged.
    check(new.subscribe("im/dm/alice/+") == 1, "im/dm/alice/+ refused on B")
    check(new.publish("im/presence/alice", '{"status":"away"}') == 0, "publish refused on B")
    new.close()
    old.client.loop_stop()


run(main)
