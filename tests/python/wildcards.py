"""Root wildcards as a generic client uses them (docs/protocol.md, "Standard MQTT"): `#`,
`+/...` granted and delivering, retained messages through them, offline queueing through a
wildcard, unsubscribe and overlapping subscriptions; MQTT 3.1.1 and 5.

usage: wildcards.py HOST PORT PREFIX [CASE...]

CASE: root, ret (retained), oq (offline queueing), unsub, over (overlapping); all by default.

Anonymous clients (roost in open mode with an ACL rule allowing `#`, or any plain broker
such as Mosquitto, the reference). PREFIX has two levels (`test/unique`) and must be
unique per run on a shared broker: the wildcards also see other clients' traffic, which
is skipped; the retained messages the script sets are cleared again.
"""

import argparse
import queue

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from roost_session import WAIT, Failed, check, run


class Plain:
    """An anonymous connection whose messages under `prefix` queue up in arrival order."""

    def __init__(self, host, port, client_id, prefix, v5, persistent=False):
        self.prefix = prefix + "/"
        self.v5 = v5
        self.events = queue.Queue()
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else not persistent,
            reconnect_on_failure=False,
        )
        c.on_connect = lambda _c, _u, flags, rc, props: self.events.put(
            ("connack", rc.value, flags.session_present)
        )
        c.on_subscribe = lambda _c, _u, mid, rcs, props: self.events.put(
            ("suback", [r.value for r in rcs])
        )
        c.on_unsubscribe = lambda _c, _u, mid, rcs, props: self.events.put(("unsuback",))
        c.on_message = self.on_message
        if v5:
            props = Properties(PacketTypes.CONNECT)
            if persistent:
                props.SessionExpiryInterval = 300
            c.connect(host, port, keepalive=30, clean_start=not persistent, properties=props)
        else:
            c.connect(host, port, keepalive=30)
        c.loop_start()
        self.client = c
        _, code, self.session_present = self.expect("connack")
        check(code == 0, f"{client_id}: CONNACK {code:#x}")

    def on_message(self, _c, _u, msg):
        if msg.topic.startswith(self.prefix):
            self.events.put(("message", msg))

    def expect(self, kind):
        while True:
            try:
                event = self.events.get(timeout=WAIT)
            except queue.Empty:
                raise Failed(f"no {kind} within {WAIT}s")
            if event[0] == kind:
                return event
            if kind != "message" and event[0] == "message":
                raise Failed(f"message on {event[1].topic} while waiting for {kind}")

    def subscribe(self, *filters):
        """Subscribes `(filter, qos)` pairs; returns the granted codes."""
        self.client.subscribe(list(filters))
        return self.expect("suback")[1]

    def unsubscribe(self, topic):
        self.client.unsubscribe(topic)
        self.expect("unsuback")

    def publish(self, topic, payload, qos=1, retain=False):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=WAIT)
        check(info.is_published(), f"publish to {topic} not sent within {WAIT}s")

    def next(self):
        return self.expect("message")[1]

    def until(self, marker):
        """Messages before the one on `marker`, in arrival order."""
        got = []
        while True:
            m = self.next()
            if m.topic == marker:
                return got
            got.append(m)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def granted(codes, expected):
    check(codes == expected, f"SUBACK {codes}, expected {expected}")


def topics(messages):
    return [m.topic for m in messages]


def root_wildcards(a, t, v5, tag):
    sub = Plain(a.host, a.port, f"{tag}-root", t, v5)
    granted(sub.subscribe(("#", 1)), [1])
    deep = Plain(a.host, a.port, f"{tag}-deep", t, v5)
    # `t` is two levels: `+/+/+` matches `{t}/x`, `+/#` everything under the prefix.
    granted(deep.subscribe(("+/+/+", 1)), [1])
    pub = Plain(a.host, a.port, f"{tag}-pub", t, v5)
    pub.publish(f"{t}/a/b", "deep")
    pub.publish(f"{t}/a", "one")
    pub.publish(f"{t}/m", "marker")
    got = sub.until(f"{t}/m")
    check(topics(got) == [f"{t}/a/b", f"{t}/a"], f"`#` got {topics(got)}")
    got = deep.until(f"{t}/m")
    check(topics(got) == [f"{t}/a"], f"`+/+/+` got {topics(got)}")
    for c in (sub, deep, pub):
        c.close()


