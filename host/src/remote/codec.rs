//! The wire encoding of component-model values for calls between jobs.
//!
//! A compact, non-self-describing binary encoding: both sides know the types
//! (from the function's signature), so only the values travel. It follows the
//! component model's value-definition encoding as used by
//! [wRPC](https://github.com/bytecodealliance/wrpc) (its synchronous part: no
//! deferred/async values), so the bytes of a value are what wRPC would send.
//!
//! | type | encoding |
//! |---|---|
//! | `bool` | one byte, `0` or `1` |
//! | `s8`, `u8` | one byte (two's complement for `s8`) |
//! | `s16`, `s32`, `s64` | signed LEB128 |
//! | `u16`, `u32`, `u64` | unsigned LEB128 |
//! | `f32`, `f64` | little-endian IEEE 754 (NaN bits preserved) |
//! | `char` | its UTF-8 encoding (1–4 bytes) |
//! | `string` | byte length (unsigned LEB128, `u32`), then the UTF-8 bytes |
//! | `list<T>` | element count (unsigned LEB128, `u32`), then the elements (`list<u8>`: the raw bytes) |
//! | `record`, `tuple` | the fields / members in declaration order |
//! | `variant` | case index (unsigned LEB128), then the payload if the case has one |
//! | `enum` | case index (unsigned LEB128) |
//! | `option<T>` | `0`, or `1` then the value |
//! | `result<T, E>` | `0` then the ok payload (if `T`), or `1` then the err payload (if `E`) |
//! | `flags` | little-endian bitset of `ceil(n / 8)` bytes, bit `i` = the `i`-th flag |
//!
//! A function's parameters (and its results) are encoded as the concatenation
//! of each value's encoding, in order — a tuple without a header.
//!
//! Resources (`own`, `borrow`), `stream`, `future`, `error-context`, `map` and
//! fixed-length lists cannot cross jobs: [`encodable`] says so up front (call
//! it once per signature), and encoding or decoding a value of such a type is
//! an error naming it. (Encoding and decoding only look at the parts of a type
//! that the value reaches: an empty `list<own<r>>` or a `none` passes.)
//!
//! Decoding is strict: LEB128 longer than the type allows (more than
//! `ceil(bits / 7)` bytes) or out of its range, bools other than 0/1, invalid
//! UTF-8, case indices out of range, flag bits beyond the last flag and bytes
//! left after the last value are all errors. Decoding never trusts a length
//! prefix for allocation: every encodable type takes at least one byte (the
//! component-model validator rejects empty records, tuples, flags, enums and
//! variants), so a string or list longer than the bytes left is rejected
//! before anything is allocated.
//!
//! Errors ([`CodecError`]) say where they happened: which value, then which
//! field, element, member, case or payload inside it.

use std::fmt;

use wasmtime::component::{Type, Val};

/// Deeper type nesting than this is refused (wasmparser already caps
/// component type nesting at 100 levels, so this is only a backstop against
/// stack exhaustion).
const MAX_DEPTH: u32 = 128;

/// Internal results carry the error boxed: a pointer-sized error keeps the
/// hot paths' `Result`s small (returned in registers).
type Res<T> = Result<T, Box<CodecError>>;

#[cold]
fn too_deep() -> Box<CodecError> {
    Box::new(CodecError::TooDeep { at: String::new() })
}

/// Why bytes could not be decoded (or a value encoded) as the expected types.
///
/// Every variant with an `at` field carries the location of the problem, e.g.
/// ``value 0 (`list<string>`), element 3``; it is empty when the problem is
/// at the top of the type given to [`encodable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ends inside a value.
    #[error("{}unexpected end of input: {what} needs {needed} more byte(s), {left} left", loc(.at))]
    Truncated {
        /// Where.
        at: String,
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes left in the input.
        left: usize,
    },
    /// A string or list length prefix is larger than the rest of the input.
    #[error("{}{what} length {len} exceeds the {left} bytes left", loc(.at))]
    LengthExceedsInput {
        /// Where.
        at: String,
        /// `string` or `list`.
        what: &'static str,
        /// The decoded length (bytes for a string, elements for a list).
        len: u64,
        /// Bytes left in the input after the prefix.
        left: usize,
    },
    /// Bytes remain after the last value.
    #[error("trailing {count} bytes after the last value")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A `bool` byte other than 0 or 1.
    #[error("{}invalid bool byte {byte:#04x} (expected 0 or 1)", loc(.at))]
    InvalidBool {
        /// Where.
        at: String,
        /// The byte found.
        byte: u8,
    },
    /// A `string` whose bytes are not UTF-8.
    #[error("{}invalid utf-8 in string", loc(.at))]
    InvalidUtf8 {
        /// Where.
        at: String,
    },
    /// A `char` whose bytes are not exactly one UTF-8 encoded scalar value.
    #[error("{}invalid char: not one utf-8 encoded unicode scalar value", loc(.at))]
    InvalidChar {
        /// Where.
        at: String,
    },
    /// LEB128 longer than the type allows or out of its range.
    #[error("{}overlong or out-of-range leb128 encoding of a {ty}", loc(.at))]
    InvalidLeb128 {
        /// Where.
        at: String,
        /// The integer type being read (`u32`, `s64`, …).
        ty: &'static str,
    },
    /// A variant/enum case index or option/result discriminant out of range.
    #[error("{}{what} {index} out of range ({count} cases)", loc(.at))]
    IndexOutOfRange {
        /// Where.
        at: String,
        /// `variant case index`, `enum case index`, `option discriminant` or
        /// `result discriminant`.
        what: &'static str,
        /// The index found.
        index: u64,
        /// How many cases the type has.
        count: usize,
    },
    /// A `flags` bitset with bits set beyond its last flag.
    #[error("{}flag bits set beyond the {count} flags", loc(.at))]
    FlagBitsBeyond {
        /// Where.
        at: String,
        /// How many flags the type has.
        count: usize,
    },
    /// A type that cannot cross jobs.
    #[error("{}unsupported type `{ty}`: {reason}", loc(.at))]
    Unsupported {
        /// Where.
        at: String,
        /// The type, WIT-like.
        ty: String,
        /// Why it cannot cross.
        reason: &'static str,
    },
    /// On encoding: a value that does not match its type.
    #[error("{}value does not match its type: {detail}", loc(.at))]
    Mismatch {
        /// Where.
        at: String,
        /// What differs.
        detail: String,
    },
    /// On encoding: a string or list longer than a `u32` length.
    #[error("{}{what} length {len} does not fit in a u32", loc(.at))]
    TooLong {
        /// Where.
        at: String,
        /// `string` or `list`.
        what: &'static str,
        /// The length.
        len: usize,
    },
    /// On encoding: not as many values as types.
    #[error("{got} values given for {expected} types")]
    ValueCount {
        /// Number of types.
        expected: usize,
        /// Number of values.
        got: usize,
    },
    /// Types nested deeper than the codec's limit.
    #[error("{}type nesting deeper than {MAX_DEPTH} levels", loc(.at))]
    TooDeep {
        /// Where.
        at: String,
    },
}

/// Renders a location as a message prefix (`"<at>: "`, or nothing).
fn loc(at: &str) -> Loc<'_> {
    Loc(at)
}

struct Loc<'a>(&'a str);

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "{}: ", self.0)
        }
    }
}

/// One step of an error's location, added as the error travels up.
enum Seg<'a> {
    Value(usize, &'a Type),
    Field(&'a str),
    Element(usize),
    AnyElement,
    Member(usize),
    Case(&'a str),
    Some,
    Ok,
    Err,
}

impl fmt::Display for Seg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seg::Value(i, ty) => write!(f, "value {i} (`{}`)", TypeName(ty, 0)),
            Seg::Field(name) => write!(f, "field `{name}`"),
            Seg::Element(i) => write!(f, "element {i}"),
            Seg::AnyElement => f.write_str("list element"),
            Seg::Member(i) => write!(f, "member {i}"),
            Seg::Case(name) => write!(f, "case `{name}`"),
            Seg::Some => f.write_str("option payload"),
            Seg::Ok => f.write_str("result ok payload"),
            Seg::Err => f.write_str("result err payload"),
        }
    }
}

impl CodecError {
    fn at_mut(&mut self) -> Option<&mut String> {
        match self {
            Self::Truncated { at, .. }
            | Self::LengthExceedsInput { at, .. }
            | Self::InvalidBool { at, .. }
            | Self::InvalidUtf8 { at }
            | Self::InvalidChar { at }
            | Self::InvalidLeb128 { at, .. }
            | Self::IndexOutOfRange { at, .. }
            | Self::FlagBitsBeyond { at, .. }
            | Self::Unsupported { at, .. }
            | Self::Mismatch { at, .. }
            | Self::TooLong { at, .. }
            | Self::TooDeep { at } => Some(at),
            Self::TrailingBytes { .. } | Self::ValueCount { .. } => None,
        }
    }

    /// Prefixes the location with an outer step (errors are rare: the
    /// location is only built on the way out).
    #[cold]
    fn within(mut self: Box<Self>, seg: Seg<'_>) -> Box<Self> {
        if let Some(at) = self.at_mut() {
            *at = if at.is_empty() {
                seg.to_string()
            } else {
                format!("{seg}, {at}")
            };
        }
        self
    }

    #[cold]
    fn mismatch(detail: String) -> Box<Self> {
        Box::new(Self::Mismatch {
            at: String::new(),
            detail,
        })
    }
}

/// A WIT-like rendering of a type for messages, abbreviated past a few
/// levels and members.
struct TypeName<'a>(&'a Type, u32);

