"""Retained messages beyond the client's Receive Maximum (docs/protocol.md, "Standard
MQTT"): a v5 client with Receive Maximum 2 subscribing at QoS 1 to a filter matching 6
retained topics gets all 6, flagged retained, as it acknowledges them, and then the live
messages published meanwhile (without the retain flag).

usage: retained_v5.py HOST PORT PREFIX

Anonymous clients (roost in open mode with an ACL rule for PREFIX/#, or any plain broker
such as Mosquitto, the reference). PREFIX must be unique per run on a shared broker; the
retained messages the script sets are cleared again.
"""


from roost_session import Client, arguments, check, run

COUNT = 6


def main():
    a = arguments("prefix").parse_args()
    t = a.prefix

    pub = Client(a.host, a.port, f"{t}-pub".replace("/", "-"))
    retained = [f"{t}/ret/{n}" for n in range(1, COUNT + 1)]
    for topic in retained:
        pub.publish(topic, topic, qos=1, retain=True)  # each waits for its PUBACK

    # The test acknowledges deliveries itself, to hold them in flight.
    slow_id = f"{t}-slow".replace("/", "-")
    slow = Client(a.host, a.port, slow_id, receive_maximum=2, manual_ack=True)
    slow.subscribe(f"{t}/ret/+", qos=1)
    held = [slow.next(), slow.next()]
    # A PUBACK for the slow client's own publish comes after anything the broker sent it
    # before: a third retained message must not be among that (two are in flight).
    slow.publish(f"{t}/sync", "sync", qos=1)
    check(slow.pending() == 0, f"a third delivery with two in flight: {slow.pending()}")
    pub.publish(f"{t}/ret/live", "live", qos=1)

    got = []
    while len(got) < COUNT + 1:
        if held:
            m = held.pop(0)
        else:
            m = slow.next()
        got.append((m.topic, m.payload.decode(), m.retain))
        slow.client.ack(m.mid, m.qos)

    on_subscribe = got[:COUNT]
    check(
        sorted(topic for topic, _, _ in on_subscribe) == sorted(retained),
        f"retained messages on subscribe: {on_subscribe}",
    )
    check(
        all(payload == topic and flag for topic, payload, flag in on_subscribe),
        f"retained messages carry their payload and the retain flag: {on_subscribe}",
    )
    check(
        got[COUNT] == (f"{t}/ret/live", "live", False),
        f"the live message last, without the retain flag: {got[COUNT]}",
    )
    slow.publish(f"{t}/sync", "sync", qos=1)
    check(slow.pending() == 0, f"delivered more than once: {slow.pending()}")

    # Leave no retained message behind on a shared broker.
    for topic in retained:
        pub.publish(topic, "", qos=1, retain=True)
    slow.close()
    pub.close()


if __name__ == "__main__":
    run(main)
