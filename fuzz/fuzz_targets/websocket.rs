//! Client WebSocket frames after the handshake (first byte: 0 for MQTT v3.1.1, else v5),
//! read with the node's WebSocket limits and decoded as MQTT.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&version, frames)) = data.split_first() else {
        return;
    };
    let max = roost_config::Limits::default().max_packet_size;
    roost_broker::fuzzing::websocket(frames, version & 1 == 1, max);
});
