//! A fresh MQTT connection's first bytes: the CONNECT sniff, then the decoder of the version
//! it picked, with the node's default packet size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let max = roost_config::Limits::default().max_packet_size;
    roost_broker::fuzzing::mqtt_connection(data, max);
});
