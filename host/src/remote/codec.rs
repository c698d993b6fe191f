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
mod tests;
