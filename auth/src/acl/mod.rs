//! Who may publish and subscribe where.
//!
//! Two regimes, split on the first topic level:
//! - `im/...` follows only the built-in rules of the wire contract
//!   (docs/protocol.md section 3), whatever the config says;
//! - every other topic follows the configured `[[acl.rules]]`, in order, the
//!   first matching rule deciding, and nothing matching means deny.
//!
//! The history service's ingress (`im/ingress/...`, stamped delivery) takes no publish
//! from anyone, and only `service` tokens may subscribe to it.
//!
//! `$SYS` topics are denied; shared subscriptions (`$share/{name}/{filter}`)
//! are judged by their filter. Other `$` topics (`$app/...`) follow the rules
//! like any topic, except that a rule starting with a wildcard or placeholder
//! never covers them (as `#` does not match them in MQTT); group names
//! starting with `roost-` belong to the node's own services (the history
//! service shares `roost-history-*`), so only `service` tokens may use them.
//!
//! A root wildcard (`#`, `+/...`, also shared) that the rules do not allow whole
//! is still granted *partially* when it could match a topic outside `im/` the
//! config lets the user read ([`Acl::subscribe_grant`]); the broker then checks
//! every delivery with [`Acl::can_read`], as Mosquitto checks each delivered
//! message. Filters under `im/` stay all or nothing.
//!
//! With a [`PresenceScope`] (`[presence] visibility = "groups"`), presence filters
//! (`im/presence/+`, `im/presence/{user}`) are granted partially too: each delivery of
//! someone else's presence is checked against the scope ([`presence`]).

mod builtin;
mod filter;
mod presence;

#[cfg(test)]
mod grant_tests;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::token::{Identity, Role};
use filter::{filter_levels, topic_levels, Pattern, Subject};
pub use presence::PresenceScope;
use presence::{needs_screening, presence_user};
use roost_proto::topic::is_reserved;
use std::sync::Arc;

/// One `[[acl.rules]]` entry of the config.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// Allow or deny when the rule matches.
    pub permission: Permission,
    /// Which operations the rule is about.
    pub action: Action,
    /// An MQTT filter; `{user}`, `{client}` and `{group}` may stand for whole
    /// levels.
    pub topic: String,
}

/// What a matching rule decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Let it through.
    Allow,
    /// Refuse it.
    Deny,
}

/// The operation a rule is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// PUBLISH to a topic.
    Publish,
    /// SUBSCRIBE with a filter.
    Subscribe,
    /// Both.
    All,
}

impl Action {
    fn applies_to(self, operation: Action) -> bool {
        self == Action::All || self == operation
    }
}

/// A configured rule that is not usable.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// The rule's topic is not a valid filter or misuses a placeholder.
    #[error("acl.rules[{index}] (topic `{topic}`): {problem}")]
    InvalidRule {
        /// Position in `[[acl.rules]]`, from 0.
        index: usize,
        /// The rule's topic as configured.
        topic: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// How much of a SUBSCRIBE filter the user may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Everything the filter can match: deliveries need no check.
    Full,
    /// Some of it: each delivery must pass [`Acl::can_read`].
    Partial,
    /// Nothing (or a filter the rules refuse outright): SUBACK 0x80 / 0x87.
    Denied,
}

/// The compiled access rules. Cheap to query; build once per config.
#[derive(Clone, Debug, Default)]
pub struct Acl {
    rules: Vec<Rule>,
    /// Whose presence each user sees; `None`: everyone's.
    presence: Option<Arc<dyn PresenceScope>>,
}

#[derive(Clone, Debug)]
struct Rule {
    permission: Permission,
    action: Action,
    pattern: Pattern,
}

