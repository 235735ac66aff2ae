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

import json

from roost_session import Client, arguments, check, run

MARKER = "public/m/a/b"


def conn(host, port, client_id, user, token, v5, receive_maximum=20, persistent=False):
    """A connection signed in as `user` with `token` (anonymous without one); MQTT 5 ones
    with this Receive Maximum. `persistent`: a session kept 300 s."""
    return Client(
        host,
        port,
        client_id,
        v5=v5,
        user=user if token else None,
        password=token,
        clean=not persistent,
        session_expiry=300 if persistent else None,
        receive_maximum=receive_maximum,
    )


def subscribe(c, *filters):
    """Subscribes `filters` at QoS 1; returns the granted codes."""
    return c.grants(*[(f, 1) for f in filters])


def until_marker(c):
    """(topic, retain) of the messages before the one on MARKER."""
    return [(m.topic, m.retain) for m in c.until(MARKER)]


def chat(n):
    return json.dumps({"id": f"w-{n}", "kind": "text", "body": "hi"})


def main():
    a = arguments("alice", "bob", "carol").parse_args()
    host, port = a.host, a.port

    alice = conn(host, port, "alice", "alice", a.alice, False)
    bob = conn(host, port, "bob", "bob", a.bob, True)
    check(subscribe(bob, "im/sys/bob") == [1], "bob's notices")
    carol_pub = conn(host, port, "carol:pub", "carol", a.carol, False)

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
            c = conn(host, port, f"carol:w{v}{n}", "carol", a.carol, v5)
            filters = [filt, MARKER] if filt == "im/#" else [filt]
            got = subscribe(c, *filters)
            check(got == codes, f"{c.name}: SUBACK {got} for {filters}, expected {codes}")
            subscribers.append((c, filt, "carol", "im/sys/carol"))
        anon = conn(host, port, f"guest{v}", None, None, v5)
        check(subscribe(anon, "#") == [1], f"{anon.name}: `#` refused")
        subscribers.append((anon, "#", "anon", f"im/sys/anon-guest{v}"))
    # Dropped QoS 1 deliveries (7 below) must not use up a window of 2: the node acks them.
    # (Not checked for retained messages: with a window smaller than the retained messages
    # a SUBSCRIBE matches, the router loses the rest, a known gap.)
    narrow = conn(host, port, "carol:narrow", "carol", a.carol, True, receive_maximum=2)
    check(subscribe(narrow, "#") == [1], f"{narrow.name}: `#` refused")
    # A persistent session with `#`, away while everything below is published: on resume
    # its queue is checked like live deliveries.
    away = conn(host, port, "carol:away", "carol", a.carol, True, persistent=True)
    check(subscribe(away, "#") == [1], f"{away.name}: `#` refused")
    away.close()

    # Live, not readable by carol: others' DMs and signals, a group she is not in, bob's
    # notice and request, and what the config rules keep from her.
    alice.publish("im/dm/bob/alice", chat(1))
    alice.publish("im/sig/dm/bob/alice", json.dumps({"type": "typing", "state": "start"}))
    alice.publish("im/grp/team/alice", chat(3))
    alice.publish("private/x/a/b", "secret")
    alice.publish("devices/alice/x/b", "alice's")
    bob.publish("im/req/bob", json.dumps({"id": "r1", "method": "nonsense"}))
    bob.publish("im/sys/bob", chat(4))  # refused: the server answers on im/sys/bob
    notice = bob.next()
    check(notice.topic == "im/sys/bob", f"bob got {notice.topic}, expected his notice")
    # Readable.
    alice.publish("im/dm/carol/alice", chat(5))
    alice.publish("public/x/a/b", "for all")
    carol_pub.publish("devices/carol/x/b", "carol's")
    alice.publish(MARKER, "marker")

    got = {
        t
        for t, retained in until_marker(narrow)
        if not retained and not t.startswith("im/presence/")
    }
    want = {"im/dm/carol/alice", "public/x/a/b", "devices/carol/x/b"}
    check(got == want, f"{narrow.name}: live {sorted(got)}, expected {sorted(want)}")
    narrow.close()

    back = conn(host, port, "carol:away", "carol", a.carol, True, persistent=True)
    got = {t for t, _ in until_marker(back) if not t.startswith("im/presence/")}
    check(got == want, f"{back.name} resumed: {sorted(got)}, expected {sorted(want)}")
    back.close()
    conn(host, port, "carol:away", "carol", a.carol, True).close()  # ends the session

    readable = {
        "carol": {"im/dm/carol/alice", "public/x/a/b", "devices/carol/x/b"},
        "anon": {"public/x/a/b"},
    }
    retained = {
        "carol": {"public/r/a/b", "devices/carol/r/b"},
        "anon": {"public/r/a/b"},
    }
    for c, filt, who, own_sys in subscribers:
        got = until_marker(c)
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
