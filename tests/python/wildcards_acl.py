"""Root wildcards never widen what a user reads (docs/protocol.md section 3): through `#`,
`+/+/+/+`, `im/#` and `$share/{group}/#`, MQTT 3.1.1 and 5, live and retained, a user gets
what they may read and nothing else: no other user's DMs, signals or `im/sys/...`, no group
they are not in, no requests, nothing a config rule keeps from them.

usage: wildcards_acl.py HOST PORT ALICE_TOKEN BOB_TOKEN CAROL_TOKEN

The node runs in open mode with the rules of tests/third_party.rs
`paho_root_wildcards_never_leak`: `devices/{user}/#` per user, the rest of `devices/`
denied, `private/#` not readable, everything else (outside `im/`) allowed. alice and bob
are in group `team`, carol is not.
"""

import argparse
import json
import queue

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from roost_session import WAIT, Failed, check, run

MARKER = "public/m/a/b"


class Conn:
    def __init__(
        self, host, port, client_id, user, token, v5, receive_maximum=20, persistent=False
    ):
        self.name = f"{client_id} ({'v5' if v5 else 'v3.1.1'})"
        self.events = queue.Queue()
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        if token:
            c.username_pw_set(user, token)
        c.on_connect = lambda _c, _u, flags, rc, props: self.events.put(("connack", rc.value))
        c.on_subscribe = lambda _c, _u, mid, rcs, props: self.events.put(
            ("suback", [r.value for r in rcs])
        )
        c.on_publish = lambda _c, _u, mid, rc, props: self.events.put(("puback", mid))
        c.on_message = lambda _c, _u, msg: self.events.put(("message", msg))
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.ReceiveMaximum = receive_maximum
            if persistent:
                props.SessionExpiryInterval = 300
            c.connect(host, port, keepalive=30, clean_start=not persistent, properties=props)
        else:
            c.connect(host, port, keepalive=30)
        c.loop_start()
        self.client = c
        code = self.expect("connack")[1]
        check(code == 0, f"{self.name}: CONNACK {code:#x}")

    def expect(self, kind):
        while True:
            try:
                event = self.events.get(timeout=WAIT)
            except queue.Empty:
                raise Failed(f"{self.name}: no {kind} within {WAIT}s")
            if event[0] == kind:
                return event

    def subscribe(self, *filters):
        self.client.subscribe([(f, 1) for f in filters])
        return self.expect("suback")[1]

    def publish(self, topic, payload, retain=False):
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        while self.expect("puback")[1] != info.mid:
            pass

    def until_marker(self):
        got = []
        while True:
            m = self.expect("message")[1]
            if m.topic == MARKER:
                return got
            got.append((m.topic, m.retain))

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def chat(n):
    return json.dumps({"id": f"w-{n}", "kind": "text", "body": "hi"})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("alice")
    p.add_argument("bob")
    p.add_argument("carol")
    a = p.parse_args()
    host, port = a.host, a.port

    alice = Conn(host, port, "alice", "alice", a.alice, False)
    bob = Conn(host, port, "bob", "bob", a.bob, True)
    check(bob.subscribe("im/sys/bob") == [1], "bob's notices")
    carol_pub = Conn(host, port, "carol:pub", "carol", a.carol, False)

    # Retained before anyone subscribes: two carol may not read, two she may.
    alice.publish("private/r/a/b", "secret", retain=True)
    alice.publish("devices/alice/r/b", "alice's", retain=True)
    alice.publish("public/r/a/b", "for all", retain=True)
    carol_pub.publish("devices/carol/r/b", "carol's", retain=True)

    subscribers = []
    for v5 in (False, True):
        v = "5" if v5 else "3"
        refused = 0x87 if v5 else 0x80
        for n, (filt, codes) in enumerate(
            [
                ("#", [1]),
                ("+/+/+/+", [1]),
                ("im/#", [refused, 1]),
                (f"$share/g{v}/#", [1]),
            ]
        ):
            c = Conn(host, port, f"carol:w{v}{n}", "carol", a.carol, v5)
            filters = [filt, MARKER] if filt == "im/#" else [filt]
            got = c.subscribe(*filters)
            check(got == codes, f"{c.name}: SUBACK {got} for {filters}, expected {codes}")
            subscribers.append((c, filt, "carol", "im/sys/carol"))
        anon = Conn(host, port, f"guest{v}", None, None, v5)
        check(anon.subscribe("#") == [1], f"{anon.name}: `#` refused")
        subscribers.append((anon, "#", "anon", f"im/sys/anon-guest{v}"))
    # Dropped QoS 1 deliveries (7 below) must not use up a window of 2: the node acks them.
    # (Not checked for retained messages: with a window smaller than the retained messages
    # a SUBSCRIBE matches, the router loses the rest, a known gap.)
    narrow = Conn(host, port, "carol:narrow", "carol", a.carol, True, receive_maximum=2)
    check(narrow.subscribe("#") == [1], f"{narrow.name}: `#` refused")
    # A persistent session with `#`, away while everything below is published: on resume
    # its queue is checked like live deliveries.
    away = Conn(host, port, "carol:away", "carol", a.carol, True, persistent=True)
    check(away.subscribe("#") == [1], f"{away.name}: `#` refused")
    away.close()

    # Live, not readable by carol: others' DMs and signals, a group she is not in, bob's
    # notice and request, and what the config rules keep from her.
    alice.publish("im/dm/bob/alice", chat(1))
    alice.publish("im/sig/dm/bob/alice", chat(2))
    alice.publish("im/grp/team/alice", chat(3))
    alice.publish("private/x/a/b", "secret")
    alice.publish("devices/alice/x/b", "alice's")
    bob.publish("im/req/bob", json.dumps({"id": "r1", "method": "nonsense"}))
    bob.publish("im/sys/bob", chat(4))  # refused: the server answers on im/sys/bob
    notice = bob.expect("message")[1]
    check(notice.topic == "im/sys/bob", f"bob got {notice.topic}, expected his notice")
    # Readable.
    alice.publish("im/dm/carol/alice", chat(5))
    alice.publish("public/x/a/b", "for all")
    carol_pub.publish("devices/carol/x/b", "carol's")
    alice.publish(MARKER, "marker")

    got = {
        t
        for t, retained in narrow.until_marker()
        if not retained and not t.startswith("im/presence/")
    }
    want = {"im/dm/carol/alice", "public/x/a/b", "devices/carol/x/b"}
    check(got == want, f"{narrow.name}: live {sorted(got)}, expected {sorted(want)}")
    narrow.close()

    back = Conn(host, port, "carol:away", "carol", a.carol, True, persistent=True)
    got = {t for t, _ in back.until_marker() if not t.startswith("im/presence/")}
    check(got == want, f"{back.name} resumed: {sorted(got)}, expected {sorted(want)}")
    back.close()
    Conn(host, port, "carol:away", "carol", a.carol, True).close()  # ends the session

    readable = {
        "carol": {"im/dm/carol/alice", "public/x/a/b", "devices/carol/x/b"},
        "anon": {"public/x/a/b"},
    }
    retained = {
        "carol": {"public/r/a/b", "devices/carol/r/b"},
        "anon": {"public/r/a/b"},
    }
    for c, filt, who, own_sys in subscribers:
        got = c.until_marker()
        topics = {t for t, _ in got}
        allowed = readable[who] | retained[who]
        # Everyone's presence, and one's own notices (carol's refused `im/#`), are readable.
        allowed |= {own_sys}
        leaked = {t for t in topics if t not in allowed and not t.startswith("im/presence/")}
        check(not leaked, f"{c.name} through {filt}: got {sorted(leaked)}")
        if filt == "im/#":
            check(not topics, f"{c.name}: refused `im/#` delivered {sorted(topics)}")
            continue
        missing = readable[who] - topics
        check(not missing, f"{c.name} through {filt}: missing {sorted(missing)}")
        if not filt.startswith("$share/"):
            kept = {t for t, r in got if r}
            check(
                retained[who] <= kept,
                f"{c.name} through {filt}: retained {sorted(kept)}, expected {sorted(retained[who])}",
            )
        c.close()

    for t in ("private/r/a/b", "devices/alice/r/b", "public/r/a/b"):
        alice.publish(t, "", retain=True)
    carol_pub.publish("devices/carol/r/b", "", retain=True)
    for c in (alice, bob, carol_pub):
        c.close()


run(main)
