use super::Ack;
use slab::Slab;
use tracing::{info, trace};

use crate::protocol::{
    matches, ConnAck, ConnAckProperties, PingResp, PubAck, PubComp, PubRec, PubRel, Publish,
    PublishProperties, SubAck, UnsubAck,
};
use crate::router::{DataRequest, FilterIdx, SubscriptionMeter, Waiters};
use crate::{ConnectionId, Filter, Offset, RouterConfig, Topic};

use super::filter_trie::FilterTrie;
use crate::segments::{CommitLog, Position};
use crate::Storage;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

type PubWithProp = (Publish, Option<PublishProperties>);

#[derive(Clone)]
pub struct PublishData {
    pub publish: Publish,
    pub properties: Option<PublishProperties>,
    pub timestamp: Instant,
    /// ROOST PATCH: client id of the publisher, for subscriptions with No Local. One
    /// allocation per publish, shared by every filter's copy.
    pub origin: Option<Arc<str>>,
}

impl From<PubWithProp> for PublishData {
    fn from((publish, properties): PubWithProp) -> Self {
        PublishData {
            publish,
            properties,
            timestamp: Instant::now(),
            origin: None,
        }
    }
}

impl PublishData {
    /// ROOST PATCH: a publish from a client, remembering who sent it (see `origin`).
    pub(crate) fn from_client(publish: PubWithProp, origin: Arc<str>) -> Self {
        PublishData {
            origin: Some(origin),
            ..publish.into()
        }
    }
}

// TODO: remove this from here
impl Storage for PublishData {
    // TODO: calculate size of publish properties as well!
    fn size(&self) -> usize {
        let publish = &self.publish;
        4 + publish.topic.len() + publish.payload.len()
    }
}

/// Stores 'device' data and 'actions' data in native commitlog
/// organized by subscription filter. Device data is replicated
/// while actions data is not
pub struct DataLog {
    pub config: RouterConfig,
    /// Native commitlog data organized by subscription. Contains
    /// device data and actions data logs.
    ///
    /// Device data is replicated while actions data is not.
    /// Also has waiters used to wake connections/replicator tracker
    /// which are caught up with all the data on 'Filter' and waiting
    /// for new data
    pub native: Slab<Data<PublishData>>,
    /// Map of subscription filter name to filter index
    filter_indexes: HashMap<Filter, FilterIdx>,
    retained_publishes: BTreeMap<Topic, PublishData>,
    /// ROOST PATCH: filters indexed by level, instead of a cache of every topic seen.
    filter_trie: FilterTrie,
}

impl DataLog {
    pub fn new(config: RouterConfig) -> io::Result<DataLog> {
        let mut native = Slab::new();
        let mut filter_indexes = HashMap::new();
        let retained_publishes = BTreeMap::new();
        let mut filter_trie = FilterTrie::default();

        if let Some(warmup_filters) = config.initialized_filters.clone() {
            for filter in warmup_filters {
                let data = Data::new(&filter, &config);

                // Add commitlog to datalog and add datalog index to filter to
                // datalog index map
                let idx = native.insert(data);
                filter_trie.insert(&filter, idx);
                filter_indexes.insert(filter, idx);
            }
        }

        Ok(DataLog {
            config,
            native,
            filter_trie,
            filter_indexes,
            retained_publishes,
        })
    }

    /// ROOST PATCH: every filter with a log (for meters).
    pub fn filters(&self) -> Vec<Filter> {
        self.filter_indexes.keys().cloned().collect()
    }

    pub fn meter(&mut self, filter: &str) -> Option<&mut SubscriptionMeter> {
        let data = self.native.get_mut(*self.filter_indexes.get(filter)?)?;
        Some(&mut data.meter)
    }

    pub fn waiters(&self, filter: &Filter) -> Option<&Waiters<DataRequest>> {
        self.native
            .get(*self.filter_indexes.get(filter)?)
            .map(|data| &data.waiters)
    }

