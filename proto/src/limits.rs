//! The numbers of the contract (docs/protocol.md), in one place so that the node, the
//! history service and the HTTP API cannot drift apart.

/// Longest user, group or device id, in bytes (ids are ASCII, so also in characters).
pub const MAX_ID_LEN: usize = 64;
/// Longest chat message `id` (and `reply_to`), in characters (Unicode scalar values).
pub const MAX_MESSAGE_ID_CHARS: usize = 64;
/// Largest chat payload, in bytes.
pub const MAX_CHAT_PAYLOAD: usize = 64 * 1024;

/// `history` returns at most this many messages per page.
pub const MAX_HISTORY_LIMIT: u32 = 100;
/// `history` page size when the request names none.
pub const DEFAULT_HISTORY_LIMIT: u32 = 50;
/// `sync` returns at most this many messages per page.
pub const MAX_SYNC_LIMIT: u32 = 500;
/// `sync` page size when the request names none.
pub const DEFAULT_SYNC_LIMIT: u32 = 100;
/// `conversations` returns at most this many conversations per page.
pub const MAX_CONVERSATIONS_LIMIT: u32 = 200;
/// `conversations` page size when the request names none.
pub const DEFAULT_CONVERSATIONS_LIMIT: u32 = 100;
/// A page of `history`, `sync` or `conversations` holds about this many bytes of payloads
/// at most (always at least one item); the rest is for the next page.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The page size of a `history` request (or HTTP query) asking for `requested`: the
/// default when absent, otherwise clamped to `1..=MAX_HISTORY_LIMIT`.
pub fn history_limit(requested: Option<i64>) -> u32 {
    page_size(requested, DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT)
}

/// The page size of a `sync` request asking for `requested`: the default when absent,
/// otherwise clamped to `1..=MAX_SYNC_LIMIT`.
pub fn sync_limit(requested: Option<i64>) -> u32 {
    page_size(requested, DEFAULT_SYNC_LIMIT, MAX_SYNC_LIMIT)
}

/// The page size of a `conversations` request asking for `requested`: the default when
/// absent, otherwise clamped to `1..=MAX_CONVERSATIONS_LIMIT`.
pub fn conversations_limit(requested: Option<i64>) -> u32 {
    page_size(
        requested,
        DEFAULT_CONVERSATIONS_LIMIT,
        MAX_CONVERSATIONS_LIMIT,
    )
}

fn page_size(requested: Option<i64>, default: u32, max: u32) -> u32 {
    match requested {
        None => default,
        // In 1..=max, so the cast is lossless.
        Some(n) => n.clamp(1, i64::from(max)) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_clamped() {
        assert_eq!(history_limit(None), 50);
        assert_eq!(history_limit(Some(0)), 1);
        assert_eq!(history_limit(Some(-5)), 1);
        assert_eq!(history_limit(Some(7)), 7);
        assert_eq!(history_limit(Some(1_000)), MAX_HISTORY_LIMIT);
        assert_eq!(history_limit(Some(i64::MAX)), MAX_HISTORY_LIMIT);
        assert_eq!(sync_limit(None), 100);
        assert_eq!(sync_limit(Some(0)), 1);
        assert_eq!(sync_limit(Some(499)), 499);
        assert_eq!(sync_limit(Some(i64::MIN)), 1);
        assert_eq!(sync_limit(Some(501)), MAX_SYNC_LIMIT);
        assert_eq!(conversations_limit(None), 100);
        assert_eq!(conversations_limit(Some(0)), 1);
        assert_eq!(conversations_limit(Some(201)), MAX_CONVERSATIONS_LIMIT);
    }
}
