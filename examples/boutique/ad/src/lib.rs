//! Ads for the boutique (the demo's `adservice`): the demo's ads, keyed by
//! product category. For context keys that match no ad (or none at all) the
//! demo serves random ads; here it serves a fixed default, so pages are
//! deterministic. Exports `boutique:shop/ad@0.1.0`.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "boutique:shop/ad-world",
    });
}

use bindings::boutique::shop::types::Ad;
use bindings::exports::boutique::shop::ad::Guest;

/// The demo's ads by category: (category, redirect URL, text).
const ADS: &[(&str, &str, &str)] = &[
    (
        "clothing",
        "/product/66VCHSJNUP",
        "Tank top for sale. 20% off.",
    ),
    (
        "accessories",
        "/product/1YMWWN1N4O",
        "Watch for sale. Buy one, get second kit for free",
    ),
    (
        "footwear",
        "/product/L9ECAV7KIM",
        "Loafers for sale. Buy one, get second one for free",
    ),
    (
        "hair",
        "/product/2ZYFJ3GM2N",
        "Hairdryer for sale. 50% off.",
    ),
    (
        "decor",
        "/product/0PUK6V6EV0",
        "Candle holder for sale. 30% off.",
    ),
    (
        "kitchen",
        "/product/9SIQT8TOJO",
        "Bamboo glass jar for sale. 10% off.",
    ),
    (
        "kitchen",
        "/product/6E92ZMYYFZ",
        "Mug for sale. Buy two, get third one for free",
    ),
];

/// The ads served when no context key matches: the first two of the table.
const DEFAULT_ADS: usize = 2;

/// Indexes into [`ADS`] of the ads for `context_keys`, in table order.
fn select(context_keys: &[String]) -> Vec<usize> {
    let matching: Vec<usize> = (0..ADS.len())
        .filter(|&i| context_keys.iter().any(|key| key == ADS[i].0))
        .collect();
    if matching.is_empty() {
        (0..DEFAULT_ADS).collect()
    } else {
        matching
    }
}

struct AdService;

impl Guest for AdService {
    fn get_ads(context_keys: Vec<String>) -> Vec<Ad> {
        select(&context_keys)
            .into_iter()
            .map(|i| Ad {
                redirect_url: ADS[i].1.to_string(),
                text: ADS[i].2.to_string(),
            })
            .collect()
    }
}

// Exported only when building the component (see examples/hello/greeter).
#[cfg(target_arch = "wasm32")]
bindings::export!(AdService with_types_in bindings);
#[cfg(not(target_arch = "wasm32"))]
const _: AdService = AdService;

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn by_category() {
        assert_eq!(select(&keys(&["kitchen"])), [5, 6]);
        assert_eq!(select(&keys(&["hair", "beauty"])), [3]);
        assert_eq!(select(&keys(&["decor", "clothing"])), [0, 4]);
        assert_eq!(select(&keys(&[])), [0, 1]);
        assert_eq!(select(&keys(&["nothing"])), [0, 1]);
    }
}