    /// ROOST PATCH: takes the request of connection `id` for exactly `subscription` out of
    /// the waiters of its log (a connection may wait on one log for two subscriptions,
    /// `f` and `$share/{group}/f`).
    pub fn take_waiter(&mut self, id: ConnectionId, subscription: &str) -> Option<DataRequest> {
        let waiters = self.log_of(subscription)?.waiters.get_mut();
        let index = waiters
            .iter()
            .position(|(conn_id, request)| *conn_id == id && request.filter == subscription)?;
        waiters.remove(index).map(|(_, request)| request)
    }

    pub fn remove_waiters_for_id(
        &mut self,
        id: ConnectionId,
        filter: &Filter,
    ) -> Option<DataRequest> {
        // ROOST PATCH: a shared subscription waits on its inner filter's log; upstream looked
        // `$share/{group}/{filter}` up by its full name, found nothing and left the waiter
        // behind after UNSUBSCRIBE.
        let waiters = self.log_of(filter)?.waiters.get_mut();

        waiters
            .iter()
            .position(|&(conn_id, _)| conn_id == id)
            .and_then(|index| {
                waiters
                    .swap_remove_back(index)
                    .map(|(_, data_req)| data_req)
            })
    }

    /// Commit logs whose filter matches `topic`.
    pub fn matches(&mut self, topic: &str) -> Option<Vec<usize>> {
        Some(self.filter_trie.matches(topic))
    }

    pub fn next_native_offset(&mut self, filter: &str) -> (FilterIdx, Offset) {
        let (filter_idx, data) = match self.filter_indexes.get(filter) {
            Some(idx) => (*idx, self.native.get(*idx).unwrap()),
            None => {
                let data = Data::new(filter, &self.config);

                // Add commitlog to datalog and add datalog index to filter to
                // datalog index map
                let idx = self.native.insert(data);
                self.filter_indexes.insert(filter.to_owned(), idx);
                self.filter_trie.insert(filter, idx);

                (idx, self.native.get(idx).unwrap())
            }
        };

        (filter_idx, data.log.next_offset())
    }

    pub fn native_readv(
        &self,
        filter_idx: FilterIdx,
        offset: Offset,
        len: u64,
        exclude_origin: Option<&str>,
        group: Option<&str>,
    ) -> io::Result<(Position, Vec<(PubWithProp, Offset)>)> {
        // unwrap to get index of `self.native` is fine here, because when a new subscribe packet
        // arrives in `Router::handle_device_payload`, it first calls the function
        // `next_native_offset` which creates a new commitlog if one doesn't exist. So any new
        // reads will definitely happen on a valid filter.
        let data = self.native.get(filter_idx).unwrap();
        let mut o = Vec::new();
        // TODO: `readv` is infallible but its current return type does not
        // reflect that. Consequently, this method is also infallible.
        // Encoding this information is important so that calling function
        // has more information on how this method behaves.
        let next = data.log.readv(offset, len, &mut o)?;

        let now = Instant::now();
        o.retain_mut(|(pubdata, _)| {
            // ROOST PATCH: No Local: a subscriber's own publishes are skipped (MQTT 5 3.8.3.1).
            if exclude_origin.is_some() && pubdata.origin.as_deref() == exclude_origin {
                return false;
            }
            // ROOST PATCH (28): a publish narrowed to plain subscriptions or one shared
            // group is skipped by the others.
            if !pubdata.publish.scope.admits(group) {
                return false;
            }
            // Keep data if no properties exists, which implies no message expiry!
            let Some(properties) = pubdata.properties.as_mut() else {
                return true;
            };

            // Keep data if there is no message_expiry_interval
            let Some(message_expiry_interval) = properties.message_expiry_interval.as_mut() else {
                return true;
            };

            let time_spent = (now - pubdata.timestamp).as_secs() as u32;

            let is_valid = time_spent < *message_expiry_interval;

            // ignore expired messages
            if is_valid {
                // set message_expiry_interval to (original value - time spent waiting in server)
                // ref: https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html#_Toc3901112
                *message_expiry_interval -= time_spent;
            }

            is_valid
        });

        // no need to include timestamp when returning
        let o = o
            .into_iter()
            .map(|(pubdata, offset)| ((pubdata.publish, pubdata.properties), offset))
            .collect();

        Ok((next, o))
    }

