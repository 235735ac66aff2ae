"""MQTT 5 session, handshake and packet rules a generic client relies on (docs/protocol.md,
"Standard MQTT"; issue 15): Clean Start with a Session Expiry Interval, assigned client ids,
UNSUBACK reason codes, QoS 1 to a `$` topic, topic aliases, the QoS 2 flow, CONNACK within
the client's Maximum Packet Size, a will's user properties, a repeated SUBSCRIBE.

usage: conformance_v5.py HOST PORT PREFIX [ITEM...]

Anonymous clients (roost in open mode with ACL rules for PREFIX/# and $app/#, or any plain
broker such as Mosquitto, the reference). PREFIX must be unique per run on a shared broker;
the retained messages and sessions the script makes are cleared again. ITEMs: run only
those checks (default: all).

Most checks use paho-mqtt; those needing packets paho will not send (a stray PUBREL, a
PUBREC with an error code, DUP on a publish, a CONNECT with an authentication method) use
`Raw`, a minimal MQTT 5 packet writer and reader over a plain socket.
"""

import socket
import struct

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from roost_session import WAIT, Client, Failed, arguments, check, run


# ---- a minimal MQTT 5 packet writer and reader ----------------------------------------------


def varint(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def props(*items):
    body = b"".join(items)
    return varint(len(body)) + body


class Raw:
    """One MQTT 5 connection over a plain socket; packets are (type, flags, body)."""

    def __init__(self, host, port, client_id, connect_props=b"", expect_success=True):
        self.sock = socket.create_connection((host, port), timeout=WAIT)
        self.buf = b""
        self.pkid = 0
        body = (
            string("MQTT")
            + bytes([5, 0x02])
            + struct.pack(">H", 30)
            + props(connect_props)
            + string(client_id)
        )
        self.send(packet(0x10, body))
        kind, _, self.connack = self.read()
        check(kind == 2, f"{client_id}: expected CONNACK, got packet type {kind}")
        self.connack_code = self.connack[1]
        if expect_success:
            check(self.connack_code == 0, f"{client_id}: CONNACK {self.connack_code:#x}")

    def send(self, data):
        self.sock.sendall(data)

    def read(self):
        """The next packet: (type, flags, body); the raw size is kept in `last_size`."""
        while True:
            if len(self.buf) >= 2:
                length, mult, i = 0, 1, 1
                while i < len(self.buf):
                    byte = self.buf[i]
                    length += (byte & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not byte & 0x80:
                        if len(self.buf) >= i + length:
                            first, body = self.buf[0], self.buf[i : i + length]
                            self.buf = self.buf[i + length :]
                            self.last_size = i + length
                            return first >> 4, first & 0x0F, body
                        break
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise Failed(f"no packet within {WAIT}s")
            if not chunk:
                raise Failed("connection closed")
            self.buf += chunk

    def next_pkid(self):
        self.pkid += 1
        return self.pkid

    def subscribe(self, topic, qos):
        pkid = self.next_pkid()
        self.send(packet(0x82, struct.pack(">H", pkid) + props() + string(topic) + bytes([qos])))
        kind, _, body = self.read()
        check(kind == 9 and body[-1] == qos, f"SUBACK for {topic}: type {kind}, {body!r}")

    def publish(self, topic, payload, qos, dup=False):
        pkid = self.next_pkid()
        first = 0x30 | (0x08 if dup else 0) | (qos << 1)
        body = string(topic) + (struct.pack(">H", pkid) if qos else b"") + props() + payload
        self.send(packet(first, body))
        return pkid

    def ack(self, kind, pkid, reason=0):
        """PUBACK (4), PUBREC (5), PUBREL (6) or PUBCOMP (7)."""
        first = (kind << 4) | (0x02 if kind == 6 else 0)
        self.send(packet(first, struct.pack(">HB", pkid, reason)))

    def expect(self, kind):
        k, flags, body = self.read()
        check(k == kind, f"expected packet type {kind}, got {k} ({body!r})")
        return flags, body

    def close(self):
        self.send(packet(0xE0, b"\x00\x00"))
        self.sock.close()


def parse_publish(flags, body):
    """(topic, pkid or None, qos, dup, payload) of a PUBLISH body."""
    qos, dup = (flags >> 1) & 3, bool(flags & 0x08)
    (n,) = struct.unpack(">H", body[:2])
    topic, rest = body[2 : 2 + n].decode(), body[2 + n :]
    pkid = None
    if qos:
        (pkid,) = struct.unpack(">H", rest[:2])
        rest = rest[2:]
    length, i = 0, 0
    mult = 1
    while True:
        byte = rest[i]
        length += (byte & 0x7F) * mult
        mult *= 128
        i += 1
        if not byte & 0x80:
            break
    return topic, pkid, qos, dup, rest[i + length :]


# ---- the checks -----------------------------------------------------------------------------


def sessions(a, t):
    """Clean Start 1 with a Session Expiry Interval: the session outlives the connection
    (Clean Start only discards an earlier one), and Clean Start 0 resumes it."""
    client_id = f"{t}-cs".replace("/", "-")
    first = Client(a.host, a.port, client_id, clean=True, session_expiry=300)
    check(not first.session_present, "Clean Start 1 must not resume a session")
    first.subscribe(f"{t}/s", qos=1)
    first.close()
    back = Client(a.host, a.port, client_id, clean=False, session_expiry=300)
    check(back.session_present, "Clean Start 1 + expiry 300, then Clean Start 0: Session Present 0")
    pub = Client(a.host, a.port, f"{t}-cs-pub".replace("/", "-"))
    pub.publish(f"{t}/s", "kept")
    m = back.next()
    check(m.payload == b"kept", f"the kept subscription delivered {m.payload!r}")
    back.close()
    # Clean Start 0 with interval 0 resumes it too; it then ends with that connection.
    last = Client(a.host, a.port, client_id, clean=False, session_expiry=0)
    check(last.session_present, "Clean Start 0 + expiry 0 did not resume the saved session")
    last.close()
    gone = Client(a.host, a.port, client_id, clean=False, session_expiry=0)
    check(not gone.session_present, "a session with expiry 0 outlived its connection")
    gone.close()
    # Clean Start 1 discards a saved one.
    kept = Client(a.host, a.port, client_id, clean=True, session_expiry=300)
    kept.subscribe(f"{t}/s", qos=1)
    kept.close()
    again = Client(a.host, a.port, client_id, clean=True, session_expiry=0)
    check(not again.session_present, "Clean Start 1 resumed a session")
    again.close()
    pub.close()


def assigned_ids(a, t):
    """An empty client id gets one assigned (Assigned Client Identifier), a unique one."""
    ids = []
    clients = []
    for _ in range(2):
        c = Client(a.host, a.port, "")
        assigned = getattr(c.connack_props, "AssignedClientIdentifier", None)
        check(assigned, "CONNACK without Assigned Client Identifier for an empty client id")
        ids.append(assigned)
        clients.append(c)
    check(ids[0] != ids[1], f"the same client id assigned twice: {ids[0]}")
    # The assigned id is a working session.
    clients[0].subscribe(f"{t}/assigned", qos=1)
    clients[1].publish(f"{t}/assigned", "hi")
    check(clients[0].next().payload == b"hi", "assigned-id client got another message")
    for c in clients:
        c.close()


def unsuback(a, t):
    """UNSUBACK: one reason per filter, 0x11 for a filter the session does not have, and
    unsubscribing twice answered 0x11 again."""
    c = Client(a.host, a.port, f"{t}-unsub".replace("/", "-"))
    c.subscribe(f"{t}/u", qos=1)
    codes = c.unsubscribe([f"{t}/u", f"{t}/never"])
    check(codes == [0x00, 0x11], f"UNSUBACK {codes}, expected [0x00, 0x11]")
    codes = c.unsubscribe([f"{t}/u"])
    check(codes == [0x11], f"second UNSUBACK {codes}, expected [0x11]")
    c.close()


def dollar_topic(a, t):
    """A QoS 1 publish to a `$` topic that is not `$SYS` or `$share` is acknowledged and
    delivered."""
    topic = f"$app/{t}/x"
    sub = Client(a.host, a.port, f"{t}-dsub".replace("/", "-"))
    sub.subscribe(topic, qos=1)
    pub = Client(a.host, a.port, f"{t}-dpub".replace("/", "-"))
    code = pub.publish(topic, "dollar")
    check(code == 0, f"PUBACK {code:#x} for a QoS 1 publish to {topic}")
    m = sub.next()
    check(m.topic == topic and m.payload == b"dollar", f"got {m.topic} {m.payload!r}")
    sub.close()
    pub.close()


def topic_aliases(a, t):
    """Client topic aliases: registered, reused, remapped, stripped before delivery; an alias
    above the Topic Alias Maximum is a protocol error (0x94)."""
    sub = Client(a.host, a.port, f"{t}-asub".replace("/", "-"))
    sub.subscribe(f"{t}/a/#", qos=1)
    pub = Client(a.host, a.port, f"{t}-apub".replace("/", "-"))
    maximum = getattr(pub.connack_props, "TopicAliasMaximum", 0)
    check(maximum >= 2, f"CONNACK Topic Alias Maximum {maximum}")

    def aliased(topic, payload, alias):
        p = Properties(PacketTypes.PUBLISH)
        p.TopicAlias = alias
        code = pub.publish(topic, payload, properties=p)
        check(code == 0, f"PUBACK {code:#x} for {payload} (alias {alias})")

    aliased(f"{t}/a/1", "register", 1)
    aliased("", "reuse", 1)
    aliased(f"{t}/a/2", "remap", 1)
    aliased("", "reuse-remapped", 1)
    aliased(f"{t}/a/3", "second", maximum)
    aliased("", "second-reused", maximum)
    expected = [
        ("1", "register"),
        ("1", "reuse"),
        ("2", "remap"),
        ("2", "reuse-remapped"),
        ("3", "second"),
        ("3", "second-reused"),
    ]
    for leaf, payload in expected:
        m = sub.next()
        got = (m.topic, m.payload)
        check(got == (f"{t}/a/{leaf}", payload.encode()), f"got {got} for {payload}")
        alias = getattr(m.properties, "TopicAlias", None) if m.properties else None
        check(alias is None, f"a delivery kept the publisher's topic alias {alias}")
    # Above the maximum.
    p = Properties(PacketTypes.PUBLISH)
    p.TopicAlias = maximum + 1
    pub.client.publish(f"{t}/a/1", "too-high", qos=1, properties=p)
    code = pub.expect("disconnect")[1]
    check(code == 0x94, f"alias above the maximum: disconnect {code:#x}, expected 0x94")
    pub.client.loop_stop()
    sub.close()


def no_dup(a, t):
    """DUP on an incoming PUBLISH is not passed on: each subscriber's delivery is its first."""
    sub = Client(a.host, a.port, f"{t}-dupsub".replace("/", "-"))
    sub.subscribe(f"{t}/dup", qos=1)
    raw = Raw(a.host, a.port, f"{t}-duppub".replace("/", "-"))
    pkid = raw.publish(f"{t}/dup", b"again", qos=1, dup=True)
    _, body = raw.expect(4)
    check(struct.unpack(">H", body[:2])[0] == pkid, "PUBACK for another packet id")
    m = sub.next()
    check(m.payload == b"again" and not m.dup, f"delivered {m.payload!r} with dup={m.dup}")
    raw.close()
    sub.close()


def qos2_flow(a, t):
    """PUBREL for an unknown packet id gets a PUBCOMP (roost: 0x92); a PUBREC with an error code ends
    the flow (no PUBREL, the Receive Maximum slot is free again); a QoS 2 delivery holds its
    slot until PUBCOMP."""
    maximum = struct.pack(">BH", 0x21, 1)  # Receive Maximum 1
    raw = Raw(a.host, a.port, f"{t}-q2".replace("/", "-"), connect_props=maximum)
    raw.ack(6, 4242)
    _, body = raw.expect(7)
    pkid, reason = struct.unpack(">H", body[:2])[0], (body[2] if len(body) > 2 else 0)
    # MQTT 5 names 0x92 (Packet Identifier not found) for this; Mosquitto 2.0 answers 0x00
    # (the PUBREL may repeat one whose PUBCOMP was lost). Both complete the flow.
    check(pkid == 4242 and reason in (0x00, 0x92), f"PUBCOMP {pkid} {reason:#x} for PUBREL 4242")

    raw.subscribe(f"{t}/q2", 2)
    pub = Client(a.host, a.port, f"{t}-q2pub".replace("/", "-"))
    for n in (1, 2, 3):
        pub.publish(f"{t}/q2", f"m{n}", qos=2)
    topic, p1, qos, _, payload = parse_publish(*raw.expect(3))
    check((payload, qos) == (b"m1", 2), f"first delivery {payload!r} at QoS {qos}")
    raw.ack(5, p1, 0x80)  # PUBREC "unspecified error": the flow ends here
    kind, flags, body = raw.read()
    check(kind == 3, f"after a PUBREC with an error: packet type {kind}, expected PUBLISH")
    _, p2, _, _, payload = parse_publish(flags, body)
    check(payload == b"m2", f"second delivery {payload!r}")
    raw.ack(5, p2)
    _, body = raw.expect(6)
    check(struct.unpack(">H", body[:2])[0] == p2, "PUBREL for another packet id")
    # m3 waits until m2's PUBCOMP: the reply to a publish of our own comes first.
    sync = raw.publish(f"{t}/q2-sync", b"sync", qos=1)
    kind, _, body = raw.read()
    check(kind == 4, f"a delivery while the only slot awaits PUBCOMP (packet type {kind})")
    check(struct.unpack(">H", body[:2])[0] == sync, "PUBACK for another packet id")
    raw.ack(7, p2)
    _, p3, _, _, payload = parse_publish(*raw.expect(3))
    check(payload == b"m3", f"third delivery {payload!r}")
    raw.ack(5, p3)
    raw.expect(6)
    raw.ack(7, p3)
    raw.close()
    pub.close()


def connack_size(a, t):
    """A refusing CONNACK fits the client's Maximum Packet Size: the reason string is left out
    rather than the packet. (An authentication method the server does not support: 0x8C.)"""
    connect_props = struct.pack(">BI", 0x27, 8) + bytes([0x15]) + string("roost-test-unknown")
    raw = Raw(
        a.host, a.port, f"{t}-cas".replace("/", "-"), connect_props, expect_success=False
    )
    check(raw.connack_code == 0x8C, f"CONNACK {raw.connack_code:#x}, expected 0x8C")
    check(raw.last_size <= 8, f"CONNACK of {raw.last_size} bytes, the client allows 8")
    raw.sock.close()


def will_properties(a, t):
    """A will's user properties reach its subscribers, in order."""
    sub = Client(a.host, a.port, f"{t}-wsub".replace("/", "-"))
    sub.subscribe(f"{t}/will", qos=1)
    p = Properties(PacketTypes.WILLMESSAGE)
    pairs = [("k", "1"), ("j", "2"), ("k", "3")]
    p.UserProperty = list(pairs)
    will = dict(topic=f"{t}/will", payload="bye", qos=1, properties=p)
    leaving = Client(a.host, a.port, f"{t}-will".replace("/", "-"), will=will)
    # DISCONNECT 0x04: "disconnect with will message".
    leaving.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
    leaving.client.loop_stop()
    m = sub.next()
    check(m.payload == b"bye", f"will payload {m.payload!r}")
    got = getattr(m.properties, "UserProperty", None) if m.properties else None
    check(got == pairs, f"will user properties {got}, expected {pairs}")
    sub.close()


def resubscribe(a, t):
    """A SUBSCRIBE repeating a filter replaces the subscription's QoS and, with Retain
    Handling 0, sends the retained messages again."""
    pub = Client(a.host, a.port, f"{t}-rspub".replace("/", "-"))
    pub.publish(f"{t}/rs", "retained", retain=True)
    sub = Client(a.host, a.port, f"{t}-rssub".replace("/", "-"))
    sub.subscribe(f"{t}/rs", qos=0)
    m = sub.next()
    check(m.payload == b"retained" and m.retain, f"first subscribe: {m.payload!r}")
    sub.subscribe(f"{t}/rs", qos=1)
    m = sub.next()
    check(m.payload == b"retained" and m.retain, f"repeated subscribe: {m.payload!r}")
    pub.publish(f"{t}/rs", "live")
    m = sub.next()
    check(m.payload == b"live" and m.qos == 1, f"after re-subscribing at QoS 1: QoS {m.qos}")
    check(sub.pending() == 0, "a message delivered twice (two subscriptions)")
    pub.publish(f"{t}/rs", "", retain=True)
    sub.close()
    pub.close()


CHECKS = {
    "sessions": sessions,
    "assigned_ids": assigned_ids,
    "unsuback": unsuback,
    "dollar_topic": dollar_topic,
    "topic_aliases": topic_aliases,
    "no_dup": no_dup,
    "qos2_flow": qos2_flow,
    "connack_size": connack_size,
    "will_properties": will_properties,
    "resubscribe": resubscribe,
}


def main():
    p = arguments("prefix")
    p.add_argument("items", nargs="*", choices=[[], *CHECKS], default=[])
    a = p.parse_args()
    for name in a.items or CHECKS:
        try:
            CHECKS[name](a, f"{a.prefix}/{name}")
        except Failed as e:
            raise Failed(f"{name}: {e}")


if __name__ == "__main__":
    run(main)
