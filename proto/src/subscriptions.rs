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

/// The history service's subscriptions: chat in DMs, chat in groups, requests. Each filter
/// has a group name of its own: rumqttd keys shared groups by name alone, so one name over
/// two filters loses messages.
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
        for (i, a) in HISTORY.iter().enumerate() {
            assert!(HISTORY[i + 1..].iter().all(|b| b.group != a.group));
        }
    }
}
