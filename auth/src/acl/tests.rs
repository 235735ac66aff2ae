//! The ACL against docs/protocol.md section 3 and docs/operating.md `[[acl.rules]]`:
//! every allowed row, and its near misses denied.

use super::*;
use crate::token::Role;

fn user(name: &str, groups: &[&str], role: Role) -> Identity {
    Identity {
        user: name.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        role,
        expires_at: u64::MAX,
    }
}

fn alice() -> Identity {
    user("alice", &["team", "ops"], Role::User)
}

fn rule(permission: Permission, action: Action, topic: &str) -> AclRule {
    AclRule {
        permission,
        action,
        topic: topic.to_owned(),
    }
}

fn acl(rules: &[AclRule]) -> Acl {
    Acl::new(rules).unwrap()
}

#[track_caller]
fn pubs(acl: &Acl, who: &Identity, allowed: &[&str], denied: &[&str]) {
    let cid = who.user.as_str();
    for topic in allowed {
        assert!(
            acl.can_publish(who, cid, topic),
            "{} should publish {topic:?}",
            who.user
        );
    }
    for topic in denied {
        assert!(
            !acl.can_publish(who, cid, topic),
            "{} must not publish {topic:?}",
            who.user
        );
    }
}

#[track_caller]
fn subs(acl: &Acl, who: &Identity, allowed: &[&str], denied: &[&str]) {
    let cid = who.user.as_str();
    for filter in allowed {
        assert!(
            acl.can_subscribe(who, cid, filter),
            "{} should subscribe {filter:?}",
            who.user
        );
    }
    for filter in denied {
        assert!(
            !acl.can_subscribe(who, cid, filter),
            "{} must not subscribe {filter:?}",
            who.user
        );
    }
}

// ---- im/: publish ---------------------------------------------------------

#[test]
fn user_publishes_dms_only_as_themselves() {
    pubs(
        &Acl::default(),
        &alice(),
        &[
            "im/dm/bob/alice",
            "im/dm/alice/alice",
            "im/sig/dm/bob/alice",
        ],
        &[
            "im/dm/bob/bob",     // someone else as from
            "im/dm/bob/carol",   // someone else as from
            "im/dm/alice/bob",   // reversed
            "im/dm/+/alice",     // wildcard in a topic name
            "im/dm/bob/+",       // wildcard in a topic name
            "im/dm/#",           // wildcard in a topic name
            "im/dm/b b/alice",   // `to` not an id
            "im/dm//alice",      // empty `to`
            "im/dm/bob",         // too short
            "im/dm/bob/alice/x", // too long
            "im/sig/dm/bob/bob", // signal as someone else
            "im/sig/dm/bob",     // too short
            "IM/dm/bob/alice",   // not the im namespace, and no config rule
        ],
    );
}

#[test]
fn user_publishes_to_own_groups_only() {
    pubs(
        &Acl::default(),
        &alice(),
        &[
            "im/grp/team/alice",
            "im/grp/ops/alice",
            "im/sig/grp/team/alice",
        ],
        &[
            "im/grp/other/alice",     // not a member
            "im/grp/team/bob",        // someone else as from
            "im/grp/+/alice",         // wildcard
            "im/sig/grp/other/alice", // not a member
            "im/sig/grp/team/bob",    // someone else as from
            "im/grp/team",            // too short
        ],
    );
}

#[test]
fn user_publishes_own_presence_and_requests_never_sys() {
    pubs(
        &Acl::default(),
        &alice(),
        &["im/presence/alice", "im/req/alice"],
        &[
            "im/presence/bob",
            "im/req/bob",
            "im/sys/alice",
            "im/sys/bob",
            "im/presence/alice/x",
            "im/req",
            "im",
            "im/",
            "im/other/alice",
        ],
    );
}

// ---- im/: subscribe -------------------------------------------------------

#[test]
fn user_subscribes_to_own_dms() {
    let acl = Acl::default();
    for prefix in ["im/dm", "im/sig/dm"] {
        let allowed: Vec<String> = ["alice/+", "alice/bob", "+/alice", "bob/alice"]
            .iter()
            .map(|rest| format!("{prefix}/{rest}"))
            .collect();
        let denied: Vec<String> = [
            "bob/+", // someone else's inbox
            "+/bob", // someone else's outbox
            "+/+",   // everybody's
            "bob/carol",
            "alice/#", // `#` under im/
            "#",
            "alice", // too short
            "alice/+/x",
            "alice/b b", // not an id
        ]
        .iter()
        .map(|rest| format!("{prefix}/{rest}"))
        .collect();
        let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
        let denied: Vec<&str> = denied.iter().map(String::as_str).collect();
        subs(&acl, &alice(), &allowed, &denied);
    }
}