    /// ROOST PATCH: what a reader at `cursor` has still to read from the log `filter_idx`:
    /// each publish's time, QoS and offset, oldest first, without `exclude_origin`'s own
    /// (No Local). For the offline queue bound (`offline_queue`).
    pub(crate) fn backlog(
        &self,
        filter_idx: FilterIdx,
        mut cursor: Offset,
        exclude_origin: Option<&str>,
    ) -> Vec<(Instant, u8, Offset)> {
        let mut backlog = Vec::new();
        let Some(data) = self.native.get(filter_idx) else {
            return backlog;
        };
        let mut batch = Vec::new();
        loop {
            let Ok(next) = data.log.readv(cursor, 1024, &mut batch) else {
                break;
            };
            for (pubdata, offset) in batch.drain(..) {
                if exclude_origin.is_some() && pubdata.origin.as_deref() == exclude_origin {
                    continue;
                }
                // ROOST PATCH (28): the backlog is a plain subscription's.
                if !pubdata.publish.scope.admits(None) {
                    continue;
                }
                backlog.push((pubdata.timestamp, pubdata.publish.qos as u8, offset));
            }
            match next {
                Position::Next { end, .. } if end != cursor => cursor = end,
                _ => break,
            }
        }
        backlog
    }

    pub fn shadow(&mut self, filter: &str) -> Option<PubWithProp> {
        let data = self.native.get_mut(*self.filter_indexes.get(filter)?)?;
        data.log.last().map(|p| (p.publish, p.properties))
    }

    /// This method is called when the subscriber has caught up with the commit log. In which case,
    /// instead of actively checking for commits in each `Router::run_inner` iteration, we instead
    /// wait and only try reading again when new messages have been added to the commit log. This
    /// methods converts a `DataRequest` (which actively reads the commit log in `Router::consume`)
    /// to a `Waiter` (which only reads when notified).
    pub fn park(&mut self, id: ConnectionId, request: DataRequest) {
        // calling unwrap on index here is fine, because only place this function is called is in
        // `Router::consume` method, when the status after reading from commit log of the same
        // filter as `request` is "done", that is, the subscriber has caught up. In other words,
        // there has been atleast 1 call to `native_readv` for the same filter, which means if
        // `native_readv` hasn't paniced, so this won't panic either.
        let data = self.native.get_mut(request.filter_idx).unwrap();
        data.waiters.register(id, request);
    }

    /// ROOST PATCH: a subscription made a data request on its filter's log.
    pub fn add_reader(&mut self, filter_idx: FilterIdx) {
        if let Some(data) = self.native.get_mut(filter_idx) {
            data.readers += 1;
        }
    }