def retained(a, t, v5, tag):
    pub = Plain(a.host, a.port, f"{tag}-rpub", t, v5)
    pub.publish(f"{t}/r1", "kept-1", retain=True)
    pub.publish(f"{t}/r2/x", "kept-2", retain=True)
    try:
        sub = Plain(a.host, a.port, f"{tag}-rsub", t, v5)
        granted(sub.subscribe(("#", 1)), [1])
        seen = {}
        while len(seen) < 2:
            m = sub.next()
            check(m.retain, f"{m.topic}: retained message without the retain flag")
            seen[m.topic] = m.payload
        check(
            seen == {f"{t}/r1": b"kept-1", f"{t}/r2/x": b"kept-2"},
            f"retained through `#`: {seen}",
        )
        two = Plain(a.host, a.port, f"{tag}-rsub2", t, v5)
        granted(two.subscribe(("+/+/+", 1)), [1])
        m = two.next()
        check((m.topic, m.retain) == (f"{t}/r1", True), f"`+/+/+` got {m.topic}")
        pub.publish(f"{t}/m", "marker")
        got = two.until(f"{t}/m")
        check(got == [], f"`+/+/+` also got {topics(got)}")
        sub.close()
        two.close()
    finally:
        pub.publish(f"{t}/r1", "", retain=True)
        pub.publish(f"{t}/r2/x", "", retain=True)
        pub.close()


def offline_queueing(a, t, v5, tag):
    cid = f"{tag}-away"
    away = Plain(a.host, a.port, cid, t, v5, persistent=True)
    granted(away.subscribe(("+/+/oq/+", 1)), [1])
    away.close()
    pub = Plain(a.host, a.port, f"{tag}-oqpub", t, v5)
    for n in range(3):
        pub.publish(f"{t}/oq/{n}", f"queued-{n}")
    back = Plain(a.host, a.port, cid, t, v5, persistent=True)
    check(back.session_present, "session not present on resume")
    got = [(m.topic, m.payload) for m in (back.next(), back.next(), back.next())]
    want = [(f"{t}/oq/{n}", f"queued-{n}".encode()) for n in range(3)]
    check(got == want, f"queued through `+/+/oq/+`: {got}")
    back.close()
    # End the session.
    Plain(a.host, a.port, cid, t, v5).close()
    pub.close()


def unsubscribe(a, t, v5, tag):
    sub = Plain(a.host, a.port, f"{tag}-unsub", t, v5)
    granted(sub.subscribe(("#", 1), (f"{t}/m", 1)), [1, 1])
    pub = Plain(a.host, a.port, f"{tag}-unpub", t, v5)
    pub.publish(f"{t}/u", "before")
    check(sub.next().topic == f"{t}/u", "nothing through `#` before unsubscribing")
    sub.unsubscribe("#")
    pub.publish(f"{t}/u", "after")
    pub.publish(f"{t}/m", "marker")
    got = sub.until(f"{t}/m")
    check(got == [], f"after UNSUBSCRIBE `#`: {topics(got)}")
    pub.publish(f"{t}/m", "marker again")
    got = sub.until(f"{t}/m")
    check(got == [], f"after UNSUBSCRIBE `#`: {topics(got)}")
    sub.close()
    pub.close()


def overlapping(a, t, v5, tag):
    sub = Plain(a.host, a.port, f"{tag}-over", t, v5)
    granted(sub.subscribe(("+/+/ov/#", 2), ("#", 1)), [2, 1])
    pub = Plain(a.host, a.port, f"{tag}-ovpub", t, v5)
    pub.publish(f"{t}/ov/x", "both", qos=2)
    # MQTT: at the maximum QoS of the matching subscriptions, maybe a copy per subscription.
    copies = []
    while 2 not in copies:
        m = sub.next()
        check(m.topic == f"{t}/ov/x", f"unexpected {m.topic}")
        copies.append(m.qos)
    check(len(copies) <= 2, f"copies at QoS {copies}")
    sub.close()
    pub.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("prefix")
    p.add_argument("cases", nargs="*")
    a = p.parse_args()
    # Client ids: roost's anonymous ones are ids of at most 59 characters.
    unique = a.prefix.rsplit("/", 1)[-1][-16:]
    cases = dict(
        root=root_wildcards,
        ret=retained,
        oq=offline_queueing,
        unsub=unsubscribe,
        over=overlapping,
    )
    for v5 in (False, True):
        version = "v5" if v5 else "v3"
        for short, case in cases.items():
            if a.cases and short not in a.cases:
                continue
            t = f"{a.prefix}-{version}-{short}"
            try:
                case(a, t, v5, f"w{unique}-{version}-{short}")
            except Failed as e:
                raise Failed(f"{case.__name__} ({'v5' if v5 else 'v3.1.1'}): {e}")


if __name__ == "__main__":
    run(main)
