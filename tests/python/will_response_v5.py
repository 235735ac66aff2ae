"""A v5 CONNECT whose will has a wildcard in its Response Topic (MQTT 5 3.1.3.2.6: a
Protocol Error). roost refuses it with CONNACK 0x82; Mosquitto 2.0 accepts it (CONNACK 0),
so the code expected is an argument (docs/protocol.md, "Standard MQTT"). A will with a
plain Response Topic is accepted everywhere.

usage: will_response_v5.py HOST PORT PREFIX EXPECTED_CODE

Anonymous clients (roost in open mode with an ACL rule for PREFIX/#, or Mosquitto).
"""

import argparse
import queue

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from roost_session import WAIT, Failed, check, run


def connack(host, port, client_id, will_topic, response_topic):
    """The CONNACK reason code for a CONNECT with a will naming `response_topic`."""
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        reconnect_on_failure=False,
    )
    props = Properties(PacketTypes.WILLMESSAGE)
    props.ResponseTopic = response_topic
    c.will_set(will_topic, "gone", qos=0, properties=props)
    codes = queue.Queue()
    c.on_connect = lambda _c, _u, _flags, rc, _props: codes.put(rc.value)
    c.connect(host, port, keepalive=30)
    c.loop_start()
    try:
        return codes.get(timeout=WAIT)
    except queue.Empty:
        raise Failed(f"{client_id}: no CONNACK within {WAIT}s")
    finally:
        c.disconnect()
        c.loop_stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("prefix")
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
