//! Prometheus metrics served on `/metrics`.
//!
//! Names (all prefixed `roost_`): `connections` (gauge), `sign_ins_total{result, reason}`,
//! `messages_in_total`, `messages_out_total`, `acl_denials_total{action}`, `payloads_refused_total{code}`,
//! `protocol_errors_total{cause}`, `slow_consumers_total`, `limit_refusals_total{limit}`,
//! `http_refused_total{reason}`, `standby_active` (gauge), `standby_changes_total{to}`; with
//! `[cluster]`: `cluster_nats_connected` and `cluster_subjects` (gauges),
//! `cluster_sent_total`, `cluster_received_total`, `cluster_duplicates_dropped_total`. The
//! history's (`roost_history::metrics`) render here too.
//! Every metric is described, so each has a `# HELP` line.

use metrics::{describe_counter, describe_gauge, Counter, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Handles of the counters every message moves, taken once the recorder is installed:
/// `counter!` looks its key up in the recorder's registry on each call, twice per message
/// (BENCHMARKS.md, "dmmax"). A handle counts into the same storage as the lookup would
/// (the recorder keeps every metric; it has no idle timeout). Before `install`, the
/// lookup goes on as before.
struct PerMessage {
    messages_in: Counter,
    messages_out: Counter,
}

static PER_MESSAGE: OnceLock<PerMessage> = OnceLock::new();

/// Installs the process-wide recorder once and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed, in which case ours stays unused.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            PER_MESSAGE.get_or_init(|| PerMessage {
                messages_in: metrics::counter!("roost_messages_in_total"),
                messages_out: metrics::counter!("roost_messages_out_total"),
            });
            handle
        })
        .clone()
}

pub fn sign_in_accepted() {
    metrics::counter!("roost_sign_ins_total", "result" => "accepted", "reason" => "ok")
        .increment(1);
}

pub fn sign_in_refused(reason: &'static str) {
    metrics::counter!("roost_sign_ins_total", "result" => "refused", "reason" => reason)
        .increment(1);
}

pub fn connections(delta: f64) {
    metrics::gauge!("roost_connections").increment(delta);
}

pub fn message_in() {
    match PER_MESSAGE.get() {
        Some(handles) => handles.messages_in.increment(1),
        None => metrics::counter!("roost_messages_in_total").increment(1),
    }
}

pub fn messages_out(n: u64) {
    match PER_MESSAGE.get() {
        Some(handles) => handles.messages_out.increment(n),
        None => metrics::counter!("roost_messages_out_total").increment(n),
    }
}

pub fn acl_denied(action: &'static str) {
    metrics::counter!("roost_acl_denials_total", "action" => action).increment(1);
}

pub fn payload_refused(code: &'static str) {
    metrics::counter!("roost_payloads_refused_total", "code" => code).increment(1);
}

/// Something refused because a resource limit (`[limits]`) was reached.
pub fn limit_refused(limit: &'static str) {
    metrics::counter!("roost_limit_refusals_total", "limit" => limit).increment(1);
}

pub fn protocol_error(cause: &'static str) {
    metrics::counter!("roost_protocol_errors_total", "cause" => cause).increment(1);
}

/// A connection closed because its client took nothing written to it in time.
pub fn slow_consumer() {
    metrics::counter!("roost_slow_consumers_total").increment(1);
}

/// An HTTP connection refused (`max_connections`) or closed before its request head was
/// complete (`header_timeout`).
pub fn http_refused(reason: &'static str) {
    metrics::counter!("roost_http_refused_total", "reason" => reason).increment(1);
}

/// An elastic standby started serving (`true`) or went back to rest.
pub fn standby_active(active: bool) {
    metrics::gauge!("roost_standby_active").set(if active { 1.0 } else { 0.0 });
    let to = if active { "active" } else { "rest" };
    metrics::counter!("roost_standby_changes_total", "to" => to).increment(1);
}

