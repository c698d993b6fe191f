//! The Online Boutique example (`examples/boutique`) over real HTTP, under
//! every placement: all in one process, every call forced over HTTP, one
//! process per service (`[jobs]`), and the `grouped` layout. The pages must
//! not depend on the placement.

use amimono_tests::{Deployment, HttpReply, Layout, request, root};
use std::path::PathBuf;

amimono_tests::in_every_layout!(
    [
        home_lists_the_products_in_usd,
        prices_convert_to_the_chosen_currency,
        product_page_and_unknown_product,
        cart_adds_up_with_shipping,
        checkout_places_the_order_and_empties_the_cart,
        refused_card_is_a_4xx_page_and_keeps_the_cart,
    ],
    grouped = "grouped"
);

/// The demo's nine products: id, name as the HTML shows it, USD price.
const PRODUCTS: [(&str, &str, &str); 9] = [
    ("OLJCESPC7Z", "Sunglasses", "$19.99"),
    ("66VCHSJNUP", "Tank Top", "$18.99"),
    ("1YMWWN1N4O", "Watch", "$109.99"),
    ("L9ECAV7KIM", "Loafers", "$89.99"),
    ("2ZYFJ3GM2N", "Hairdryer", "$24.99"),
    ("0PUK6V6EV0", "Candle Holder", "$18.99"),
    ("LS4PSXUNUM", "Salt &amp; Pepper Shakers", "$18.49"),
    ("9SIQT8TOJO", "Bamboo Glass Jar", "$5.49"),
    ("6E92ZMYYFZ", "Mug", "$8.99"),
];

fn boutique_app() -> PathBuf {
    root().join("examples/boutique")
}

/// The boutique in `layout`, carts in memory (private to this test).
fn deploy(layout: Layout) -> Deployment {
    Deployment::start_with(&boutique_app(), layout, &[("AMIMONO_KEYVALUE", "memory")])
}

/// A browser with a session: sends the cookies itself, as the benchmark does.
struct Shopper {
    url: String,
    session: String,
    currency: Option<String>,
}

impl Shopper {
    fn new(app: &Deployment, session: &str) -> Shopper {
        Shopper {
            url: app.url().to_string(),
            session: session.to_string(),
            currency: None,
        }
    }

    fn cookies(&self) -> String {
        match &self.currency {
            Some(code) => format!("shop_session-id={}; shop_currency={code}", self.session),
            None => format!("shop_session-id={}", self.session),
        }
    }

    fn get(&self, path: &str) -> HttpReply {
        let cookies = self.cookies();
        request(
            "GET",
            &format!("{}{path}", self.url),
            &[("cookie", &cookies)],
            b"",
        )
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> HttpReply {
        let cookies = self.cookies();
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        request(
            "POST",
            &format!("{}{path}", self.url),
            &[
                ("cookie", &cookies),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
    }

    /// Adds `quantity` of `product` to the cart; expects the redirect to `/cart`.
    fn add(&self, product: &str, quantity: u32) {
        let reply = self.post(
            "/cart",
            &[("product_id", product), ("quantity", &quantity.to_string())],
        );
        assert_eq!(reply.status, 302, "{reply:?}");
        assert_eq!(reply.header("location"), Some("/cart"), "{reply:?}");
    }

    /// Places the order with card `number` expiring `month`/`year`.
    fn checkout(&self, number: &str, month: &str, year: &str) -> HttpReply {
        self.post(
            "/cart/checkout",
            &[
                ("email", "someone@example.com"),
                ("street_address", "1600 Amphitheatre Parkway"),
                ("zip_code", "94043"),
                ("city", "Mountain View"),
                ("state", "CA"),
                ("country", "United States"),
                ("credit_card_number", number),
                ("credit_card_expiration_month", month),
                ("credit_card_expiration_year", year),
                ("credit_card_cvv", "672"),
            ],
        )
    }
}

/// `text` encoded for a form body.
fn form_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Next year, for cards that have not expired.
fn next_year() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Good enough for "next year" until the year 2400.
    (1970 + seconds / 31_556_952 + 1).to_string()
}

fn assert_no_failures(app: &Deployment) {
    let logs = app.logs();
    for needle in ["trap", "panicked", "failed"] {
        assert!(!logs.contains(needle), "`{needle}` in the logs:\n{logs}");
    }
}

fn home_lists_the_products_in_usd(layout: Layout) {
    let app = deploy(layout);
    // One process per service, two for the grouping, else one.
    let processes = match layout {
        Layout::Split => 10,
        Layout::Named(_) => 2,
        Layout::Local | Layout::ForcedRemote => 1,
    };
    assert_eq!(app.hosts.len(), processes);
    let health = request("GET", &format!("{}/_healthz", app.url()), &[], b"");
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));

