//! The hash of the session's maps keyed by MQTT packet id. Every QoS 1 publish from a
//! client looks its id up, inserts it and removes it again (three hashes per message);
//! with the standard SipHash that was measurable work per message (BENCHMARKS.md,
//! "dmmax"). SipHash guards a map against keys an attacker picks to collide; here the
//! keys are the client's own packet ids in its own session's map, at most the receive
//! maximum of them (`limits.receive_maximum`), so colliding ids slow down that client's
//! lookups only, bounded. One multiplication by an odd constant (Fibonacci hashing) spreads
//! them over the high bits the map's probe uses as well as the low ones.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by packet id.
pub(crate) type PacketIdMap<V> = HashMap<u16, V, BuildHasherDefault<PacketIdHasher>>;

/// Hashes a `u16` packet id by one multiplication; other input (never given by
/// [`PacketIdMap`]) byte by byte, the same way.
#[derive(Default)]
pub(crate) struct PacketIdHasher(u64);

/// 2^64 divided by the golden ratio, odd.
const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for PacketIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn write_u16(&mut self, id: u16) {
        self.0 = (self.0 ^ u64::from(id)).wrapping_mul(K);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    #[test]
    fn every_packet_id_has_its_own_hash_and_the_map_works() {
        let build = BuildHasherDefault::<PacketIdHasher>::default();
        let hashes: HashSet<u64> = (0..=u16::MAX).map(|id| build.hash_one(id)).collect();
        assert_eq!(hashes.len(), 65536);
        // The top 7 bits (what the map compares first) vary over consecutive ids.
        let tops: HashSet<u64> = (1..=64u16).map(|id| build.hash_one(id) >> 57).collect();
        assert!(tops.len() > 32, "{} distinct top bits", tops.len());

        let mut map = PacketIdMap::default();
        for id in 1..=1000u16 {
            map.insert(id, id);
        }
        assert!((1..=1000u16).all(|id| map.remove(&id) == Some(id)));
        assert!(map.is_empty());
    }
}
