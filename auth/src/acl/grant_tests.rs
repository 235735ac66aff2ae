//! Partial grants of root wildcards ([`Acl::subscribe_grant`]) and the per-delivery check
//! behind them ([`Acl::can_read`]): granted when something readable outside `im/` could
//! match, never widening what a user reads under `im/`.

use super::*;
use crate::token::Role;

fn who(name: &str, groups: &[&str]) -> Identity {
    Identity {
        user: name.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        role: Role::User,
        expires_at: u64::MAX,
    }
}

fn rule(permission: Permission, action: Action, topic: &str) -> AclRule {
    AclRule {
        permission,
        action,
        topic: topic.to_owned(),
    }
}

/// Open mode as docs/operating.md shows it, with a private corner and per-user devices.
fn open() -> Acl {
    Acl::new(&[
        rule(Permission::Allow, Action::All, "devices/{user}/#"),
        rule(Permission::Deny, Action::All, "devices/#"),
        rule(Permission::Deny, Action::Subscribe, "private/#"),
        rule(Permission::Allow, Action::All, "#"),
    ])
    .unwrap()
}

#[test]
fn root_wildcards_are_granted_partially_when_something_is_readable() {
    let acl = open();
    let carol = who("carol", &[]);
    for filter in ["#", "+/+", "+/#", "+/+/+/+", "$share/g/#", "$share/g/+/x"] {
        assert_eq!(
            acl.subscribe_grant(&carol, "carol", filter),
            Grant::Partial,
            "{filter}"
        );
    }
    // Filters the rules allow whole stay full, those under `im/` all or nothing.
    for filter in [
        "public/#",
        "devices/carol/#",
        "im/dm/carol/+",
        "im/presence/+",
    ] {
        assert_eq!(acl.subscribe_grant(&carol, "carol", filter), Grant::Full);
    }
    for filter in [
        "im/#",
        "im/+/carol/+",
        "im/dm/+/+",
        "private/#",
        "devices/#",
        "$SYS/#",
        "$share/roost-history-dm/#",
        "$share/g",
        "a/#/b",
    ] {
        assert_eq!(
            acl.subscribe_grant(&carol, "carol", filter),
            Grant::Denied,
            "{filter}"
        );
    }
}

#[test]
fn a_root_wildcard_that_can_match_nothing_readable_is_refused() {
    let carol = who("carol", &[]);
    // The built-in rules only: nothing outside `im/` is readable.
    let builtin = Acl::new(&[]).unwrap();
    for filter in ["#", "+/+", "+/dm/carol/+", "$share/g/#"] {
        assert_eq!(
            builtin.subscribe_grant(&carol, "carol", filter),
            Grant::Denied,
            "{filter}"
        );
    }
    let devices = Acl::new(&[rule(Permission::Allow, Action::All, "devices/{user}/#")]).unwrap();
    assert_eq!(
        devices.subscribe_grant(&carol, "carol", "+/carol/#"),
        Grant::Partial
    );
    assert_eq!(
        devices.subscribe_grant(&carol, "carol", "+/bob/#"),
        Grant::Denied
    );
    assert_eq!(devices.subscribe_grant(&carol, "carol", "+"), Grant::Denied);
    // A deny rule covering the whole filter first.
    let closed = Acl::new(&[
        rule(Permission::Deny, Action::Subscribe, "#"),
        rule(Permission::Allow, Action::All, "#"),
    ])
    .unwrap();
    assert_eq!(closed.subscribe_grant(&carol, "carol", "#"), Grant::Denied);
    // Publish-only rules grant no reading.
    let write_only = Acl::new(&[rule(Permission::Allow, Action::Publish, "#")]).unwrap();
    assert_eq!(
        write_only.subscribe_grant(&carol, "carol", "#"),
        Grant::Denied
    );
}

#[test]
fn each_delivery_is_checked_against_the_read_rights() {
    let acl = open();
    let carol = who("carol", &["team"]);
    let readable = [
        "news",
        "a/b/c/d",
        "devices/carol/temp",
        "im/dm/carol/alice",
        "im/dm/alice/carol",
        "im/grp/team/alice",
        "im/presence/bob",
        "im/sys/carol",
    ];
    for topic in readable {
        assert!(acl.can_read(&carol, "carol", topic), "{topic}");
    }
    let unreadable = [
        "im/dm/bob/alice",
        "im/sig/dm/bob/alice",
        "im/grp/other/alice",
        "im/sys/bob",
        "im/req/carol",
        "devices/bob/temp",
        "private/x",
        "$SYS/broker/uptime",
        "$app/x",
        "a/+",
        "#",
        "",
    ];
    for topic in unreadable {
        assert!(!acl.can_read(&carol, "carol", topic), "{topic}");
    }
}

/// A scope that lets everyone see only "friend".
#[derive(Debug)]
struct OnlyFriend;

impl PresenceScope for OnlyFriend {
    fn sees(&self, _viewer: &Identity, user: &str) -> bool {
        user == "friend"
    }
}

#[test]
fn a_presence_scope_screens_presence_filters_and_deliveries() {
    let plain = open();
    let acl = open().with_presence_scope(Arc::new(OnlyFriend));
    let carol = who("carol", &[]);
    let service = Identity {
        role: Role::Service,
        ..who("history", &[])
    };
    // Without a scope: whole, and everyone readable.
    assert_eq!(
        plain.subscribe_grant(&carol, "carol", "im/presence/+"),
        Grant::Full
    );
    assert!(plain.can_read(&carol, "carol", "im/presence/stranger"));
    // With one: other people's presence is granted partially, one's own whole.
    for filter in [
        "im/presence/+",
        "im/presence/stranger",
        "im/presence/friend",
    ] {
        assert_eq!(
            acl.subscribe_grant(&carol, "carol", filter),
            Grant::Partial,
            "{filter}"
        );
    }
    assert_eq!(
        acl.subscribe_grant(&carol, "carol", "im/presence/carol"),
        Grant::Full
    );
    assert_eq!(
        acl.subscribe_grant(&carol, "carol", "im/dm/carol/+"),
        Grant::Full
    );
    assert_eq!(
        acl.subscribe_grant(&service, "history", "im/presence/+"),
        Grant::Full
    );
    // Each delivery asks the scope; one's own and services' are never screened.
    assert!(acl.can_read(&carol, "carol", "im/presence/friend"));
    assert!(!acl.can_read(&carol, "carol", "im/presence/stranger"));
    assert!(acl.can_read(&carol, "carol", "im/presence/carol"));
    assert!(acl.can_read(&service, "history", "im/presence/stranger"));
    // Root wildcards read presence through the same check.
    assert_eq!(acl.subscribe_grant(&carol, "carol", "#"), Grant::Partial);
    assert!(!acl.can_read(&carol, "carol", "im/presence/stranger"));
    assert!(acl.can_read(&carol, "carol", "public/news"));
}
