//! ROOST PATCH: the bound on a persistent session's offline queue.
//!
//! While a persistent session is away, what it will get is not a queue of its own but its
//! data requests' cursors into the filters' logs: everything appended after them. Upstream
//! delivered all of it on resume, however long the phone had been away. When a session
//! resumes, [`bound`] counts that backlog over all its (non-shared) subscriptions and, past
//! `RouterConfig::max_queued_messages`, marks the excess in each request's `skip` list:
//! the oldest messages that would be delivered at QoS 0 first, then the oldest QoS 1/2
//! ones, so the newest messages and QoS 1/2 ones are kept first. [`skip`] drops those
//! offsets as the request reads them. The drop is logged with the client id and counted
//! in `roost_offline_queue_dropped_total`.

use std::collections::VecDeque;

use tracing::warn;

use super::logs::DataLog;
use super::scheduler::Tracker;
use super::DataRequest;
use crate::protocol::{Publish, PublishProperties};
use crate::Offset;

/// How many messages the bound dropped, by the QoS they would have been delivered at.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub qos0: usize,
    pub qos12: usize,
}

/// Marks what a resumed session's backlog holds beyond `max` messages as skipped.
pub(crate) fn bound(
    datalog: &DataLog,
    tracker: &mut Tracker,
    client_id: &str,
    max: usize,
) -> Dropped {
    // (time, delivered at QoS 1/2, request, offset)
    let mut queued = Vec::new();
    for (i, request) in tracker.data_requests.iter().enumerate() {
        // A shared group's messages are the group's, read through its own cursor.
        if request.group.is_some() {
            continue;
        }
        let own = request.nolocal.then_some(client_id);
        for (at, qos, offset) in datalog.backlog(request.filter_idx, request.cursor, own) {
            queued.push((at, qos.min(request.qos) > 0, i, offset));
        }
    }
    let mut dropped = Dropped::default();
    if queued.len() <= max {
        return dropped;
    }
    let excess = queued.len() - max;
    // QoS 0 (`false`) before QoS 1/2, oldest first; the stable sort keeps log order.
    queued.sort_by_key(|(at, qos12, _, _)| (*qos12, *at));
    let mut skips = vec![Vec::new(); tracker.data_requests.len()];
    for (_, qos12, i, offset) in queued.into_iter().take(excess) {
        skips[i].push(offset);
        if qos12 {
            dropped.qos12 += 1;
        } else {
            dropped.qos0 += 1;
        }
    }
    for (request, mut skip) in tracker.data_requests.iter_mut().zip(skips) {
        if !skip.is_empty() {
            skip.sort_unstable();
            request.skip = Some(Box::new(VecDeque::from(skip)));
        }
    }
    warn!(
        client_id,
        user = %user_of(client_id),
        dropped = dropped.qos0 + dropped.qos12,
        dropped_qos0 = dropped.qos0,
        dropped_qos1_2 = dropped.qos12,
        kept = max,
        "resumed session: offline queue over limits.max_queued_messages, oldest messages dropped"
    );
    roost_metrics::counter!("roost_offline_queue_dropped_total", "qos" => "0")
        .increment(dropped.qos0 as u64);
    roost_metrics::counter!("roost_offline_queue_dropped_total", "qos" => "1-2")
        .increment(dropped.qos12 as u64);
    dropped
}

/// The user a roost client id names: `{user}` or `{user}:{device}`; anonymous clients
/// are `@anon:{id}`, user `anon-{id}`.
fn user_of(client_id: &str) -> String {
    match client_id.strip_prefix("@anon:") {
        Some(id) => format!("anon-{id}"),
        None => client_id.split(':').next().unwrap_or(client_id).to_owned(),
    }
}

