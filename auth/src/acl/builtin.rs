//! The built-in rules of the `im/` namespace (docs/protocol.md section 3).
//!
//! The sender is part of every chat topic, and these rules only let a user
//! publish where that segment is their own id: the ACL check *is* the
//! anti-spoofing rule, with no payload rewriting. Config rules never reach
//! in here.
//!
//! Both functions take a topic or filter already split and validated by
//! [`super::filter`], whose first level is `im`.

use crate::token::Identity;
use roost_proto::id::is_valid_id;

/// May `who` publish to the `im/` topic `levels`?
pub(crate) fn may_publish(who: &Identity, levels: &[&str]) -> bool {
    if who.role.is_trusted_backend() {
        // Services publish as anybody (bots, history workers, the server's
        // own helpers); the topic just has to be a valid one.
        return true;
    }
    let me = who.user.as_str();
    // An Identity built by hand (e.g. for anonymous clients) might carry a
    // user like `+`; such a user must not own any topic.
    if !is_valid_id(me) {
        return false;
    }
    match levels {
        ["im", "dm", to, from] | ["im", "sig", "dm", to, from] => is_valid_id(to) && *from == me,
        ["im", "grp", group, from] | ["im", "sig", "grp", group, from] => {
            is_group_of(who, group) && *from == me
        }
        // Own status (the server publishes the retained online/offline).
        ["im", "presence", user] => *user == me,
        // Requests to the server.
        ["im", "req", user] => *user == me,
        // Notably `im/sys/...`: the server's voice, never a user's.
        _ => false,
    }
}

/// May `who` subscribe to the `im/` filter `levels`?
///
/// A `+` is accepted only where the contract says "any"; `#` never (it would
/// sweep up other people's conversations under any level).
pub(crate) fn may_subscribe(who: &Identity, levels: &[&str]) -> bool {
    if who.role.is_trusted_backend() {
        return true;
    }
    let me = who.user.as_str();
    if !is_valid_id(me) {
        return false;
    }
    let any = |level: &str| level == "+" || is_valid_id(level);
    match levels {
        // DMs to me, and those I sent from my other devices.
        ["im", "dm", to, from] | ["im", "sig", "dm", to, from] => {
            (*to == me && any(from)) || (*from == me && any(to))
        }
        ["im", "grp", group, from] | ["im", "sig", "grp", group, from] => {
            is_group_of(who, group) && any(from)
        }
        ["im", "presence", user] => any(user),
        ["im", "sys", user] => *user == me,
        // Below my `im/sys/{me}`: answers to one device's requests (`im/sys/{me}/{device}`),
        // or to a v5 Response Topic I named there; `im/sys/{me}/#` takes them all.
        ["im", "sys", user, below @ ..] => *user == me && is_own_subtree(below),
        // `im/req/...` is read by the server only.
        _ => false,
    }
}

/// Levels below `im/sys/{me}` a filter may have: ids, `+`, and a final `#`.
fn is_own_subtree(levels: &[&str]) -> bool {
    let last = levels.len().saturating_sub(1);
    levels
        .iter()
        .enumerate()
        .all(|(i, level)| *level == "+" || (*level == "#" && i == last) || is_valid_id(level))
}

fn is_group_of(who: &Identity, group: &str) -> bool {
    is_valid_id(group) && who.is_member(group)
}
