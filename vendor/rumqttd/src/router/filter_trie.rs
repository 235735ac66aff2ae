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

    /// ROOST PATCH: takes `filter` (indexed as `idx`) out, with the nodes only it needed, so
    /// churning through distinct filters leaves no nodes behind. Iterative: a filter's depth
    /// is the client's choice.
    pub fn remove(&mut self, filter: &str, idx: FilterIdx) {
        let (path, multi) = match filter.strip_suffix('#') {
            Some(rest) if rest.is_empty() || rest.ends_with('/') => (rest, true),
            _ => (filter, false),
        };
        let steps: Vec<&str> = match (path.strip_suffix('/'), multi) {
            (_, true) if path.is_empty() => Vec::new(),
            (Some(path), true) => path.split('/').collect(),
            _ => path.split('/').collect(),
        };

        // Find the node at the end of the path, and the deepest node on the way that holds
        // more than the next step: the branch below it is this filter's alone.
        let mut node = &self.root;
        let mut cut = None;
        for (depth, step) in steps.iter().enumerate() {
            if node.entries() > 1 {
                cut = Some(depth);
            }
            node = match node.next(step) {
                Some(next) => next,
                None => return,
            };
        }
        let end = if multi { node.multi } else { node.here };
        if end != Some(idx) {
            return;
        }
        if node.entries() > 1 || steps.is_empty() {
            cut = None;
        } else if cut.is_none() {
            cut = Some(0);
        }

        let mut node = &mut self.root;
        let depth = cut.unwrap_or(steps.len());
        for step in &steps[..depth] {
            node = match node.next_mut(step) {
                Some(next) => next,
                None => return,
            };
        }
        match cut {
            None if multi => node.multi = None,
            None => node.here = None,
            Some(_) => node.unlink(steps[depth]),
        }
    }

    /// ROOST PATCH: no filter indexed (for tests).
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.root.entries() == 0
    }

    /// Indexes of the filters matching `topic`, with the semantics of `protocol::matches`:
    /// a topic starting with `$` is matched only by filters naming its first level, and
    /// `a/#` matches `a` as well.
    pub fn matches(&self, topic: &str) -> Vec<FilterIdx> {
        let mut out = Vec::new();
        let levels: Vec<&str> = topic.split('/').collect();
        if topic.starts_with('$') {
            let child = self.root.children.as_ref().and_then(|c| c.get(levels[0]));
            if let Some(child) = child {
                collect(child, &levels[1..], &mut out);
            }
            return out;
        }
        collect(&self.root, &levels, &mut out);
        out
    }
}

impl Node {
    /// How many things hang here: filters ending here, `#`, `+` and named children.
    fn entries(&self) -> usize {
        usize::from(self.here.is_some())
            + usize::from(self.multi.is_some())
            + usize::from(self.single.is_some())
            + self.children.as_ref().map_or(0, |c| c.len())
    }

    fn next(&self, step: &str) -> Option<&Node> {
        match step {
            "+" => self.single.as_deref(),
            _ => self.children.as_ref()?.get(step),
        }
    }

    fn next_mut(&mut self, step: &str) -> Option<&mut Node> {
        match step {
            "+" => self.single.as_deref_mut(),
            _ => self.children.as_mut()?.get_mut(step),
        }
    }

    fn unlink(&mut self, step: &str) {
        if step == "+" {
            self.single = None;
            return;
        }
        if let Some(children) = self.children.as_mut() {
            children.remove(step);
            if children.is_empty() {
                self.children = None;
            } else if children.capacity() > 4 * children.len() {
                children.shrink_to_fit();
            }
        }
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
            "a/b",
            "a/+",
            "a/#",
            "#",
            "+/b",
            "a/+/c",
            "+",
            "a",
            "a/b/c/#",
            "+/+/+",
            "im/dm/bob/+",
            "im/dm/+/bob",
            "$app/#",
            "$app/x",
            "$app/+",
            "+/x",
        ];
        let topics = [
            "a",
            "a/b",
            "a/c",
            "a/b/c",
            "a/b/c/d",
            "b",
            "b/b",
            "im/dm/bob/alice",
            "im/dm/alice/bob",
            "$SYS/x",
            "$app/x",
            "$app",
            "",
            "a//b",
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

    /// ROOST PATCH: `$app/x` reaches `$app/#`, `$app/+` and `$app/x`; never `#` or `+/x`.
    #[test]
    fn dollar_topics_match_only_filters_naming_their_first_level() {
        let filters = ["#", "+/x", "$app/#", "$app/+", "$app/x", "app/x"];
        let mut trie = FilterTrie::default();
        for (i, f) in filters.iter().enumerate() {
            trie.insert(f, i);
        }
        let mut got = trie.matches("$app/x");
        got.sort();
        assert_eq!(got, vec![2, 3, 4]);
        for (i, f) in filters.iter().enumerate() {
            assert_eq!(matches("$app/x", f), got.contains(&i), "{f}");
        }
        assert!(trie.matches("$SYS/x").is_empty());
    }

    #[test]
    fn removing_filters_leaves_no_nodes_and_keeps_the_others() {
        let filters = [
            "a/b",
            "a/+",
            "a/#",
            "#",
            "+/b",
            "a/+/c",
            "+",
            "a",
            "a/b/c/#",
            "im/dm/bob/+",
            "x//y",
        ];
        let mut trie = FilterTrie::default();
        for (i, f) in filters.iter().enumerate() {
            trie.insert(f, i);
        }
        for (i, f) in filters.iter().enumerate() {
            // A wrong index removes nothing.
            trie.remove(f, i + 100);
            trie.remove(f, i);
            let left: Vec<usize> = (i + 1..filters.len()).collect();
            for topic in ["a", "a/b", "a/b/c", "a/b/c/d", "b/b", "im/dm/bob/x", "x//y"] {
                let mut got = trie.matches(topic);
                got.sort();
                let want: Vec<usize> = left
                    .iter()
                    .copied()
                    .filter(|&j| matches(topic, filters[j]))
                    .collect();
                assert_eq!(got, want, "after removing {f:?}, topic {topic:?}");
            }
        }
        assert!(trie.is_empty());
        assert!(trie.root.children.is_none() && trie.root.single.is_none());
    }
}
