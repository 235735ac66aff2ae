#!/usr/bin/env python3
"""Writes the fuzz seed corpora in fuzz/seeds/TARGET/.

MQTT seeds are real client traffic: mosquitto_pub and mosquitto_sub (3.1.1 and 5.0, QoS 0-2,
wills, user properties) talking to a minimal in-process broker that records what they send.
WebSocket seeds wrap those packets in masked client frames. Token, payload and request
seeds are the protocol's own examples (docs/protocol.md). Run: python3 fuzz/seeds/make.py
"""
import base64, hashlib, hmac, json, os, socket, subprocess, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"fuzz-secret-0123456789abcdef0123456789"  # the jwt target's key


def write(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


def packets(buf):
    """Splits a byte stream into MQTT packets."""
    out, i = [], 0
    while i + 2 <= len(buf):
        n, shift, j = 0, 0, i + 1
        while True:
            b = buf[j]; j += 1
            n |= (b & 0x7F) << shift; shift += 7
            if b < 0x80:
                break
        out.append(buf[i:j + n]); i = j + n
    return out


def serve(sock, streams):
    """A broker just good enough for mosquitto clients: acks everything, records bytes."""
    while True:
        conn, _ = sock.accept()
        got, v5 = b"", False
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            got += chunk
            for p in packets(chunk):
                kind = p[0] >> 4
                body = p[2:] if p[1] < 0x80 else p[3:]
                if kind == 1:
                    v5 = body[6] == 5
                    conn.sendall(b"\x20\x03\x00\x00\x00" if v5 else b"\x20\x02\x00\x00")
                elif kind == 8:
                    ack = body[:2] + (b"\x00" if v5 else b"") + b"\x01"
                    conn.sendall(bytes([0x90, len(ack)]) + ack)
                elif kind == 3 and (p[0] >> 1) & 3:
                    topic_len = int.from_bytes(body[:2], "big")
                    pkid = body[2 + topic_len:4 + topic_len]
                    conn.sendall((b"\x40\x02" if (p[0] >> 1) & 3 == 1 else b"\x50\x02") + pkid)
                elif kind == 6:
                    conn.sendall(b"\x70\x02" + body[:2])
                elif kind == 12:
                    conn.sendall(b"\xd0\x00")
        conn.close()
        streams.append(got)


def capture():
    sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen()
    port = str(sock.getsockname()[1])
    streams = []
    threading.Thread(target=serve, args=(sock, streams), daemon=True).start()
    token = jwt({"sub": "alice", "exp": 4102444800, "groups": ["family"]})
    chat = json.dumps({"id": "m-1", "kind": "text", "body": "hi bob"})
    base = ["-h", "127.0.0.1", "-p", port, "-i", "alice:phone", "-u", "alice", "-P", token]
    runs = []
    for v in ["mqttv311", "mqttv5"]:
        for q in ["0", "1", "2"]:
            runs.append(["mosquitto_pub", *base, "-V", v, "-q", q, "-t", "im/dm/bob/alice", "-m", chat])
        runs.append(["mosquitto_pub", *base, "-V", v, "-q", "1", "-r", "-t", "im/presence/alice",
                     "-m", '{"status":"away"}', "--will-topic", "im/presence/alice",
                     "--will-payload", '{"status":"offline"}', "--will-qos", "1"])
        runs.append(["mosquitto_sub", *base, "-V", v, "-q", "1", "-c", "-W", "1", "-k", "5",
                     "-t", "im/dm/alice/+", "-t", "im/sys/alice", "-t", "$share/g/im/grp/family/+"])
    runs.append(["mosquitto_pub", *base, "-V", "mqttv5", "-q", "1", "-t", "im/req/alice",
                  "-D", "publish", "user-property", "k", "v", "-D", "publish", "content-type", "json",
                  "-D", "publish", "message-expiry-interval", "60",
                  "-m", '{"req":"r1","method":"history","params":{"conv":"dm:alice:bob"}}'])
    for cmd in runs:
        subprocess.run(cmd, timeout=10, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return streams


def ws_frame(payload):
    n = len(payload)
    head = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    key = b"\x12\x34\x56\x78"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims, alg="HS256", key=SECRET):
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()) if alg == "HS256" else ""
    return f"{head}.{body}.{sig}"


def main():
    for i, stream in enumerate(capture()):
        v5 = b"MQTT\x05" in stream[:16]
        version = b"\x01" if v5 else b"\x00"
        ps = packets(stream)
        write("mqtt_connect", f"client-{i}", stream)
        write("mqtt_packets", f"client-{i}", version + b"".join(ps[1:]))
        write("websocket", f"client-{i}", version + b"".join(ws_frame(p) for p in ps))
    write("websocket", "ping-close", b"\x00" + b"\x89\x80\x00\x00\x00\x00" + b"\x88\x82\x00\x00\x00\x00\x03\xe8")

    now = int(time.time())
    tokens = {
        "valid": jwt({"sub": "alice", "exp": 4102444800, "groups": ["family"], "role": "user"}),
        "service": jwt({"sub": "bot", "exp": 4102444800, "role": "service"}),
        "expired": jwt({"sub": "alice", "exp": now - 3600}),
        "nbf": jwt({"sub": "alice", "exp": 4102444800, "nbf": 4102444000}),
        "wrong-key": jwt({"sub": "alice", "exp": 4102444800}, key=b"other"),
        "alg-none": jwt({"sub": "alice", "exp": 4102444800}, alg="none"),
        "rs256-header": jwt({"sub": "alice", "exp": 4102444800}, alg="RS256"),
        "odd-claims": jwt({"sub": 7, "exp": "soon", "groups": "family", "role": "root"}),
    }
    for name, token in tokens.items():
        write("jwt", name, token.encode())

    chats = {
        "dm": ("im/dm/bob/alice", {"id": "m-1", "kind": "text", "body": "hi bob"}),
        "grp": ("im/grp/family/alice", {"id": "m-2", "kind": "text", "body": "hi all", "reply_to": "m-1"}),
        "file": ("im/dm/alice/bob", {"id": "m-3", "kind": "file", "body": "", "name": "a.png"}),
        "no-id": ("im/dm/bob/alice", {"kind": "text", "body": "x"}),
        "self": ("im/dm/alice/alice", {"id": "m-4", "kind": "text", "body": "note"}),
    }
    for name, (topic, payload) in chats.items():
        write("chat_payload", name, topic.encode() + b"\n" + json.dumps(payload).encode())
    write("chat_payload", "conv", b"conv:grp:family\n{}")

    requests = [
        {"req": "r1", "method": "history", "params": {"conv": "dm:alice:bob", "limit": 2}},
        {"req": "r2", "method": "history", "params": {"conv": "grp:family", "before_seq": 3}},
        {"req": "r3", "method": "sync", "params": {"cursor": None, "limit": 500}},
        {"req": "r4", "method": "conversations"},
        {"req": "r5", "method": "read", "params": {"conv": "dm:alice:bob", "seq": 2}},
        {"req": "r6", "method": "history", "params": {"conv": "grp:other"}},
        {"req": "r7", "method": "nope"},
    ]
    for i, request in enumerate(requests):
        write("history_request", f"req-{i}", json.dumps(request).encode())


if __name__ == "__main__":
    main()
