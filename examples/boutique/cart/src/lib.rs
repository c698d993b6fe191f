//! Shopping carts for the boutique (the demo's `cartservice`, which keeps
//! them in Redis): one cart per user in the key-value store `carts`, a JSON
//! list of items, changed with [`amimono_sdk::kv::Typed::modify`]
//! (read-modify-write retried on conflict, so concurrent additions to one
//! cart are never lost). Exports `boutique:shop/cart@0.1.0`.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "boutique:shop/cart-world",
    });
}

use amimono_sdk::kv::Typed;
use bindings::boutique::shop::types::CartItem;
use bindings::exports::boutique::shop::cart::Guest;
use serde::{Deserialize, Serialize};

/// The key-value store holding the carts (granted in the manifest).
const STORE: &str = "carts";

/// The longest user id accepted, in bytes.
const MAX_USER_ID: usize = 128;

/// A cart line as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Line {
    product_id: String,
    quantity: i32,
}

/// Checks a user id (the cart's key).
fn check_user(user_id: &str) -> Result<(), String> {
    if user_id.is_empty() || user_id.len() > MAX_USER_ID {
        return Err(format!(
            "invalid user id {user_id:?}: it must have 1 to {MAX_USER_ID} bytes"
        ));
    }
    Ok(())
}

/// `cart` with `quantity` more of `product_id` (a new line at the end if the
/// product is not in it yet).
fn add(mut cart: Vec<Line>, product_id: &str, quantity: i32) -> Result<Vec<Line>, String> {
    if product_id.is_empty() {
        return Err("the product id is empty".to_string());
    }
    if quantity <= 0 {
        return Err(format!("invalid quantity {quantity}: it must be positive"));
    }
    match cart.iter_mut().find(|line| line.product_id == product_id) {
        Some(line) => {
            line.quantity = line
                .quantity
                .checked_add(quantity)
                .ok_or_else(|| format!("too many of {product_id} in one cart"))?;
        }
        None => cart.push(Line {
            product_id: product_id.to_string(),
            quantity,
        }),
    }
    Ok(cart)
}

fn open() -> Result<Typed<Vec<Line>>, String> {
    Typed::open(STORE).map_err(|e| format!("cannot open the store {STORE:?}: {e}"))
}

struct Cart;

impl Guest for Cart {
    fn add_item(user_id: String, item: CartItem) -> Result<(), String> {
        check_user(&user_id)?;
        // Checked before touching the store, so a bad item never writes.
        add(Vec::new(), &item.product_id, item.quantity)?;
        let mut failure = None;
        open()?
            .modify(&user_id, |cart| {
                match add(
                    cart.clone().unwrap_or_default(),
                    &item.product_id,
                    item.quantity,
                ) {
                    Ok(cart) => Some(cart),
                    Err(e) => {
                        failure = Some(e);
                        // Leave the cart as it was.
                        cart
                    }
                }
            })
            .map_err(|e| format!("cannot update the cart: {e}"))?;
        failure.map_or(Ok(()), Err)
    }

    fn get_cart(user_id: String) -> Result<Vec<CartItem>, String> {
        check_user(&user_id)?;
        let cart = open()?
            .get(&user_id)
            .map_err(|e| format!("cannot read the cart: {e}"))?
            .unwrap_or_default();
        Ok(cart
            .into_iter()
            .map(|line| CartItem {
                product_id: line.product_id,
                quantity: line.quantity,
            })
            .collect())
    }

    fn empty_cart(user_id: String) -> Result<(), String> {
        check_user(&user_id)?;
        open()?
            .delete(&user_id)
            .map_err(|e| format!("cannot empty the cart: {e}"))
    }
}

// Exported only when building the component (see examples/hello/greeter).
#[cfg(target_arch = "wasm32")]
bindings::export!(Cart with_types_in bindings);
#[cfg(not(target_arch = "wasm32"))]
const _: Cart = Cart;

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, quantity: i32) -> Line {
        Line {
            product_id: id.to_string(),
            quantity,
        }
    }

    #[test]
    fn adding_merges_lines_in_order() {
        let cart = add(Vec::new(), "A", 1).unwrap();
        let cart = add(cart, "B", 2).unwrap();
        let cart = add(cart, "A", 3).unwrap();
        assert_eq!(cart, [line("A", 4), line("B", 2)]);
    }

    #[test]
    fn bad_items() {
        assert!(add(Vec::new(), "A", 0).is_err());
        assert!(add(Vec::new(), "A", -1).is_err());
        assert!(add(Vec::new(), "", 1).is_err());
        assert!(add(vec![line("A", i32::MAX)], "A", 1).is_err());
        assert!(check_user("").is_err());
        assert!(check_user(&"u".repeat(129)).is_err());
        assert!(check_user("5f2c").is_ok());
    }

    #[test]
    fn stored_as_json() {
        let text = serde_json::to_string(&[line("A", 2)]).unwrap();
        assert_eq!(text, r#"[{"product_id":"A","quantity":2}]"#);
    }
}
