"""The one paho-mqtt (>= 2.0) helper of the end-to-end scripts: a synchronous connection
(`Client`, MQTT 3.1.1 or 5, any connect options) and `Session`, a signed-in roost user.

Every wait is bounded by WAIT (no sleeps stand in for synchronisation); a failure raises
`Failed`, which `run` turns into exit code 1 with a message on stderr. Scripts import this
from their own directory (tests/common/tools.rs runs them by path).
"""

import argparse
import queue
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

WAIT = 10.0


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


class Client:
    """One connection. Control packets (connack, suback, unsuback, puback, disconnect) and
    messages queue up apart, each numbered in arrival order; `expect` takes the next control
    packet of a kind, `next` the next message.

    MQTT 5 only: `session_expiry`, `receive_maximum` (with `manual_ack`, the script acks
    deliveries itself: `client.ack(mid, qos)`). `clean` is Clean Start (v5) or Clean Session
    (v3.1.1). `will`: keyword arguments of paho's `will_set`. `only_under`: messages on
    other topics are dropped (wildcards see other clients' traffic). `strict_order`: a
    message arriving before an awaited CONNACK, SUBACK or UNSUBACK fails. Unless
    `refusal_ok`, a CONNACK other than 0 fails; `connack_code`, `connack_props` and
    `session_present` tell what came.
    """

    def __init__(
        self,
        host,
        port,
        client_id,
        v5=True,
        user=None,
        password=None,
        clean=True,
        session_expiry=None,
        receive_maximum=None,
        manual_ack=False,
        will=None,
        transport="tcp",
        cafile=None,
        only_under=None,
        strict_order=False,
        refusal_ok=False,
    ):
        self.v5 = v5
        self.name = f"{client_id!r} ({'v5' if v5 else 'v3.1.1'})"
        self.only_under = only_under
        self.strict_order = strict_order
        self.events = queue.Queue()
        self.messages = queue.Queue()
        self._seq = 0
        self._lock = threading.Lock()
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else clean,
            transport=transport,
            reconnect_on_failure=False,
        )
        if user is not None:
            c.username_pw_set(user, password)
        if transport == "websockets":
            c.ws_set_options(path="/mqtt")
        if cafile:
            c.tls_set(ca_certs=cafile)
        if manual_ack:
            c.manual_ack_set(True)
        if will is not None:
            c.will_set(**will)
        c.on_connect = lambda _c, _u, flags, rc, props: self._event(
            "connack", rc.value, flags.session_present, props
        )
        c.on_subscribe = lambda _c, _u, mid, rcs, props: self._event(
            "suback", [r.value for r in rcs]
        )
        c.on_unsubscribe = lambda _c, _u, mid, rcs, props: self._event(
            "unsuback", [r.value for r in rcs]
        )
        c.on_publish = lambda _c, _u, mid, rc, props: self._event("puback", mid, rc.value)
        c.on_disconnect = lambda _c, _u, flags, rc, props: self._event("disconnect", rc.value)
        c.on_message = self._message
        self.client = c
        if v5:
            props = Properties(PacketTypes.CONNECT)
            if session_expiry is not None:
                props.SessionExpiryInterval = session_expiry
            if receive_maximum is not None:
                props.ReceiveMaximum = receive_maximum
            c.connect(host, port, keepalive=30, clean_start=clean, properties=props)
        else:
            c.connect(host, port, keepalive=30)
        c.loop_start()
        _, self.connack_code, self.session_present, self.connack_props = self.expect("connack")
        if not refusal_ok:
            check(self.connack_code == 0, f"{self.name}: CONNACK {self.connack_code:#x}")

    # paho's network thread calls these two.
    def _event(self, *event):
        with self._lock:
            self._seq += 1
            self.events.put((self._seq, event))

    def _message(self, _c, _u, msg):
        if self.only_under is not None and not msg.topic.startswith(self.only_under):
            return
        with self._lock:
            self._seq += 1
            self.messages.put((self._seq, msg))

    def expect(self, kind, ordered=None):
        """The next control packet of `kind` as a tuple (kind, ...); those of other kinds
        before it are skipped, a disconnect before it fails."""
        if ordered is None:
            ordered = self.strict_order
        while True:
            try:
                seq, event = self.events.get(timeout=WAIT)
            except queue.Empty:
                raise Failed(f"{self.name}: no {kind} within {WAIT}s")
            if event[0] == kind:
                break
            if event[0] == "disconnect":
                raise Failed(f"{self.name}: disconnected ({event[1]:#x}) while waiting for {kind}")
        if ordered:
            with self.messages.mutex:
                early = [m for s, m in self.messages.queue if s < seq]
            if early:
                raise Failed(f"{self.name}: message on {early[0].topic} while waiting for {kind}")
        return event

    def next(self):
        """The next message."""
        try:
            return self.messages.get(timeout=WAIT)[1]
        except queue.Empty:
            raise Failed(f"{self.name}: no message within {WAIT}s")

    def until(self, marker):
        """Messages before the one on `marker`, in arrival order."""
        got = []
        while True:
            m = self.next()
            if m.topic == marker:
                return got
            got.append(m)

    def pending(self):
        """How many messages arrived and were not taken yet."""
        return self.messages.qsize()

    def grants(self, *filters):
        """Subscribes `(filter, qos or SubscribeOptions)` pairs in one SUBSCRIBE; returns the
        SUBACK's reason codes."""
        self.client.subscribe(list(filters))
        return self.expect("suback")[1]

    def subscribe(self, topic, qos=0, **options):
        """Subscribes one filter with MQTT 5 subscription `options`; fails unless `qos` is
        granted."""
        options = SubscribeOptions(qos=qos, **options) if self.v5 else qos
        codes = self.grants((topic, options))
        check(codes == [qos], f"{self.name}: SUBACK {codes} for {topic}")

    def unsubscribe(self, topics):
        """Unsubscribes a filter or a list; returns the UNSUBACK's reason codes (MQTT 5)."""
        self.client.unsubscribe(topics)
        return self.expect("unsuback")[1]

    def publish(self, topic, payload, qos=1, retain=False, properties=None):
        """Publishes and waits until it is acknowledged (QoS 1 and 2) or sent (QoS 0);
        returns the acknowledgement's reason code (0 for QoS 0)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        while True:
            _, mid, code = self.expect("puback", ordered=False)
            if mid == info.mid:
                return code

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


class Session(Client):
    """One roost user signed in with a token (or password), v3.1.1 unless `v5`. Unlike a
    `Client`, a refused CONNACK does not fail (`connected` and `connack` tell), `subscribe`
    asks for QoS 1 and returns the code granted, `publish` is QoS 1 with MQTT 5 properties,
    and `expect("message")` takes the next message as ("message", msg)."""

    def __init__(
        self, host, port, user, token, v5=False, transport="tcp", cafile=None, client_id=None
    ):
        super().__init__(
            host,
            port,
            client_id or user,
            v5=v5,
            user=user,
            password=token,
            transport=transport,
            cafile=cafile,
            refusal_ok=True,
        )
        self.connack = self.connack_code
        self.connected = self.connack_code == 0

    def expect(self, kind, ordered=None):
        if kind == "message":
            return ("message", self.next())
        return super().expect(kind, ordered)

    def subscribe(self, topic):
        return self.grants((topic, 1))[0]

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
        return super().publish(topic, payload, properties=props)


def arguments(*names):
    """The command line parser of a script: HOST PORT, then the positional `names`; the
    script adds the rest."""
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    for name in names:
        p.add_argument(name)
    return p


def run(main):
    """Runs `main()`; exit code 0 when it returns, 1 with the reason when it fails."""
    try:
        main()
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
