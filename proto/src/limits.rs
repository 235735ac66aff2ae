//! The numbers of the contract (docs/protocol.md), in one place so that the node, the
//! history service and the HTTP API cannot drift apart.

use crate::request::RequestError;

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
/// default when absent; a limit outside `1..=MAX_HISTORY_LIMIT` is refused.
pub fn history_limit(requested: Option<i64>) -> Result<u32, RequestError> {
    page_size(requested, DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT)
}

/// The page size of a `sync` request asking for `requested`: the default when absent; a
/// limit outside `1..=MAX_SYNC_LIMIT` is refused.
pub fn sync_limit(requested: Option<i64>) -> Result<u32, RequestError> {
    page_size(requested, DEFAULT_SYNC_LIMIT, MAX_SYNC_LIMIT)
}

/// The page size of a `conversations` request asking for `requested`: the default when
/// absent; a limit outside `1..=MAX_CONVERSATIONS_LIMIT` is refused.
pub fn conversations_limit(requested: Option<i64>) -> Result<u32, RequestError> {
    page_size(
        requested,
        DEFAULT_CONVERSATIONS_LIMIT,
        MAX_CONVERSATIONS_LIMIT,
    )
}

/// Out of range is an `invalid_request`, not clamped: a client asking for 1,000 and
/// silently getting 100 would take `more` for a bug.
fn page_size(requested: Option<i64>, default: u32, max: u32) -> Result<u32, RequestError> {
    match requested {
        None => Ok(default),
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| RequestError::invalid(format!("limit must be 1 to {max}, not {n}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_out_of_range_are_refused() {
        assert_eq!(history_limit(None), Ok(50));
        assert_eq!(history_limit(Some(1)), Ok(1));
        assert_eq!(history_limit(Some(7)), Ok(7));
        assert_eq!(history_limit(Some(100)), Ok(MAX_HISTORY_LIMIT));
        for bad in [0, -5, 101, 1_000, i64::MAX, i64::MIN] {
            let e = history_limit(Some(bad)).unwrap_err();
            assert_eq!(e.code, "invalid_request");
            assert_eq!(e.message, format!("limit must be 1 to 100, not {bad}"));
        }
        assert_eq!(sync_limit(None), Ok(100));
        assert_eq!(sync_limit(Some(500)), Ok(500));
        assert!(sync_limit(Some(0)).is_err());
        assert!(sync_limit(Some(501)).is_err());
        assert_eq!(conversations_limit(None), Ok(100));
        assert_eq!(conversations_limit(Some(200)), Ok(200));
        assert!(conversations_limit(Some(0)).is_err());
        assert!(conversations_limit(Some(201)).is_err());
    }
}