    let shopper = Shopper::new(&app, "home-usd");
    let reply = shopper.get("/");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        reply.body.matches("<li class=\"product\">").count(),
        9,
        "{}",
        reply.body
    );
    for (id, name, price) in PRODUCTS {
        let line = reply
            .body
            .lines()
            .find(|line| line.contains(&format!("href=\"/product/{id}\"")))
            .unwrap_or_else(|| panic!("no link to {id}:\n{}", reply.body));
        assert!(line.contains(name), "{line}");
        assert!(
            line.contains(&format!("<span class=\"price\">{price}</span>")),
            "{line}"
        );
    }
    for code in ["USD", "EUR", "CAD", "JPY", "GBP", "TRY"] {
        assert!(
            reply.body.contains(&format!("<option value=\"{code}\"")),
            "{code}"
        );
    }
    assert!(reply.body.contains("<option value=\"USD\" selected>"));
    assert!(reply.body.contains("Cart (0)"), "{}", reply.body);
    assert!(reply.body.contains("<div class=\"ad\">"), "{}", reply.body);
    // A known session is not set again.
    assert_eq!(reply.header("set-cookie"), None);

    // A first visit gets a session cookie.
    let first = request("GET", &format!("{}/", app.url()), &[], b"");
    assert_eq!(first.status, 200);
    let cookie = first.header("set-cookie").unwrap_or_default();
    assert!(cookie.starts_with("shop_session-id="), "{first:?}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert_no_failures(&app);
}

fn prices_convert_to_the_chosen_currency(layout: Layout) {
    let app = deploy(layout);
    let mut shopper = Shopper::new(&app, "euro-shopper");
    // 19.99 USD / 1.1305 = 17.682... EUR; 109.99 / 1.1305 = 97.293...
    let reply = shopper.get("/?currency=EUR");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply.body.contains("<span class=\"price\">€17.68</span>"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("<span class=\"price\">€97.29</span>"),
        "{}",
        reply.body
    );
    assert!(!reply.body.contains("$19.99"), "{}", reply.body);
    assert!(reply.body.contains("<option value=\"EUR\" selected>"));

    // Choosing the currency sets the cookie.
    let set = shopper.post("/setCurrency", &[("currency_code", "JPY")]);
    assert_eq!(set.status, 302, "{set:?}");
    assert_eq!(set.header("location"), Some("/"));
    let cookie = set.header("set-cookie").unwrap_or_default();
    assert!(cookie.starts_with("shop_currency=JPY"), "{set:?}");
    shopper.currency = Some("JPY".to_string());
    // 19.99 × 126.40 / 1.1305 = 2235.06...
    let reply = shopper.get("/");
    assert!(
        reply.body.contains("<span class=\"price\">¥2235.06</span>"),
        "{}",
        reply.body
    );
    let reply = shopper.get("/product/OLJCESPC7Z");
    assert!(
        reply.body.contains("<p class=\"price\">¥2235.06</p>"),
        "{}",
        reply.body
    );

    let bad = shopper.post("/setCurrency", &[("currency_code", "XYZ")]);
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.body.contains("XYZ"), "{bad:?}");
    let bad = shopper.get("/?currency=XYZ");
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.body.contains("unsupported currency"), "{bad:?}");
    assert_no_failures(&app);
}

