//! Order confirmations for the boutique (the demo's `emailservice`, which
//! renders a template and only logs that it would send it): checks the
//! address, renders the confirmation as text and logs it (debug level).
//! Exports `boutique:shop/email@0.1.0`.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "boutique:shop/email-world",
    });
}

use bindings::boutique::shop::types::{Money, OrderResult};
use bindings::exports::boutique::shop::email::Guest;
use boutique_common::money;

/// Whether `email` looks like an address: `local@domain`, no spaces, a dot
/// in the domain.
fn plausible(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

fn render(amount: &Money) -> String {
    money::render(&money::Money::new(
        amount.currency_code.clone(),
        amount.units,
        amount.nanos,
    ))
}

/// The confirmation's text.
fn confirmation(order: &OrderResult) -> String {
    let mut text = format!(
        "Your order is complete!\nOrder ID: {}\nTracking ID: {}\nShipping: {}\nItems:\n",
        order.order_id,
        order.shipping_tracking_id,
        render(&order.shipping_cost)
    );
    for line in &order.items {
        text.push_str(&format!(
            "  {} × {} at {}\n",
            line.item.quantity,
            line.item.product_id,
            render(&line.cost)
        ));
    }
    let address = &order.shipping_address;
    text.push_str(&format!(
        "Ships to: {}, {} {}, {}, {}\n",
        address.street_address, address.zip_code, address.city, address.state, address.country
    ));
    text
}

struct Email;

impl Guest for Email {
    fn send_order_confirmation(email: String, order: OrderResult) -> Result<(), String> {
        if !plausible(&email) {
            return Err(format!("invalid e-mail address {email:?}"));
        }
        amimono_sdk::log::debug(&format!(
            "order confirmation to {email}:\n{}",
            confirmation(&order)
        ));
        Ok(())
    }
}

// Exported only when building the component (see examples/hello/greeter).
#[cfg(target_arch = "wasm32")]
bindings::export!(Email with_types_in bindings);
#[cfg(not(target_arch = "wasm32"))]
const _: Email = Email;

#[cfg(test)]
mod tests {
    use super::*;
    use bindings::boutique::shop::types::{Address, CartItem, OrderItem};

    #[test]
    fn addresses() {
        assert!(plausible("someone@example.com"));
        assert!(!plausible("someone"));
        assert!(!plausible("@example.com"));
        assert!(!plausible("a@b"));
        assert!(!plausible("a@b@c.com"));
        assert!(!plausible("a b@c.com"));
    }

    #[test]
    fn confirmation_text() {
        let usd = |units, nanos| Money {
            currency_code: "USD".into(),
            units,
            nanos,
        };
        let order = OrderResult {
            order_id: "o-1".into(),
            shipping_tracking_id: "AB-44123-221234567".into(),
            shipping_cost: usd(8, 990_000_000),
            shipping_address: Address {
                street_address: "1600 Amphitheatre Parkway".into(),
                city: "Mountain View".into(),
                state: "CA".into(),
                country: "United States".into(),
                zip_code: "94043".into(),
            },
            items: vec![OrderItem {
                item: CartItem {
                    product_id: "OLJCESPC7Z".into(),
                    quantity: 2,
                },
                cost: usd(19, 990_000_000),
            }],
        };
        let text = confirmation(&order);
        assert!(text.contains("Order ID: o-1\n"), "{text}");
        assert!(text.contains("Shipping: $8.99\n"), "{text}");
        assert!(text.contains("2 × OLJCESPC7Z at $19.99\n"), "{text}");
    }
}