    /// ROOST PATCH: a subscription's data request is gone (unsubscribed, or the end of a
    /// session that is not kept). The last reader leaving drops the filter's log, its trie
    /// node and its meter: upstream kept one per distinct filter ever subscribed, so a client
    /// cycling through filters grew the node without bound (200,000 pairs: 127 MiB).
    /// Filters configured in `initialized_filters` keep an (empty) log.
    pub fn remove_reader(&mut self, subscription: &str) {
        let filter = log_filter(subscription);
        let Some(&idx) = self.filter_indexes.get(filter) else {
            return;
        };
        let Some(data) = self.native.get_mut(idx) else {
            return;
        };
        data.readers = data.readers.saturating_sub(1);
        if data.readers > 0 {
            return;
        }
        data.log.clear();
        let initialized = self
            .config
            .initialized_filters
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == filter));
        if initialized || !data.waiters.waiters().is_empty() {
            return;
        }
        self.native.remove(idx);
        self.filter_trie.remove(filter, idx);
        self.filter_indexes.remove(filter);
        if self.filter_indexes.capacity() > 64
            && self.filter_indexes.capacity() > 4 * self.filter_indexes.len()
        {
            self.filter_indexes.shrink_to_fit();
        }
    }

    /// ROOST PATCH: the index of the log a subscription reads, if it has one.
    pub fn index_of(&self, subscription: &str) -> Option<FilterIdx> {
        self.filter_indexes.get(log_filter(subscription)).copied()
    }

    /// ROOST PATCH: whether `filter_idx` is (still) the log `subscription` reads. A request
    /// can outlive its log (woken into the router's notifications, then unsubscribed), and a
    /// dropped log's index is reused by the next new filter.
    pub fn is_log_of(&self, filter_idx: FilterIdx, subscription: &str) -> bool {
        self.native
            .get(filter_idx)
            .is_some_and(|data| data.filter == log_filter(subscription))
    }

    /// ROOST PATCH: the log a subscription reads (see `log_filter`).
    fn log_of(&mut self, subscription: &str) -> Option<&mut Data<PublishData>> {
        let idx = *self.filter_indexes.get(log_filter(subscription))?;
        self.native.get_mut(idx)
    }

    /// Cleanup a connection from all the waiters
    /// ROOST PATCH: a connection waits only on the logs of its own filters; upstream
    /// walked the waiters of every filter on every disconnect (O(all filters) each).
    /// `filters` are the connection's subscriptions as it made them: a shared subscription
    /// `$share/{group}/{filter}` waits on the log of `{filter}`.
    pub fn clean(&mut self, id: ConnectionId, filters: &HashSet<Filter>) -> Vec<DataRequest> {
        let mut inflight = Vec::new();
        for filter in filters {
            if let Some(data) = self.log_of(filter) {
                inflight.append(&mut data.waiters.remove(id));
            }
        }

        inflight
    }

    pub fn insert_to_retained_publishes(
        &mut self,
        publish: Publish,
        publish_properties: Option<PublishProperties>,
        topic: Topic,
    ) {
        let pub_with_props = (publish, publish_properties);
        self.retained_publishes.insert(topic, pub_with_props.into());
    }

    pub fn remove_from_retained_publishes(&mut self, topic: Topic) {
        self.retained_publishes.remove(&topic);
    }

    /// ROOST PATCH: upstream walked every retained message (and expired them all) on every
    /// subscribe; a filter without wildcards now looks its one topic up, and only the
    /// retained messages a filter matches are checked for expiry.
    pub fn read_retained_messages(&mut self, filter: &str) -> Vec<PubWithProp> {
        trace!(info = "reading retain msg", filter = &filter);
        let now = Instant::now();

        let topics: Vec<Topic> = if let Some(wild) = filter.find(['+', '#']) {
            // ROOST PATCH: retained topics are kept sorted, and only those that start with
            // the filter's literal levels can match: `im/dm/+/bob` looks at `im/dm/...`, not
            // at every user's retained presence.
            // Without its last `/`: `a/#` also matches the topic `a`.
            let prefix = filter[..wild].strip_suffix('/').unwrap_or(&filter[..wild]);
            self.retained_publishes
                .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .map(|(topic, _)| topic)
                .take_while(|topic| topic.starts_with(prefix))
                .filter(|topic| matches(topic, filter))
                .cloned()
                .collect()
        } else if self.retained_publishes.contains_key(filter) && matches(filter, filter) {
            vec![filter.to_owned()]
        } else {
            Vec::new()
        };

        let mut out = Vec::with_capacity(topics.len());
        for topic in topics {
            let Some(pubdata) = self.retained_publishes.get_mut(&topic) else {
                continue;
            };
            if let Some(expiry) = pubdata
                .properties
                .as_mut()
                .and_then(|p| p.message_expiry_interval.as_mut())
            {
                let time_spent = (now - pubdata.timestamp).as_secs() as u32;
                if time_spent >= *expiry {
                    self.retained_publishes.remove(&topic);
                    continue;
                }
                // set message_expiry_interval to (original value - time spent waiting in server)
                // ref: https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html#_Toc3901112
                *expiry -= time_spent;
                pubdata.timestamp = now;
            }
            out.push((pubdata.publish.clone(), pubdata.properties.clone()));
        }
        out
    }
}

/// ROOST PATCH: the filter whose log a subscription reads: `$share/{group}/{filter}` reads
/// the log of `{filter}`, any other subscription the log of its own filter.
pub(crate) fn log_filter(subscription: &str) -> &str {
    subscription
        .strip_prefix("$share/")
        .and_then(|s| s.split_once('/'))
        .map_or(subscription, |(_group, filter)| filter)
}

