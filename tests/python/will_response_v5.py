"""A v5 CONNECT whose will has a wildcard in its Response Topic (MQTT 5 3.1.3.2.6: a
Protocol Error). roost refuses it with CONNACK 0x82; Mosquitto 2.0 accepts it (CONNACK 0),
so the code expected is an argument (docs/protocol.md, "Standard MQTT"). A will with a
plain Response Topic is accepted everywhere.

usage: will_response_v5.py HOST PORT PREFIX EXPECTED_CODE

Anonymous clients (roost in open mode with an ACL rule for PREFIX/#, or Mosquitto).
"""


from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from roost_session import Client, arguments, check, run


def connack(host, port, client_id, will_topic, response_topic):
    """The CONNACK reason code for a CONNECT with a will naming `response_topic`."""
    props = Properties(PacketTypes.WILLMESSAGE)
    props.ResponseTopic = response_topic
    will = dict(topic=will_topic, payload="gone", qos=0, properties=props)
    c = Client(host, port, client_id, will=will, refusal_ok=True)
    c.close()
    return c.connack_code


def main():
    p = arguments("prefix")
    p.add_argument("expected", type=lambda s: int(s, 0))
    a = p.parse_args()
    t = a.prefix
    client_id = f"{t}-will".replace("/", "-")

    code = connack(a.host, a.port, client_id, f"{t}/will", f"{t}/reply")
    check(code == 0, f"a plain will Response Topic: CONNACK {code:#x}")
    for wildcard in (f"{t}/reply/+", f"{t}/reply/#"):
        code = connack(a.host, a.port, client_id, f"{t}/will", wildcard)
        check(code == a.expected, f"will Response Topic {wildcard}: CONNACK {code:#x}, expected {a.expected:#x}")


if __name__ == "__main__":
    run(main)
