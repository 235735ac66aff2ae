"""A small synchronous wrapper around paho-mqtt (>= 2.0) for the end-to-end tests.

Every wait is bounded; a failure raises `Failed`, which the scripts turn into exit code 1
with a message on stderr.
"""

import queue
import sys

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

WAIT = 10.0


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


class Session:
    """One signed-in connection. Events (connack, suback, puback, message) queue up in
    arrival order and are taken with `expect`."""

    def __init__(
        self, host, port, user, token, v5=False, transport="tcp", cafile=None, client_id=None
    ):
        self.v5 = v5
        self.events = queue.Queue()
        protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or user,
            protocol=protocol,
            transport=transport,
            reconnect_on_failure=False,
        )
        self.client.username_pw_set(user, token)
        if transport == "websockets":
            self.client.ws_set_options(path="/mqtt")
        if cafile:
            self.client.tls_set(ca_certs=cafile)
        c = self.client
        c.on_connect = lambda _c, _u, flags, rc, props: self.events.put(("connack", rc.value))
        c.on_subscribe = lambda _c, _u, mid, rcs, props: self.events.put(
            ("suback", [r.value for r in rcs])
        )
        c.on_publish = lambda _c, _u, mid, rc, props: self.events.put(("puback", mid, rc.value))
        c.on_message = lambda _c, _u, msg: self.events.put(("message", msg))
        c.on_disconnect = lambda _c, _u, flags, rc, props: self.events.put(("disconnect", rc.value))
        if v5:
            c.connect(host, port, keepalive=30, clean_start=True)
        else:
            c.connect(host, port, keepalive=30)
        c.loop_start()
        kind, code = self.expect("connack")
        self.connack = code
        self.connected = code == 0

    def expect(self, kind):
        """The next event of `kind`; events of other kinds before it are skipped."""
        while True:
            try:
                event = self.events.get(timeout=WAIT)
            except queue.Empty:
                raise Failed(f"no {kind} within {WAIT}s")
            if event[0] == kind:
                return event
            if event[0] == "disconnect" and kind != "disconnect":
                raise Failed(f"disconnected (reason {event[1]}) while waiting for {kind}")

    def subscribe(self, topic):
        self.client.subscribe(topic, qos=1)
        _, codes = self.expect("suback")
        return codes[0]

    def publish(
        self, topic, payload, user_properties=(), response_topic=None, correlation_data=None
    ):
        props = None
        if self.v5 and (user_properties or response_topic or correlation_data):
            props = Properties(PacketTypes.PUBLISH)
            if user_properties:
                props.UserProperty = list(user_properties)
            if response_topic:
                props.ResponseTopic = response_topic
            if correlation_data:
                props.CorrelationData = correlation_data
        info = self.client.publish(topic, payload, qos=1, properties=props)
        _, mid, code = self.expect("puback")
        check(mid == info.mid, f"PUBACK for mid {mid}, expected {info.mid}")
        return code

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def run(main):
    """Runs `main()`; exit code 0 when it returns, 1 with the reason when it fails."""
    try:
        main()
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
