//! ROOST PATCH (28): a publish narrowed by its scope reaches only the subscriptions it is
//! for: plain ones, or the members of one shared group. roost's cluster bridge relies on
//! it to give each shared group one copy of a message in the whole cluster.

use std::sync::Arc;

use bytes::Bytes;

use super::roost_delivery_test::{filter, payload, router, Client};
use crate::protocol::{Packet, Publish, QoS, Scope};

fn publish(client: &mut Client, body: &'static str, scope: Scope) {
    let mut publish = Publish::new(Bytes::from_static(b"t/s"), Bytes::from_static(body.as_bytes()), false);
    publish.set_scope(scope);
    client.send(Packet::Publish(publish, None));
}

/// What `client` receives up to and including `last`.
fn received_until(client: &mut Client, last: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let body = String::from_utf8_lossy(payload(&client.delivery())).into_owned();
        got.push(body.clone());
        if body == last {
            return got;
        }
    }
}

#[test]
fn scoped_publishes_reach_only_their_subscriptions() {
    let router = router();
    let mut plain = Client::new(&router, "plain");
    let mut g = Client::new(&router, "g-member");
    let mut h = Client::new(&router, "h-member");
    plain.subscribe(filter("t/+", QoS::AtMostOnce));
    g.subscribe(filter("$share/g/t/+", QoS::AtMostOnce));
    h.subscribe(filter("$share/h/t/+", QoS::AtMostOnce));

    let mut bridge = Client::new(&router, "bridge");
    publish(&mut bridge, "all", Scope::All);
    publish(&mut bridge, "plain only", Scope::Plain);
    publish(&mut bridge, "g only", Scope::Group(Arc::from("g")));
    publish(&mut bridge, "x only", Scope::Group(Arc::from("x")));
    publish(&mut bridge, "end", Scope::All);

    assert_eq!(received_until(&mut plain, "end"), ["all", "plain only", "end"]);
    assert_eq!(received_until(&mut g, "end"), ["all", "g only", "end"]);
    assert_eq!(received_until(&mut h, "end"), ["all", "end"]);
}

#[test]
fn scopes_admit_as_documented() {
    let g = Scope::Group(Arc::from("g"));
    assert!(Scope::All.admits(None) && Scope::All.admits(Some("g")));
    assert!(Scope::Plain.admits(None) && !Scope::Plain.admits(Some("g")));
    assert!(g.admits(Some("g")) && !g.admits(Some("h")) && !g.admits(None));
}
