//! The codec on a hand-written component type (every type under test as a
//! parameter): round trips, exact byte layouts, malformed input.

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
            let ComponentItem::ComponentFunc(f) = instance.get_export(&engine, func).unwrap().ty
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
    let all = |a: &[Val], b: &[Val]| a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b));
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
        (Val::Result(Ok(a)), Val::Result(Ok(b))) | (Val::Result(Err(a)), Val::Result(Err(b))) => {
            boxed(a, b)
        }
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
        Type::Option(o) => {
            Val::Option((rng.below(2) == 1).then(|| Box::new(random_val(&o.ty(), rng, depth + 1))))
        }
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