impl fmt::Display for TypeName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 4;
        let depth = self.1;
        let inner = |ty: &Type| TypeName(ty, depth + 1).to_string();
        if depth > 2 {
            return f.write_str("…");
        }
        fn list<I: Iterator<Item = String>>(
            f: &mut fmt::Formatter<'_>,
            items: I,
            total: usize,
        ) -> fmt::Result {
            for (i, item) in items.take(SHOWN).enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(&item)?;
            }
            if total > SHOWN {
                f.write_str(", …")?;
            }
            Ok(())
        }
        match self.0 {
            Type::Bool => f.write_str("bool"),
            Type::S8 => f.write_str("s8"),
            Type::U8 => f.write_str("u8"),
            Type::S16 => f.write_str("s16"),
            Type::U16 => f.write_str("u16"),
            Type::S32 => f.write_str("s32"),
            Type::U32 => f.write_str("u32"),
            Type::S64 => f.write_str("s64"),
            Type::U64 => f.write_str("u64"),
            Type::Float32 => f.write_str("f32"),
            Type::Float64 => f.write_str("f64"),
            Type::Char => f.write_str("char"),
            Type::String => f.write_str("string"),
            Type::List(l) => write!(f, "list<{}>", inner(&l.ty())),
            Type::FixedLengthList(l) => write!(f, "list<{}, {}>", inner(&l.ty()), l.len()),
            Type::Map(m) => write!(f, "map<{}, {}>", inner(&m.key()), inner(&m.value())),
            Type::Record(r) => {
                f.write_str("record { ")?;
                let n = r.fields().len();
                list(
                    f,
                    r.fields().map(|x| format!("{}: {}", x.name, inner(&x.ty))),
                    n,
                )?;
                f.write_str(" }")
            }
            Type::Tuple(t) => {
                f.write_str("tuple<")?;
                list(f, t.types().map(|ty| inner(&ty)), t.types().len())?;
                f.write_str(">")
            }
            Type::Variant(v) => {
                f.write_str("variant { ")?;
                let items = v.cases().map(|c| match &c.ty {
                    Some(ty) => format!("{}({})", c.name, inner(ty)),
                    None => c.name.to_string(),
                });
                list(f, items, v.cases().len())?;
                f.write_str(" }")
            }
            Type::Enum(e) => {
                f.write_str("enum { ")?;
                list(f, e.names().map(str::to_string), e.names().len())?;
                f.write_str(" }")
            }
            Type::Flags(fl) => {
                f.write_str("flags { ")?;
                list(f, fl.names().map(str::to_string), fl.names().len())?;
                f.write_str(" }")
            }
            Type::Option(o) => write!(f, "option<{}>", inner(&o.ty())),
            Type::Result(r) => match (r.ok(), r.err()) {
                (Some(ok), Some(err)) => write!(f, "result<{}, {}>", inner(&ok), inner(&err)),
                (Some(ok), None) => write!(f, "result<{}>", inner(&ok)),
                (None, Some(err)) => write!(f, "result<_, {}>", inner(&err)),
                (None, None) => f.write_str("result"),
            },
            Type::Own(_) => f.write_str("own<resource>"),
            Type::Borrow(_) => f.write_str("borrow<resource>"),
            Type::Future(ft) => match ft.ty() {
                Some(ty) => write!(f, "future<{}>", inner(&ty)),
                None => f.write_str("future"),
            },
            Type::Stream(st) => match st.ty() {
                Some(ty) => write!(f, "stream<{}>", inner(&ty)),
                None => f.write_str("stream"),
            },
            Type::ErrorContext => f.write_str("error-context"),
        }
    }
}

/// The error for a type that can never cross jobs, or `None`.
fn unsupported(ty: &Type) -> Option<CodecError> {
    let reason = match ty {
        Type::Own(_) | Type::Borrow(_) => "resources cannot cross jobs",
        Type::Future(_) | Type::Stream(_) => "streams and futures cannot cross jobs",
        Type::ErrorContext => "error contexts cannot cross jobs",
        Type::Map(_) => "maps are not supported by the remote-call encoding",
        Type::FixedLengthList(_) => {
            "fixed-length lists are not supported by the remote-call encoding"
        }
        _ => return None,
    };
    Some(CodecError::Unsupported {
        at: String::new(),
        ty: TypeName(ty, 0).to_string(),
        reason,
    })
}

/// Whether values of `ty` can cross jobs: `Err` names the first type inside
/// it (depth first, in declaration order) that cannot.
pub fn encodable(ty: &Type) -> Result<(), CodecError> {
    check(ty, 0).map_err(|e| *e)
}

