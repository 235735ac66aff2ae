//! ROOST PATCH: an index from subscription filters to their commit logs.
//!
//! Upstream matched every newly seen topic against every filter (and kept every topic ever
//! published in a cache, and walked that cache on every new filter). With one inbox filter
//! per user and one topic per pair of users, both grow without bound and make connects and
//! first messages cost O(users). A trie over topic levels answers "which filters match this
//! topic" in time proportional to the topic's depth and the wildcards on its path.

use std::collections::HashMap;

use super::FilterIdx;

#[derive(Default)]
pub struct FilterTrie {
    root: Node,
}

/// Kept small: there is a node per user-specific level (`im/dm/{user}`, `im/sys/{user}`...),
/// so thousands of them, and most are leaves.
#[derive(Default)]
struct Node {
    /// Filters that end exactly here.
    here: Option<FilterIdx>,
    /// A `#` filter below this node: matches this level and everything under it.
    multi: Option<FilterIdx>,
    /// `+` at the next level.
    single: Option<Box<Node>>,
    children: Option<Box<HashMap<Box<str>, Node>>>,
}

impl FilterTrie {
    pub fn insert(&mut self, filter: &str, idx: FilterIdx) {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            match level {
                "#" => {
                    node.multi = Some(idx);
                    return;
                }
                "+" => node = node.single.get_or_insert_with(Default::default),
                _ => {
                    node = node
                        .children
                        .get_or_insert_with(Default::default)
                        .entry(level.into())
                        .or_default()
                }
            }
        }
        node.here = Some(idx);
    }

    /// Indexes of the filters matching `topic`, with the semantics of `protocol::matches`:
    /// topics starting with `$` match nothing, and `a/#` matches `a` as well.
    pub fn matches(&self, topic: &str) -> Vec<FilterIdx> {
        let mut out = Vec::new();
        if topic.starts_with('$') {
            return out;
        }
        let levels: Vec<&str> = topic.split('/').collect();
        collect(&self.root, &levels, &mut out);
        out
    }
}

fn collect(node: &Node, levels: &[&str], out: &mut Vec<FilterIdx>) {
    out.extend(node.multi);
    let Some((first, rest)) = levels.split_first() else {
        out.extend(node.here);
        return;
    };
    if let Some(child) = node.children.as_ref().and_then(|c| c.get(*first)) {
        collect(child, rest, out);
    }
    if let Some(single) = &node.single {
        collect(single, rest, out);
    }
}

#[cfg(test)]
mod test {
    use super::FilterTrie;
    use crate::protocol::matches;

    #[test]
    fn agrees_with_protocol_matches() {
        let filters = [
            "a/b", "a/+", "a/#", "#", "+/b", "a/+/c", "+", "a", "a/b/c/#", "+/+/+", "im/dm/bob/+",
            "im/dm/+/bob",
        ];
        let topics = [
            "a", "a/b", "a/c", "a/b/c", "a/b/c/d", "b", "b/b", "im/dm/bob/alice", "im/dm/alice/bob",
            "$SYS/x", "", "a//b",
        ];
        let mut trie = FilterTrie::default();
        for (i, f) in filters.iter().enumerate() {
            trie.insert(f, i);
        }
        for topic in topics {
            let mut got = trie.matches(topic);
            got.sort();
            let want: Vec<usize> = (0..filters.len())
                .filter(|&i| matches(topic, filters[i]))
                .collect();
            assert_eq!(got, want, "topic {topic:?}");
        }
    }
}
