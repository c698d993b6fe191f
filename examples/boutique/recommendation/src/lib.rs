//! Recommendations for the boutique (the demo's `recommendationservice`):
//! up to five products of the catalog that are not among the ones given.
//! The demo samples them at random; here they are ordered by a hash of the
//! user and the product, so each user gets a stable, personal order.
//! Exports `boutique:shop/recommendation@0.1.0`, imports
//! `boutique:shop/catalog@0.1.0`.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "boutique:shop/recommendation-world",
    });
}

use bindings::boutique::shop::catalog;
use bindings::exports::boutique::shop::recommendation::Guest;
use boutique_common::ids;

/// The most products recommended at once (as in the demo).
const MAX_RECOMMENDATIONS: usize = 5;

/// Up to [`MAX_RECOMMENDATIONS`] of `candidates` not in `exclude`, in the
/// order of their hash with `user_id`.
fn recommend(user_id: &str, candidates: Vec<String>, exclude: &[String]) -> Vec<String> {
    let mut ranked: Vec<(u64, String)> = candidates
        .into_iter()
        .filter(|id| !exclude.contains(id))
        .map(|id| (ids::hash(&[user_id, &id]), id))
        .collect();
    ranked.sort_unstable();
    ranked
        .into_iter()
        .take(MAX_RECOMMENDATIONS)
        .map(|(_, id)| id)
        .collect()
}

struct Recommendation;

impl Guest for Recommendation {
    fn list_recommendations(user_id: String, product_ids: Vec<String>) -> Vec<String> {
        let candidates = catalog::list_products()
            .into_iter()
            .map(|product| product.id)
            .collect();
        recommend(&user_id, candidates, &product_ids)
    }
}

// Exported only when building the component (see examples/hello/greeter).
#[cfg(target_arch = "wasm32")]
bindings::export!(Recommendation with_types_in bindings);
#[cfg(not(target_arch = "wasm32"))]
const _: Recommendation = Recommendation;

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn excludes_and_caps() {
        let all = strings(&["a", "b", "c", "d", "e", "f", "g"]);
        let picked = recommend("u1", all.clone(), &strings(&["a", "b"]));
        assert_eq!(picked.len(), 5);
        assert!(!picked.contains(&"a".to_string()) && !picked.contains(&"b".to_string()));
        assert_eq!(picked, recommend("u1", all.clone(), &strings(&["a", "b"])));
        let few = recommend("u1", strings(&["a", "b", "c"]), &strings(&["c"]));
        assert_eq!(few.len(), 2);
        assert!(recommend("u1", all.clone(), &all).is_empty());
    }
}
