//! Checkout for the boutique (the demo's `checkoutservice`): places an order
//! the way the demo does — reads the user's cart, prices each item in the
//! user's currency (catalog, currency), quotes shipping and converts it,
//! charges the total (payment), ships (shipping), empties the cart and sends
//! a confirmation (email; a failure there is only logged). A refused payment
//! is an error and nothing is shipped or emptied. The order id is derived
//! from the user, the transaction and the shipment (the demo draws a UUID).
//! Exports `boutique:shop/checkout@0.1.0`; imports cart, catalog, currency,
//! shipping, payment and email.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "boutique:shop/checkout-world",
    });
}

use bindings::boutique::shop::types::{Money, OrderItem, OrderResult};
use bindings::boutique::shop::{cart, catalog, currency, email, payment, shipping};
use bindings::exports::boutique::shop::checkout::{CheckoutError, Guest, PlaceOrderRequest};
use boutique_common::{ids, money};

fn plain(amount: &Money) -> money::Money {
    money::Money::new(amount.currency_code.clone(), amount.units, amount.nanos)
}

/// What an order costs: shipping plus each line's unit cost times its
/// quantity, all in `currency_code`.
fn order_total(
    currency_code: &str,
    shipping: &money::Money,
    lines: &[(i32, money::Money)],
) -> Result<money::Money, money::MoneyError> {
    let mut total = money::Money::zero(currency_code).checked_add(shipping)?;
    for (quantity, cost) in lines {
        total = total.checked_add(&cost.checked_mul(i64::from(*quantity))?)?;
    }
    Ok(total)
}

/// Checks what the request must carry.
fn check_request(request: &PlaceOrderRequest) -> Result<(), String> {
    if request.user_id.is_empty() {
        return Err("no user id".to_string());
    }
    if request.email.trim().is_empty() {
        return Err("no e-mail address".to_string());
    }
    let code = &request.user_currency;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("invalid currency code {code:?}"));
    }
    Ok(())
}

fn place_order(request: PlaceOrderRequest) -> Result<OrderResult, CheckoutError> {
    check_request(&request).map_err(CheckoutError::InvalidRequest)?;
    let user_currency = &request.user_currency;
    let items = cart::get_cart(&request.user_id)
        .map_err(|e| CheckoutError::Failed(format!("cannot read the cart: {e}")))?;
    if items.is_empty() {
        return Err(CheckoutError::EmptyCart);
    }

    // Each item's unit cost in the user's currency.
    let mut order_items = Vec::with_capacity(items.len());
    for item in &items {
        let product = catalog::get_product(&item.product_id).ok_or_else(|| {
            CheckoutError::InvalidRequest(format!("unknown product {:?}", item.product_id))
        })?;
        let cost = currency::convert(&product.price_usd, user_currency)
            .map_err(CheckoutError::InvalidRequest)?;
        order_items.push(OrderItem {
            item: item.clone(),
            cost,
        });
    }
    let quote = shipping::get_quote(&request.address, &items);
    let shipping_cost =
        currency::convert(&quote, user_currency).map_err(CheckoutError::InvalidRequest)?;

    let lines: Vec<(i32, money::Money)> = order_items
        .iter()
        .map(|line| (line.item.quantity, plain(&line.cost)))
        .collect();
    let total = order_total(user_currency, &plain(&shipping_cost), &lines)
        .map_err(|e| CheckoutError::Failed(format!("cannot total the order: {e}")))?;
    let total = Money {
        currency_code: total.currency_code,
        units: total.units,
        nanos: total.nanos,
    };

    let transaction_id =
        payment::charge(&total, &request.credit_card).map_err(CheckoutError::PaymentDeclined)?;
    let tracking_id = shipping::ship_order(&request.address, &items);
    if let Err(e) = cart::empty_cart(&request.user_id) {
        amimono_sdk::log::warn(&format!(
            "order placed but the cart of {} was not emptied: {e}",
            request.user_id
        ));
    }

    let order = OrderResult {
        order_id: ids::uuid_like(&["order", &request.user_id, &transaction_id, &tracking_id]),
        shipping_tracking_id: tracking_id,
        shipping_cost,
        shipping_address: request.address,
        items: order_items,
    };
    if let Err(e) = email::send_order_confirmation(&request.email, &order) {
        amimono_sdk::log::warn(&format!(
            "order {} placed but its confirmation was not sent: {e}",
            order.order_id
        ));
    }
    Ok(order)
}

struct Checkout;

impl Guest for Checkout {
    fn place_order(request: PlaceOrderRequest) -> Result<OrderResult, CheckoutError> {
        place_order(request)
    }
}

// Exported only when building the component (see examples/hello/greeter).
#[cfg(target_arch = "wasm32")]
bindings::export!(Checkout with_types_in bindings);
#[cfg(not(target_arch = "wasm32"))]
const _: Checkout = Checkout;

#[cfg(test)]
mod tests {
    use super::*;
    use bindings::boutique::shop::types::{Address, CreditCardInfo};

    fn usd(units: i64, nanos: i32) -> money::Money {
        money::Money::new("USD", units, nanos)
    }

    #[test]
    fn totals() {
        // 3 × 19.99 + 1 × 8.99 + shipping 8.99
        let total = order_total(
            "USD",
            &usd(8, 990_000_000),
            &[(3, usd(19, 990_000_000)), (1, usd(8, 990_000_000))],
        );
        assert_eq!(total, Ok(usd(77, 950_000_000)));
        assert_eq!(order_total("USD", &usd(0, 0), &[]), Ok(usd(0, 0)));
        assert!(order_total("EUR", &usd(1, 0), &[]).is_err());
        assert!(order_total("USD", &usd(0, 0), &[(1, usd(i64::MAX, 0)), (1, usd(1, 0))]).is_err());
    }

    #[test]
    fn requests() {
        let request = |user: &str, email: &str, currency: &str| PlaceOrderRequest {
            user_id: user.into(),
            user_currency: currency.into(),
            address: Address {
                street_address: String::new(),
                city: String::new(),
                state: String::new(),
                country: String::new(),
                zip_code: String::new(),
            },
            email: email.into(),
            credit_card: CreditCardInfo {
                credit_card_number: String::new(),
                credit_card_cvv: 0,
                credit_card_expiration_year: 0,
                credit_card_expiration_month: 0,
            },
        };
        assert!(check_request(&request("u", "a@b.c", "EUR")).is_ok());
        assert!(check_request(&request("", "a@b.c", "EUR")).is_err());
        assert!(check_request(&request("u", " ", "EUR")).is_err());
        assert!(check_request(&request("u", "a@b.c", "eur")).is_err());
        assert!(check_request(&request("u", "a@b.c", "EURO")).is_err());
    }
}