#[test]
fn user_subscribes_to_own_groups() {
    subs(
        &Acl::default(),
        &alice(),
        &[
            "im/grp/team/+",
            "im/grp/team/bob",
            "im/grp/ops/+",
            "im/sig/grp/team/+",
            "im/sig/grp/ops/carol",
        ],
        &[
            "im/grp/other/+", // not a member
            "im/grp/+/+",     // every group
            "im/grp/+/alice",
            "im/grp/team/#",
            "im/grp/#",
            "im/sig/grp/other/+",
            "im/sig/grp/+/+",
            "im/grp/team",
        ],
    );
}

#[test]
fn user_subscribes_to_presence_and_own_sys() {
    subs(
        &Acl::default(),
        &alice(),
        &[
            "im/presence/+",
            "im/presence/bob",
            "im/presence/alice",
            "im/sys/alice",
            "im/sys/alice/phone",
            "im/sys/alice/+",
            "im/sys/alice/#",
            "im/sys/alice/app/answers",
        ],
        &[
            "im/presence/#",
            "im/presence/+/x",
            "im/sys/bob",
            "im/sys/bob/phone",
            "im/sys/bob/#",
            "im/sys/+",
            "im/sys/+/phone",
            "im/sys/#",
            "im/req/alice", // nobody but the server
            "im/req/+",
        ],
    );
}

#[test]
fn user_cannot_sweep_the_im_namespace() {
    // Even an allow-everything config rule changes nothing for im/.
    let acl = acl(&[rule(Permission::Allow, Action::All, "#")]);
    subs(
        &acl,
        &alice(),
        &["anything/else"],
        &[
            "#",
            "im/#",
            "im/+",
            "im/+/alice/+",
            "im/+/+/+",
            "+/dm/alice/+",
            "+/#",
            "+",
            "$share/g/im/dm/alice/+", // shared subscriptions under im/: back-ends only
            "$share/g/#",
        ],
    );
    pubs(
        &acl,
        &alice(),
        &["anything/else"],
        &["im/sys/alice", "im/dm/bob/bob"],
    );
}

#[test]
fn admin_has_user_rights_in_im() {
    let admin = user("root", &["team"], Role::Admin);
    let acl = Acl::default();
    pubs(
        &acl,
        &admin,
        &["im/dm/bob/root", "im/grp/team/root"],
        &["im/dm/bob/alice", "im/sys/root"],
    );
    subs(
        &acl,
        &admin,
        &["im/dm/root/+", "im/sys/root"],
        &["im/#", "im/dm/bob/+", "im/sys/alice"],
    );
}

#[test]
fn users_that_are_not_ids_own_nothing() {
    // A hand-built identity (say, for an anonymous client) named `+` must not
    // turn `im/sys/+` into "my" inbox.
    let plus = user("+", &[], Role::User);
    subs(&Acl::default(), &plus, &[], &["im/sys/+", "im/dm/+/+"]);
    let empty = user("", &[], Role::User);
    pubs(
        &Acl::default(),
        &empty,
        &[],
        &["im/dm/bob/", "im/presence/"],
    );
}

// ---- im/: back-ends -------------------------------------------------------

#[test]
fn service_and_bridge_act_for_anybody_in_im() {
    let acl = Acl::default();
    for role in [Role::Service, Role::Bridge] {
        let bot = user("history", &[], role);
        pubs(
            &acl,
            &bot,
            &[
                "im/dm/bob/carol",
                "im/grp/any/alice",
                "im/sys/alice",
                "im/presence/bob",
                "im/x",
            ],
            &["im/dm/+/carol", "im/#", "$SYS/x", "elsewhere/x", ""],
        );
        subs(
            &acl,
            &bot,
            &[
                "im/#",
                "im/+/+/+",
                "im/req/+",
                "im/sys/alice",
                "$share/workers/im/dm/#",
                "$share/workers/im/#",
            ],
            &[
                "#", // reaches outside im/: no config rule allows it
                "+/dm/#",
                "elsewhere/#",
                "$SYS/#",
                "$share/workers/$SYS/#",
                "$share//im/#", // empty share name
                "$share/w+/im/#",
                "$share/workers",
                "$share/workers/",
                "$queue/im/#",
                "im/#/x",
            ],
        );
    }
}

