//! A chat PUBLISH as history sees it: the topic (input up to the first newline) and the
//! payload (the rest), through the payload check and the stored-message parse. The node's
//! non-allocating check must give exactly the full parse's verdict and error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (topic, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let full = roost_proto::chat::ChatMessage::parse(payload);
    let limit = roost_proto::limits::MAX_CHAT_PAYLOAD;
    let checked = roost_proto::chat::ChatMessage::check_within(payload, limit);
    assert_eq!(checked, full.map(drop), "check_within and parse differ");
    let _ = roost_proto::chat::payload_id(payload);
    if let Ok(topic) = std::str::from_utf8(topic) {
        let _ = roost_proto::topic::is_stored(topic);
        let _ = roost_proto::topic::Topic::parse(topic).from();
        let _ = roost_history::NewMessage::from_publish(topic, payload);
        if let Some(conv) = topic.strip_prefix("conv:") {
            let _ = roost_history::Conv::parse(conv);
        }
    }
});
