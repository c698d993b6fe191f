//! Currency conversion for the boutique (the demo's `currencyservice`): the
//! demo's table of rates (euros are the base: one euro buys 1.1305 USD),
//! conversions through the euro computed exactly on units and nanos and
//! rounded once to the nearest nano. Exports `boutique:shop/currency@0.1.0`.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "boutique:shop/currency-world",
    });
}

use bindings::boutique::shop::types::Money;
use bindings::exports::boutique::shop::currency::Guest;
use boutique_common::money::{self, Rate};

/// The demo's `currency_conversion.json`: units of each currency one euro buys.
const RATES: &[(&str, &str)] = &[
    ("EUR", "1.0"),
    ("USD", "1.1305"),
    ("JPY", "126.40"),
    ("BGN", "1.9558"),
    ("CZK", "25.592"),
    ("DKK", "7.4609"),
    ("GBP", "0.85970"),
    ("HUF", "315.51"),
    ("PLN", "4.2996"),
    ("RON", "4.7463"),
    ("SEK", "10.5375"),
    ("CHF", "1.1360"),
    ("ISK", "136.80"),
    ("NOK", "9.8040"),
    ("HRK", "7.4210"),
    ("RUB", "74.4208"),
    ("TRY", "6.1247"),
    ("AUD", "1.6072"),
    ("BRL", "4.2682"),
    ("CAD", "1.5128"),
    ("CNY", "7.5857"),
    ("HKD", "8.8743"),
    ("IDR", "15999.40"),
    ("ILS", "4.0875"),
    ("INR", "79.4320"),
    ("KRW", "1275.05"),
    ("MXN", "21.7999"),
    ("MYR", "4.6289"),
    ("NZD", "1.6679"),
    ("PHP", "59.083"),
    ("SGD", "1.5349"),
    ("THB", "36.012"),
    ("ZAR", "16.0583"),
];

/// The rate of `code`, or why there is none.
fn rate(code: &str) -> Result<Rate, String> {
    let (_, text) = RATES
        .iter()
        .find(|(known, _)| *known == code)
        .ok_or_else(|| format!("unsupported currency {code:?}"))?;
    Rate::parse(text).map_err(|e| e.to_string())
}

/// `amount` in `to_code`.
fn convert(amount: &money::Money, to_code: &str) -> Result<money::Money, String> {
    let from = rate(&amount.currency_code)?;
    let to = rate(to_code)?;
    money::convert(amount, from, to, to_code).map_err(|e| e.to_string())
}

struct Currency;

impl Guest for Currency {
    fn get_supported_currencies() -> Vec<String> {
        RATES.iter().map(|(code, _)| code.to_string()).collect()
    }

    fn convert(from: Money, to_code: String) -> Result<Money, String> {
        let amount = money::Money::new(from.currency_code, from.units, from.nanos);
        convert(&amount, &to_code).map(|m| Money {
            currency_code: m.currency_code,
            units: m.units,
            nanos: m.nanos,
        })
    }
}

// Exported only when building the component (see examples/hello/greeter).
#[cfg(target_arch = "wasm32")]
bindings::export!(Currency with_types_in bindings);
#[cfg(not(target_arch = "wasm32"))]
const _: Currency = Currency;

#[cfg(test)]
mod tests {
    use super::*;
    use boutique_common::money::render;

    fn usd(units: i64, nanos: i32) -> money::Money {
        money::Money::new("USD", units, nanos)
    }

    #[test]
    fn every_rate_parses() {
        for (code, _) in RATES {
            assert!(rate(code).is_ok(), "{code}");
        }
        assert_eq!(RATES.len(), 33);
    }

    #[test]
    fn storefront_figures() {
        // The sunglasses, 19.99 USD, in each currency the storefront offers.
        let sunglasses = usd(19, 990_000_000);
        let shown: Vec<String> = ["USD", "EUR", "CAD", "JPY", "GBP", "TRY"]
            .iter()
            .map(|code| render(&convert(&sunglasses, code).unwrap()))
            .collect();
        assert_eq!(
            shown,
            [
                "$19.99",
                "€17.68",
                "$26.74",
                "¥2235.06",
                "£15.20",
                "₺108.29"
            ]
        );
        assert_eq!(
            convert(&sunglasses, "EUR"),
            Ok(money::Money::new("EUR", 17, 682_441_398))
        );
        // Shipping, 8.99 USD.
        assert_eq!(
            render(&convert(&usd(8, 990_000_000), "EUR").unwrap()),
            "€7.95"
        );
    }

    #[test]
    fn round_trips_stay_within_a_nano() {
        let amount = usd(109, 990_000_000);
        let there = convert(&amount, "KRW").unwrap();
        let back = convert(&there, "USD").unwrap();
        assert!(
            (back.total_nanos() - amount.total_nanos()).abs() <= 1,
            "{back:?}"
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            convert(&usd(1, 0), "XXX"),
            Err("unsupported currency \"XXX\"".to_string())
        );
        assert_eq!(
            convert(&money::Money::new("ABC", 1, 0), "USD"),
            Err("unsupported currency \"ABC\"".to_string())
        );
        assert!(
            convert(&usd(1, -5), "EUR")
                .unwrap_err()
                .contains("invalid amount")
        );
    }
}
