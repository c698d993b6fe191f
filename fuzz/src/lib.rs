//! What the fuzz targets share: their entry point ([`fuzz_target!`]), the
//! component-model types the remote-call codec is fuzzed against, the app
//! the bindings-file parser is checked against, and the value equality used
//! by the codec round trip.
//!
//! The types and the app are built once per process (the first input pays
//! for them), never per input.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use amimono::internals::App;
use amimono::internals::Manifest;
use amimono::internals::{ItemShape, WorldShape};
use wasm_encoder::{
    ComponentDefinedTypeEncoder, ComponentImportSection, ComponentTypeRef, ComponentTypeSection,
    ComponentValType as ValType, InstanceType, PrimitiveValType as Prim, TypeBounds,
};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Type, Val};

/// Defines a fuzz target: `fuzz_target!(|data: &[u8]| { … });` in a
/// `#![no_main]` binary. With libfuzzer-sys (`cargo fuzz`) this is its
/// macro.
#[cfg(feature = "libfuzzer-sys")]
pub use libfuzzer_sys::fuzz_target;

/// Defines a fuzz target: `fuzz_target!(|data: &[u8]| { … });` in a
/// `#![no_main]` binary. Without libfuzzer-sys (`cargo xtask fuzz`), the
/// entry points libfuzzer-sys would define, for the libFuzzer `build.rs`
/// links: a panic aborts, so libFuzzer saves the input.
#[cfg(not(feature = "libfuzzer-sys"))]
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:block) => {
        fn run_one($data: &[u8]) $body

        #[unsafe(no_mangle)]
        extern "C" fn LLVMFuzzerInitialize(
            _argc: *mut ::std::ffi::c_int,
            _argv: *mut *mut *mut ::std::ffi::c_char,
        ) -> ::std::ffi::c_int {
            $crate::abort_on_panic();
            0
        }

        /// # Safety
        ///
        /// Called by libFuzzer only, with `size` readable bytes at `data`.
        #[unsafe(no_mangle)]
        unsafe extern "C" fn LLVMFuzzerTestOneInput(
            data: *const u8,
            size: usize,
        ) -> ::std::ffi::c_int {
            let input: &[u8] = if size == 0 || data.is_null() {
                &[]
            } else {
                // SAFETY: libFuzzer passes `size` bytes at `data`, valid
                // and unchanged for the duration of the call.
                unsafe { ::std::slice::from_raw_parts(data, size) }
            };
            run_one(input);
            0
        }
    };
}

/// Makes a panic abort the process (after printing it), so libFuzzer
/// records the input as a crash.
#[doc(hidden)]
pub fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::abort();
    }));
}

/// The function names of the interface [`types_component`] imports, in the
/// order inputs select them.
const SIGNATURES: [&str; 12] = [
    "scalars",
    "string",
    "bytes",
    "lists",
    "records",
    "variants",
    "options",
    "results",
    "flags",
    "nested",
    "resources",
    "none",
];

/// One parameter list per function of [`SIGNATURES`], in that order.
/// Built once: compiling the component takes cranelift a few milliseconds.
pub fn signatures() -> &'static [Vec<Type>] {
    static TYPES: OnceLock<Vec<Vec<Type>>> = OnceLock::new();
    TYPES.get_or_init(|| match load_signatures() {
        Ok(types) => types,
        Err(e) => fatal(&format!("cannot build the codec's types: {e:#}")),
    })
}

fn load_signatures() -> anyhow::Result<Vec<Vec<Type>>> {
    let engine = wasmtime::Engine::default();
    let component = Component::new(&engine, types_component())?;
    let ty = component.component_type();
    let import = ty
        .get_import(&engine, "fuzz:codec/types")
        .ok_or_else(|| anyhow::anyhow!("no import fuzz:codec/types"))?;
    let ComponentItem::ComponentInstance(instance) = import.ty else {
        anyhow::bail!("fuzz:codec/types is not an instance");
    };
    SIGNATURES
        .iter()
        .map(
            |name| match instance.get_export(&engine, name).map(|e| e.ty) {
                Some(ComponentItem::ComponentFunc(f)) => Ok(f.params().map(|(_, ty)| ty).collect()),
                _ => anyhow::bail!("no function `{name}`"),
            },
        )
        .collect()
}

/// An instance type under construction: defined types get the next type
/// index, named ones (records, variants, enums, flags, resources) are
/// exported, as the component model requires.
struct Interface(InstanceType);