/// `read` (from the log at `request`'s cursor) without what the bound dropped.
pub(crate) fn skip(
    request: &mut DataRequest,
    mut read: Vec<((Publish, Option<PublishProperties>), Offset)>,
) -> Vec<((Publish, Option<PublishProperties>), Offset)> {
    let Some(skip) = request.skip.as_deref_mut() else {
        return read;
    };
    read.retain(|(_, offset)| {
        while skip.front().is_some_and(|s| s < offset) {
            skip.pop_front();
        }
        if skip.front() == Some(offset) {
            skip.pop_front();
            return false;
        }
        true
    });
    if skip.is_empty() {
        request.skip = None;
    }
    read
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::protocol::QoS;
    use crate::router::logs::PublishData;
    use crate::RouterConfig;
    use std::sync::Arc;

    fn datalog() -> DataLog {
        DataLog::new(RouterConfig {
            max_segment_size: 1024 * 1024,
            max_segment_count: 10,
            ..Default::default()
        })
        .unwrap()
    }

    fn publish(datalog: &mut DataLog, topic: &str, qos: QoS, n: usize) {
        let mut p = Publish::new(topic.to_owned(), format!("m{n}"), false);
        p.qos = qos;
        let origin: Arc<str> = Arc::from("publisher");
        let data = PublishData::from_client((p, None), origin);
        for idx in datalog.matches(topic).unwrap_or_default() {
            datalog.native.get_mut(idx).unwrap().log.append(data.clone());
        }
    }

    fn request(datalog: &mut DataLog, filter: &str, qos: u8) -> DataRequest {
        let (filter_idx, cursor) = datalog.next_native_offset(filter);
        datalog.add_reader(filter_idx);
        DataRequest {
            filter: filter.to_owned(),
            filter_idx,
            qos,
            cursor,
            read_count: 0,
            max_count: 100,
            forward_retained: false,
            group: None,
            nolocal: false,
            preserve_retain: false,
            skip: None,
            retained: None,
        }
    }

    /// The payloads the request still delivers, reading its whole log.
    fn delivered(datalog: &DataLog, request: &mut DataRequest) -> Vec<String> {
        let (_, read) = datalog
            .native_readv(request.filter_idx, request.cursor, 1000, None, None)
            .unwrap();
        skip(request, read)
            .into_iter()
            .map(|((p, _), _)| String::from_utf8_lossy(&p.payload).into_owned())
            .collect()
    }

    #[test]
    fn oldest_qos0_go_first_then_oldest_qos1_and_the_newest_stay() {
        let mut log = datalog();
        let mut tracker = Tracker::new("alice:phone".into());
        tracker.register_data_request(request(&mut log, "a/+", 1));
        tracker.register_data_request(request(&mut log, "b/#", 1));
        // m0..m9 alternate a/x (QoS 1) and b/y (QoS 0).
        for n in 0..10 {
            let (topic, qos) = if n % 2 == 0 { ("a/x", QoS::AtLeastOnce) } else { ("b/y", QoS::AtMostOnce) };
            publish(&mut log, topic, qos, n);
        }
        // Bound 7: the 3 oldest QoS 0 go (m1, m3, m5).
        let dropped = bound(&log, &mut tracker, "alice:phone", 7);
        assert_eq!(dropped, Dropped { qos0: 3, qos12: 0 });
        let mut requests = tracker.data_requests.clone();
        assert_eq!(delivered(&log, &mut requests[0]), ["m0", "m2", "m4", "m6", "m8"]);
        assert_eq!(delivered(&log, &mut requests[1]), ["m7", "m9"]);
        assert!(requests.iter().all(|r| r.skip.is_none()));

        // Bound 3: all 5 QoS 0 go, then the 2 oldest QoS 1 (m0, m2).
        let mut tracker = Tracker::new("alice:phone".into());
        tracker.register_data_request(request(&mut log, "a/+", 1));
        tracker.register_data_request(request(&mut log, "b/#", 1));
        for r in tracker.data_requests.iter_mut() {
            r.cursor = (0, 0);
        }
        let dropped = bound(&log, &mut tracker, "alice:phone", 3);
        assert_eq!(dropped, Dropped { qos0: 5, qos12: 2 });
        let mut requests = tracker.data_requests.clone();
        assert_eq!(delivered(&log, &mut requests[0]), ["m4", "m6", "m8"]);
        assert!(delivered(&log, &mut requests[1]).is_empty());
    }

    #[test]
    fn a_subscription_at_qos0_counts_as_qos0_and_within_the_bound_nothing_goes() {
        let mut log = datalog();
        let mut tracker = Tracker::new("bob".into());
        tracker.register_data_request(request(&mut log, "a/+", 0));
        tracker.register_data_request(request(&mut log, "b/+", 1));
        publish(&mut log, "b/y", QoS::AtLeastOnce, 0);
        publish(&mut log, "a/x", QoS::AtLeastOnce, 1);
        assert_eq!(bound(&log, &mut tracker, "bob", 2), Dropped::default());
        let dropped = bound(&log, &mut tracker, "bob", 1);
        // m1 would arrive at QoS 0 (the subscription's): it goes, though newer.
        assert_eq!(dropped, Dropped { qos0: 1, qos12: 0 });
        let mut requests = tracker.data_requests.clone();
        assert!(delivered(&log, &mut requests[0]).is_empty());
        assert_eq!(delivered(&log, &mut requests[1]), ["m0"]);
    }

    #[test]
    fn user_of_roost_client_ids() {
        assert_eq!(user_of("alice"), "alice");
        assert_eq!(user_of("alice:phone"), "alice");
        assert_eq!(user_of("@anon:dev1"), "anon-dev1");
    }
}
