"""A persistent session's offline queue is bounded (docs/operating.md
`limits.max_queued_messages`): on resume it gets at most the bound, the oldest QoS 0
messages dropped first, then the oldest QoS 1 ones; MQTT 3.1.1 and 5.

usage: offline_bound.py HOST PORT PREFIX

roost in open mode with `max_queued_messages = 5` and a rule allowing PREFIX/#. (Not a
standard MQTT behaviour: Mosquitto keeps the oldest and drops new ones, so there is no
reference run.)
"""


from roost_session import arguments, check, run
from wildcards import anon


def main():
    a = arguments("prefix").parse_args()
    unique = a.prefix.rsplit("/", 1)[-1][-16:]
    for v5 in (False, True):
        version = "v5" if v5 else "v3"
        t = f"{a.prefix}-{version}"
        cid = f"b{unique}-{version}-away"
        away = anon(a.host, a.port, cid, t, v5, persistent=True)
        check(away.grants((f"{t}/#", 1)) == [1], "SUBACK")
        away.close()
        pub = anon(a.host, a.port, f"b{unique}-{version}-pub", t, v5)
        # 3 QoS 0 and 7 QoS 1 while away; the bound is 5.
        sent = [("q0-0", 0), ("q1-0", 1), ("q0-1", 0), ("q1-1", 1), ("q0-2", 0)]
        sent += [(f"q1-{n}", 1) for n in range(2, 7)]
        for payload, qos in sent:
            pub.publish(f"{t}/{payload}", payload, qos=qos)
        back = anon(a.host, a.port, cid, t, v5, persistent=True)
        check(back.session_present, f"{version}: session not present on resume")
        pub.publish(f"{t}/marker", "marker")
        got = [m.payload.decode() for m in back.until(f"{t}/marker")]
        want = [f"q1-{n}" for n in range(2, 7)]
        check(got == want, f"{version}: resumed with {got}, expected {want}")
        back.close()
        anon(a.host, a.port, cid, t, v5).close()  # ends the session
        pub.close()


run(main)
