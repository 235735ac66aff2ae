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


from roost_session import Client, Failed, arguments, check, run


def anon(host, port, client_id, prefix, v5, persistent=False):
    """An anonymous connection that keeps only messages under `prefix`; a message before an
    awaited CONNACK, SUBACK or UNSUBACK fails. `persistent`: a session kept 300 s."""
    return Client(
        host,
        port,
        client_id,
        v5=v5,
        clean=not persistent,
        session_expiry=300 if persistent else None,
        only_under=prefix + "/",
        strict_order=True,
    )


def granted(codes, expected):
    check(codes == expected, f"SUBACK {codes}, expected {expected}")


def topics(messages):
    return [m.topic for m in messages]


def root_wildcards(a, t, v5, tag):
    sub = anon(a.host, a.port, f"{tag}-root", t, v5)
    granted(sub.grants(("#", 1)), [1])
    deep = anon(a.host, a.port, f"{tag}-deep", t, v5)
    # `t` is two levels: `+/+/+` matches `{t}/x`, `+/#` everything under the prefix.
    granted(deep.grants(("+/+/+", 1)), [1])
    pub = anon(a.host, a.port, f"{tag}-pub", t, v5)
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
    pub = anon(a.host, a.port, f"{tag}-rpub", t, v5)
    pub.publish(f"{t}/r1", "kept-1", retain=True)
    pub.publish(f"{t}/r2/x", "kept-2", retain=True)
    try:
        sub = anon(a.host, a.port, f"{tag}-rsub", t, v5)
        granted(sub.grants(("#", 1)), [1])
        seen = {}
        while len(seen) < 2:
            m = sub.next()
            check(m.retain, f"{m.topic}: retained message without the retain flag")
            seen[m.topic] = m.payload
        check(
            seen == {f"{t}/r1": b"kept-1", f"{t}/r2/x": b"kept-2"},
            f"retained through `#`: {seen}",
        )
        two = anon(a.host, a.port, f"{tag}-rsub2", t, v5)
        granted(two.grants(("+/+/+", 1)), [1])
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
    away = anon(a.host, a.port, cid, t, v5, persistent=True)
    granted(away.grants(("+/+/oq/+", 1)), [1])
    away.close()
    pub = anon(a.host, a.port, f"{tag}-oqpub", t, v5)
    for n in range(3):
        pub.publish(f"{t}/oq/{n}", f"queued-{n}")
    back = anon(a.host, a.port, cid, t, v5, persistent=True)
    check(back.session_present, "session not present on resume")
    got = [(m.topic, m.payload) for m in (back.next(), back.next(), back.next())]
    want = [(f"{t}/oq/{n}", f"queued-{n}".encode()) for n in range(3)]
    check(got == want, f"queued through `+/+/oq/+`: {got}")
    back.close()
    # End the session.
    anon(a.host, a.port, cid, t, v5).close()
    pub.close()


def unsubscribe(a, t, v5, tag):
    sub = anon(a.host, a.port, f"{tag}-unsub", t, v5)
    granted(sub.grants(("#", 1), (f"{t}/m", 1)), [1, 1])
    pub = anon(a.host, a.port, f"{tag}-unpub", t, v5)
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
    sub = anon(a.host, a.port, f"{tag}-over", t, v5)
    granted(sub.grants(("+/+/ov/#", 2), ("#", 1)), [2, 1])
    pub = anon(a.host, a.port, f"{tag}-ovpub", t, v5)
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
    p = arguments("prefix")
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
