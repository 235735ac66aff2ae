//! The history's Prometheus metrics. The node renders them on `/metrics` (the recorder is
//! process-wide); [`describe`] gives each its `# HELP` line.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Messages newly committed (duplicates of stored ones not counted).
pub(crate) fn stored(n: u64) {
    metrics::counter!("roost_history_stored_total").increment(n);
}

/// The size of a batch the service stored in one transaction.
pub(crate) fn batch(messages: usize) {
    metrics::histogram!("roost_history_batch_size").record(messages as f64);
}

/// Requests waiting for their answer.
pub(crate) fn queue_depth(waiting: usize) {
    metrics::gauge!("roost_history_queue_depth").set(waiting as f64);
}

/// Whether the history database answered the last time it was used or pinged.
pub fn database_up(up: bool) {
    metrics::gauge!("roost_history_database_up").set(if up { 1.0 } else { 0.0 });
}

/// Describes the history's metrics (call once the recorder is installed), and makes the
/// counters and the queue gauge show from the start, at 0.
pub fn describe() {
    describe_counter!(
        "roost_history_stored_total",
        Unit::Count,
        "Chat messages committed to the history database (duplicates not counted)."
    );
    describe_histogram!(
        "roost_history_batch_size",
        Unit::Count,
        "Messages per batch the history service stored in one transaction."
    );
    describe_gauge!(
        "roost_history_queue_depth",
        Unit::Count,
        "Requests (history, sync, conversations, read) waiting for their answer."
    );
    describe_gauge!(
        "roost_history_database_up",
        "1 while the history database answers, 0 while it is away."
    );
    describe_counter!(
        "roost_history_refused_total",
        Unit::Count,
        "Chat messages the history service dropped instead of storing, by reason."
    );
    describe_counter!(
        "roost_history_requests_refused_total",
        Unit::Count,
        "Requests answered rate_limited, by reason (rate, queue)."
    );
    metrics::counter!("roost_history_stored_total").absolute(0);
    queue_depth(0);
}
