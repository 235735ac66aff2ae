"""What a generic MQTT 5 client gets (docs/protocol.md, "Standard MQTT"): delivery at the
lower of publish and subscription QoS, No Local, Retain As Published, Retain Handling 2,
the client's Receive Maximum and Session Expiry Interval.

usage: standard_v5.py HOST PORT PREFIX

Anonymous clients (roost in open mode with an ACL rule for PREFIX/#, or any plain broker
such as Mosquitto, the reference). PREFIX must be unique per run on a shared broker; the
retained messages the script sets are cleared again.
"""

import argparse
import queue
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from roost_session import WAIT, Failed, check, run


class Plain:
    """An anonymous MQTT 5 connection; messages queue up in arrival order."""

    def __init__(self, host, port, client_id, receive_maximum=None, session_expiry=None):
        self.messages = queue.Queue()
        self.subacks = queue.Queue()
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        connected = queue.Queue()
        c.on_connect = lambda _c, _u, flags, rc, props: connected.put(
            (rc.value, flags.session_present)
        )
        c.on_subscribe = lambda _c, _u, mid, rcs, props: self.subacks.put([r.value for r in rcs])
        c.on_message = lambda _c, _u, msg: self.messages.put(msg)
        props = Properties(PacketTypes.CONNECT)
        if receive_maximum is not None:
            # The test acknowledges deliveries itself, to hold them in flight.
            c.manual_ack_set(True)
            props.ReceiveMaximum = receive_maximum
        if session_expiry is not None:
            props.SessionExpiryInterval = session_expiry
        clean = session_expiry is None
        c.connect(host, port, keepalive=30, clean_start=clean, properties=props)
        c.loop_start()
        self.client = c
        try:
            code, self.session_present = connected.get(timeout=WAIT)
        except queue.Empty:
            raise Failed(f"{client_id}: no CONNACK within {WAIT}s")
        check(code == 0, f"{client_id}: CONNACK {code:#x}")

    def subscribe(self, topic, **options):
        self.client.subscribe(topic, options=SubscribeOptions(**options))
        try:
            codes = self.subacks.get(timeout=WAIT)
        except queue.Empty:
            raise Failed(f"no SUBACK for {topic} within {WAIT}s")
        check(codes == [options.get("qos", 0)], f"SUBACK {codes} for {topic}")

    def publish(self, topic, payload, qos=0, retain=False):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=WAIT)
        check(info.is_published(), f"publish to {topic} not sent within {WAIT}s")

    def next(self):
        try:
            return self.messages.get(timeout=WAIT)
        except queue.Empty:
            raise Failed(f"no message within {WAIT}s")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("prefix")
    a = p.parse_args()
    t = a.prefix

    sub = Plain(a.host, a.port, f"{t}-sub".replace("/", "-"))
    pub = Plain(a.host, a.port, f"{t}-pub".replace("/", "-"))

    # QoS: min(publish, subscription).
    sub.subscribe(f"{t}/q", qos=1)
    pub.publish(f"{t}/q", "zero", qos=0)
    pub.publish(f"{t}/q", "one", qos=1)
    for payload, qos in [(b"zero", 0), (b"one", 1)]:
        m = sub.next()
        check(m.payload == payload, f"got {m.payload!r}, expected {payload!r}")
        check(m.qos == qos, f"{payload!r} delivered at QoS {m.qos}, expected {qos}")

    # No Local: the subscriber's own publish does not come back; another client's does.
    sub.subscribe(f"{t}/n", qos=0, noLocal=True)
    sub.publish(f"{t}/n", "mine", qos=1)
    pub.publish(f"{t}/n", "theirs", qos=1)
    m = sub.next()
    check(m.payload == b"theirs", f"No Local: got {m.payload!r} first")

    # Retain As Published: a live retained message keeps its flag for this subscription.
    sub.subscribe(f"{t}/r", qos=0, retainAsPublished=True)
    pub.publish(f"{t}/r", "kept", qos=1, retain=True)
    m = sub.next()
    check(m.payload == b"kept" and m.retain, f"RAP: got {m.payload!r} retain={m.retain}")

    # Retain Handling 2: no retained message on subscribe ({t}/r holds one now).
    late = Plain(a.host, a.port, f"{t}-late".replace("/", "-"))
    late.subscribe(f"{t}/r", qos=0, retainHandling=2)
    pub.publish(f"{t}/r", "live", qos=1)
    m = late.next()
    check(m.payload == b"live", f"Retain Handling 2: got {m.payload!r} first")
    check(not m.retain, "a live message without Retain As Published has no retain flag")

    # Receive Maximum 2: with two QoS 1 deliveries unacknowledged, a third waits.
    slow = Plain(a.host, a.port, f"{t}-slow".replace("/", "-"), receive_maximum=2)
    slow.subscribe(f"{t}/m", qos=1)
    for n in range(1, 5):
        pub.publish(f"{t}/m", f"m{n}", qos=1)  # each waits for its PUBACK
    first, second = slow.next(), slow.next()
    check([first.payload, second.payload] == [b"m1", b"m2"], "m1 and m2 first")
    # A PUBACK for the slow client's own publish comes after anything the broker sent it
    # before; m3 must not be among that.
    slow.publish(f"{t}/sync", "sync", qos=1)
    check(slow.messages.empty(), f"a third delivery with two in flight: {slow.messages.qsize()}")
    slow.client.ack(first.mid, first.qos)
    check(slow.next().payload == b"m3", "m3 once m1 is acknowledged")
    slow.close()

    # Session Expiry Interval 1 s: the session is there within it, gone 2.5 s after the
    # connection ended (the passing of time is what is tested).
    kept_id, gone_id = f"{t}-kept".replace("/", "-"), f"{t}-gone".replace("/", "-")
    for client_id, expiry in [(kept_id, 60), (gone_id, 1)]:
        c = Plain(a.host, a.port, client_id, session_expiry=expiry)
        c.subscribe(f"{t}/e", qos=1)
        c.close()
    time.sleep(2.5)
    kept = Plain(a.host, a.port, kept_id, session_expiry=60)
    check(kept.session_present, "a session within its expiry is resumed")
    gone = Plain(a.host, a.port, gone_id, session_expiry=1)
    check(not gone.session_present, "a session 2.5 s past its 1 s expiry is still present")
    kept.close()
    gone.close()

    # Leave no retained message behind on a shared broker.
    pub.publish(f"{t}/r", "", qos=1, retain=True)
    for c in (sub, pub, late):
        c.close()


if __name__ == "__main__":
    run(main)
