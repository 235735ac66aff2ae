//! The SQL-building helpers the store's statements share: numbered placeholder
//! lists (portable `$n`, chunked to stay under both databases' bind limits), the
//! conversation ids of a user's groups.

use crate::{Conv, HistoryError};

/// Rows per multi-row statement (keeps bind parameters well under both
/// databases' limits: 7 columns x 500 = 3,500).
pub(super) const ROWS_PER_STATEMENT: usize = 500;

pub(super) fn check_conv(conv: &Conv) -> Result<(), HistoryError> {
    if conv.is_valid() {
        Ok(())
    } else {
        Err(HistoryError::InvalidConversation(conv.to_string()))
    }
}

/// `grp:{g}` for each distinct valid group id.
pub(super) fn group_convs(groups: &[String]) -> Vec<String> {
    let mut out: Vec<String> = groups
        .iter()
        .filter(|g| roost_proto::id::is_valid_id(g))
        .map(|g| format!("grp:{g}"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `($s, $s+1), ($s+2, $s+3), ...`: `rows` tuples of `cols` numbered placeholders.
pub(super) fn placeholders(rows: usize, cols: usize, start: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 6);
    let mut n = start;
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('$');
            s.push_str(&n.to_string());
            n += 1;
        }
        s.push(')');
    }
    s
}

/// `$s, $s+1, ...`: `count` numbered placeholders.
pub(super) fn numbered(count: usize, start: usize) -> String {
    (start..start + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_lists() {
        assert_eq!(placeholders(2, 2, 1), "($1, $2), ($3, $4)");
        assert_eq!(placeholders(1, 3, 4), "($4, $5, $6)");
        assert_eq!(numbered(3, 2), "$2, $3, $4");
    }
}
