//! The shape of a component's world: the names of its imports and exports and
//! the functions inside each exported or imported interface, read with
//! `wac-types` (the same type model `wac-graph` composes with).

use anyhow::Result;
use wac_types::{DefinedType, ItemKind, Package, PrimitiveType, Types, ValueType};

/// One import or export.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ItemShape {
    /// The full name (e.g. `hello:app/greeter@0.1.0`).
    pub name: String,
    /// Functions, when the item is an interface (an instance).
    pub functions: Vec<String>,
    /// Whether the item is an interface; otherwise a function, type or other item.
    pub is_interface: bool,
    /// Whether the interface defines resource types.
    pub defines_resources: bool,
    /// Functions that cannot be called across processes, with the reason
    /// (they take or return a resource, a stream or a future).
    pub local_only: Vec<(String, String)>,
}

impl ItemShape {
    /// An interface that only defines value types (records, variants, …):
    /// there is nothing to link, the types travel with the functions that use them.
    pub fn is_types_only(&self) -> bool {
        self.is_interface && self.functions.is_empty() && !self.defines_resources
    }
}

/// A component's imports and exports.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorldShape {
    /// What the component imports, in its own order.
    pub imports: Vec<ItemShape>,
    /// What the component exports, in its own order.
    pub exports: Vec<ItemShape>,
}

/// Prefix of the export an `http` component must have.
pub const HTTP_HANDLER: &str = "wasi:http/incoming-handler@0.2";

impl WorldShape {
    /// Reads the shape of the component in `bytes`. Fails when `bytes` is not
    /// a valid component (a core module, say).
    pub fn of_component(bytes: &[u8]) -> Result<WorldShape> {
        let mut types = Types::new();
        let package = Package::from_bytes("amimono:inspect", None, bytes.to_vec(), &mut types)?;
        let world = &types[package.ty()];
        Ok(WorldShape {
            imports: shape(&types, world.imports.iter()),
            exports: shape(&types, world.exports.iter()),
        })
    }

    /// The exported `wasi:http/incoming-handler@0.2.x`, if any.
    pub fn http_handler_export(&self) -> Option<&ItemShape> {
        self.exports
            .iter()
            .find(|e| e.name.starts_with(HTTP_HANDLER))
    }

    /// Export names joined for messages, or `nothing`.
    pub fn export_list(&self) -> String {
        if self.exports.is_empty() {
            "nothing".to_string()
        } else {
            self.exports
                .iter()
                .map(|e| format!("`{}`", e.name))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

fn shape<'a>(
    types: &Types,
    items: impl Iterator<Item = (&'a String, &'a ItemKind)>,
) -> Vec<ItemShape> {
    items
        .filter(|(_, kind)| !matches!(kind, ItemKind::Type(_)))
        .map(|(name, kind)| match kind {
            ItemKind::Instance(id) => ItemShape {
                name: name.clone(),
                functions: types[*id]
                    .exports
                    .iter()
                    .filter(|(_, k)| matches!(k, ItemKind::Func(_)))
                    .map(|(n, _)| n.clone())
                    .collect(),
                is_interface: true,
                defines_resources: types[*id]
                    .exports
                    .values()
                    .any(|k| matches!(k, ItemKind::Type(wac_types::Type::Resource(_)))),
                local_only: types[*id]
                    .exports
                    .iter()
                    .filter_map(|(n, k)| match k {
                        ItemKind::Func(f) => {
                            local_only_reason(types, &types[*f]).map(|r| (n.clone(), r.to_string()))
                        }
                        _ => None,
                    })
                    .collect(),
            },
            _ => ItemShape {
                name: name.clone(),
                functions: Vec::new(),
                is_interface: false,
                defines_resources: false,
                local_only: match kind {
                    ItemKind::Func(f) => local_only_reason(types, &types[*f])
                        .map(|r| vec![(name.clone(), r.to_string())])
                        .unwrap_or_default(),
                    _ => Vec::new(),
                },
            },
        })
        .collect()
}

/// Why a function cannot be called across processes, if it cannot: its
/// parameters or result contain a resource handle, a stream, a future or an
/// error context, which only mean something inside one process.
fn local_only_reason(types: &Types, func: &wac_types::FuncType) -> Option<&'static str> {
    func.params
        .values()
        .chain(func.result.iter())
        .find_map(|ty| value_local_only(types, ty))
}

fn value_local_only(types: &Types, ty: &ValueType) -> Option<&'static str> {
    match ty {
        ValueType::Primitive(PrimitiveType::ErrorContext) => Some("an error-context"),
        ValueType::Primitive(_) => None,
        ValueType::Borrow(_) | ValueType::Own(_) => Some("a resource"),
        ValueType::Defined(id) => match &types[*id] {
            DefinedType::Stream(_) => Some("a stream"),
            DefinedType::Future(_) => Some("a future"),
            DefinedType::Tuple(items) => items.iter().find_map(|t| value_local_only(types, t)),
            DefinedType::List(t)
            | DefinedType::FixedSizeList(t, _)
            | DefinedType::Option(t)
            | DefinedType::Alias(t) => value_local_only(types, t),
            DefinedType::Map(k, v) => {
                value_local_only(types, k).or_else(|| value_local_only(types, v))
            }
            DefinedType::Result { ok, err } => ok
                .iter()
                .chain(err.iter())
                .find_map(|t| value_local_only(types, t)),
            DefinedType::Variant(v) => v
                .cases
                .values()
                .flatten()
                .find_map(|t| value_local_only(types, t)),
            DefinedType::Record(r) => r.fields.values().find_map(|t| value_local_only(types, t)),
            DefinedType::Flags(_) | DefinedType::Enum(_) => None,
        },
    }
}