impl Acl {
    /// Validates and compiles the configured rules, keeping their order.
    ///
    /// Rules whose topic starts with `im/` are accepted but can never apply
    /// (that namespace has its own rules); a warning says so.
    pub fn new(rules: &[AclRule]) -> Result<Acl, AclError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            let pattern = Pattern::parse(&rule.topic).map_err(|problem| AclError::InvalidRule {
                index,
                topic: rule.topic.clone(),
                problem,
            })?;
            if pattern.is_im_only() {
                tracing::warn!(
                    "acl.rules[{index}] (topic `{}`) never applies: topics under im/ follow \
                     the built-in rules",
                    rule.topic
                );
                continue;
            }
            compiled.push(Rule {
                permission: rule.permission,
                action: rule.action,
                pattern,
            });
        }
        Ok(Acl {
            rules: compiled,
            presence: None,
        })
    }

    /// From now on a user reads someone else's presence only when `scope` says so.
    pub fn with_presence_scope(mut self, scope: Arc<dyn PresenceScope>) -> Acl {
        self.presence = Some(scope);
        self
    }

    /// May `who`, connected as `client_id`, publish to `topic`?
    pub fn can_publish(&self, who: &Identity, client_id: &str, topic: &str) -> bool {
        // The history service's ingress is the node's to fill (stamped delivery): whatever
        // arrives there is stored and delivered in the sender's name, so not even a
        // service may publish there itself.
        if is_reserved(topic) || roost_proto::topic::is_ingress(topic) {
            return false;
        }
        let Some(levels) = topic_levels(topic) else {
            return false;
        };
        if levels.first() == Some(&"im") {
            return builtin::may_publish(who, &levels);
        }
        self.decide(Action::Publish, &levels, &Subject { who, client_id })
    }

    /// May `who`, connected as `client_id`, subscribe with `filter`?
    pub fn can_subscribe(&self, who: &Identity, client_id: &str, filter: &str) -> bool {
        let (filter, shared) = match filter.strip_prefix('$') {
            Some(rest) if rest.starts_with("share") => match shared_filter(rest) {
                Some((group, _)) if is_internal_group(group) && who.role != Role::Service => {
                    return false
                }
                Some((_, inner)) => (inner, true),
                None => return false,
            },
            _ => (filter, false),
        };
        if is_reserved(filter) {
            return false;
        }
        let Some(levels) = filter_levels(filter) else {
            return false;
        };
        let subject = Subject { who, client_id };
        match levels.first().copied() {
            // Shared subscriptions under im/ are for back-ends (e.g. a pool of
            // history workers), never for users.
            Some("im") => {
                who.role.is_trusted_backend() || (!shared && builtin::may_subscribe(who, &levels))
            }
            // `#`, `+/dm/...` also reach into im/: that part needs a back-end
            // role, and the rest must be allowed by the config.
            Some("+" | "#") => {
                who.role.is_trusted_backend() && self.decide(Action::Subscribe, &levels, &subject)
            }
            _ => self.decide(Action::Subscribe, &levels, &subject),
        }
    }

    /// May `who`, connected as `client_id`, receive a message published to
    /// `topic`? The per-delivery check behind a [`Grant::Partial`] filter.
    pub fn can_read(&self, who: &Identity, client_id: &str, topic: &str) -> bool {
        // A concrete topic is a filter matching only itself.
        let Some(levels) = topic_levels(topic) else {
            return false;
        };
        if !self.can_subscribe(who, client_id, topic) {
            return false;
        }
        match (&self.presence, presence_user(&levels)) {
            (Some(scope), Some(user)) if needs_screening(who, &levels) => scope.sees(who, user),
            _ => true,
        }
    }

    /// How much of `filter` `who`, connected as `client_id`, may read.
    ///
    /// [`Grant::Full`] when [`Acl::can_subscribe`] allows it (a presence filter under a
    /// [`PresenceScope`]: [`Grant::Partial`]). Otherwise a
    /// root wildcard (first level `+` or `#`, shared or not) is [`Grant::Partial`]
    /// when some config rule could allow a topic outside `im/` it matches; every
    /// other filter, notably anything under `im/`, is [`Grant::Denied`] as before.
    pub fn subscribe_grant(&self, who: &Identity, client_id: &str, filter: &str) -> Grant {
        if self.can_subscribe(who, client_id, filter) {
            let screened = self.presence.is_some()
                && filter_levels(filter).is_some_and(|levels| needs_screening(who, &levels));
            return if screened {
                Grant::Partial
            } else {
                Grant::Full
            };
        }
        let inner = match filter.strip_prefix('$') {
            None => filter,
            Some(rest) => match shared_filter(rest) {
                Some((group, _)) if is_internal_group(group) && who.role != Role::Service => {
                    return Grant::Denied
                }
                Some((_, inner)) => inner,
                None => return Grant::Denied,
            },
        };
        let Some(levels) = filter_levels(inner) else {
            return Grant::Denied;
        };
        if !matches!(levels.first(), Some(&("+" | "#"))) {
            return Grant::Denied;
        }
        if self.may_read_some(&levels, &Subject { who, client_id }) {
            Grant::Partial
        } else {
            Grant::Denied
        }
    }

    /// Whether some topic outside `im/` that the root wildcard `request` matches
    /// could be readable: an allow rule overlaps it before any deny rule covers
    /// all of it. It errs towards yes (the deliveries are checked one by one).
    fn may_read_some(&self, request: &[&str], subject: &Subject<'_>) -> bool {
        for rule in &self.rules {
            if !rule.action.applies_to(Action::Subscribe) {
                continue;
            }
            match rule.permission {
                Permission::Allow if rule.pattern.overlaps(request, subject) => return true,
                Permission::Deny if rule.pattern.covers(request, subject) => return false,
                _ => {}
            }
        }
        false
    }

    /// The config rules: the first rule that matches decides, else deny.
    ///
    /// For a subscription an allow rule matches only if it covers everything
    /// the filter can match, while a deny rule matches if it could match any
    /// of it: when in doubt, deny.
    fn decide(&self, operation: Action, request: &[&str], subject: &Subject<'_>) -> bool {
        let dollar = request.first().is_some_and(|first| first.starts_with('$'));
        for rule in &self.rules {
            if !rule.action.applies_to(operation) {
                continue;
            }
            // `#`, `+` and placeholders at the first level do not reach `$` topics.
            if dollar && !rule.pattern.is_dollar() {
                continue;
            }
            let matched = match rule.permission {
                Permission::Allow => rule.pattern.covers(request, subject),
                Permission::Deny => rule.pattern.overlaps(request, subject),
            };
            if matched {
                return rule.permission == Permission::Allow;
            }
        }
        false
    }
}

/// The group name and filter of `share/{name}/{filter}` (after the `$`), if
/// that is what `rest` is and the share name is valid (non-empty, no
/// wildcards).
fn shared_filter(rest: &str) -> Option<(&str, &str)> {
    let rest = rest.strip_prefix("share/")?;
    let (name, filter) = rest.split_once('/')?;
    if name.is_empty() || name.contains(['+', '#']) {
        return None;
    }
    Some((name, filter))
}

/// Shared-subscription groups of the node's own services: joining one takes
/// deliveries away from the service (every second stored DM, say).
pub const INTERNAL_GROUP_PREFIX: &str = "roost-";

fn is_internal_group(name: &str) -> bool {
    name.starts_with(INTERNAL_GROUP_PREFIX)
}