pub struct Data<T> {
    filter: Filter,
    pub log: CommitLog<T>,
    pub waiters: Waiters<DataRequest>,
    meter: SubscriptionMeter,
    /// ROOST PATCH: data requests reading this log: live subscriptions and those of persistent
    /// sessions waiting in the graveyard. With none, nothing appended needs keeping.
    pub readers: usize,
}

impl<T> Data<T>
where
    T: Storage + Clone,
{
    pub fn new(filter: &str, router_config: &RouterConfig) -> Data<T> {
        let mut max_segment_size = router_config.max_segment_size;
        let mut max_mem_segments = router_config.max_segment_count;

        // Override segment config for selected filter. ROOST PATCH: exact filters only;
        // upstream matched the filter as a topic against the key, so a key `a/+/+` also
        // gave every `a/x/+` filter its (large) log size.
        if let Some(config) = &router_config.custom_segment {
            for (f, segment_config) in config {
                if filter == f {
                    info!("Overriding segment config for filter: {}", filter);
                    max_segment_size = segment_config.max_segment_size;
                    max_mem_segments = segment_config.max_segment_count;
                }
            }
        }

        // max_segment_size: usize, max_mem_segments: usize
        let log = CommitLog::new(max_segment_size, max_mem_segments).unwrap();

        // ROOST PATCH: grow on demand; upfront capacity here cost tens of KiB per idle client.
        let waiters = Waiters::with_capacity(0);
        let metrics = SubscriptionMeter::default();
        Data {
            filter: filter.to_owned(),
            log,
            readers: 0,
            waiters,
            meter: metrics,
        }
    }

    /// Writes to all the filters that are mapped to this publish topic
    /// and wakes up consumers that are matching this topic (if they exist)
    pub fn append(
        &mut self,
        item: T,
        notifications: &mut VecDeque<(ConnectionId, DataRequest)>,
    ) -> (Offset, &Filter) {
        let size = item.size();
        let offset = self.log.append(item);
        // ROOST PATCH: a filter nobody reads keeps nothing (a user who is offline).
        if self.readers == 0 {
            self.log.clear();
        }
        if let Some(mut parked) = self.waiters.take() {
            notifications.append(&mut parked);
        }

        self.meter.count += 1;
        self.meter.total_size += size;

        (offset, &self.filter)
    }
}

/// Acks log for a subscription
#[derive(Debug)]
pub struct AckLog {
    // Committed acks per connection. First pkid, last pkid, data
    committed: VecDeque<Ack>,
    // Recorded qos 2 publishes
    recorded: VecDeque<(Publish, Option<PublishProperties>)>,
}

impl AckLog {
    /// New log
    pub fn new() -> AckLog {
        AckLog {
            // ROOST PATCH: grow on demand; upfront capacity here cost tens of KiB per idle client.
            committed: VecDeque::new(),
            recorded: VecDeque::new(),
        }
    }

    pub fn connack(&mut self, id: ConnectionId, ack: ConnAck, props: Option<ConnAckProperties>) {
        let ack = Ack::ConnAck(id, ack, props.map(Box::new));
        self.committed.push_back(ack);
    }

    pub fn suback(&mut self, ack: SubAck) {
        let ack = Ack::SubAck(ack);
        self.committed.push_back(ack);
    }

    pub fn puback(&mut self, ack: PubAck) {
        let ack = Ack::PubAck(ack);
        self.committed.push_back(ack);
    }

    pub fn pubrec(&mut self, publish: Publish, props: Option<PublishProperties>, ack: PubRec) {
        let ack = Ack::PubRec(ack);
        self.recorded.push_back((publish, props));
        self.committed.push_back(ack);
    }

    pub fn pubrel(&mut self, ack: PubRel) {
        let ack = Ack::PubRel(ack);
        self.committed.push_back(ack);
    }

    pub fn pubcomp(&mut self, ack: PubComp) -> Option<(Publish, Option<PublishProperties>)> {
        let ack = Ack::PubComp(ack);
        self.committed.push_back(ack);
        self.recorded.pop_front()
    }

    pub fn pingresp(&mut self, ack: PingResp) {
        let ack = Ack::PingResp(ack);
        self.committed.push_back(ack);
    }