/// An elastic standby at start: at rest.
pub fn standby_resting() {
    metrics::gauge!("roost_standby_active").set(0.0);
}

/// The cluster bridge's counts, copied from its stats once a second (`bridge_link`).
/// `cluster_subjects` is what a node's NATS subscriptions cost memory by: async-nats keeps
/// a channel per subject (BENCHMARKS.md, "Cluster").
pub fn cluster(stats: &roost_bridge::Stats, nats_connected: bool) {
    let count = |n: &AtomicU64| n.load(Ordering::Relaxed);
    metrics::gauge!("roost_cluster_nats_connected").set(if nats_connected { 1.0 } else { 0.0 });
    metrics::gauge!("roost_cluster_subjects").set(count(&stats.subjects) as f64);
    metrics::counter!("roost_cluster_sent_total").absolute(count(&stats.sent));
    metrics::counter!("roost_cluster_received_total").absolute(count(&stats.delivered));
    metrics::counter!("roost_cluster_duplicates_dropped_total").absolute(count(&stats.duplicates));
}

/// The `# HELP` line of every metric the node exports.
fn describe() {
    describe_gauge!(
        "roost_connections",
        Unit::Count,
        "Signed-in MQTT connections."
    );
    describe_counter!(
        "roost_sign_ins_total",
        Unit::Count,
        "CONNECTs accepted, or refused by reason."
    );
    describe_counter!(
        "roost_messages_in_total",
        Unit::Count,
        "PUBLISHes from clients passed to the router."
    );
    describe_counter!(
        "roost_messages_out_total",
        Unit::Count,
        "Messages delivered to clients."
    );
    describe_counter!(
        "roost_acl_denials_total",
        Unit::Count,
        "Publishes and subscriptions the ACL refused, by action."
    );
    describe_counter!(
        "roost_payloads_refused_total",
        Unit::Count,
        "Chat payloads refused before routing, by notice code."
    );
    describe_counter!(
        "roost_protocol_errors_total",
        Unit::Count,
        "Connections closed for breaking the protocol, by cause."
    );
    describe_counter!(
        "roost_slow_consumers_total",
        Unit::Count,
        "Connections closed because the client took nothing within limits.write_timeout."
    );
    describe_counter!(
        "roost_limit_refusals_total",
        Unit::Count,
        "Things refused because a [limits] bound was reached, by limit."
    );
    describe_counter!(
        "roost_http_refused_total",
        Unit::Count,
        "HTTP connections or calls refused, by reason (max_connections, header_timeout, calls)."
    );
    describe_counter!(
        "roost_offline_queue_dropped_total",
        Unit::Count,
        "Messages dropped from an offline session's bounded queue, by QoS."
    );
    describe_gauge!(
        "roost_standby_active",
        Unit::Count,
        "An elastic standby node ([cluster] standby): 1 while it takes users, 0 at rest."
    );
    describe_counter!(
        "roost_standby_changes_total",
        Unit::Count,
        "An elastic standby's changes, by what it changed to (active, rest)."
    );
    describe_gauge!(
        "roost_cluster_nats_connected",
        Unit::Count,
        "[cluster]: 1 while the node's NATS connection is up, 0 while it serves its own clients only."
    );
    describe_gauge!(
        "roost_cluster_subjects",
        Unit::Count,
        "[cluster]: NATS subjects the node subscribes for its local subscriptions."
    );
    describe_counter!(
        "roost_cluster_sent_total",
        Unit::Count,
        "[cluster]: local publishes put on NATS."
    );
    describe_counter!(
        "roost_cluster_received_total",
        Unit::Count,
        "[cluster]: messages from other nodes handed to local subscribers."
    );
    describe_counter!(
        "roost_cluster_duplicates_dropped_total",
        Unit::Count,
        "[cluster]: extra copies of one message (matching several subjects held here) dropped."
    );
    roost_history::metrics::describe();
}
