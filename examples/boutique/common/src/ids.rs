//! Deterministic ids: FNV-1a hashes of the inputs, formatted. The demo draws
//! its ids at random; here the same inputs give the same id, so outputs can
//! be compared from run to run and from placement to placement.

/// FNV-1a (64 bits) of `parts`, each followed by a 0xff byte (a byte no
/// UTF-8 string contains), so `["ab", "c"]` and `["a", "bc"]` differ.
pub fn hash(parts: &[&str]) -> u64 {
    hash_with(0xcbf2_9ce4_8422_2325, parts)
}

/// FNV-1a (64 bits) of `parts` starting from `seed` (see [`hash`]).
pub fn hash_with(seed: u64, parts: &[&str]) -> u64 {
    let mut h = seed;
    for part in parts {
        for &byte in part.as_bytes().iter().chain(std::iter::once(&0xff)) {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// 128 bits from `parts`, formatted like a version-4 UUID
/// (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`).
pub fn uuid_like(parts: &[&str]) -> String {
    let high = hash(parts);
    let low = hash_with(high ^ 0x9e37_79b9_7f4a_7c15, parts);
    uuid_from(high, low)
}

/// `high` and `low` formatted like a version-4 UUID.
pub fn uuid_from(high: u64, low: u64) -> String {
    let high = (high & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let low = (low & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_separated() {
        assert_eq!(hash(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(&["a"]), hash(&["a"]));
        assert_ne!(hash(&["ab", "c"]), hash(&["a", "bc"]));
        assert_ne!(hash(&["a"]), hash(&["b"]));
    }

    #[test]
    fn uuid_shape() {
        let id = uuid_like(&["user", "order"]);
        assert_eq!(id.len(), 36, "{id}");
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'), "{id}");
        assert!(matches!(&groups[3][..1], "8" | "9" | "a" | "b"), "{id}");
        assert_eq!(id, uuid_like(&["user", "order"]));
        assert_ne!(id, uuid_like(&["user", "other"]));
        assert_eq!(
            uuid_from(0, u64::MAX),
            "00000000-0000-4000-bfff-ffffffffffff"
        );
    }
}
