"""What a generic MQTT 5 client gets (docs/protocol.md, "Standard MQTT"): delivery at the
lower of publish and subscription QoS, No Local, Retain As Published, Retain Handling 2,
the client's Receive Maximum and Session Expiry Interval.

usage: standard_v5.py HOST PORT PREFIX

Anonymous clients (roost in open mode with an ACL rule for PREFIX/#, or any plain broker
such as Mosquitto, the reference). PREFIX must be unique per run on a shared broker; the
retained messages the script sets are cleared again.
"""

import time

from roost_session import Client, arguments, check, run


def main():
    a = arguments("prefix").parse_args()
    t = a.prefix

    sub = Client(a.host, a.port, f"{t}-sub".replace("/", "-"))
    pub = Client(a.host, a.port, f"{t}-pub".replace("/", "-"))

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
    late = Client(a.host, a.port, f"{t}-late".replace("/", "-"))
    late.subscribe(f"{t}/r", qos=0, retainHandling=2)
    pub.publish(f"{t}/r", "live", qos=1)
    m = late.next()
    check(m.payload == b"live", f"Retain Handling 2: got {m.payload!r} first")
    check(not m.retain, "a live message without Retain As Published has no retain flag")

    # Receive Maximum 2: with two QoS 1 deliveries unacknowledged, a third waits.
    # The test acknowledges deliveries itself, to hold them in flight.
    slow_id = f"{t}-slow".replace("/", "-")
    slow = Client(a.host, a.port, slow_id, receive_maximum=2, manual_ack=True)
    slow.subscribe(f"{t}/m", qos=1)
    for n in range(1, 5):
        pub.publish(f"{t}/m", f"m{n}", qos=1)  # each waits for its PUBACK
    first, second = slow.next(), slow.next()
    check([first.payload, second.payload] == [b"m1", b"m2"], "m1 and m2 first")
    # A PUBACK for the slow client's own publish comes after anything the broker sent it
    # before; m3 must not be among that.
    slow.publish(f"{t}/sync", "sync", qos=1)
    check(slow.pending() == 0, f"a third delivery with two in flight: {slow.pending()}")
    slow.client.ack(first.mid, first.qos)
    check(slow.next().payload == b"m3", "m3 once m1 is acknowledged")
    slow.close()

    # Session Expiry Interval 1 s: the session is there within it, gone 2.5 s after the
    # connection ended (the passing of time is what is tested).
    kept_id, gone_id = f"{t}-kept".replace("/", "-"), f"{t}-gone".replace("/", "-")
    for client_id, expiry in [(kept_id, 60), (gone_id, 1)]:
        c = Client(a.host, a.port, client_id, clean=False, session_expiry=expiry)
        c.subscribe(f"{t}/e", qos=1)
        c.close()
    time.sleep(2.5)
    kept = Client(a.host, a.port, kept_id, clean=False, session_expiry=60)
    check(kept.session_present, "a session within its expiry is resumed")
    gone = Client(a.host, a.port, gone_id, clean=False, session_expiry=1)
    check(not gone.session_present, "a session 2.5 s past its 1 s expiry is still present")
    kept.close()
    gone.close()

    # Leave no retained message behind on a shared broker.
    pub.publish(f"{t}/r", "", qos=1, retain=True)
    for c in (sub, pub, late):
        c.close()


if __name__ == "__main__":
    run(main)
