"""dave chats through a roost node with paho-mqtt, then the node drains under him.

usage: drain.py HOST PORT DAVE_TOKEN NODE_PID COUNT [--v5]

dave sends COUNT direct messages to bob (each PUBACKed), sends the node SIGTERM, and must
then be disconnected by it: over MQTT 5 with DISCONNECT 0x8B (server shutting down), over
3.1.1 by the connection closing.
"""

import json
import os
import signal

from roost_session import Session, arguments, check, run


def main():
    p = arguments("token")
    p.add_argument("pid", type=int)
    p.add_argument("count", type=int)
    p.add_argument("--v5", action="store_true")
    a = p.parse_args()

    dave = Session(a.host, a.port, "dave", a.token, v5=a.v5)
    check(dave.connected, f"dave refused: CONNACK {dave.connack}")
    for i in range(a.count):
        body = {"id": f"dave-{i}", "kind": "text", "body": f"message {i}"}
        code = dave.publish("im/dm/bob/dave", json.dumps(body))
        check(code == 0, f"PUBACK reason {code:#x}")

    os.kill(a.pid, signal.SIGTERM)
    _, reason = dave.expect("disconnect")
    if a.v5:
        check(reason == 0x8B, f"DISCONNECT reason {reason:#x}, expected 0x8b")
    else:
        check(reason != 0, "3.1.1: the node should close the connection")
    dave.client.loop_stop()


run(main)