#[test]
fn nobody_publishes_to_the_ingress_and_only_services_read_it() {
    // Whatever the config allows outside im/, the ingress is not a user's.
    let open = acl(&[rule(Permission::Allow, Action::All, "#")]);
    let ingress = [
        "im/ingress/dm/bob/alice",
        "im/ingress/grp/team/alice",
        "im/ingress/x",
    ];
    for who in [
        alice(),
        user("root", &[], Role::Admin),
        user("svc", &[], Role::Service),
        user("br", &[], Role::Bridge),
    ] {
        pubs(&open, &who, &[], &ingress);
    }
    subs(
        &open,
        &alice(),
        &[],
        &[
            "im/ingress/dm/bob/alice",
            "im/ingress/dm/alice/+",
            "im/ingress/dm/+/alice",
            "im/ingress/grp/team/+",
            "im/ingress/#",
            "$share/g/im/ingress/dm/+/+",
            "$share/roost-ingress-dm/im/ingress/dm/+/+",
            "#",
            "+/ingress/dm/+/+",
        ],
    );
    subs(
        &open,
        &user("svc", &[], Role::Service),
        &[
            "$share/roost-ingress-dm/im/ingress/dm/+/+",
            "im/ingress/grp/+/+",
        ],
        &[],
    );
}

#[test]
fn service_wildcard_first_level_needs_config_for_the_rest() {
    let bot = user("bot", &[], Role::Service);
    let acl = acl(&[rule(Permission::Allow, Action::Subscribe, "#")]);
    subs(&acl, &bot, &["#", "+/dm/#", "$share/w/#"], &["$SYS/#"]);
    let narrow = self::acl(&[rule(Permission::Allow, Action::Subscribe, "devices/#")]);
    subs(&narrow, &bot, &["devices/#"], &["#", "+/x"]);
}

// ---- config rules ---------------------------------------------------------

fn device_rules() -> Acl {
    acl(&[
        rule(Permission::Allow, Action::All, "devices/{user}/#"),
        rule(Permission::Allow, Action::Subscribe, "groups/{group}/+"),
        rule(
            Permission::Allow,
            Action::Publish,
            "clients/{client}/status",
        ),
        rule(Permission::Deny, Action::All, "public/secret/#"),
        rule(Permission::Allow, Action::All, "public/#"),
    ])
}

#[test]
fn user_placeholder() {
    let acl = device_rules();
    pubs(
        &acl,
        &alice(),
        &["devices/alice/temp", "devices/alice", "devices/alice/a/b/c"],
        &["devices/bob/temp", "devices", "devices/alicex/t"],
    );
    subs(
        &acl,
        &alice(),
        &[
            "devices/alice/#",
            "devices/alice/temp/+",
            "devices/alice",
            "devices/alice/+",
        ],
        &[
            "devices/+/temp",
            "devices/#",
            "devices/+",
            "devices/bob/#",
            "+/alice/#",
        ],
    );
}

#[test]
fn group_placeholder_needs_membership_not_a_wildcard() {
    let acl = device_rules();
    subs(
        &acl,
        &alice(),
        &["groups/team/+", "groups/ops/x"],
        &[
            "groups/other/+",
            "groups/+/+",
            "groups/+/x",
            "groups/team/#",
            "groups/team",
        ],
    );
    // The rule is for subscribe only.
    pubs(&acl, &alice(), &[], &["groups/team/x"]);
}

#[test]
fn client_placeholder_is_the_client_id() {
    let acl = device_rules();
    let a = alice();
    assert!(acl.can_publish(&a, "alice:phone", "clients/alice:phone/status"));
    assert!(acl.can_publish(&a, "alice", "clients/alice/status"));
    assert!(!acl.can_publish(&a, "alice", "clients/alice:phone/status"));
    assert!(!acl.can_publish(&a, "alice:phone", "clients/alice/status"));
    assert!(!acl.can_publish(&a, "", "clients//status"));
    // Publish-only rule.
    assert!(!acl.can_subscribe(&a, "alice:phone", "clients/alice:phone/status"));
}

#[test]
fn deny_rules_overlap_allow_rules_cover() {
    let acl = device_rules();
    pubs(
        &acl,
        &alice(),
        &["public/news", "public/secretive"],
        &["public/secret", "public/secret/x"],
    );
    subs(
        &acl,
        &alice(),
        &["public/news/+", "public/news"],
        &[
            "public/+/x", // includes public/secret/x
            "public/#",   // includes public/secret/...
            "public/+",   // includes public/secret (`#` matches its parent)
            "public/secret/+",
            "public/+/#",
        ],
    );
}