    pub fn unsuback(&mut self, ack: UnsubAck) {
        let ack = Ack::UnsubAck(ack);
        self.committed.push_back(ack);
    }

    pub fn readv(&mut self) -> &mut VecDeque<Ack> {
        &mut self.committed
    }
}

#[cfg(test)]
mod test {
    use super::DataLog;
    use crate::protocol::Publish;
    use crate::router::shared_subs::Strategy;
    use crate::router::DataRequest;
    use crate::RouterConfig;
    use std::collections::HashSet;

    fn datalog() -> DataLog {
        let config = RouterConfig {
            max_segment_size: 1024,
            max_connections: 10,
            max_segment_count: 10,
            max_outgoing_packet_count: 1024,
            custom_segment: None,
            initialized_filters: None,
            max_queued_messages: None,
            shared_subscriptions_strategy: Strategy::RoundRobin,
        };
        DataLog::new(config).unwrap()
    }

    #[test]
    fn topics_match_filters_added_before_and_after_them() {
        let mut data = datalog();
        let (a, _) = data.next_native_offset("topic/a");
        assert_eq!(data.matches("topic/a"), Some(vec![a]));
        let (wild, _) = data.next_native_offset("topic/+");
        let mut got = data.matches("topic/a").unwrap();
        got.sort();
        assert_eq!(got, vec![a, wild]);
        assert_eq!(data.matches("other/a"), Some(vec![]));
    }

    fn park(data: &mut DataLog, id: usize, subscription: &str) {
        let filter = super::log_filter(subscription);
        let (filter_idx, cursor) = data.next_native_offset(filter);
        let request = DataRequest {
            filter: subscription.to_owned(),
            filter_idx,
            qos: 1,
            cursor,
            read_count: 0,
            max_count: 100,
            forward_retained: false,
            group: None,
            nolocal: false,
            preserve_retain: false,
            skip: None,
            retained: None,
        };
        data.park(id, request);
    }

