//! The remote-call decoder: arbitrary bytes decoded against one function's
//! parameter list (the first byte picks which). Decoding must never panic;
//! when it succeeds, the values must re-encode, decode back to the same
//! values, and re-encode to a fixpoint no longer than the input — equal to
//! it when as long (the only non-canonical input the decoder accepts is
//! LEB128 padded within the type's byte limit, which only lengthens).

#![no_main]

use amimono::internals::codec::{decode_values, encode_values};
use amimono_fuzz::fuzz_target;
use amimono_fuzz::{debug, same, signatures};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let sigs = signatures();
    let Some(types) = sigs.get(usize::from(pick) % sigs.len()) else {
        return;
    };
    let decoded = decode_values(bytes, types);
    debug(|| &decoded);
    let Ok(values) = decoded else {
        return;
    };
    let mut encoded = Vec::new();
    if let Err(e) = encode_values(&values, types, &mut encoded) {
        panic!("decoded values do not re-encode: {e}\nvalues: {values:?}");
    }
    assert!(
        encoded.len() <= bytes.len(),
        "re-encoding is longer than the input ({} > {} bytes)",
        encoded.len(),
        bytes.len()
    );
    if encoded.len() == bytes.len() {
        assert_eq!(
            encoded, bytes,
            "same length but other bytes after a round trip"
        );
    }
    let again = match decode_values(&encoded, types) {
        Ok(again) => again,
        Err(e) => panic!("re-encoded values do not decode: {e}\nvalues: {values:?}"),
    };
    assert!(
        values.len() == again.len() && values.iter().zip(&again).all(|(a, b)| same(a, b)),
        "round trip changed the values:\n{values:?}\n{again:?}"
    );
    let mut fixpoint = Vec::new();
    if let Err(e) = encode_values(&again, types, &mut fixpoint) {
        panic!("values decoded twice do not re-encode: {e}");
    }
    assert_eq!(fixpoint, encoded, "re-encoding is not a fixpoint");
});