#[test]
fn deny_rule_with_placeholder() {
    let acl = acl(&[
        rule(Permission::Deny, Action::Subscribe, "devices/{user}/secret"),
        rule(Permission::Allow, Action::Subscribe, "devices/#"),
    ]);
    subs(
        &acl,
        &alice(),
        &[
            "devices/bob/secret",
            "devices/alice/public",
            "devices/+/public",
        ],
        &[
            "devices/alice/secret",
            "devices/+/secret",
            "devices/#",
            "devices/alice/+",
        ],
    );
}

#[test]
fn first_match_decides() {
    let allow_first = acl(&[
        rule(Permission::Allow, Action::All, "a/#"),
        rule(Permission::Deny, Action::All, "a/b"),
    ]);
    pubs(&allow_first, &alice(), &["a/b", "a/c"], &[]);
    let deny_first = acl(&[
        rule(Permission::Deny, Action::All, "a/b"),
        rule(Permission::Allow, Action::All, "a/#"),
    ]);
    pubs(&deny_first, &alice(), &["a/c"], &["a/b"]);
    subs(
        &deny_first,
        &alice(),
        &["a/c", "a/c/#"],
        &["a/#", "a/+", "a/b"],
    );
}

#[test]
fn actions_are_separate() {
    let acl = acl(&[
        rule(Permission::Allow, Action::Publish, "p/#"),
        rule(Permission::Allow, Action::Subscribe, "s/#"),
    ]);
    pubs(&acl, &alice(), &["p/x"], &["s/x"]);
    subs(&acl, &alice(), &["s/x"], &["p/x"]);
}

#[test]
fn nothing_matching_is_denied() {
    pubs(&Acl::default(), &alice(), &[], &["devices/alice", "a", "/"]);
    subs(&Acl::default(), &alice(), &[], &["devices/alice", "a/#"]);
    pubs(&device_rules(), &alice(), &[], &["other/topic"]);
}

#[test]
fn config_rules_never_apply_under_im() {
    let allow_im = acl(&[rule(Permission::Allow, Action::All, "im/#")]);
    pubs(
        &allow_im,
        &alice(),
        &["im/dm/bob/alice"],
        &["im/sys/alice", "im/dm/bob/bob"],
    );
    subs(
        &allow_im,
        &alice(),
        &["im/sys/alice"],
        &["im/dm/bob/+", "im/#"],
    );
    let deny_im = acl(&[
        rule(Permission::Deny, Action::All, "im/#"),
        rule(Permission::Allow, Action::All, "#"),
    ]);
    pubs(&deny_im, &alice(), &["im/dm/bob/alice", "x/y"], &[]);
    subs(&deny_im, &alice(), &["im/sys/alice", "x/#"], &["#"]);
    let svc = user("svc", &[], Role::Service);
    subs(&deny_im, &svc, &["#", "im/#"], &[]);
}

#[test]
fn shared_subscriptions_outside_im_follow_config() {
    let acl = device_rules();
    subs(
        &acl,
        &alice(),
        &["$share/g/devices/alice/#", "$share/g/public/news"],
        &[
            "$share/g/devices/bob/#",
            "$share/g/public/#",
            "$share/g/$SYS/#",
            "$share/g/$share/h/devices/alice/#",
            "$share/g",
            "$share/g/",
            "$share//devices/alice/#",
            "$share/g#/devices/alice/#",
            "$SHARE/g/devices/alice/#",
        ],
    );
}

#[test]
fn internal_shared_groups_are_for_services_only() {
    let acl = acl(&[rule(Permission::Allow, Action::All, "#")]);
    let internal = [
        "$share/roost-history-dm/devices/alice/#",
        "$share/roost-history-dm/im/dm/+/+",
        "$share/roost-x/devices/alice/x",
    ];
    subs(&acl, &alice(), &["$share/mine/devices/alice/#"], &internal);
    subs(&acl, &user("b", &[], Role::Bridge), &[], &internal);
    subs(&acl, &user("a", &[], Role::Admin), &[], &internal);
    subs(&acl, &user("h", &[], Role::Service), &internal, &[]);
}

