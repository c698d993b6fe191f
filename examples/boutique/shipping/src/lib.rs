//! Shipping for the boutique (the demo's `shippingservice`): a flat quote of
//! 8.99 USD for any non-empty order (nothing for an empty one), and tracking
//! ids shaped like the demo's (`XY-<n><3 digits>-<n/2><7 digits>`, `n` the
//! length of the address line) but derived from the address and the items
//! instead of drawn at random. Exports `boutique:shop/shipping@0.1.0`.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "boutique:shop/shipping-world",
    });
}

use bindings::boutique::shop::types::{Address, CartItem, Money};
use bindings::exports::boutique::shop::shipping::Guest;
use boutique_common::ids;

/// The quote in USD for `item_count` items: (units, nanos).
fn quote(item_count: i64) -> (i64, i32) {
    if item_count > 0 {
        (8, 990_000_000)
    } else {
        (0, 0)
    }
}

/// The demo's "base address": `street, city, state`.
fn base_address(address: &Address) -> String {
    format!(
        "{}, {}, {}",
        address.street_address, address.city, address.state
    )
}

/// The tracking id of a shipment of `items` to `address`.
fn tracking_id(address: &Address, items: &[CartItem]) -> String {
    let salt = base_address(address);
    let mut parts: Vec<String> = vec![
        salt.clone(),
        address.country.clone(),
        address.zip_code.clone(),
    ];
    for item in items {
        parts.push(item.product_id.clone());
        parts.push(item.quantity.to_string());
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let h = ids::hash(&parts);
    let letter = |shift: u32| char::from(b'A' + ((h >> shift) % 26) as u8);
    format!(
        "{}{}-{}{:03}-{}{:07}",
        letter(0),
        letter(8),
        salt.len(),
        (h >> 16) % 1_000,
        salt.len() / 2,
        (h >> 32) % 10_000_000
    )
}

struct Shipping;

impl Guest for Shipping {
    fn get_quote(_address: Address, items: Vec<CartItem>) -> Money {
        let count = items
            .iter()
            .map(|item| i64::from(item.quantity.max(0)))
            .sum();
        let (units, nanos) = quote(count);
        Money {
            currency_code: "USD".to_string(),
            units,
            nanos,
        }
    }

    fn ship_order(address: Address, items: Vec<CartItem>) -> String {
        tracking_id(&address, &items)
    }
}

// Exported only when building the component (see examples/hello/greeter).
#[cfg(target_arch = "wasm32")]
bindings::export!(Shipping with_types_in bindings);
#[cfg(not(target_arch = "wasm32"))]
const _: Shipping = Shipping;

#[cfg(test)]
mod tests {
    use super::*;

    fn address(street: &str) -> Address {
        Address {
            street_address: street.to_string(),
            city: "Mountain View".to_string(),
            state: "CA".to_string(),
            country: "United States".to_string(),
            zip_code: "94043".to_string(),
        }
    }

    fn item(id: &str, quantity: i32) -> CartItem {
        CartItem {
            product_id: id.to_string(),
            quantity,
        }
    }

    #[test]
    fn flat_quote() {
        assert_eq!(quote(0), (0, 0));
        assert_eq!(quote(1), (8, 990_000_000));
        assert_eq!(quote(40), (8, 990_000_000));
    }

    #[test]
    fn tracking_ids_are_deterministic() {
        let home = address("1600 Amphitheatre Parkway");
        let items = [item("OLJCESPC7Z", 2)];
        let id = tracking_id(&home, &items);
        assert_eq!(id, tracking_id(&home, &items));
        // "1600 Amphitheatre Parkway, Mountain View, CA" has 44 characters.
        let (letters, rest) = id.split_at(2);
        assert!(letters.chars().all(|c| c.is_ascii_uppercase()), "{id}");
        assert!(rest.starts_with("-44"), "{id}");
        assert!(rest[6..].starts_with("-22"), "{id}");
        assert_eq!(id.len(), 2 + 1 + 5 + 1 + 9, "{id}");
        assert_ne!(id, tracking_id(&home, &[item("OLJCESPC7Z", 3)]));
        assert_ne!(id, tracking_id(&address("1 Main St"), &items));
    }
}