fn check(ty: &Type, depth: u32) -> Res<()> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    if let Some(err) = unsupported(ty) {
        return Err(Box::new(err));
    }
    let depth = depth + 1;
    match ty {
        Type::List(l) => check(&l.ty(), depth).map_err(|e| e.within(Seg::AnyElement)),
        Type::Record(r) => r.fields().try_for_each(|field| {
            check(&field.ty, depth).map_err(|e| e.within(Seg::Field(field.name)))
        }),
        Type::Tuple(t) => t
            .types()
            .enumerate()
            .try_for_each(|(i, ty)| check(&ty, depth).map_err(|e| e.within(Seg::Member(i)))),
        Type::Variant(v) => v.cases().try_for_each(|case| match &case.ty {
            Some(ty) => check(ty, depth).map_err(|e| e.within(Seg::Case(case.name))),
            None => Ok(()),
        }),
        Type::Option(o) => check(&o.ty(), depth).map_err(|e| e.within(Seg::Some)),
        Type::Result(r) => {
            if let Some(ok) = r.ok() {
                check(&ok, depth).map_err(|e| e.within(Seg::Ok))?;
            }
            if let Some(err) = r.err() {
                check(&err, depth).map_err(|e| e.within(Seg::Err))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Appends the encoding of `values` (one per type of `types`, in order) to
/// `out`. On error `out` is left as it was.
pub fn encode_values(values: &[Val], types: &[Type], out: &mut Vec<u8>) -> Result<(), CodecError> {
    if values.len() != types.len() {
        return Err(CodecError::ValueCount {
            expected: types.len(),
            got: values.len(),
        });
    }
    let start = out.len();
    out.reserve(values.iter().map(|v| size_hint(v, 0)).sum());
    for (i, (val, ty)) in values.iter().zip(types).enumerate() {
        if let Err(err) = encode(val, ty, out, 0) {
            out.truncate(start);
            return Err(*err.within(Seg::Value(i, ty)));
        }
    }
    Ok(())
}

/// An upper bound of a value's encoded size (flags are estimated), to reserve
/// the output once. Lists of scalars are not walked: their first element's
/// bound times their length.
fn size_hint(val: &Val, depth: u32) -> usize {
    if let Some(n) = scalar_hint(val) {
        return n;
    }
    if depth > MAX_DEPTH {
        return 0;
    }
    let depth = depth + 1;
    let boxed = |v: &Option<Box<Val>>| v.as_deref().map_or(0, |v| size_hint(v, depth));
    match val {
        Val::String(s) => 5 + s.len(),
        Val::List(items) => {
            5 + match items.first().and_then(scalar_hint) {
                Some(n) => n.saturating_mul(items.len()),
                None => items.iter().map(|v| size_hint(v, depth)).sum(),
            }
        }
        Val::Tuple(items) => items.iter().map(|v| size_hint(v, depth)).sum(),
        Val::Record(fields) => fields.iter().map(|(_, v)| size_hint(v, depth)).sum(),
        Val::Variant(_, payload) => 5 + boxed(payload),
        Val::Option(payload) => 1 + boxed(payload),
        Val::Result(Ok(payload) | Err(payload)) => 1 + boxed(payload),
        Val::Flags(names) => 4 + names.len() / 8,
        _ => 0,
    }
}

/// The encoded size bound of a fixed-size value.
#[inline]
fn scalar_hint(val: &Val) -> Option<usize> {
    Some(match val {
        Val::Bool(_) | Val::S8(_) | Val::U8(_) => 1,
        Val::S16(_) | Val::U16(_) => 3,
        Val::S32(_) | Val::U32(_) | Val::Float32(_) | Val::Char(_) | Val::Enum(_) => 5,
        Val::S64(_) | Val::U64(_) => 10,
        Val::Float64(_) => 8,
        _ => return None,
    })
}

#[inline]
fn write_uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[inline]
fn write_sleb(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0) {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Writes a string/list length as a `u32` LEB128.
#[inline]
fn write_len(out: &mut Vec<u8>, len: usize, what: &'static str) -> Res<()> {
    match u32::try_from(len) {
        Ok(n) => {
            write_uleb(out, u64::from(n));
            Ok(())
        }
        Err(_) => Err(Box::new(CodecError::TooLong {
            at: String::new(),
            what,
            len,
        })),
    }
}

/// What a value is, for mismatch messages.
fn val_kind(val: &Val) -> &'static str {
    match val {
        Val::Bool(_) => "a bool",
        Val::S8(_) => "an s8",
        Val::U8(_) => "a u8",
        Val::S16(_) => "an s16",
        Val::U16(_) => "a u16",
        Val::S32(_) => "an s32",
        Val::U32(_) => "a u32",
        Val::S64(_) => "an s64",
        Val::U64(_) => "a u64",
        Val::Float32(_) => "an f32",
        Val::Float64(_) => "an f64",
        Val::Char(_) => "a char",
        Val::String(_) => "a string",
        Val::List(_) => "a list",
        Val::Map(_) => "a map",
        Val::Record(_) => "a record",
        Val::Tuple(_) => "a tuple",
        Val::Variant(..) => "a variant",
        Val::Enum(_) => "an enum",
        Val::Option(_) => "an option",
        Val::Result(_) => "a result",
        Val::Flags(_) => "flags",
        Val::Resource(_) => "a resource",
        Val::Future(_) => "a future",
        Val::Stream(_) => "a stream",
        Val::ErrorContext(_) => "an error-context",
        Val::FixedLengthList(_) => "a fixed-length list",
    }
}

/// Whether a type is a fixed-size scalar (the types of [`encode_scalar`] and
/// [`decode_scalar`]).
#[inline]
fn is_scalar(ty: &Type) -> bool {
    matches!(
        ty,
        Type::Bool
            | Type::S8
            | Type::U8
            | Type::S16
            | Type::U16
            | Type::S32
            | Type::U32
            | Type::S64
            | Type::U64
            | Type::Float32
            | Type::Float64
            | Type::Char
    )
}

/// Encodes a scalar; `false` if the value is not of the (scalar) type.
#[inline(always)]
fn encode_scalar(val: &Val, ty: &Type, out: &mut Vec<u8>) -> bool {
    match (ty, val) {
        (Type::Bool, Val::Bool(b)) => out.push(u8::from(*b)),
        (Type::S8, Val::S8(v)) => out.push(*v as u8),
        (Type::U8, Val::U8(v)) => out.push(*v),
        (Type::S16, Val::S16(v)) => write_sleb(out, i64::from(*v)),
        (Type::U16, Val::U16(v)) => write_uleb(out, u64::from(*v)),
        (Type::S32, Val::S32(v)) => write_sleb(out, i64::from(*v)),
        (Type::U32, Val::U32(v)) => write_uleb(out, u64::from(*v)),
        (Type::S64, Val::S64(v)) => write_sleb(out, *v),
        (Type::U64, Val::U64(v)) => write_uleb(out, *v),
        (Type::Float32, Val::Float32(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (Type::Float64, Val::Float64(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (Type::Char, Val::Char(c)) => {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        _ => return false,
    }
    true
}

#[cold]
fn type_mismatch(ty: &Type, val: &Val) -> Box<CodecError> {
    match unsupported(ty) {
        Some(err) => Box::new(err),
        None => CodecError::mismatch(format!(
            "expected `{}`, found {}",
            TypeName(ty, 0),
            val_kind(val)
        )),
    }
}

fn encode(val: &Val, ty: &Type, out: &mut Vec<u8>, depth: u32) -> Res<()> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let depth = depth + 1;
    if is_scalar(ty) {
        return if encode_scalar(val, ty, out) {
            Ok(())
        } else {
            Err(type_mismatch(ty, val))
        };
    }
    match (ty, val) {
        (Type::String, Val::String(s)) => {
            write_len(out, s.len(), "string")?;
            out.extend_from_slice(s.as_bytes());
        }
        (Type::List(l), Val::List(items)) => {
            write_len(out, items.len(), "list")?;
            let elem = l.ty();
            if let Type::U8 = elem {
                // One reservation, no per-byte capacity check.
                let mut bad = None;
                out.extend(items.iter().enumerate().map(|(i, item)| match item {
                    Val::U8(b) => *b,
                    other => {
                        bad.get_or_insert((i, other));
                        0
                    }
                }));
                if let Some((i, other)) = bad {
                    return Err(CodecError::mismatch(format!(
                        "expected a u8, found {}",
                        val_kind(other)
                    ))
                    .within(Seg::Element(i)));
                }
            } else if is_scalar(&elem) {
                for (i, item) in items.iter().enumerate() {
                    if !encode_scalar(item, &elem, out) {
                        return Err(type_mismatch(&elem, item).within(Seg::Element(i)));
                    }
                }
            } else {
                for (i, item) in items.iter().enumerate() {
                    encode(item, &elem, out, depth).map_err(|e| e.within(Seg::Element(i)))?;
                }
            }
        }
        (Type::Record(r), Val::Record(fields)) => {
            let types = r.fields();
            if types.len() != fields.len() {
                return Err(CodecError::mismatch(format!(
                    "the record has {} fields, its type {}",
                    fields.len(),
                    types.len()
                )));
            }
            for (field, (name, v)) in types.zip(fields) {
                if field.name != name {
                    return Err(CodecError::mismatch(format!(
                        "field `{name}` found where the type has field `{}`",
                        field.name
                    )));
                }
                encode(v, &field.ty, out, depth).map_err(|e| e.within(Seg::Field(field.name)))?;
            }
        }
        (Type::Tuple(t), Val::Tuple(members)) => {
            let types = t.types();
            if types.len() != members.len() {
                return Err(CodecError::mismatch(format!(
                    "the tuple has {} members, its type {}",
                    members.len(),
                    types.len()
                )));
            }
            for (i, (ty, v)) in types.zip(members).enumerate() {
                encode(v, &ty, out, depth).map_err(|e| e.within(Seg::Member(i)))?;
            }
        }
        (Type::Variant(v), Val::Variant(name, payload)) => {
            let Some((index, case)) = v.cases().enumerate().find(|(_, c)| c.name == name) else {
                return Err(CodecError::mismatch(format!(
                    "unknown variant case `{name}`"
                )));
            };
            write_uleb(out, index as u64);
            match (&case.ty, payload) {
                (Some(ty), Some(p)) => {
                    encode(p, ty, out, depth).map_err(|e| e.within(Seg::Case(case.name)))?;
                }
                (None, None) => {}
                (Some(_), None) => {
                    return Err(CodecError::mismatch(format!(
                        "variant case `{name}` needs a payload"
                    )));
                }
                (None, Some(_)) => {
                    return Err(CodecError::mismatch(format!(
                        "variant case `{name}` has no payload"
                    )));
                }
            }
        }
        (Type::Enum(e), Val::Enum(name)) => {
            let Some(index) = e.names().position(|n| n == name) else {
                return Err(CodecError::mismatch(format!("unknown enum case `{name}`")));
            };
            write_uleb(out, index as u64);
        }
        (Type::Option(o), Val::Option(payload)) => match payload {
            None => out.push(0),
            Some(p) => {
                out.push(1);
                encode(p, &o.ty(), out, depth).map_err(|e| e.within(Seg::Some))?;
            }
        },
        (Type::Result(r), Val::Result(res)) => {
            let (tag, payload, ty, seg, side) = match res {
                Ok(p) => (0, p, r.ok(), Seg::Ok, "ok"),
                Err(p) => (1, p, r.err(), Seg::Err, "err"),
            };
            out.push(tag);
            match (ty, payload) {
                (Some(ty), Some(p)) => encode(p, &ty, out, depth).map_err(|e| e.within(seg))?,
                (None, None) => {}
                (Some(_), None) => {
                    return Err(CodecError::mismatch(format!(
                        "result {side} needs a payload"
                    )));
                }
                (None, Some(_)) => {
                    return Err(CodecError::mismatch(format!(
                        "result {side} has no payload"
                    )));
                }
            }
        }
        (Type::Flags(f), Val::Flags(set)) => {
            let start = out.len();
            out.resize(start + f.names().len().div_ceil(8), 0);
            for name in set {
                let Some(i) = f.names().position(|n| n == name) else {
                    return Err(CodecError::mismatch(format!("unknown flag `{name}`")));
                };
                if let Some(byte) = out.get_mut(start + i / 8) {
                    *byte |= 1 << (i % 8);
                }
            }
        }
        (ty, val) => return Err(type_mismatch(ty, val)),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Decodes one value per type of `types` from `bytes`, which must hold exactly
/// those values.
pub fn decode_values(bytes: &[u8], types: &[Type]) -> Result<Vec<Val>, CodecError> {
    let mut reader = Reader { buf: bytes };
    let mut values = Vec::with_capacity(types.len());
    for (i, ty) in types.iter().enumerate() {
        values.push(decode(ty, &mut reader, 0).map_err(|e| *e.within(Seg::Value(i, ty)))?);
    }
    if reader.buf.is_empty() {
        Ok(values)
    } else {
        Err(CodecError::TrailingBytes {
            count: reader.buf.len(),
        })
    }
}

/// The bytes not read yet.
struct Reader<'a> {
    buf: &'a [u8],
}

#[cold]
fn truncated(what: &'static str, needed: usize, left: usize) -> Box<CodecError> {
    Box::new(CodecError::Truncated {
        at: String::new(),
        what,
        needed,
        left,
    })
}

#[cold]
fn bad_leb(ty: &'static str) -> Box<CodecError> {
    Box::new(CodecError::InvalidLeb128 {
        at: String::new(),
        ty,
    })
}

impl<'a> Reader<'a> {
    #[inline]
    fn byte(&mut self, what: &'static str) -> Res<u8> {
        match self.buf.split_first() {
            Some((&b, rest)) => {
                self.buf = rest;
                Ok(b)
            }
            None => Err(truncated(what, 1, 0)),
        }
    }

    #[inline]
    fn take(&mut self, n: usize, what: &'static str) -> Res<&'a [u8]> {
        match self.buf.split_at_checked(n) {
            Some((head, rest)) => {
                self.buf = rest;
                Ok(head)
            }
            None => Err(truncated(what, n, self.buf.len())),
        }
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &'static str) -> Res<[u8; N]> {
        match self.buf.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.buf = rest;
                Ok(*head)
            }
            None => Err(truncated(what, N, self.buf.len())),
        }
    }

    #[inline]
    fn bool(&mut self) -> Res<bool> {
        match self.byte("bool")? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(Box::new(CodecError::InvalidBool {
                at: String::new(),
                byte,
            })),
        }
    }

    /// Unsigned LEB128 of at most `bits` bits, in at most `ceil(bits / 7)`
    /// bytes.
    #[inline]
    fn uleb(&mut self, bits: u32, ty: &'static str) -> Res<u64> {
        let first = self.byte(ty)?;
        if first < 0x80 {
            return Ok(u64::from(first));
        }
        let mut result = u64::from(first & 0x7f);
        let mut shift = 7;
        loop {
            let byte = self.byte(ty)?;
            let low = u64::from(byte & 0x7f);
            let room = bits - shift;
            if room < 7 && (low >> room != 0 || byte & 0x80 != 0) {
                return Err(bad_leb(ty));
            }
            result |= low << shift;
            if byte & 0x80 == 0 {
                return Ok(result);
            }
            shift += 7;
        }
    }

    /// Signed LEB128 of at most `bits` bits, in at most `ceil(bits / 7)`
    /// bytes.
    #[inline]
    fn sleb(&mut self, bits: u32, ty: &'static str) -> Res<i64> {
        let mut result: i64 = 0;
        let mut shift = 0;
        loop {
            let byte = self.byte(ty)?;
            let low = i64::from(byte & 0x7f);
            let room = bits - shift;
            if room < 7 {
                // The last byte the type allows: no continuation, and its
                // unused bits must repeat the sign bit.
                if byte & 0x80 != 0 {
                    return Err(bad_leb(ty));
                }
                let sign_and_unused = low >> (room - 1);
                let all_ones = 0x7f >> (room - 1);
                if sign_and_unused != 0 && sign_and_unused != all_ones {
                    return Err(bad_leb(ty));
                }
            }
            result |= low << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    result |= -1i64 << shift;
                }
                return Ok(result);
            }
        }
    }

    /// A `u32` length prefix of a string or list, which must not exceed the
    /// bytes left (every element takes at least one byte).
    #[inline]
    fn len(&mut self, what: &'static str) -> Res<usize> {
        let len = self.uleb(32, "u32")?;
        match usize::try_from(len) {
            Ok(n) if n <= self.buf.len() => Ok(n),
            _ => Err(Box::new(CodecError::LengthExceedsInput {
                at: String::new(),
                what,
                len,
                left: self.buf.len(),
            })),
        }
    }
}

#[cold]
fn out_of_range(what: &'static str, index: u64, count: usize) -> Box<CodecError> {
    Box::new(CodecError::IndexOutOfRange {
        at: String::new(),
        what,
        index,
        count,
    })
}

fn decode(ty: &Type, r: &mut Reader<'_>, depth: u32) -> Res<Val> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let depth = depth + 1;
    if is_scalar(ty) {
        return decode_scalar(ty, r);
    }
    Ok(match ty {
        Type::String => {
            let len = r.len("string")?;
            let bytes = r.take(len, "string")?;
            match std::str::from_utf8(bytes) {
                Ok(s) => Val::String(s.to_owned()),
                Err(_) => return Err(Box::new(CodecError::InvalidUtf8 { at: String::new() })),
            }
        }
        Type::List(l) => {
            let len = r.len("list")?;
            let elem = l.ty();
            if let Type::U8 = elem {
                let bytes = r.take(len, "list<u8>")?;
                Val::List(bytes.iter().map(|&b| Val::U8(b)).collect())
            } else {
                // `len` is bounded by the bytes left.
                if is_scalar(&elem) {
                    Val::List(decode_scalars(&elem, len, r)?)
                } else {
                    let mut items = Vec::with_capacity(len);
                    for i in 0..len {
                        items.push(decode(&elem, r, depth).map_err(|e| e.within(Seg::Element(i)))?);
                    }
                    Val::List(items)
                }
            }
        }
        Type::Record(rec) => {
            let fields = rec.fields();
            let mut out = Vec::with_capacity(fields.len());
            for field in fields {
                let v =
                    decode(&field.ty, r, depth).map_err(|e| e.within(Seg::Field(field.name)))?;
                out.push((field.name.to_owned(), v));
            }
            Val::Record(out)
        }
        Type::Tuple(t) => {
            let types = t.types();
            let mut out = Vec::with_capacity(types.len());
            for (i, ty) in types.enumerate() {
                out.push(decode(&ty, r, depth).map_err(|e| e.within(Seg::Member(i)))?);
            }
            Val::Tuple(out)
        }
        Type::Variant(v) => {
            let index = r.uleb(32, "u32")?;
            let mut cases = v.cases();
            let count = cases.len();
            let case = usize::try_from(index).ok().and_then(|i| cases.nth(i));
            let Some(case) = case else {
                return Err(out_of_range("variant case index", index, count));
            };
            let payload = match &case.ty {
                Some(ty) => Some(Box::new(
                    decode(ty, r, depth).map_err(|e| e.within(Seg::Case(case.name)))?,
                )),
                None => None,
            };
            Val::Variant(case.name.to_owned(), payload)
        }
        Type::Enum(e) => {
            let index = r.uleb(32, "u32")?;
            let mut names = e.names();
            let count = names.len();
            match usize::try_from(index).ok().and_then(|i| names.nth(i)) {
                Some(name) => Val::Enum(name.to_owned()),
                None => return Err(out_of_range("enum case index", index, count)),
            }
        }
        Type::Option(o) => match r.byte("option discriminant")? {
            0 => Val::Option(None),
            1 => Val::Option(Some(Box::new(
                decode(&o.ty(), r, depth).map_err(|e| e.within(Seg::Some))?,
            ))),
            tag => return Err(out_of_range("option discriminant", tag.into(), 2)),
        },
        Type::Result(rt) => {
            let (is_ok, ty, seg) = match r.byte("result discriminant")? {
                0 => (true, rt.ok(), Seg::Ok),
                1 => (false, rt.err(), Seg::Err),
                tag => return Err(out_of_range("result discriminant", tag.into(), 2)),
            };
            let payload = match ty {
                Some(ty) => Some(Box::new(decode(&ty, r, depth).map_err(|e| e.within(seg))?)),
                None => None,
            };
            Val::Result(if is_ok { Ok(payload) } else { Err(payload) })
        }
        Type::Flags(f) => {
            let count = f.names().len();
            let bytes = r.take(count.div_ceil(8), "flags")?;
            if count % 8 != 0
                && let Some(&last) = bytes.last()
                && last >> (count % 8) != 0
            {
                return Err(Box::new(CodecError::FlagBitsBeyond {
                    at: String::new(),
                    count,
                }));
            }
            let set = f
                .names()
                .enumerate()
                .filter(|(i, _)| bytes.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
                .map(|(_, name)| name.to_owned())
                .collect();
            Val::Flags(set)
        }
        other => {
            return Err(Box::new(unsupported(other).unwrap_or_else(|| {
                CodecError::Unsupported {
                    at: String::new(),
                    ty: TypeName(other, 0).to_string(),
                    reason: "not supported by the remote-call encoding",
                }
            })));
        }
    })
}

/// Decodes `len` values of the scalar type `elem`: one loop per type,
/// overwriting placeholder slots, so each value is stored straight into the
/// list (pushing builds each `Val` on the stack and copies it, which stalls
/// on store forwarding and costs about twice as much).
fn decode_scalars(elem: &Type, len: usize, r: &mut Reader<'_>) -> Res<Vec<Val>> {
    let mut items = Vec::new();
    items.resize_with(len, || Val::Bool(false));
    macro_rules! each {
        ($read:expr, $wrap:expr) => {
            for (i, slot) in items.iter_mut().enumerate() {
                match $read {
                    Ok(v) => *slot = $wrap(v),
                    Err(e) => return Err(e.within(Seg::Element(i))),
                }
            }
        };
    }
    // The LEB128 readers keep values within `bits`, so the casts are exact.
    match elem {
        Type::Bool => each!(r.bool(), Val::Bool),
        Type::S8 => each!(r.byte("s8"), |b: u8| Val::S8(b as i8)),
        Type::U8 => each!(r.byte("u8"), Val::U8),
        Type::S16 => each!(r.sleb(16, "s16"), |v: i64| Val::S16(v as i16)),
        Type::U16 => each!(r.uleb(16, "u16"), |v: u64| Val::U16(v as u16)),
        Type::S32 => each!(r.sleb(32, "s32"), |v: i64| Val::S32(v as i32)),
        Type::U32 => each!(r.uleb(32, "u32"), |v: u64| Val::U32(v as u32)),
        Type::S64 => each!(r.sleb(64, "s64"), Val::S64),
        Type::U64 => each!(r.uleb(64, "u64"), Val::U64),
        Type::Float32 => each!(r.array("f32"), |b| Val::Float32(f32::from_le_bytes(b))),
        Type::Float64 => each!(r.array("f64"), |b| Val::Float64(f64::from_le_bytes(b))),
        Type::Char => each!(decode_char(r), Val::Char),
        _ => each!(decode_scalar(elem, r), |v| v),
    }
    Ok(items)
}

/// Decodes a value of a scalar type (see [`is_scalar`]).
#[inline(always)]
fn decode_scalar(ty: &Type, r: &mut Reader<'_>) -> Res<Val> {
    Ok(match ty {
        Type::Bool => Val::Bool(r.bool()?),
        Type::S8 => Val::S8(r.byte("s8")? as i8),
        Type::U8 => Val::U8(r.byte("u8")?),
        // The LEB128 readers keep values within `bits`, so these casts are
        // exact.
        Type::S16 => Val::S16(r.sleb(16, "s16")? as i16),
        Type::U16 => Val::U16(r.uleb(16, "u16")? as u16),
        Type::S32 => Val::S32(r.sleb(32, "s32")? as i32),
        Type::U32 => Val::U32(r.uleb(32, "u32")? as u32),
        Type::S64 => Val::S64(r.sleb(64, "s64")?),
        Type::U64 => Val::U64(r.uleb(64, "u64")?),
        Type::Float32 => Val::Float32(f32::from_le_bytes(r.array("f32")?)),
        Type::Float64 => Val::Float64(f64::from_le_bytes(r.array("f64")?)),
        Type::Char => Val::Char(decode_char(r)?),
        other => {
            return Err(Box::new(CodecError::Unsupported {
                at: String::new(),
                ty: TypeName(other, 0).to_string(),
                reason: "not a scalar",
            }));
        }
    })
}

#[cold]
fn bad_char() -> Box<CodecError> {
    Box::new(CodecError::InvalidChar { at: String::new() })
}

/// A `char`: one UTF-8 encoded scalar value.
#[inline]
fn decode_char(r: &mut Reader<'_>) -> Res<char> {
    let first = r.byte("char")?;
    let len = match first {
        0x00..=0x7f => return Ok(char::from(first)),
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return Err(bad_char()),
    };
    let rest = r.take(len - 1, "char")?;
    let mut buf = [first, 0, 0, 0];
    let encoded = match buf.get_mut(1..len) {
        Some(tail) => {
            tail.copy_from_slice(rest);
            buf.get(..len)
        }
        None => None,
    };
    encoded
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.chars().next())
        .ok_or_else(bad_char)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::OnceLock;

    use wasmtime::component::types::ComponentItem;
    use wasmtime::component::{Component, Type, Val};

    use super::{CodecError, decode_values, encodable, encode_values};

    /// A component importing one interface whose function `all` takes a
    /// parameter of every type under test, and `resources` the resource
    /// types; the parameters' names name the types.
    const WAT: &str = r#"
    (component
      (type $iface (instance
        (export "r" (type $r (sub resource)))
        (type $rec0 (record (field "a" u8) (field "name" string)))
        (export "rec" (type $rec (eq $rec0)))
        (type $big0 (record
          (field "id" u32)
          (field "tags" (list string))
          (field "inner" $rec)
          (field "maybe" (option s64))))
        (export "big" (type $big (eq $big0)))
        (type $var0 (variant (case "none") (case "byte" u8) (case "text" string)))
        (export "var" (type $var (eq $var0)))
        (type $color0 (enum "red" "green" "blue"))
        (export "color" (type $color (eq $color0)))
        (type $f10 (flags "a"))
        (export "f1" (type $f1 (eq $f10)))
        (type $f30 (flags "a" "b" "c"))
        (export "f3" (type $f3 (eq $f30)))
        (type $f90 (flags "f0" "f1" "f2" "f3" "f4" "f5" "f6" "f7" "f8"))
        (export "f9" (type $f9 (eq $f90)))
        (type $f320 (flags
          "g0" "g1" "g2" "g3" "g4" "g5" "g6" "g7" "g8" "g9" "g10" "g11" "g12" "g13" "g14" "g15"
          "g16" "g17" "g18" "g19" "g20" "g21" "g22" "g23" "g24" "g25" "g26" "g27" "g28" "g29"
          "g30" "g31"))
        (export "f32" (type $f32 (eq $f320)))
        (type $holder0 (record (field "id" u32) (field "handle" (own $r))))
        (export "holder" (type $holder (eq $holder0)))
        (type $all (func
          (param "bool" bool) (param "s8" s8) (param "u8" u8) (param "s16" s16) (param "u16" u16)
          (param "s32" s32) (param "u32" u32) (param "s64" s64) (param "u64" u64)
          (param "float32" f32) (param "float64" f64) (param "char" char) (param "string" string)
          (param "bytes" (list u8)) (param "strings" (list string))
          (param "nested" (list (list u32)))
          (param "rec" $rec) (param "big" $big) (param "tuple" (tuple u8 string))
          (param "var" $var) (param "color" $color)
          (param "opt" (option string)) (param "opt-opt" (option (option u8)))
          (param "res" (result u32 (error string))) (param "res-ok" (result u32))
          (param "res-err" (result (error string))) (param "res-none" (result))
          (param "flags1" $f1) (param "flags3" $f3) (param "flags9" $f9) (param "flags32" $f32)
          (param "list-var" (list $var))))
        (export "all" (func (type $all)))
        (type $res (func
          (param "own" (own $r)) (param "borrow" (borrow $r)) (param "list-own" (list (own $r)))
          (param "holder" $holder) (param "opt-own" (option (own $r)))))
        (export "resources" (func (type $res)))
      ))
      (import "test:codec/all" (instance (type $iface)))
    )
    "#;

    fn types() -> &'static HashMap<String, Type> {
        static TYPES: OnceLock<HashMap<String, Type>> = OnceLock::new();
        TYPES.get_or_init(|| {
            let engine = wasmtime::Engine::default();
            let bytes = wat::parse_str(WAT).unwrap();
            let component = Component::new(&engine, bytes).unwrap();
            let ty = component.component_type();
            let import = ty.get_import(&engine, "test:codec/all").unwrap();
            let ComponentItem::ComponentInstance(instance) = import.ty else {
                panic!("not an instance");
            };
            let mut map = HashMap::new();
            for func in ["all", "resources"] {
                let ComponentItem::ComponentFunc(f) =
                    instance.get_export(&engine, func).unwrap().ty
                else {
                    panic!("not a function");
                };
                for (name, ty) in f.params() {
                    map.insert(name.to_string(), ty);
                }
            }
            map
        })
    }

    fn ty(name: &str) -> Type {
        types()
            .get(name)
            .unwrap_or_else(|| panic!("no type {name}"))
            .clone()
    }

    /// Every encodable type under test.
    const ALL: [&str; 32] = [
        "bool", "s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64", "float32", "float64", "char",
        "string", "bytes", "strings", "nested", "rec", "big", "tuple", "var", "color", "opt",
        "opt-opt", "res", "res-ok", "res-err", "res-none", "flags1", "flags3", "flags9", "flags32",
        "list-var",
    ];

    /// Equality with floats compared bit for bit (NaN payloads, -0.0).
    fn same(a: &Val, b: &Val) -> bool {
        let all =
            |a: &[Val], b: &[Val]| a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b));
        let boxed = |a: &Option<Box<Val>>, b: &Option<Box<Val>>| match (a, b) {
            (Some(a), Some(b)) => same(a, b),
            (None, None) => true,
            _ => false,
        };
        match (a, b) {
            (Val::Float32(a), Val::Float32(b)) => a.to_bits() == b.to_bits(),
            (Val::Float64(a), Val::Float64(b)) => a.to_bits() == b.to_bits(),
            (Val::List(a), Val::List(b)) | (Val::Tuple(a), Val::Tuple(b)) => all(a, b),
            (Val::Record(a), Val::Record(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((na, a), (nb, b))| na == nb && same(a, b))
            }
            (Val::Variant(na, a), Val::Variant(nb, b)) => na == nb && boxed(a, b),
            (Val::Option(a), Val::Option(b)) => boxed(a, b),
            (Val::Result(Ok(a)), Val::Result(Ok(b)))
            | (Val::Result(Err(a)), Val::Result(Err(b))) => boxed(a, b),
            _ => a == b,
        }
    }

    fn encode1(name: &str, v: &Val) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        encode_values(std::slice::from_ref(v), &[ty(name)], &mut out)?;
        Ok(out)
    }

    fn decode1(name: &str, bytes: &[u8]) -> Result<Val, CodecError> {
        let mut vals = decode_values(bytes, &[ty(name)])?;
        assert_eq!(vals.len(), 1);
        Ok(vals.remove(0))
    }

    #[track_caller]
    fn roundtrip(name: &str, v: Val) {
        let bytes = encode1(name, &v).unwrap();
        let back = decode1(name, &bytes).unwrap();
        assert!(
            same(&v, &back),
            "{name}: {v:?} came back as {back:?} via {bytes:02x?}"
        );
    }

    #[track_caller]
    fn layout(name: &str, v: Val, expected: &[u8]) {
        assert_eq!(encode1(name, &v).unwrap(), expected, "{name}: {v:?}");
        assert!(
            same(&decode1(name, expected).unwrap(), &v),
            "{name}: {expected:02x?}"
        );
    }

    fn s(x: &str) -> Val {
        Val::String(x.to_string())
    }

    fn some(v: Val) -> Val {
        Val::Option(Some(Box::new(v)))
    }

    fn rec(a: u8, name: &str) -> Val {
        Val::Record(vec![("a".into(), Val::U8(a)), ("name".into(), s(name))])
    }

    fn flags(names: &[&str]) -> Val {
        Val::Flags(names.iter().map(|n| n.to_string()).collect())
    }

    fn var(case: &str, payload: Option<Val>) -> Val {
        Val::Variant(case.into(), payload.map(Box::new))
    }

    /// One sample value per type of `ALL`.
    fn sample(name: &str) -> Val {
        match name {
            "bool" => Val::Bool(true),
            "s8" => Val::S8(-5),
            "u8" => Val::U8(200),
            "s16" => Val::S16(-300),
            "u16" => Val::U16(40_000),
            "s32" => Val::S32(-70_000),
            "u32" => Val::U32(300),
            "s64" => Val::S64(i64::MIN),
            "u64" => Val::U64(u64::MAX),
            "float32" => Val::Float32(-0.0),
            "float64" => Val::Float64(f64::NAN),
            "char" => Val::Char('𝄞'),
            "string" => s("héllo"),
            "bytes" => Val::List(vec![Val::U8(0), Val::U8(255)]),
            "strings" => Val::List(vec![s(""), s("a")]),
            "nested" => Val::List(vec![Val::List(vec![Val::U32(1)]), Val::List(vec![])]),
            "rec" => rec(1, "x"),
            "big" => Val::Record(vec![
                ("id".into(), Val::U32(9)),
                ("tags".into(), Val::List(vec![s("t1"), s("t2")])),
                ("inner".into(), rec(3, "in")),
                ("maybe".into(), some(Val::S64(-1))),
            ]),
            "tuple" => Val::Tuple(vec![Val::U8(1), s("two")]),
            "var" => var("text", Some(s("t"))),
            "color" => Val::Enum("green".into()),
            "opt" => some(s("o")),
            "opt-opt" => some(Val::Option(None)),
            "res" => Val::Result(Err(Some(Box::new(s("bad"))))),
            "res-ok" => Val::Result(Ok(Some(Box::new(Val::U32(7))))),
            "res-err" => Val::Result(Ok(None)),
            "res-none" => Val::Result(Err(None)),
            "flags1" => flags(&["a"]),
            "flags3" => flags(&["a", "c"]),
            "flags9" => flags(&["f0", "f8"]),
            "flags32" => flags(&["g0", "g31"]),
            "list-var" => Val::List(vec![var("none", None), var("byte", Some(Val::U8(7)))]),
            other => panic!("no sample for {other}"),
        }
    }

    #[test]
    fn round_trips_of_many_values_per_type() {
        for v in [true, false] {
            roundtrip("bool", Val::Bool(v));
        }
        for v in [i8::MIN, -1, 0, 1, 63, 64, i8::MAX] {
            roundtrip("s8", Val::S8(v));
        }
        for v in [0, 1, 127, 128, u8::MAX] {
            roundtrip("u8", Val::U8(v));
        }
        for v in [
            i16::MIN,
            -8193,
            -8192,
            -65,
            -64,
            -1,
            0,
            63,
            64,
            8191,
            8192,
            i16::MAX,
        ] {
            roundtrip("s16", Val::S16(v));
        }
        for v in [0, 127, 128, 16_383, 16_384, u16::MAX] {
            roundtrip("u16", Val::U16(v));
        }
        for v in [
            i32::MIN,
            i32::MIN + 1,
            -(1 << 27),
            -1,
            0,
            1,
            1 << 27,
            i32::MAX - 1,
            i32::MAX,
        ] {
            roundtrip("s32", Val::S32(v));
        }
        for v in [0, 127, 128, 300, 1 << 28, u32::MAX - 1, u32::MAX] {
            roundtrip("u32", Val::U32(v));
        }
        for v in [i64::MIN, i64::MIN + 1, -(1 << 62), -1, 0, 1 << 62, i64::MAX] {
            roundtrip("s64", Val::S64(v));
        }
        for v in [0, 127, 128, 1 << 63, u64::MAX - 1, u64::MAX] {
            roundtrip("u64", Val::U64(v));
        }
        let f32s = [
            0.0,
            -0.0,
            1.5,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::from_bits(0x7fc0_1234),
            f32::from_bits(0xffa0_0001),
        ];
        for v in f32s {
            roundtrip("float32", Val::Float32(v));
        }
        let f64s = [
            0.0,
            -0.0,
            -2.25,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::from_bits(0x7ff8_0000_dead_beef),
        ];
        for v in f64s {
            roundtrip("float64", Val::Float64(v));
        }
        for c in [
            '\0',
            'a',
            '\u{7f}',
            '\u{80}',
            'é',
            '\u{7ff}',
            '\u{800}',
            '€',
            '\u{ffff}',
            '𝄞',
            '\u{10ffff}',
        ] {
            roundtrip("char", Val::Char(c));
        }
        for v in ["", "a", "héllo wörld", "日本語", "🦀🦀", &"x".repeat(1000)] {
            roundtrip("string", s(v));
        }
        roundtrip("bytes", Val::List(vec![]));
        roundtrip("bytes", Val::List((0..=255).map(Val::U8).collect()));
        roundtrip("strings", Val::List(vec![]));
        roundtrip(
            "strings",
            Val::List(vec![s(""), s("ü"), s("long string here")]),
        );
        roundtrip("nested", Val::List(vec![]));
        roundtrip(
            "nested",
            Val::List(vec![
                Val::List(vec![]),
                Val::List(vec![Val::U32(0), Val::U32(u32::MAX)]),
                Val::List((0..200).map(Val::U32).collect()),
            ]),
        );
        roundtrip("rec", rec(0, ""));
        roundtrip("rec", rec(255, "név"));
        roundtrip("big", sample("big"));
        let mut big = sample("big");
        if let Val::Record(fields) = &mut big {
            fields[3].1 = Val::Option(None);
        }
        roundtrip("big", big);
        roundtrip("tuple", Val::Tuple(vec![Val::U8(0), s("")]));
        roundtrip("var", var("none", None));
        roundtrip("var", var("byte", Some(Val::U8(255))));
        roundtrip("var", var("text", Some(s("payload"))));
        for c in ["red", "green", "blue"] {
            roundtrip("color", Val::Enum(c.into()));
        }
        roundtrip("opt", Val::Option(None));
        roundtrip("opt", some(s("")));
        roundtrip("opt-opt", Val::Option(None));
        roundtrip("opt-opt", some(Val::Option(None)));
        roundtrip("opt-opt", some(some(Val::U8(3))));
        roundtrip("res", Val::Result(Ok(Some(Box::new(Val::U32(1))))));
        roundtrip("res", Val::Result(Err(Some(Box::new(s("e"))))));
        roundtrip(
            "res-ok",
            Val::Result(Ok(Some(Box::new(Val::U32(u32::MAX))))),
        );
        roundtrip("res-ok", Val::Result(Err(None)));
        roundtrip("res-err", Val::Result(Ok(None)));
        roundtrip("res-err", Val::Result(Err(Some(Box::new(s("why"))))));
        roundtrip("res-none", Val::Result(Ok(None)));
        roundtrip("res-none", Val::Result(Err(None)));
        roundtrip("flags1", flags(&[]));
        roundtrip("flags1", flags(&["a"]));
        roundtrip("flags3", flags(&[]));
        roundtrip("flags3", flags(&["b"]));
        roundtrip("flags3", flags(&["a", "b", "c"]));
        roundtrip("flags9", flags(&["f8"]));
        roundtrip(
            "flags9",
            flags(&["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8"]),
        );
        let all32: Vec<String> = (0..32).map(|i| format!("g{i}")).collect();
        roundtrip("flags32", Val::Flags(all32));
        roundtrip("flags32", flags(&["g7", "g8", "g15", "g16", "g31"]));
        roundtrip("list-var", sample("list-var"));
    }

    #[test]
    fn all_parameters_round_trip_together() {
        let types: Vec<Type> = ALL.iter().map(|n| ty(n)).collect();
        let values: Vec<Val> = ALL.iter().map(|n| sample(n)).collect();
        let mut out = vec![0xaa];
        encode_values(&values, &types, &mut out).unwrap();
        assert_eq!(out[0], 0xaa, "encoding appends");
        let back = decode_values(&out[1..], &types).unwrap();
        assert_eq!(back.len(), values.len());
        for ((name, a), b) in ALL.iter().zip(&values).zip(&back) {
            assert!(same(a, b), "{name}: {a:?} vs {b:?}");
        }
        // No values, no bytes.
        let mut empty = Vec::new();
        encode_values(&[], &[], &mut empty).unwrap();
        assert!(empty.is_empty());
        assert_eq!(decode_values(&[], &[]).unwrap(), vec![]);
    }

    #[test]
    fn flags_come_back_in_declaration_order_once() {
        let bytes = encode1("flags9", &flags(&["f8", "f0", "f8"])).unwrap();
        assert_eq!(bytes, [0x01, 0x01]);
        assert_eq!(decode1("flags9", &bytes).unwrap(), flags(&["f0", "f8"]));
    }

    #[test]
    fn exact_byte_layouts() {
        layout("u32", Val::U32(300), &[0xac, 0x02]);
        layout("u32", Val::U32(0), &[0]);
        layout("u32", Val::U32(u32::MAX), &[0xff, 0xff, 0xff, 0xff, 0x0f]);
        layout(
            "u64",
            Val::U64(u64::MAX),
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        );
        layout("u16", Val::U16(u16::MAX), &[0xff, 0xff, 0x03]);
        layout("s32", Val::S32(-1), &[0x7f]);
        layout("s32", Val::S32(-64), &[0x40]);
        layout("s32", Val::S32(64), &[0xc0, 0x00]);
        layout("s32", Val::S32(-65), &[0xbf, 0x7f]);
        layout("s32", Val::S32(i32::MIN), &[0x80, 0x80, 0x80, 0x80, 0x78]);
        layout("s32", Val::S32(i32::MAX), &[0xff, 0xff, 0xff, 0xff, 0x07]);
        layout(
            "s64",
            Val::S64(i64::MIN),
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f],
        );
        layout("s16", Val::S16(i16::MIN), &[0x80, 0x80, 0x7e]);
        layout("s8", Val::S8(-1), &[0xff]);
        layout("bool", Val::Bool(true), &[1]);
        layout("bool", Val::Bool(false), &[0]);
        layout("float32", Val::Float32(1.0), &[0x00, 0x00, 0x80, 0x3f]);
        layout("float64", Val::Float64(-0.0), &[0, 0, 0, 0, 0, 0, 0, 0x80]);
        layout("char", Val::Char('a'), b"a");
        layout("char", Val::Char('€'), &[0xe2, 0x82, 0xac]);
        layout("char", Val::Char('𝄞'), &[0xf0, 0x9d, 0x84, 0x9e]);
        layout("string", s("hi"), &[2, b'h', b'i']);
        layout("string", s(""), &[0]);
        layout(
            "bytes",
            Val::List(vec![Val::U8(1), Val::U8(2), Val::U8(3)]),
            &[3, 1, 2, 3],
        );
        layout("strings", Val::List(vec![s("a"), s("")]), &[2, 1, b'a', 0]);
        layout("opt", Val::Option(None), &[0]);
        layout("opt", some(s("a")), &[1, 1, b'a']);
        layout("opt-opt", some(Val::Option(None)), &[1, 0]);
        layout("flags3", flags(&["a", "c"]), &[0b101]);
        layout("flags3", flags(&[]), &[0]);
        layout("flags9", flags(&["f0", "f8"]), &[0x01, 0x01]);
        layout("flags32", flags(&["g31"]), &[0, 0, 0, 0x80]);
        layout("var", var("byte", Some(Val::U8(7))), &[1, 7]);
        layout("var", var("none", None), &[0]);
        layout("var", var("text", Some(s("x"))), &[2, 1, b'x']);
        layout("color", Val::Enum("blue".into()), &[2]);
        layout("rec", rec(5, "ab"), &[5, 2, b'a', b'b']);
        layout("tuple", Val::Tuple(vec![Val::U8(9), s("z")]), &[9, 1, b'z']);
        layout(
            "res",
            Val::Result(Ok(Some(Box::new(Val::U32(300))))),
            &[0, 0xac, 0x02],
        );
        layout(
            "res",
            Val::Result(Err(Some(Box::new(s("x"))))),
            &[1, 1, b'x'],
        );
        layout("res-ok", Val::Result(Err(None)), &[1]);
        layout("res-err", Val::Result(Ok(None)), &[0]);
        layout("res-none", Val::Result(Err(None)), &[1]);

        // Several values: the plain concatenation.
        let mut out = Vec::new();
        encode_values(
            &[Val::U8(1), s("a"), Val::U32(300)],
            &[ty("u8"), ty("string"), ty("u32")],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [1, 1, b'a', 0xac, 0x02]);
    }

    #[test]
    fn non_minimal_leb128_within_the_length_limit_is_accepted() {
        // As in the wasm binary format: padding is fine as long as the byte
        // count and the value fit the type.
        assert_eq!(decode1("u32", &[0x80, 0x00]).unwrap(), Val::U32(0));
        assert_eq!(
            decode1("u32", &[0x80, 0x80, 0x80, 0x80, 0x00]).unwrap(),
            Val::U32(0)
        );
        assert_eq!(decode1("s32", &[0xff, 0x7f]).unwrap(), Val::S32(-1));
        assert_eq!(
            decode1("s32", &[0xff, 0xff, 0xff, 0xff, 0x7f]).unwrap(),
            Val::S32(-1)
        );
    }

    fn leb_error(name: &str, bytes: &[u8]) {
        match decode1(name, bytes) {
            Err(CodecError::InvalidLeb128 { .. }) => {}
            other => panic!("{name} {bytes:02x?}: {other:?}"),
        }
    }

    #[test]
    fn overlong_or_out_of_range_leb128_is_rejected() {
        leb_error("u32", &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
        leb_error("u32", &[0xff, 0xff, 0xff, 0xff, 0x1f]);
        leb_error("u32", &[0x80, 0x80, 0x80, 0x80, 0x10]);
        leb_error("u16", &[0xff, 0xff, 0x04]);
        leb_error("u16", &[0x80, 0x80, 0x80, 0x00]);
        leb_error(
            "u64",
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        );
        leb_error(
            "u64",
            &[
                0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
            ],
        );
        leb_error("s32", &[0x80, 0x80, 0x80, 0x80, 0x70]);
        leb_error("s32", &[0xff, 0xff, 0xff, 0xff, 0x0f]);
        leb_error("s32", &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
        leb_error("s16", &[0x80, 0x80, 0x7d]);
        leb_error("s16", &[0xff, 0xff, 0x02]);
        leb_error(
            "s64",
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x3f],
        );
        leb_error(
            "s64",
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        );
        // Lengths and case indices are u32s too.
        leb_error("string", &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
        leb_error("color", &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        let err = decode1("u32", &[0xff, 0xff, 0xff, 0xff, 0x1f]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "value 0 (`u32`): overlong or out-of-range leb128 encoding of a u32"
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let types: Vec<Type> = ALL.iter().map(|n| ty(n)).collect();
        let values: Vec<Val> = ALL.iter().map(|n| sample(n)).collect();
        let mut out = Vec::new();
        encode_values(&values, &types, &mut out).unwrap();
        for len in 0..out.len() {
            assert!(
                decode_values(&out[..len], &types).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
        for name in ALL {
            let bytes = encode1(name, &sample(name)).unwrap();
            for len in 0..bytes.len() {
                assert!(
                    decode1(name, &bytes[..len]).is_err(),
                    "{name}: {len} bytes decoded"
                );
            }
        }
        assert_eq!(
            decode1("float64", &[1, 2]).unwrap_err().to_string(),
            "value 0 (`f64`): unexpected end of input: f64 needs 8 more byte(s), 2 left"
        );
    }

    #[test]
    fn decode_errors_name_the_problem_and_the_place() {
        // Trailing bytes.
        assert_eq!(
            decode1("u8", &[1, 2, 3, 4, 5]).unwrap_err(),
            CodecError::TrailingBytes { count: 4 }
        );
        assert_eq!(
            decode_values(&[1, 2, 3, 4, 5], &[ty("u8")])
                .unwrap_err()
                .to_string(),
            "trailing 4 bytes after the last value"
        );
        assert_eq!(
            decode_values(&[0], &[]).unwrap_err(),
            CodecError::TrailingBytes { count: 1 }
        );
        // Bool.
        let err = decode1("bool", &[2]).unwrap_err();
        assert!(
            matches!(err, CodecError::InvalidBool { byte: 2, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "value 0 (`bool`): invalid bool byte 0x02 (expected 0 or 1)"
        );
        // Strings.
        let err = decode1("string", &[2, 0xff, 0xfe]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "value 0 (`string`): invalid utf-8 in string"
        );
        let err = decode_values(&[1, 12, b'a', b'b', b'c'], &[ty("u8"), ty("string")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "value 1 (`string`): string length 12 exceeds the 3 bytes left"
        );
        // A huge list count with few bytes left is refused before allocating.
        let err = decode1("strings", &[0xff, 0xff, 0xff, 0xff, 0x0f, 0]).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::LengthExceedsInput {
                    what: "list",
                    len: 0xffff_ffff,
                    left: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        // Chars.
        for bad in [
            &[0xff][..],
            &[0x80],
            &[0xc0, 0x80],
            &[0xed, 0xa0, 0x80],
            &[0xf4, 0x90, 0x80, 0x80],
            &[0xe2, 0x28, 0xa1],
            &[0xf8, 0x88, 0x80, 0x80],
        ] {
            let err = decode1("char", bad).unwrap_err();
            assert!(
                matches!(err, CodecError::InvalidChar { .. }),
                "{bad:02x?}: {err:?}"
            );
        }
        // Two chars' worth of bytes: the second is trailing.
        assert_eq!(
            decode1("char", b"ab").unwrap_err(),
            CodecError::TrailingBytes { count: 1 }
        );
        // Case indices and discriminants.
        let err = decode1("var", &[7]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "value 0 (`variant { none, byte(u8), text(string) }`): variant case index 7 out of range (3 cases)"
        );
        let err = decode1("color", &[3]).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::IndexOutOfRange {
                    what: "enum case index",
                    index: 3,
                    count: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = decode1("opt", &[2]).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::IndexOutOfRange {
                    what: "option discriminant",
                    index: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = decode1("res", &[2]).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::IndexOutOfRange {
                    what: "result discriminant",
                    index: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        // Flag bits beyond the last flag.
        let err = decode1("flags3", &[0b1000]).unwrap_err();
        assert!(
            matches!(err, CodecError::FlagBitsBeyond { count: 3, .. }),
            "{err:?}"
        );
        assert!(decode1("flags9", &[0, 0b10]).is_err());
        assert!(decode1("flags1", &[0b10]).is_err());
        assert_eq!(
            decode1("flags32", &[0xff; 4]).unwrap(),
            Val::Flags((0..32).map(|i| format!("g{i}")).collect())
        );
        // The location goes down into records and lists.
        let mut bytes = encode1("big", &sample("big")).unwrap();
        // id (1 byte), tags count, "t1" (3 bytes), then the second tag's text.
        assert_eq!(&bytes[..6], &[9, 2, 2, b't', b'1', 2]);
        bytes[7] = 0xff;
        let err = decode1("big", &bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "value 0 (`record { id: u32, tags: list<string>, inner: record { a: u8, name: string }, maybe: option<s64> }`), field `tags`, element 1: invalid utf-8 in string"
        );
        let err = decode1("list-var", &[2, 0, 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "value 0 (`list<variant { none, byte(u8), text(string) }>`), element 1, case `byte`: unexpected end of input: u8 needs 1 more byte(s), 0 left"
        );
    }

    #[track_caller]
    fn mismatch(name: &str, v: Val, detail: &str) {
        let mut out = vec![1, 2, 3];
        let err = encode_values(&[v], &[ty(name)], &mut out).unwrap_err();
        assert_eq!(out, [1, 2, 3], "output left as it was");
        match &err {
            CodecError::Mismatch { detail: d, .. } => assert_eq!(d, detail, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn values_not_matching_their_types_are_refused() {
        mismatch("u32", s("x"), "expected `u32`, found a string");
        mismatch("s64", Val::U64(1), "expected `s64`, found a u64");
        mismatch("float32", Val::Float64(1.0), "expected `f32`, found an f64");
        mismatch(
            "bytes",
            Val::List(vec![Val::U8(1), Val::U16(2)]),
            "expected a u8, found a u16",
        );
        mismatch(
            "strings",
            Val::List(vec![s("a"), Val::U8(2)]),
            "expected `string`, found a u8",
        );
        mismatch(
            "color",
            Val::Enum("purple".into()),
            "unknown enum case `purple`",
        );
        mismatch("var", var("other", None), "unknown variant case `other`");
        mismatch(
            "var",
            var("byte", None),
            "variant case `byte` needs a payload",
        );
        mismatch(
            "var",
            var("none", Some(Val::U8(1))),
            "variant case `none` has no payload",
        );
        mismatch(
            "var",
            var("byte", Some(s("no"))),
            "expected `u8`, found a string",
        );
        mismatch("flags3", flags(&["a", "z"]), "unknown flag `z`");
        mismatch(
            "rec",
            Val::Record(vec![("a".into(), Val::U8(1))]),
            "the record has 1 fields, its type 2",
        );
        mismatch(
            "rec",
            Val::Record(vec![("name".into(), s("x")), ("a".into(), Val::U8(1))]),
            "field `name` found where the type has field `a`",
        );
        mismatch(
            "tuple",
            Val::Tuple(vec![Val::U8(1)]),
            "the tuple has 1 members, its type 2",
        );
        mismatch(
            "res-err",
            Val::Result(Ok(Some(Box::new(Val::U8(1))))),
            "result ok has no payload",
        );
        mismatch("res", Val::Result(Err(None)), "result err needs a payload");
        mismatch(
            "opt",
            Val::Option(Some(Box::new(Val::U8(1)))),
            "expected `string`, found a u8",
        );
        mismatch(
            "list-var",
            Val::Tuple(vec![]),
            "expected `list<variant { none, byte(u8), text(string) }>`, found a tuple",
        );

        // The message says where.
        let mut out = Vec::new();
        let big = Val::Record(vec![
            ("id".into(), Val::U32(1)),
            ("tags".into(), Val::List(vec![s("a"), Val::Bool(true)])),
            ("inner".into(), rec(1, "x")),
            ("maybe".into(), Val::Option(None)),
        ]);
        let err = encode_values(&[Val::U8(0), big], &[ty("u8"), ty("big")], &mut out).unwrap_err();
        assert!(out.is_empty());
        assert!(
            err.to_string().ends_with("field `tags`, element 1: value does not match its type: expected `string`, found a bool"),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("value 1 (`record { id: u32"),
            "{err}"
        );

        // Not as many values as types.
        let err = encode_values(&[Val::U8(1)], &[ty("u8"), ty("u8")], &mut out).unwrap_err();
        assert_eq!(
            err,
            CodecError::ValueCount {
                expected: 2,
                got: 1
            }
        );
        assert_eq!(err.to_string(), "1 values given for 2 types");
    }

    #[test]
    fn resources_and_friends_are_not_encodable() {
        for name in ALL {
            encodable(&ty(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let err = encodable(&ty("own")).unwrap_err();
        assert!(matches!(err, CodecError::Unsupported { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "unsupported type `own<resource>`: resources cannot cross jobs"
        );
        assert_eq!(
            encodable(&ty("borrow")).unwrap_err().to_string(),
            "unsupported type `borrow<resource>`: resources cannot cross jobs"
        );
        assert_eq!(
            encodable(&ty("list-own")).unwrap_err().to_string(),
            "list element: unsupported type `own<resource>`: resources cannot cross jobs"
        );
        assert_eq!(
            encodable(&ty("holder")).unwrap_err().to_string(),
            "field `handle`: unsupported type `own<resource>`: resources cannot cross jobs"
        );
        assert_eq!(
            encodable(&ty("opt-own")).unwrap_err().to_string(),
            "option payload: unsupported type `own<resource>`: resources cannot cross jobs"
        );
        // Encoding and decoding such a type fail the same way (no resource
        // value is needed to find out).
        let mut out = Vec::new();
        let err = encode_values(&[Val::U32(1)], &[ty("own")], &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "value 0 (`own<resource>`): unsupported type `own<resource>`: resources cannot cross jobs"
        );
        let err = decode_values(&[0], &[ty("holder")]).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "field `handle`: unsupported type `own<resource>`: resources cannot cross jobs"
            ),
            "{err}"
        );
        // Only the parts a value reaches are looked at: an empty list of
        // resources encodes (`encodable` is the up-front check).
        encode_values(&[Val::List(vec![])], &[ty("list-own")], &mut out).unwrap();
        assert_eq!(out, [0]);
        let err = decode_values(&[1, 0], &[ty("list-own")]).unwrap_err();
        assert!(matches!(err, CodecError::Unsupported { .. }), "{err:?}");
    }

    /// xorshift64: deterministic pseudo-random numbers without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A random value of an encodable type.
    fn random_val(ty: &Type, rng: &mut Rng, depth: u32) -> Val {
        let small = |rng: &mut Rng| rng.below(if depth > 3 { 1 } else { 4 }) as usize;
        match ty {
            Type::Bool => Val::Bool(rng.below(2) == 1),
            Type::S8 => Val::S8(rng.next() as i8),
            Type::U8 => Val::U8(rng.next() as u8),
            Type::S16 => Val::S16(rng.next() as i16),
            Type::U16 => Val::U16(rng.next() as u16),
            Type::S32 => Val::S32((rng.next() >> rng.below(32)) as i32),
            Type::U32 => Val::U32((rng.next() >> rng.below(32)) as u32),
            Type::S64 => Val::S64((rng.next() >> rng.below(64)) as i64),
            Type::U64 => Val::U64(rng.next() >> rng.below(64)),
            Type::Float32 => Val::Float32(f32::from_bits(rng.next() as u32)),
            Type::Float64 => Val::Float64(f64::from_bits(rng.next())),
            Type::Char => Val::Char(char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('?')),
            Type::String => Val::String(
                (0..small(rng))
                    .map(|_| char::from_u32(rng.below(0x800) as u32).unwrap_or('x'))
                    .collect(),
            ),
            Type::List(l) => {
                let elem = l.ty();
                Val::List(
                    (0..small(rng))
                        .map(|_| random_val(&elem, rng, depth + 1))
                        .collect(),
                )
            }
            Type::Record(r) => Val::Record(
                r.fields()
                    .map(|f| (f.name.to_string(), random_val(&f.ty, rng, depth + 1)))
                    .collect(),
            ),
            Type::Tuple(t) => Val::Tuple(
                t.types()
                    .map(|ty| random_val(&ty, rng, depth + 1))
                    .collect(),
            ),
            Type::Variant(v) => {
                let i = rng.below(v.cases().len() as u64) as usize;
                let case = v.cases().nth(i).unwrap();
                let payload = case
                    .ty
                    .as_ref()
                    .map(|ty| Box::new(random_val(ty, rng, depth + 1)));
                Val::Variant(case.name.to_string(), payload)
            }
            Type::Enum(e) => {
                let i = rng.below(e.names().len() as u64) as usize;
                Val::Enum(e.names().nth(i).unwrap().to_string())
            }
            Type::Option(o) => Val::Option(
                (rng.below(2) == 1).then(|| Box::new(random_val(&o.ty(), rng, depth + 1))),
            ),
            Type::Result(r) => {
                if rng.below(2) == 0 {
                    Val::Result(Ok(r
                        .ok()
                        .map(|ty| Box::new(random_val(&ty, rng, depth + 1)))))
                } else {
                    Val::Result(Err(r
                        .err()
                        .map(|ty| Box::new(random_val(&ty, rng, depth + 1)))))
                }
            }
            Type::Flags(f) => Val::Flags(
                f.names()
                    .filter(|_| rng.below(2) == 1)
                    .map(str::to_string)
                    .collect(),
            ),
            other => panic!("not encodable: {other:?}"),
        }
    }

    #[test]
    fn random_values_round_trip() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let types: Vec<Type> = ALL.iter().map(|n| ty(n)).collect();
        let mut out = Vec::new();
        for _ in 0..300 {
            let values: Vec<Val> = types.iter().map(|t| random_val(t, &mut rng, 0)).collect();
            out.clear();
            encode_values(&values, &types, &mut out).unwrap();
            let back = decode_values(&out, &types).unwrap();
            for ((name, a), b) in ALL.iter().zip(&values).zip(&back) {
                assert!(same(a, b), "{name}: {a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let names = [
            "big", "var", "nested", "opt-opt", "res", "flags9", "char", "string", "tuple", "color",
            "s64", "u16", "bool", "float32", "list-var", "flags32",
        ];
        let types: Vec<Type> = names.iter().map(|n| ty(n)).collect();
        let mut valid = Vec::new();
        encode_values(
            &names.iter().map(|n| sample(n)).collect::<Vec<_>>(),
            &types,
            &mut valid,
        )
        .unwrap();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut decoded = 0;
        for round in 0..20_000 {
            let bytes: Vec<u8> = if round % 2 == 0 {
                // Pure noise, mostly short.
                let len = rng.below(if round % 10 == 0 { 512 } else { 48 }) as usize;
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                // A valid encoding with a few bytes changed, cut or added.
                let mut b = valid.clone();
                for _ in 0..=rng.below(3) {
                    let i = rng.below(b.len() as u64) as usize;
                    match rng.below(4) {
                        0 => b[i] = rng.next() as u8,
                        1 => b[i] ^= 1 << rng.below(8),
                        2 => b.truncate(i),
                        _ => b.insert(i, rng.next() as u8),
                    }
                    if b.is_empty() {
                        break;
                    }
                }
                b
            };
            if let Ok(vals) = decode_values(&bytes, &types) {
                decoded += 1;
                // Whatever decodes re-encodes to something that decodes the same.
                let mut again = Vec::new();
                encode_values(&vals, &types, &mut again).unwrap();
                let back = decode_values(&again, &types).unwrap();
                assert!(vals.iter().zip(&back).all(|(a, b)| same(a, b)));
            }
        }
        assert!(decoded > 0, "the mutations should sometimes stay valid");
    }
}