#[test]
fn dollar_topics_are_denied() {
    let acl = acl(&[rule(Permission::Allow, Action::All, "#")]);
    let svc = user("svc", &[], Role::Service);
    for who in [alice(), svc] {
        pubs(&acl, &who, &[], &["$SYS/broker/load", "$share/g/x", "$x"]);
        subs(
            &acl,
            &who,
            &[],
            &["$SYS/#", "$SYS/broker/+", "$share/g/$SYS/#", "$"],
        );
    }
}

#[test]
fn malformed_topics_and_filters_are_denied() {
    let acl = acl(&[rule(Permission::Allow, Action::All, "#")]);
    pubs(
        &acl,
        &alice(),
        &["a", "a//b", "/"],
        &["", "a/+", "a/#", "+", "#", "a+b", "a#", "a\0b"],
    );
    subs(
        &acl,
        &alice(),
        &["a/#", "a//+"],
        &["", "a/#/b", "a+b", "a/b#", "#/a", "a/++", "a\0"],
    );
}

// ---- rules: validation and serde -----------------------------------------

#[test]
fn invalid_rules_are_named_by_index() {
    let cases = [
        ("a/#/b", "`#` must be the last level"),
        ("a/b+", "whole level"),
        ("devices/{user}x", "placeholders"),
        ("devices/{users}", "placeholders"),
        ("$SYS/#", "`$SYS`"),
        ("", "empty"),
    ];
    for (topic, problem) in cases {
        let rules = [
            rule(Permission::Allow, Action::All, "ok/#"),
            rule(Permission::Deny, Action::Publish, topic),
        ];
        let err = Acl::new(&rules).unwrap_err();
        let AclError::InvalidRule { index, .. } = &err;
        assert_eq!(*index, 1, "{topic:?}");
        let message = err.to_string();
        assert!(message.starts_with("acl.rules[1]"), "{message}");
        assert!(message.contains(problem), "{topic:?}: {message}");
    }
}

#[test]
fn rules_that_reach_into_im_are_accepted() {
    for topic in ["im/#", "im/dm/+/+", "#", "+/dm/#", "{user}/#"] {
        assert!(
            Acl::new(&[rule(Permission::Allow, Action::All, topic)]).is_ok(),
            "{topic}"
        );
    }
}

#[test]
fn rules_deserialize_strictly() {
    let r: AclRule = serde_json::from_str(
        r#"{"permission": "allow", "action": "all", "topic": "devices/{user}/#"}"#,
    )
    .unwrap();
    assert_eq!(r, rule(Permission::Allow, Action::All, "devices/{user}/#"));
    let r: AclRule =
        serde_json::from_str(r#"{"permission": "deny", "action": "subscribe", "topic": "x"}"#)
            .unwrap();
    assert_eq!(
        (r.permission, r.action),
        (Permission::Deny, Action::Subscribe)
    );
    for bad in [
        r#"{"permission": "allow", "action": "all", "topic": "x", "extra": 1}"#,
        r#"{"permission": "Allow", "action": "all", "topic": "x"}"#,
        r#"{"permission": "allow", "action": "read", "topic": "x"}"#,
        r#"{"permission": "allow", "action": "all"}"#,
    ] {
        assert!(serde_json::from_str::<AclRule>(bad).is_err(), "{bad}");
    }
}

/// `$` topics other than `$SYS` and `$share` are application topics: a rule naming them
/// governs them, a rule starting with a wildcard or placeholder never does (MQTT: `#` and
/// `+` at the first level do not match `$` topics).
#[test]
fn dollar_topics_follow_rules_that_name_them() {
    let all = |topic| rule(Permission::Allow, Action::All, topic);
    let open = acl(&[all("#"), all("+/x")]);
    pubs(&open, &alice(), &["app/x"], &["$app/x", "$SYS/x"]);
    subs(&open, &alice(), &["app/#"], &["$app/#", "$app/x", "$SYS/#"]);

    let named = acl(&[all("$app/#"), all("#")]);
    pubs(
        &named,
        &alice(),
        &["$app/x", "$app/a/b"],
        &["$other/x", "$SYS/x", "$share/g/x"],
    );
    subs(
        &named,
        &alice(),
        &["$app/#", "$app/+", "$share/g/$app/#"],
        &["$other/#", "$SYS/#", "$share/g/$SYS/#"],
    );
    for reserved in ["$SYS/#", "$share/g/x"] {
        assert!(Acl::new(&[all(reserved)]).is_err(), "{reserved}");
    }
}