    fn waiting(data: &DataLog, filter: &str) -> Vec<usize> {
        let mut ids: Vec<usize> = data
            .waiters(&filter.to_owned())
            .map(|w| w.waiters().iter().map(|(id, _)| *id).collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    #[test]
    fn clean_removes_a_connection_from_its_own_filters_and_shared_filters_only() {
        let mut data = datalog();
        park(&mut data, 1, "im/dm/+/alice");
        park(&mut data, 1, "$share/g/im/req/+");
        park(&mut data, 2, "im/dm/+/alice");
        park(&mut data, 2, "$share/g/im/req/+");
        park(&mut data, 3, "im/dm/+/bob");

        let subscriptions: HashSet<String> = ["im/dm/+/alice", "$share/g/im/req/+"]
            .map(String::from)
            .into();
        let removed = data.clean(1, &subscriptions);

        assert_eq!(removed.len(), 2);
        assert_eq!(waiting(&data, "im/dm/+/alice"), vec![2]);
        assert_eq!(waiting(&data, "im/req/+"), vec![2]);
        assert_eq!(waiting(&data, "im/dm/+/bob"), vec![3]);
    }

    #[test]
    fn unsubscribing_a_shared_filter_removes_its_waiter() {
        let mut data = datalog();
        park(&mut data, 1, "$share/g/im/req/+");
        park(&mut data, 2, "$share/g/im/req/+");

        let removed = data.remove_waiters_for_id(1, &"$share/g/im/req/+".to_owned());

        assert!(removed.is_some());
        assert_eq!(waiting(&data, "im/req/+"), vec![2]);
    }

    /// ROOST PATCH: subscribe then unsubscribe, as the router does.
    fn subscribe(data: &mut DataLog, subscription: &str) -> usize {
        let (idx, _) = data.next_native_offset(super::log_filter(subscription));
        data.add_reader(idx);
        idx
    }

    #[test]
    fn churned_filters_leave_nothing_behind() {
        let mut data = datalog();
        for i in 0..10_000 {
            let filter = format!("devices/alice/{i}/+");
            subscribe(&mut data, &filter);
            data.remove_reader(&filter);
        }
        // Not one after another: all subscribed, then all unsubscribed.
        let filters: Vec<String> = (0..1000).map(|i| format!("devices/bob/{i}/#")).collect();
        for f in &filters {
            subscribe(&mut data, f);
        }
        assert_eq!(data.filters().len(), 1000);
        for f in &filters {
            data.remove_reader(f);
        }
        assert!(data.filters().is_empty());
        assert!(data.native.is_empty());
        assert!(data.filter_trie.is_empty());
        assert!(data.filter_indexes.capacity() < 1000);
        assert_eq!(data.matches("devices/bob/1/x"), Some(vec![]));
    }

    #[test]
    fn a_log_stays_while_any_subscription_reads_it() {
        let mut data = datalog();
        let idx = subscribe(&mut data, "im/req/+");
        assert_eq!(subscribe(&mut data, "$share/g/im/req/+"), idx);
        subscribe(&mut data, "im/req/+");

        data.remove_reader("im/req/+");
        data.remove_reader("$share/g/im/req/+");
        assert_eq!(data.matches("im/req/x"), Some(vec![idx]));
        assert!(data.is_log_of(idx, "$share/g/im/req/+"));

        data.remove_reader("im/req/+");
        assert_eq!(data.matches("im/req/x"), Some(vec![]));
        assert!(!data.is_log_of(idx, "im/req/+"));
        // The index goes to the next new filter: an old request for it is told apart.
        assert_eq!(subscribe(&mut data, "other/+"), idx);
        assert!(!data.is_log_of(idx, "im/req/+"));
        assert!(data.is_log_of(idx, "other/+"));
    }

    #[test]
    fn initialized_filters_keep_their_log() {
        let mut config = datalog().config;
        config.initialized_filters = Some(vec!["warm/+".to_owned()]);
        let mut data = DataLog::new(config).unwrap();
        subscribe(&mut data, "warm/+");
        data.remove_reader("warm/+");
        assert_eq!(data.filters(), vec!["warm/+".to_owned()]);
    }

    #[test]
    fn wildcard_retained_reads_find_exactly_the_matching_topics() {
        let mut data = datalog();
        for topic in [
            "im/presence/a",
            "im/presence/b",
            "im/presencex/c",
            "im/p",
            "im",
            "a/b",
        ] {
            let publish = Publish::new(topic, "x", true);
            data.insert_to_retained_publishes(publish, None, topic.to_owned());
        }

        let topics = |data: &mut DataLog, filter: &str| {
            let mut t: Vec<_> = data
                .read_retained_messages(filter)
                .into_iter()
                .map(|(p, _)| String::from_utf8(p.topic.to_vec()).unwrap())
                .collect();
            t.sort();
            t
        };

        assert_eq!(
            topics(&mut data, "im/presence/+"),
            ["im/presence/a", "im/presence/b"]
        );
        assert_eq!(
            topics(&mut data, "im/#"),
            [
                "im",
                "im/p",
                "im/presence/a",
                "im/presence/b",
                "im/presencex/c"
            ]
        );
        assert_eq!(topics(&mut data, "+/b"), ["a/b"]);
        assert_eq!(topics(&mut data, "#").len(), 6);
        assert_eq!(topics(&mut data, "im/presence/a"), ["im/presence/a"]);
    }

    //     #[test]
    //     fn appends_are_written_to_correct_commitlog() {
    //         pretty_env_logger::init();
    //         let config = RouterConfig {
    //             instant_ack: true,
    //             max_segment_size: 1024,
    //             max_connections: 10,
    //             max_mem_segments: 10,
    //             max_disk_segments: 0,
    //             max_read_len: 1024,
    //             log_dir: None,
    //             dynamic_log: true,
    //         };

    //         let mut data = DataLog::new(config).unwrap();
    //         data.next_native_offset("/devices/2321/actions");
    //         for i in 0..2 {
    //             let publish = Publish::new("/devices/2321/events/imu/jsonarray", QoS::AtLeastOnce, vec![1, 2, 3]);
    //             let v = data.native_append(publish);
    //             dbg!(v);
    //         }

    //         for i in 0..2 {
    //             let publish = Publish::new("/devices/2321/actions", QoS::AtLeastOnce, vec![1, 2, 3]);
    //             let v = data.native_append(publish);
    //             dbg!(v);
    //         }
    //     }
}