fn product_page_and_unknown_product(layout: Layout) {
    let app = deploy(layout);
    let shopper = Shopper::new(&app, "browser");
    let reply = shopper.get("/product/OLJCESPC7Z");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.contains("<h1>Sunglasses</h1>"), "{}", reply.body);
    assert!(
        reply.body.contains("<p class=\"price\">$19.99</p>"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("sleek aviator sunglasses"),
        "{}",
        reply.body
    );
    // Four recommendations, never the product itself.
    let recommendations = reply
        .body
        .split("<ul class=\"recommendations\">")
        .nth(1)
        .and_then(|rest| rest.split("</ul>").next())
        .unwrap_or_else(|| panic!("no recommendations:\n{}", reply.body));
    assert_eq!(
        recommendations.matches("<li>").count(),
        4,
        "{recommendations}"
    );
    assert!(!recommendations.contains("OLJCESPC7Z"), "{recommendations}");
    // The ad matches the product's category (accessories).
    assert!(reply.body.contains("Watch for sale"), "{}", reply.body);
    // The same page again: deterministic.
    assert_eq!(shopper.get("/product/OLJCESPC7Z").body, reply.body);

    let missing = shopper.get("/product/NOSUCHITEM");
    assert_eq!(missing.status, 404, "{missing:?}");
    assert!(missing.body.contains("NOSUCHITEM"), "{missing:?}");
    let wrong = request("GET", &format!("{}/no/such/page", app.url()), &[], b"");
    assert_eq!(wrong.status, 404, "{wrong:?}");
    assert_no_failures(&app);
}

fn cart_adds_up_with_shipping(layout: Layout) {
    let app = deploy(layout);
    let shopper = Shopper::new(&app, "cart-user");
    let empty = shopper.get("/cart");
    assert_eq!(empty.status, 200, "{empty:?}");
    assert!(
        empty.body.contains("Your shopping cart is empty"),
        "{}",
        empty.body
    );

    shopper.add("OLJCESPC7Z", 1);
    shopper.add("OLJCESPC7Z", 2);
    shopper.add("6E92ZMYYFZ", 1);
    let reply = shopper.get("/cart");
    assert_eq!(reply.status, 200, "{reply:?}");
    let line = |id: &str| {
        reply
            .body
            .lines()
            .find(|l| l.contains(&format!("data-id=\"{id}\"")))
            .unwrap_or_else(|| panic!("no line for {id}:\n{}", reply.body))
            .to_string()
    };
    // 3 × 19.99 = 59.97; 1 × 8.99; shipping 8.99; total 77.95.
    assert!(line("OLJCESPC7Z").contains("Quantity: 3"), "{}", reply.body);
    assert!(line("OLJCESPC7Z").contains("$59.97"), "{}", reply.body);
    assert!(line("6E92ZMYYFZ").contains("Quantity: 1"), "{}", reply.body);
    assert!(
        reply
            .body
            .contains("<p class=\"shipping\">Shipping: $8.99</p>"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("<p class=\"total\">Total: $77.95</p>"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("Cart (4)"), "{}", reply.body);
    // The same cart in euros: 3 × 17.682441398 + 7.952233525 + 7.952233525 = 68.951...
    let euros = shopper.get("/cart?currency=EUR");
    assert!(euros.body.contains("Shipping: €7.95"), "{}", euros.body);
    assert!(euros.body.contains("Total: €68.95"), "{}", euros.body);

    // Bad additions are 4xx and change nothing.
    let unknown = shopper.post("/cart", &[("product_id", "NOPE"), ("quantity", "1")]);
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let zero = shopper.post("/cart", &[("product_id", "OLJCESPC7Z"), ("quantity", "0")]);
    assert_eq!(zero.status, 400, "{zero:?}");
    let missing = shopper.post("/cart", &[("quantity", "1")]);
    assert_eq!(missing.status, 400, "{missing:?}");
    assert!(missing.body.contains("product_id"), "{missing:?}");
    assert!(shopper.get("/cart").body.contains("Total: $77.95"));

    // Another session has its own cart.
    let other = Shopper::new(&app, "someone-else");
    assert!(
        other
            .get("/cart")
            .body
            .contains("Your shopping cart is empty")
    );

    let emptied = shopper.post("/cart/empty", &[]);
    assert_eq!(emptied.status, 302, "{emptied:?}");
    assert!(
        shopper
            .get("/cart")
            .body
            .contains("Your shopping cart is empty")
    );
    assert_no_failures(&app);
}

fn checkout_places_the_order_and_empties_the_cart(layout: Layout) {
    let app = deploy(layout);
    let shopper = Shopper::new(&app, "buyer");
    shopper.add("OLJCESPC7Z", 2);
    let reply = shopper.checkout("4432-8015-6152-0454", "1", &next_year());
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply.body.contains("Your order is complete!"),
        "{}",
        reply.body
    );
    // 2 × 19.99 + 8.99 shipping.
    assert!(
        reply.body.contains("Total paid: <strong>$48.97</strong>"),
        "{}",
        reply.body
    );
    let order_id = reply
        .body
        .split("Order confirmation ID: <strong>")
        .nth(1)
        .and_then(|rest| rest.split("</strong>").next())
        .unwrap_or_else(|| panic!("no order id:\n{}", reply.body));
    assert_eq!(order_id.len(), 36, "{order_id}");
    assert_eq!(order_id.matches('-').count(), 4, "{order_id}");
    let tracking = reply
        .body
        .split("Shipping tracking ID: <strong>")
        .nth(1)
        .and_then(|rest| rest.split("</strong>").next())
        .unwrap_or_else(|| panic!("no tracking id:\n{}", reply.body));
    // "1600 Amphitheatre Parkway, Mountain View, CA": 44 characters.
    assert!(tracking[2..].starts_with("-44"), "{tracking}");

    let cart = shopper.get("/cart");
    assert!(
        cart.body.contains("Your shopping cart is empty"),
        "{}",
        cart.body
    );
    assert!(cart.body.contains("Cart (0)"), "{}", cart.body);

    // Nothing left to order.
    let again = shopper.checkout("4432-8015-6152-0454", "1", &next_year());
    assert_eq!(again.status, 400, "{again:?}");
    assert!(again.body.contains("your cart is empty"), "{again:?}");

    // In euros: 19.99 USD = 17.682441398 EUR; + 7.952233525 shipping = 25.634...
    let mut euro = Shopper::new(&app, "euro-buyer");
    euro.currency = Some("EUR".to_string());
    euro.add("OLJCESPC7Z", 1);
    let reply = euro.checkout("5555 5555 5555 4444", "12", &next_year());
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply.body.contains("Total paid: <strong>€25.63</strong>"),
        "{}",
        reply.body
    );
    assert_no_failures(&app);
}

