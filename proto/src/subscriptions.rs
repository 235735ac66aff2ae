//! The shared subscriptions a history service takes, as data: the node sizes the router's
//! logs by their filters, the in-node service and `roost history-worker` subscribe to
//! their paths, and nobody takes a `$share/...` string apart.

/// One shared subscription: `$share/{group}/{filter}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedSubscription {
    pub group: &'static str,
    pub filter: &'static str,
}

impl SharedSubscription {
    /// `$share/{group}/{filter}`, what is sent in the SUBSCRIBE.
    pub fn path(&self) -> String {
        format!("$share/{}/{}", self.group, self.filter)
    }
}

/// The history service's subscriptions under direct delivery (`[history] delivery =
/// "direct"`): chat in DMs, chat in groups, requests. Each filter has a group name of its
/// own: rumqttd keys shared groups by name alone, so one name over two filters loses
/// messages.
pub const HISTORY: [SharedSubscription; 3] = [
    SharedSubscription {
        group: "roost-history-dm",
        filter: "im/dm/+/+",
    },
    SharedSubscription {
        group: "roost-history-grp",
        filter: "im/grp/+/+",
    },
    SharedSubscription {
        group: "roost-history-req",
        filter: "im/req/+",
    },
];

/// The history service's subscriptions under stamped delivery: chat arrives on the ingress
/// topics ([`crate::topic::INGRESS_PREFIX`]), and the service publishes the stamped copy on
/// the stored topic itself, which it must then not read. Group names differ from
/// [`HISTORY`]'s, so services of both kinds never share a group over two filters.
pub const INGRESS: [SharedSubscription; 3] = [
    SharedSubscription {
        group: "roost-ingress-dm",
        filter: "im/ingress/dm/+/+",
    },
    SharedSubscription {
        group: "roost-ingress-grp",
        filter: "im/ingress/grp/+/+",
    },
    HISTORY[2],
];

/// The subscriptions of a history service: [`INGRESS`] under stamped delivery, else
/// [`HISTORY`].
pub fn history(stamped: bool) -> [SharedSubscription; 3] {
    if stamped {
        INGRESS
    } else {
        HISTORY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_distinct_groups() {
        let paths: Vec<String> = HISTORY.iter().map(SharedSubscription::path).collect();
        assert_eq!(
            paths,
            [
                "$share/roost-history-dm/im/dm/+/+",
                "$share/roost-history-grp/im/grp/+/+",
                "$share/roost-history-req/im/req/+"
            ]
        );
        let every: Vec<_> = HISTORY.iter().chain(&INGRESS[..2]).collect();
        for (i, a) in every.iter().enumerate() {
            assert!(every[i + 1..].iter().all(|b| b.group != a.group));
        }
    }

    #[test]
    fn ingress_filters_cover_the_ingress_topics() {
        let paths: Vec<String> = history(true).iter().map(SharedSubscription::path).collect();
        assert_eq!(
            paths,
            [
                "$share/roost-ingress-dm/im/ingress/dm/+/+",
                "$share/roost-ingress-grp/im/ingress/grp/+/+",
                "$share/roost-history-req/im/req/+"
            ]
        );
        assert_eq!(history(false), HISTORY);
        assert_eq!(
            crate::topic::ingress("im/dm/b/a").as_deref(),
            Some("im/ingress/dm/b/a")
        );
    }
}
