//! Plain Rust shared by the boutique's components: money arithmetic in
//! units and nanos ([`money`]), deterministic ids ([`ids`]) and today's
//! date ([`calendar`]). No WIT bindings here: each component converts its
//! own generated `Money` record to and from [`money::Money`].

pub mod calendar;
pub mod ids;
pub mod money;
