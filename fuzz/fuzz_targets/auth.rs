//! The MAC check of calls between jobs. One call is signed once; every
//! input then alters its `amimono-auth` header (spliced, one part
//! replaced, raw, absent), its fields and the clock, and checks the result:
//! only the very header the signing produced, with exactly the fields it
//! signed, within the replay window, verifies — once per replay guard —
//! and that one always does. Nothing panics.

#![no_main]

use std::sync::OnceLock;

use amimono::internals::auth::{
    AuthError, CallFields, ClusterKey, REPLAY_WINDOW, ReplayGuard, sign, verify_at,
};
use amimono_fuzz::{debug, fuzz_target};
use arbitrary::{Arbitrary, Unstructured};

const KEY: [u8; 32] = *b"amimono-fuzz-cluster-key-0123456";
const OTHER_KEY: [u8; 32] = *b"amimono-fuzz-cluster-key-0123457";
const BODY: &[u8] = b"\x01\x05hello";
const FIELDS: CallFields<'static> = CallFields {
    revision: "3f2a9c0d",
    label: "greeter",
    function: "hello:app/greeter@0.1.0#greet",
    deadline_ms: "30000",
    caller: "web",
};

struct Signed {
    key: ClusterKey,
    other_key: ClusterKey,
    header: String,
    timestamp_ms: u64,
}

fn signed() -> &'static Signed {
    static SIGNED: OnceLock<Signed> = OnceLock::new();
    SIGNED.get_or_init(|| {
        let (Some(key), Some(other_key)) = (
            ClusterKey::from_bytes(&KEY),
            ClusterKey::from_bytes(&OTHER_KEY),
        ) else {
            panic!("fuzz keys are too short");
        };
        let header = sign(&key, &FIELDS, BODY);
        let timestamp_ms = header
            .split('.')
            .nth(1)
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("signed header without a timestamp: {header}"));
        Signed {
            key,
            other_key,
            header,
            timestamp_ms,
        }
    })
}

/// How the input derives the header from the signed one.
#[derive(Debug)]
enum Header {
    Original,
    Absent,
    /// Bytes `at..at + remove` replaced by `insert`.
    Splice {
        at: u16,
        remove: u8,
        insert: String,
    },
    /// One dot-separated part replaced.
    Part {
        index: u8,
        value: String,
    },
    Raw(String),
}

/// The clock of the verifying host.
#[derive(Debug)]
enum Clock {
    /// The signing time plus this many ms.
    Offset(i32),
    Raw(u64),
}

#[derive(Debug)]
struct Input {
    header: Header,
    /// Each `None` keeps the signed field.
    fields: [Option<String>; 5],
    clock: Clock,
}

// By hand rather than derived: `arbitrary`'s derive feature would change
// the features of the `arbitrary` that cranelift uses, and so rebuild
// cranelift instead of reusing the main build's (see `xtask/src/fuzz.rs`).
impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Input> {
        let header = match u.int_in_range(0..=4u8)? {
            0 => Header::Original,
            1 => Header::Absent,
            2 => Header::Splice {
                at: u.arbitrary()?,
                remove: u.arbitrary()?,
                insert: u.arbitrary()?,
            },
            3 => Header::Part {
                index: u.arbitrary()?,
                value: u.arbitrary()?,
            },
            _ => Header::Raw(u.arbitrary()?),
        };
        let fields = [
            u.arbitrary()?,
            u.arbitrary()?,
            u.arbitrary()?,
            u.arbitrary()?,
            u.arbitrary()?,
        ];
        let clock = if u.arbitrary()? {
            Clock::Raw(u.arbitrary()?)
        } else {
            Clock::Offset(u.arbitrary()?)
        };
        Ok(Input {
            header,
            fields,
            clock,
        })
    }
}

fn header(original: &str, how: &Header) -> Option<String> {
    match how {
        Header::Original => Some(original.to_string()),
        Header::Absent => None,
        Header::Splice { at, remove, insert } => {
            // The signed header is ASCII: every index is a char boundary.
            let at = usize::from(*at) % (original.len() + 1);
            let end = (at + usize::from(*remove)).min(original.len());
            let mut spliced = original.to_string();
            spliced.replace_range(at..end, insert);
            Some(spliced)
        }
        Header::Part { index, value } => {
            let mut parts: Vec<&str> = original.split('.').collect();
            let count = parts.len();
            if let Some(part) = parts.get_mut(usize::from(*index) % count) {
                *part = value;
            }
            Some(parts.join("."))
        }
        Header::Raw(raw) => Some(raw.clone()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let signed = signed();
    let header = header(&signed.header, &input.header);
    let [revision, label, function, deadline_ms, caller] = &input.fields;
    let fields = CallFields {
        revision: revision.as_deref().unwrap_or(FIELDS.revision),
        label: label.as_deref().unwrap_or(FIELDS.label),
        function: function.as_deref().unwrap_or(FIELDS.function),
        deadline_ms: deadline_ms.as_deref().unwrap_or(FIELDS.deadline_ms),
        caller: caller.as_deref().unwrap_or(FIELDS.caller),
    };
    let now_ms = match input.clock {
        Clock::Offset(ms) => signed.timestamp_ms.saturating_add_signed(i64::from(ms)),
        Clock::Raw(ms) => ms,
    };
    let same_fields = fields.revision == FIELDS.revision
        && fields.label == FIELDS.label
        && fields.function == FIELDS.function
        && fields.deadline_ms == FIELDS.deadline_ms
        && fields.caller == FIELDS.caller;
    let same_header = header.as_deref() == Some(signed.header.as_str());
    let window = u64::try_from(REPLAY_WINDOW.as_millis()).unwrap_or(u64::MAX);
    let in_window = now_ms.abs_diff(signed.timestamp_ms) <= window;

    let guard = ReplayGuard::default();
    let result = verify_at(&signed.key, &fields, header.as_deref(), &guard, now_ms);
    debug(|| (&header, fields, now_ms, result.as_ref().map(|_| "verified")));
    match &result {
        Ok(verified) => {
            assert!(
                same_header && same_fields,
                "an altered call verified: header {header:?}, fields {fields:?}"
            );
            assert!(
                in_window,
                "a call {now_ms} vs {} verified",
                signed.timestamp_ms
            );
            assert_eq!(verified.check_body(BODY), Ok(()));
            assert_eq!(verified.check_body(b"other"), Err(AuthError::BodyMismatch));
            assert_eq!(
                verify_at(&signed.key, &fields, header.as_deref(), &guard, now_ms).err(),
                Some(AuthError::Replayed),
                "a call verified twice with one replay guard"
            );
        }
        Err(e) => {
            assert!(
                !(same_header && same_fields && in_window),
                "the signed call was refused: {e}"
            );
            if same_header && !same_fields {
                assert_eq!(e, &AuthError::BadMac, "fields {fields:?}");
            }
            if same_header && same_fields {
                assert!(matches!(e, AuthError::Stale { .. }), "{e}");
            }
            let _ = e.to_string();
        }
    }
    if header.is_none() {
        assert_eq!(result.err(), Some(AuthError::Missing));
    }
    let other = verify_at(
        &signed.other_key,
        &fields,
        header.as_deref(),
        &ReplayGuard::default(),
        now_ms,
    );
    assert!(other.is_err(), "a call verified under another key");
});
