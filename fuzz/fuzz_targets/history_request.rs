//! A history request (`im/req/{me}`, payload = the input) through the history service, as
//! the node stamps and routes it, answered from an in-memory SQLite store holding a few
//! messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_history::service::{self, Bus, Delivery, Settings};
use roost_history::{NewMessage, Store};
use roost_proto::stamp;
use std::sync::LazyLock;
use tokio::runtime::Runtime;

/// One request, then a bus that closes once the request is answered. The service queues
/// requests and answers them while nothing else arrives: so the bus says "nothing more"
/// once (ending the batch), waits while an answer is due, and closes after it.
struct OneRequest {
    request: Option<Delivery<()>>,
    ended_batch: bool,
    answered: bool,
}

impl Bus for OneRequest {
    type Ack = ();
    async fn recv(&mut self) -> Option<Delivery<()>> {
        if let Some(request) = self.request.take() {
            return Some(request);
        }
        if self.answered || !std::mem::replace(&mut self.ended_batch, true) {
            return None;
        }
        std::future::pending().await
    }
    async fn publish(&mut self, _topic: String, _payload: Vec<u8>) {
        self.answered = true;
    }
    async fn ack(&mut self, _ack: ()) {}
    async fn forward(&mut self, _copy: service::StampedCopy) {}
}

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
});

static STORE: LazyLock<Store> = LazyLock::new(|| {
    RUNTIME.block_on(async {
        let store = Store::connect("sqlite::memory:").await.expect("a store");
        let messages: Vec<NewMessage> = [
            (
                "im/dm/bob/alice",
                r#"{"id":"1","kind":"text","body":"hi bob"}"#,
            ),
            (
                "im/dm/alice/bob",
                r#"{"id":"2","kind":"text","body":"hi alice"}"#,
            ),
            (
                "im/grp/family/alice",
                r#"{"id":"3","kind":"text","body":"hi all"}"#,
            ),
        ]
        .into_iter()
        .map(|(topic, payload)| NewMessage::from_publish(topic, payload.as_bytes()).unwrap())
        .collect();
        store.store_batch(&messages).await.expect("seed messages");
        store
    })
});

fuzz_target!(|data: &[u8]| {
    let _ = roost_proto::request::Request::parse(data);
    let delivery = Delivery {
        topic: "im/req/alice".to_owned(),
        payload: data.to_vec(),
        qos: 1,
        user_properties: vec![
            (stamp::USER.to_owned(), "alice".to_owned()),
            (stamp::GROUPS.to_owned(), "family".to_owned()),
        ],
        response_topic: None,
        correlation_data: None,
        ack: (),
    };
    let store = STORE.clone();
    let bus = OneRequest {
        request: Some(delivery),
        ended_batch: false,
        answered: false,
    };
    // No rate limit in the way: every input is a request to answer.
    let settings = Settings {
        max_requests_per_second: 1_000_000,
        ..Settings::default()
    };
    RUNTIME.block_on(service::run(bus, store, settings));
});