fn refused_card_is_a_4xx_page_and_keeps_the_cart(layout: Layout) {
    let app = deploy(layout);
    let shopper = Shopper::new(&app, "unlucky");
    shopper.add("1YMWWN1N4O", 1);
    let cases = [
        // Fails the Luhn checksum.
        (
            "4432-8015-6152-0455",
            "1",
            next_year(),
            "Credit card info is invalid",
        ),
        // American Express.
        (
            "378282246310005",
            "1",
            next_year(),
            "Only VISA or MasterCard is accepted",
        ),
        (
            "4432-8015-6152-0454",
            "1",
            "2020".to_string(),
            "expired on 1/2020",
        ),
    ];
    for (number, month, year, message) in &cases {
        let reply = shopper.checkout(number, month, year);
        assert_eq!(reply.status, 402, "{number}: {reply:?}");
        assert!(reply.body.contains(message), "{number}: {}", reply.body);
        assert!(
            reply.body.contains("payment declined"),
            "{number}: {}",
            reply.body
        );
    }
    let bad_form = shopper.checkout("4432-8015-6152-0454", "January", &next_year());
    assert_eq!(bad_form.status, 400, "{bad_form:?}");
    assert!(
        bad_form.body.contains("credit_card_expiration_month"),
        "{bad_form:?}"
    );
    // Nothing was ordered: the cart is intact.
    let cart = shopper.get("/cart");
    assert!(cart.body.contains("Quantity: 1"), "{}", cart.body);
    assert!(cart.body.contains("Total: $118.98"), "{}", cart.body);
    assert_no_failures(&app);
}