impl Interface {
    fn define(&mut self, define: impl FnOnce(ComponentDefinedTypeEncoder<'_>)) -> ValType {
        ValType::Type(self.define_index(define))
    }

    fn define_index(&mut self, define: impl FnOnce(ComponentDefinedTypeEncoder<'_>)) -> u32 {
        let index = self.0.type_count();
        define(self.0.ty().defined_type());
        index
    }

    fn named(
        &mut self,
        name: &str,
        define: impl FnOnce(ComponentDefinedTypeEncoder<'_>),
    ) -> ValType {
        let defined = self.define_index(define);
        let index = self.0.type_count();
        self.0
            .export(name, ComponentTypeRef::Type(TypeBounds::Eq(defined)));
        ValType::Type(index)
    }

    fn resource(&mut self, name: &str) -> u32 {
        let index = self.0.type_count();
        self.0
            .export(name, ComponentTypeRef::Type(TypeBounds::SubResource));
        index
    }

    fn func(&mut self, name: &str, params: &[(&str, ValType)]) {
        let index = self.0.type_count();
        self.0
            .ty()
            .function()
            .params(params.iter().copied())
            .result(None);
        self.0.export(name, ComponentTypeRef::Func(index));
    }
}

/// A component importing `fuzz:codec/types`, whose functions take
/// parameters of every kind of type the codec knows (and some it refuses);
/// the codec target decodes bytes against each function's parameter list.
/// Encoded with wasm-encoder rather than written in WAT: the `wat` crate
/// would change features of crates wasmtime uses, and so rebuild wasmtime
/// instead of reusing the main build's (see `xtask/src/fuzz.rs`).
fn types_component() -> Vec<u8> {
    use Prim::*;
    let p = ValType::Primitive;
    let mut i = Interface(InstanceType::new());
    let r = i.resource("r");
    let list_string = i.define(|t| t.list(String));
    let option_s64 = i.define(|t| t.option(S64));
    let rec = i.named("rec", |t| t.record([("a", p(U8)), ("name", p(String))]));
    let big = i.named("big", |t| {
        t.record([
            ("id", p(U32)),
            ("tags", list_string),
            ("inner", rec),
            ("maybe", option_s64),
            ("ratio", p(F64)),
        ])
    });
    let var = i.named("var", |t| {
        t.variant([
            ("none", None),
            ("byte", Some(p(U8))),
            ("text", Some(p(String))),
            ("rec", Some(rec)),
        ])
    });
    let color = i.named("color", |t| t.enum_type(["red", "green", "blue"]));
    let f1 = i.named("f1", |t| t.flags(["a"]));
    let nine: Vec<std::string::String> = (0..9).map(|n| format!("f{n}")).collect();
    let f9 = i.named("f9", |t| {
        t.flags(nine.iter().map(std::string::String::as_str))
    });
    let all: Vec<std::string::String> = (0..32).map(|n| format!("g{n}")).collect();
    let f32s = i.named("flags32", |t| {
        t.flags(all.iter().map(std::string::String::as_str))
    });
    let char_bool = i.define(|t| t.tuple([p(Char), p(Bool)]));
    let leaves = i.define(|t| t.list(char_bool));
    let big_or_var = i.define(|t| t.result(Some(big), Some(var)));
    let maybe = i.define(|t| t.option(big_or_var));
    let nodes = i.define(|t| t.list(maybe));
    let tree = i.named("tree", |t| {
        t.variant([("leaf", Some(leaves)), ("node", Some(nodes))])
    });
    let own = i.define(|t| t.own(r));
    let borrow = i.define(|t| t.borrow(r));
    let holder = i.named("holder", |t| t.record([("id", p(U32)), ("handle", own)]));

    i.func(
        "scalars",
        &[
            ("bool", p(Bool)),
            ("s8", p(S8)),
            ("u8", p(U8)),
            ("s16", p(S16)),
            ("u16", p(U16)),
            ("s32", p(S32)),
            ("u32", p(U32)),
            ("s64", p(S64)),
            ("u64", p(U64)),
            ("f32", p(F32)),
            ("f64", p(F64)),
            ("char", p(Char)),
        ],
    );
    i.func("string", &[("s", p(String))]);
    let bytes = i.define(|t| t.list(U8));
    i.func("bytes", &[("b", bytes)]);
    let list_u32 = i.define(|t| t.list(U32));
    let nested = i.define(|t| t.list(list_u32));
    let s64s = i.define(|t| t.list(S64));
    let f32_list = i.define(|t| t.list(F32));
    let chars = i.define(|t| t.list(Char));
    let bools = i.define(|t| t.list(Bool));
    let u16s = i.define(|t| t.list(U16));
    i.func(
        "lists",
        &[
            ("strings", list_string),
            ("nested", nested),
            ("s64s", s64s),
            ("f32s", f32_list),
            ("chars", chars),
            ("bools", bools),
            ("u16s", u16s),
        ],
    );
    let tuple = i.define(|t| t.tuple([p(U8), p(String), p(S32)]));
    i.func("records", &[("rec", rec), ("big", big), ("tuple", tuple)]);
    let list_var = i.define(|t| t.list(var));
    i.func(
        "variants",
        &[("var", var), ("color", color), ("list-var", list_var)],
    );
    let opt = i.define(|t| t.option(String));
    let opt_u8 = i.define(|t| t.option(U8));
    let opt_opt = i.define(|t| t.option(opt_u8));
    i.func("options", &[("opt", opt), ("opt-opt", opt_opt)]);
    let res = i.define(|t| t.result(Some(p(U32)), Some(p(String))));
    let res_ok = i.define(|t| t.result(Some(p(U32)), None));
    let res_err = i.define(|t| t.result(None, Some(p(String))));
    let res_none = i.define(|t| t.result(None, None));
    i.func(
        "results",
        &[
            ("res", res),
            ("res-ok", res_ok),
            ("res-err", res_err),
            ("res-none", res_none),
        ],
    );
    i.func("flags", &[("f1", f1), ("f9", f9), ("f32", f32s)]);
    let trees = i.define(|t| t.list(tree));
    i.func("nested", &[("tree", tree), ("trees", trees)]);
    let opt_own = i.define(|t| t.option(own));
    let list_own = i.define(|t| t.list(own));
    i.func(
        "resources",
        &[
            ("opt-own", opt_own),
            ("list-own", list_own),
            ("holder", holder),
            ("borrow", borrow),
        ],
    );
    i.func("none", &[]);

    let mut types = ComponentTypeSection::new();
    types.instance(&i.0);
    let mut imports = ComponentImportSection::new();
    imports.import("fuzz:codec/types", ComponentTypeRef::Instance(0));
    let mut component = wasm_encoder::Component::new();
    component.section(&types).section(&imports);
    component.finish()
}

/// Equality of decoded values with floats compared bit for bit (NaN
/// payloads, -0.0), which `Val`'s `PartialEq` does not do.
pub fn same(a: &Val, b: &Val) -> bool {
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

/// The manifest of the app the bindings-file target checks files against:
/// one component of each binding type.
pub const BINDINGS_APP_MANIFEST: &str = r#"
[app]
name = "fuzz"

[components.web]
binding = "http"
source = "web.wasm"

[components.api]
binding = "rpc"
source = "api.wasm"

[components.worker]
binding = "none"
source = "worker.wasm"

[jobs.front]
components = ["web"]

[jobs.back]
components = ["api", "worker"]
replicas = 2
"#;

/// The app of [`BINDINGS_APP_MANIFEST`], with made-up component worlds (the
/// bindings file is checked against labels and binding types only).
pub fn bindings_app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| match load_bindings_app() {
        Ok(app) => app,
        Err(e) => fatal(&format!("cannot build the bindings target's app: {e}")),
    })
}

fn load_bindings_app() -> Result<App, String> {
    let manifest = Manifest::parse(
        Path::new("fuzz/amimono.toml"),
        BINDINGS_APP_MANIFEST.to_string(),
    )
    .map_err(|e| e.to_string())?;
    let export = |name: &str| ItemShape {
        name: name.to_string(),
        functions: vec!["f".to_string()],
        is_interface: true,
        defines_resources: false,
        local_only: Vec::new(),
    };
    let worlds: BTreeMap<String, WorldShape> = [
        ("web", "wasi:http/incoming-handler@0.2.6"),
        ("api", "fuzz:app/api@0.1.0"),
        ("worker", "wasi:cli/run@0.2.6"),
    ]
    .into_iter()
    .map(|(label, name)| {
        let world = WorldShape {
            imports: Vec::new(),
            exports: vec![export(name)],
        };
        (label.to_string(), world)
    })
    .collect();
    let bytes = worlds.keys().map(|l| (l.clone(), Vec::new())).collect();
    App::from_parts(manifest, bytes, &worlds).map_err(|e| e.to_string())
}

/// Prints `what` an input led to when `AMIMONO_FUZZ_DEBUG` is set (to see
/// what a corpus file does: `AMIMONO_FUZZ_DEBUG=1 <target binary> <file>`).
pub fn debug<D: std::fmt::Debug>(what: impl FnOnce() -> D) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("AMIMONO_FUZZ_DEBUG").is_some()) {
        eprintln!("amimono-fuzz: {:#?}", what());
    }
}

/// Stops the process on a broken fuzzing set-up (not an input's fault).
fn fatal(message: &str) -> ! {
    eprintln!("amimono-fuzz: {message}");
    std::process::exit(2)
}
