//! The product catalog of the boutique (the demo's `productcatalogservice`):
//! the demo's nine products (`products.json`), listed, looked up by id and
//! searched. Exports `boutique:shop/catalog@0.1.0`.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "boutique:shop/catalog-world",
    });
}

use bindings::boutique::shop::types::{Money, Product};
use bindings::exports::boutique::shop::catalog::Guest;

/// One product of the demo's `products.json`.
struct Entry {
    id: &'static str,
    name: &'static str,
    description: &'static str,
    picture: &'static str,
    units: i64,
    nanos: i32,
    categories: &'static [&'static str],
}

/// The demo's catalog, in its order.
const PRODUCTS: &[Entry] = &[
    Entry {
        id: "OLJCESPC7Z",
        name: "Sunglasses",
        description: "Add a modern touch to your outfits with these sleek aviator sunglasses.",
        picture: "/static/img/products/sunglasses.jpg",
        units: 19,
        nanos: 990_000_000,
        categories: &["accessories"],
    },
    Entry {
        id: "66VCHSJNUP",
        name: "Tank Top",
        description: "Perfectly cropped cotton tank, with a scooped neckline.",
        picture: "/static/img/products/tank-top.jpg",
        units: 18,
        nanos: 990_000_000,
        categories: &["clothing", "tops"],
    },
    Entry {
        id: "1YMWWN1N4O",
        name: "Watch",
        description: "This gold-tone stainless steel watch will work with most of your outfits.",
        picture: "/static/img/products/watch.jpg",
        units: 109,
        nanos: 990_000_000,
        categories: &["accessories"],
    },
    Entry {
        id: "L9ECAV7KIM",
        name: "Loafers",
        description: "A neat addition to your summer wardrobe.",
        picture: "/static/img/products/loafers.jpg",
        units: 89,
        nanos: 990_000_000,
        categories: &["footwear"],
    },
    Entry {
        id: "2ZYFJ3GM2N",
        name: "Hairdryer",
        description: "This lightweight hairdryer has 3 heat and speed settings. It's perfect for travel.",
        picture: "/static/img/products/hairdryer.jpg",
        units: 24,
        nanos: 990_000_000,
        categories: &["hair", "beauty"],
    },
    Entry {
        id: "0PUK6V6EV0",
        name: "Candle Holder",
        description: "This small but intricate candle holder is an excellent gift.",
        picture: "/static/img/products/candle-holder.jpg",
        units: 18,
        nanos: 990_000_000,
        categories: &["decor", "home"],
    },
    Entry {
        id: "LS4PSXUNUM",
        name: "Salt & Pepper Shakers",
        description: "Add some flavor to your kitchen.",
        picture: "/static/img/products/salt-and-pepper-shakers.jpg",
        units: 18,
        nanos: 490_000_000,
        categories: &["kitchen"],
    },
    Entry {
        id: "9SIQT8TOJO",
        name: "Bamboo Glass Jar",
        description: "This bamboo glass jar can hold 57 oz (1.7 l) and is perfect for any kitchen.",
        picture: "/static/img/products/bamboo-glass-jar.jpg",
        units: 5,
        nanos: 490_000_000,
        categories: &["kitchen"],
    },
    Entry {
        id: "6E92ZMYYFZ",
        name: "Mug",
        description: "A simple mug with a mustard interior.",
        picture: "/static/img/products/mug.jpg",
        units: 8,
        nanos: 990_000_000,
        categories: &["kitchen"],
    },
];

fn product(entry: &Entry) -> Product {
    Product {
        id: entry.id.to_string(),
        name: entry.name.to_string(),
        description: entry.description.to_string(),
        picture: entry.picture.to_string(),
        price_usd: Money {
            currency_code: "USD".to_string(),
            units: entry.units,
            nanos: entry.nanos,
        },
        categories: entry.categories.iter().map(|c| c.to_string()).collect(),
    }
}

/// The entry with id `id`.
fn find(id: &str) -> Option<&'static Entry> {
    PRODUCTS.iter().find(|entry| entry.id == id)
}

/// Whether `entry`'s name or description contains `query`, ignoring case.
fn matches(entry: &Entry, query: &str) -> bool {
    let query = query.to_lowercase();
    entry.name.to_lowercase().contains(&query) || entry.description.to_lowercase().contains(&query)
}

struct Catalog;

impl Guest for Catalog {
    fn list_products() -> Vec<Product> {
        PRODUCTS.iter().map(product).collect()
    }

    fn get_product(id: String) -> Option<Product> {
        find(&id).map(product)
    }

    fn search_products(query: String) -> Vec<Product> {
        PRODUCTS
            .iter()
            .filter(|entry| matches(entry, &query))
            .map(product)
            .collect()
    }
}

// Exported only when building the component (see examples/hello/greeter).
#[cfg(target_arch = "wasm32")]
bindings::export!(Catalog with_types_in bindings);
#[cfg(not(target_arch = "wasm32"))]
const _: Catalog = Catalog;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog() {
        assert_eq!(PRODUCTS.len(), 9);
        let mut ids: Vec<&str> = PRODUCTS.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 9, "ids are unique");
        assert!(
            PRODUCTS
                .iter()
                .all(|p| p.nanos >= 0 && p.nanos < 1_000_000_000)
        );
        let mug = find("6E92ZMYYFZ").map(product).unwrap();
        assert_eq!(mug.name, "Mug");
        assert_eq!((mug.price_usd.units, mug.price_usd.nanos), (8, 990_000_000));
        assert_eq!(mug.categories, ["kitchen"]);
        assert!(find("nope").is_none());
    }

    #[test]
    fn search_ignores_case() {
        let found: Vec<&str> = PRODUCTS
            .iter()
            .filter(|e| matches(e, "KITCHEN"))
            .map(|e| e.id)
            .collect();
        assert_eq!(found, ["LS4PSXUNUM", "9SIQT8TOJO"]);
        assert!(PRODUCTS.iter().filter(|e| matches(e, "")).count() == 9);
    }
}
