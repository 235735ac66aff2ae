//! The packets of a signed-in connection (first byte: 0 for v3.1.1, else v5), decoded with
//! the node's default packet size limit; every PUBLISH re-encoded for both versions.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&version, packets)) = data.split_first() else {
        return;
    };
    let max = roost_config::Limits::default().max_packet_size;
    roost_broker::fuzzing::mqtt_packets(packets, version & 1 == 1, max);
});
