//! How the node tells the history service who sent a request.
//!
//! The ACL already proves the requester is the `{me}` of `im/req/{me}`; what the topic
//! cannot carry is the token's groups, which decide which group conversations the user may
//! read. So the node adds these MQTT 5 user properties to every request it routes, after
//! removing any property with the `roost-` prefix that a client sent itself: whatever the
//! service finds under these names was put there by the node.

/// The verified user id.
pub const USER: &str = "roost-user";
/// The token's groups, comma separated (ids never contain commas).
pub const GROUPS: &str = "roost-groups";
/// The token's role.
pub const ROLE: &str = "roost-role";
/// The client id the request came from: its device part names the device the answer goes
/// to (`im/sys/{me}/{device}`).
pub const CLIENT: &str = "roost-client";
/// The v5 Maximum Packet Size the asking client announced: an answer must fit in it.
pub const MAX_PACKET: &str = "roost-max-packet";

/// Set by a history service (`roost history-worker`) on the stamped copy it publishes on a
/// stored topic: the node routes that copy to its recipients as it is, instead of to the
/// history service's ingress (`roost_proto::topic::INGRESS_PREFIX`). Honoured only from
/// `service` tokens, and removed before the copy is routed.
pub const STAMPED: &str = "roost-stamped";

/// Set by the node on a QoS 2 chat message it routes to the history service's ingress: the
/// service reads the ingress at QoS 1, and publishes the stamped copy at the QoS the sender
/// used ([`sent_qos`]).
pub const QOS: &str = "roost-qos";

/// The QoS a chat message was sent with, from its ingress delivery: 2 if the node marked it
/// so ([`QOS`]), else the QoS it was delivered at.
pub fn sent_qos(user_properties: &[(String, String)], delivered_qos: u8) -> u8 {
    if user_properties.iter().any(|(k, v)| k == QOS && v == "2") {
        2
    } else {
        delivered_qos
    }
}

const RESERVED_PREFIX: &str = "roost-";

/// Whether a publish carries [`STAMPED`].
pub fn is_stamped_copy(user_properties: &[(String, String)]) -> bool {
    user_properties.iter().any(|(k, _)| k == STAMPED)
}

/// Removes the properties no client may set (the `roost-` ones): the node does this to
/// every publish it takes from a client.
pub fn strip(user_properties: &mut Vec<(String, String)>) {
    user_properties.retain(|(k, _)| !k.starts_with(RESERVED_PREFIX));
}

/// Stamps the sender's verified identity on a request.
pub fn stamp(
    user_properties: &mut Vec<(String, String)>,
    user: &str,
    groups: &[String],
    role: &str,
) {
    user_properties.extend([
        (USER.to_owned(), user.to_owned()),
        (GROUPS.to_owned(), groups.join(",")),
        (ROLE.to_owned(), role.to_owned()),
    ]);
}

/// Stamps the connection a request came from: its client id and, when the client announced
/// one, its Maximum Packet Size.
pub fn stamp_connection(
    user_properties: &mut Vec<(String, String)>,
    client_id: &str,
    max_packet: Option<u32>,
) {
    user_properties.push((CLIENT.to_owned(), client_id.to_owned()));
    if let Some(max) = max_packet {
        user_properties.push((MAX_PACKET.to_owned(), max.to_string()));
    }
}

/// The client id stamped on a request, if any.
pub fn client(user_properties: &[(String, String)]) -> Option<&str> {
    value(user_properties, CLIENT)
}

/// The asking client's Maximum Packet Size stamped on a request, if any.
pub fn max_packet(user_properties: &[(String, String)]) -> Option<u32> {
    value(user_properties, MAX_PACKET).and_then(|v| v.parse().ok())
}

fn value<'a>(user_properties: &'a [(String, String)], key: &str) -> Option<&'a str> {
    user_properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Whether the request carries the node's stamp for `user`.
pub fn is_stamped_for(user_properties: &[(String, String)], user: &str) -> bool {
    user_properties.iter().any(|(k, v)| k == USER && v == user)
}

/// The groups stamped on a request, or none.
pub fn groups(user_properties: &[(String, String)]) -> Vec<String> {
    user_properties
        .iter()
        .find(|(k, _)| k == GROUPS)
        .map(|(_, v)| {
            v.split(',')
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_client_cannot_forge_the_stamp() {
        let mut p = props(&[
            ("roost-user", "bob"),
            ("roost-groups", "admins"),
            ("x", "1"),
        ]);
        strip(&mut p);
        assert_eq!(p, props(&[("x", "1")]));
        assert!(!is_stamped_for(&p, "bob"));
        stamp(&mut p, "alice", &["g1".into(), "g2".into()], "user");
        assert!(is_stamped_for(&p, "alice"));
        assert!(!is_stamped_for(&p, "bob"));
        assert_eq!(groups(&p), ["g1", "g2"]);
        assert_eq!(
            p,
            props(&[
                ("x", "1"),
                ("roost-user", "alice"),
                ("roost-groups", "g1,g2"),
                ("roost-role", "user")
            ])
        );
    }

    #[test]
    fn qos_2_survives_the_ingress() {
        assert_eq!(sent_qos(&props(&[("roost-qos", "2")]), 1), 2);
        assert_eq!(sent_qos(&props(&[("x", "2")]), 1), 1);
        assert_eq!(sent_qos(&[], 0), 0);
    }

    #[test]
    fn the_asking_connection() {
        let mut p = props(&[("roost-client", "forged"), ("roost-max-packet", "1")]);
        strip(&mut p);
        assert_eq!((client(&p), max_packet(&p)), (None, None));
        stamp_connection(&mut p, "alice:phone", Some(4096));
        assert_eq!(client(&p), Some("alice:phone"));
        assert_eq!(max_packet(&p), Some(4096));
        let mut p = Vec::new();
        stamp_connection(&mut p, "alice", None);
        assert_eq!((client(&p), max_packet(&p)), (Some("alice"), None));
    }

    #[test]
    fn no_groups() {
        let mut p = Vec::new();
        stamp(&mut p, "alice", &[], "service");
        assert!(groups(&p).is_empty());
        assert!(groups(&[]).is_empty());
    }
}
