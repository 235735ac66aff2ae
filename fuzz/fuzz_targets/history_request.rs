//! A history request (`im/req/{me}`, payload = the input) through the history service, as
//! the node stamps and routes it, answered from an in-memory SQLite store holding a few
//! messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_history::service::{self, Bus, Delivery};
use roost_history::{stamp, NewMessage, Retention, Store};
use std::sync::LazyLock;
use tokio::runtime::Runtime;

/// One request, then a closed bus: the service answers it and returns.
struct OneRequest(Option<Delivery<()>>);

impl Bus for OneRequest {
    type Ack = ();
    async fn recv(&mut self) -> Option<Delivery<()>> {
        self.0.take()
    }
    async fn publish(&mut self, _topic: String, _payload: Vec<u8>) {}
    async fn ack(&mut self, _ack: ()) {}
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
            ("im/dm/bob/alice", r#"{"id":"1","kind":"text","body":"hi bob"}"#),
            ("im/dm/alice/bob", r#"{"id":"2","kind":"text","body":"hi alice"}"#),
            ("im/grp/family/alice", r#"{"id":"3","kind":"text","body":"hi all"}"#),
        ]
        .into_iter()
        .map(|(topic, payload)| NewMessage::from_publish(topic, payload.as_bytes()).unwrap())
        .collect();
        store.store_batch(&messages).await.expect("seed messages");
        store
    })
});

fuzz_target!(|data: &[u8]| {
    let delivery = Delivery {
        topic: "im/req/alice".to_owned(),
        payload: data.to_vec(),
        user_properties: vec![
            (stamp::USER.to_owned(), "alice".to_owned()),
            (stamp::GROUPS.to_owned(), "family".to_owned()),
        ],
        ack: (),
    };
    let store = STORE.clone();
    RUNTIME.block_on(service::run(
        OneRequest(Some(delivery)),
        store,
        Retention::default(),
    ));
});
