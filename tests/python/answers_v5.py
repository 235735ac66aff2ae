"""MQTT 5: answers to requests reach only the device that asked (docs/protocol.md section 5).

usage: answers_v5.py HOST PORT ALICE_TOKEN

Two devices of alice (alice:phone, alice:laptop). The phone asks without a Response Topic:
the answer comes on im/sys/alice/phone, and the laptop (subscribed to im/sys/alice and its
own im/sys/alice/laptop) gets nothing. The phone asks with a Response Topic under its
im/sys and Correlation Data: the answer comes there, with the same Correlation Data. A
Response Topic outside im/sys/alice is refused: PUBACK 0x87 and an `error` notice.
"""

import json

from roost_session import Session, arguments, check, run

NOT_AUTHORIZED = 0x87


def request(req):
    return json.dumps({"req": req, "method": "conversations", "params": {}})


def next_message(session, topic):
    _, msg = session.expect("message")
    check(msg.topic == topic, f"message on {msg.topic}, expected {topic}: {msg.payload!r}")
    return msg


def main():
    a = arguments("alice_token").parse_args()

    phone = Session(a.host, a.port, "alice", a.alice_token, v5=True, client_id="alice:phone")
    laptop = Session(a.host, a.port, "alice", a.alice_token, v5=True, client_id="alice:laptop")
    for session, device in ((phone, "phone"), (laptop, "laptop")):
        check(session.connected, f"{device} refused: CONNACK {session.connack}")
        for topic in ("im/sys/alice", f"im/sys/alice/{device}"):
            code = session.subscribe(topic)
            check(code == 1, f"{topic} granted {code}, expected QoS 1")

    # Per-device answer.
    check(phone.publish("im/req/alice", request("p1")) == 0, "request refused")
    answer = json.loads(next_message(phone, "im/sys/alice/phone").payload)
    check(answer.get("type") == "result" and answer.get("req") == "p1", f"answer {answer}")
    # The laptop's own answer comes after the phone's would have: nothing else before it.
    check(laptop.publish("im/req/alice", request("l1")) == 0, "request refused")
    answer = json.loads(next_message(laptop, "im/sys/alice/laptop").payload)
    check(answer.get("req") == "l1", f"the laptop got {answer}")

    # Response Topic and Correlation Data.
    check(phone.subscribe("im/sys/alice/phone/rpc") == 1, "rpc topic refused")
    code = phone.publish(
        "im/req/alice",
        request("p2"),
        response_topic="im/sys/alice/phone/rpc",
        correlation_data=b"\x01paho",
    )
    check(code == 0, f"PUBACK {code:#x}")
    msg = next_message(phone, "im/sys/alice/phone/rpc")
    answer = json.loads(msg.payload)
    check(answer.get("req") == "p2", f"answer {answer}")
    correlation = getattr(msg.properties, "CorrelationData", None)
    check(correlation == b"\x01paho", f"Correlation Data {correlation!r}")

    # A Response Topic alice may not read: refused.
    code = phone.publish("im/req/alice", request("p3"), response_topic="im/sys/bob")
    check(code == NOT_AUTHORIZED, f"PUBACK {code:#x}, expected 0x87")
    notice = json.loads(next_message(phone, "im/sys/alice/phone").payload)
    check(notice.get("type") == "error" and notice.get("code") == "forbidden", f"{notice}")

    phone.close()
    laptop.close()


run(main)
