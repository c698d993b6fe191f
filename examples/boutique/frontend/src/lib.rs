//! The storefront of the boutique (the demo's `frontend`): small HTML pages
//! built with plain string formatting, served through
//! [`amimono_sdk::http_component!`]. It calls the catalog, currency, cart,
//! recommendation, shipping, checkout and ad services through their WIT
//! interfaces, in the same order and number as the demo's Go frontend.
//!
//! Routes (see `examples/boutique/README.md`):
//! - `GET /`: every product with its price in the user's currency, the
//!   currencies, the cart's size and an ad.
//! - `GET /product/<id>`: one product, its price, recommendations and an
//!   ad; `404` for an unknown id.
//! - `GET /cart`: the cart's lines, shipping, total, recommendations and the
//!   checkout form.
//! - `POST /cart` (`product_id`, `quantity`): adds to the cart, `302` to `/cart`.
//! - `POST /cart/empty`: empties the cart, `302` to `/`.
//! - `POST /cart/checkout` (address and card fields): places the order and
//!   shows its confirmation; a refused payment is `402` naming the problem.
//! - `POST /setCurrency` (`currency_code`): sets the currency cookie, `302` to `/`.
//! - `GET /_healthz`: `200 ok`.
//!
//! The user is the cookie `shop_session-id` (set when missing, from
//! `wasi:random`); the currency is the query parameter `currency` (GET
//! pages), else the cookie `shop_currency`, else USD.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "boutique:shop/frontend-world",
    });
}

use amimono_sdk::http::{Handler, Request, Response, percent_decode};
use bindings::boutique::shop::checkout::{CheckoutError, PlaceOrderRequest};
use bindings::boutique::shop::types::{
    Ad, Address, CartItem, CreditCardInfo, Money, OrderResult, PaymentError, Product,
};
use bindings::boutique::shop::{ad, cart, catalog, checkout, currency, recommendation, shipping};
use boutique_common::{calendar, ids, money};
use std::borrow::Cow;
use std::fmt::Write;

/// The cookie naming the user's session (the demo's name).
const SESSION_COOKIE: &str = "shop_session-id";
/// The cookie holding the chosen currency (the demo's name).
const CURRENCY_COOKIE: &str = "shop_currency";
/// The currency when none is chosen.
const DEFAULT_CURRENCY: &str = "USD";
/// The currencies the storefront offers (the demo's whitelist).
const OFFERED_CURRENCIES: &[&str] = &["USD", "EUR", "CAD", "JPY", "GBP", "TRY"];
/// How many recommendations a page shows.
const SHOWN_RECOMMENDATIONS: usize = 4;
/// The most of one product added at once.
const MAX_QUANTITY: i32 = 99;
/// How long the session cookie lasts, in seconds (the demo's 48 hours).
const SESSION_MAX_AGE: u32 = 172_800;

struct Frontend;

impl Handler for Frontend {
    fn handle(request: Request) -> Response {
        let path = request.path();
        let method = request.method();
        match (method, path) {
            ("GET", "/_healthz") => return Response::text(200, "ok"),
            (_, "/_healthz") => return not_allowed("GET"),
            _ => {}
        }
        let session = Session::of(&request);
        let outcome = match (method, path) {
            ("GET", "/") => home(&request, &session),
            ("GET", "/cart") => view_cart(&request, &session),
            ("POST", "/cart") => add_to_cart(&request, &session),
            ("POST", "/cart/empty") => empty_cart(&session),
            ("POST", "/cart/checkout") => place_order(&request, &session),
            ("POST", "/setCurrency") => set_currency(&request),
            ("GET", _) if path.starts_with("/product/") => product_page(
                &request,
                &session,
                &percent_decode(&path["/product/".len()..]),
            ),
            (_, "/") => return not_allowed("GET"),
            (_, "/cart") => return not_allowed("GET, POST"),
            (_, "/cart/empty" | "/cart/checkout" | "/setCurrency") => {
                return not_allowed("POST");
            }
            (_, _) if path.starts_with("/product/") => return not_allowed("GET"),
            _ => Err(error_page(404, &format!("no page at {path}"))),
        };
        session.finish(outcome.unwrap_or_else(|error| error))
    }
}

/// A page's response, or the error page to answer instead.
type Outcome = Result<Response, Response>;

// ---------------------------------------------------------------------------
// Sessions and cookies

/// The user: the session cookie's id, or a new one.
struct Session {
    id: String,
    /// The id was just made: the response sets the cookie.
    fresh: bool,
}

impl Session {
    fn of(request: &Request) -> Session {
        match cookie(request, SESSION_COOKIE).filter(|id| valid_session_id(id)) {
            Some(id) => Session { id, fresh: false },
            None => Session {
                id: ids::uuid_from(
                    wasip2::random::random::get_random_u64(),
                    wasip2::random::random::get_random_u64(),
                ),
                fresh: true,
            },
        }
    }

    /// `response`, setting the session cookie if it is new.
    fn finish(&self, response: Response) -> Response {
        if self.fresh {
            response.with_header(
                "set-cookie",
                format!(
                    "{SESSION_COOKIE}={}; Path=/; Max-Age={SESSION_MAX_AGE}; HttpOnly; SameSite=Lax",
                    self.id
                ),
            )
        } else {
            response
        }
    }
}

/// Whether `id` is acceptable as a session id: 1 to 64 ASCII letters,
/// digits, `-` or `_`.
fn valid_session_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The value of cookie `name`, from any `Cookie` header.
fn cookie(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case("cookie"))
        .filter_map(|(_, value)| std::str::from_utf8(value).ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.trim().trim_matches('"').to_string())
        })
}

/// Whether `code` looks like an ISO 4217 code.
fn valid_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// The user's currency: `?currency=`, else the cookie, else USD.
fn user_currency(request: &Request) -> Result<String, Response> {
    let code = request
        .query_param("currency")
        .filter(|code| !code.is_empty())
        .or_else(|| cookie(request, CURRENCY_COOKIE))
        .unwrap_or_else(|| DEFAULT_CURRENCY.to_string());
    if valid_currency_code(&code) {
        Ok(code)
    } else {
        Err(error_page(400, &format!("invalid currency code {code:?}")))
    }
}

// ---------------------------------------------------------------------------
// Forms

/// An `application/x-www-form-urlencoded` body.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        let text = String::from_utf8_lossy(body);
        Form(
            text.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode_form(key), decode_form(value))
                })
                .collect(),
        )
    }

    /// The field `name`, trimmed; a 400 page if it is missing or empty.
    fn required(&self, name: &str) -> Result<&str, Response> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| error_page(400, &format!("the form field {name} is missing")))
    }

    /// The field `name` as a number; a 400 page if it is not one.
    fn number(&self, name: &str) -> Result<i32, Response> {
        let value = self.required(name)?;
        value.parse().map_err(|_| {
            error_page(
                400,
                &format!("the form field {name} must be a number, not {value:?}"),
            )
        })
    }
}

/// Decodes a form value: `+` is a space, then `%XX` escapes.
fn decode_form(text: &str) -> String {
    if text.contains('+') {
        percent_decode(&text.replace('+', " "))
    } else {
        percent_decode(text)
    }
}

// ---------------------------------------------------------------------------
// Calls to the services, with their failures as error pages

fn offered_currencies() -> Vec<String> {
    currency::get_supported_currencies()
        .into_iter()
        .filter(|code| OFFERED_CURRENCIES.contains(&code.as_str()))
        .collect()
}

fn convert(amount: &Money, to: &str) -> Result<Money, Response> {
    currency::convert(amount, to).map_err(|e| error_page(400, &format!("cannot convert: {e}")))
}

fn get_cart(session: &Session) -> Result<Vec<CartItem>, Response> {
    cart::get_cart(&session.id).map_err(|e| error_page(503, &format!("cannot read the cart: {e}")))
}

fn cart_size(items: &[CartItem]) -> i64 {
    items.iter().map(|item| i64::from(item.quantity)).sum()
}

/// Up to [`SHOWN_RECOMMENDATIONS`] products for the user, none of `exclude`.
fn recommendations(session: &Session, exclude: Vec<String>) -> Vec<Product> {
    recommendation::list_recommendations(&session.id, &exclude)
        .iter()
        .take(SHOWN_RECOMMENDATIONS)
        .filter_map(|id| catalog::get_product(id))
        .collect()
}

fn plain(amount: &Money) -> money::Money {
    money::Money::new(amount.currency_code.clone(), amount.units, amount.nanos)
}

fn render_money(amount: &Money) -> String {
    money::render(&plain(amount))
}

/// `unit × quantity`.
fn line_total(unit: &Money, quantity: i32) -> Result<money::Money, Response> {
    plain(unit)
        .checked_mul(i64::from(quantity))
        .map_err(|e| error_page(500, &format!("cannot total the cart: {e}")))
}

/// `shipping` plus every line.
fn sum(
    currency_code: &str,
    shipping: &Money,
    lines: &[money::Money],
) -> Result<money::Money, Response> {
    let mut total = money::Money::zero(currency_code)
        .checked_add(&plain(shipping))
        .map_err(|e| error_page(500, &format!("cannot total the cart: {e}")))?;
    for line in lines {
        total = total
            .checked_add(line)
            .map_err(|e| error_page(500, &format!("cannot total the cart: {e}")))?;
    }
    Ok(total)
}

// ---------------------------------------------------------------------------
// Pages

/// `GET /`.
fn home(request: &Request, session: &Session) -> Outcome {
    let currency_code = user_currency(request)?;
    let currencies = offered_currencies();
    let products = catalog::list_products();
    let items = get_cart(session)?;
    let mut prices = Vec::with_capacity(products.len());
    for product in &products {
        prices.push(convert(&product.price_usd, &currency_code)?);
    }
    let ads = ad::get_ads(&[]);

    let mut out = String::with_capacity(4096);
    header(
        &mut out,
        "Home",
        session,
        &currency_code,
        &currencies,
        cart_size(&items),
    );
    out.push_str("<h1>Hot products</h1>\n<ul class=\"products\">\n");
    for (product, price) in products.iter().zip(&prices) {
        let _ = writeln!(
            out,
            "<li class=\"product\"><a href=\"/product/{id}\"><img src=\"{picture}\" alt=\"\"> {name}</a> <span class=\"price\">{price}</span></li>",
            id = escape(&product.id),
            picture = escape(&product.picture),
            name = escape(&product.name),
            price = escape(&render_money(price)),
        );
    }
    out.push_str("</ul>\n");
    ad_block(&mut out, &ads);
    footer(&mut out, session);
    Ok(html(200, out))
}

/// `GET /product/<id>`.
fn product_page(request: &Request, session: &Session, id: &str) -> Outcome {
    let currency_code = user_currency(request)?;
    let Some(product) = catalog::get_product(id) else {
        return Err(error_page(404, &format!("no product {id:?}")));
    };
    let currencies = offered_currencies();
    let items = get_cart(session)?;
    let price = convert(&product.price_usd, &currency_code)?;
    let recommended = recommendations(session, vec![product.id.clone()]);
    let ads = ad::get_ads(&product.categories);

    let mut out = String::with_capacity(4096);
    header(
        &mut out,
        &product.name,
        session,
        &currency_code,
        &currencies,
        cart_size(&items),
    );
    let _ = write!(
        out,
        "<div class=\"product\" id=\"{id}\">\n<img src=\"{picture}\" alt=\"\">\n<h1>{name}</h1>\n<p class=\"price\">{price}</p>\n<p class=\"description\">{description}</p>\n<p class=\"categories\">{categories}</p>\n\
         <form method=\"post\" action=\"/cart\"><input type=\"hidden\" name=\"product_id\" value=\"{id}\">\
         <label>Quantity <input type=\"number\" name=\"quantity\" value=\"1\" min=\"1\" max=\"{MAX_QUANTITY}\"></label> <button type=\"submit\">Add to cart</button></form>\n</div>\n",
        id = escape(&product.id),
        picture = escape(&product.picture),
        name = escape(&product.name),
        price = escape(&render_money(&price)),
        description = escape(&product.description),
        categories = escape(&product.categories.join(", ")),
    );
    recommendation_block(&mut out, &recommended);
    ad_block(&mut out, &ads);
    footer(&mut out, session);
    Ok(html(200, out))
}

/// `GET /cart`.
fn view_cart(request: &Request, session: &Session) -> Outcome {
    let currency_code = user_currency(request)?;
    let currencies = offered_currencies();
    let items = get_cart(session)?;
    let recommended = recommendations(
        session,
        items.iter().map(|item| item.product_id.clone()).collect(),
    );
    let quote = shipping::get_quote(&no_address(), &items);
    let shipping_cost = convert(&quote, &currency_code)?;
    let mut lines = Vec::with_capacity(items.len());
    for item in &items {
        let product = catalog::get_product(&item.product_id).ok_or_else(|| {
            error_page(
                500,
                &format!("the cart holds an unknown product {:?}", item.product_id),
            )
        })?;
        let price = convert(&product.price_usd, &currency_code)?;
        let total = line_total(&price, item.quantity)?;
        lines.push((product, item.quantity, total));
    }
    let totals: Vec<money::Money> = lines.iter().map(|(_, _, total)| total.clone()).collect();
    let total = sum(&currency_code, &shipping_cost, &totals)?;

    let mut out = String::with_capacity(4096);
    header(
        &mut out,
        "Cart",
        session,
        &currency_code,
        &currencies,
        cart_size(&items),
    );
    if lines.is_empty() {
        out.push_str(
            "<h1>Your shopping cart is empty!</h1>\n<p><a href=\"/\">Continue shopping</a></p>\n",
        );
    } else {
        let _ = writeln!(
            out,
            "<h1>Cart ({} items)</h1>\n<ul class=\"cart\">",
            cart_size(&items)
        );
        for (product, quantity, line) in &lines {
            let _ = writeln!(
                out,
                "<li class=\"item\" data-id=\"{id}\"><a href=\"/product/{id}\">{name}</a> Quantity: {quantity} <span class=\"price\">{price}</span></li>",
                id = escape(&product.id),
                name = escape(&product.name),
                price = escape(&money::render(line)),
            );
        }
        let _ = write!(
            out,
            "</ul>\n<p class=\"shipping\">Shipping: {}</p>\n<p class=\"total\">Total: {}</p>\n\
             <form method=\"post\" action=\"/cart/empty\"><button type=\"submit\">Empty cart</button></form>\n",
            escape(&render_money(&shipping_cost)),
            escape(&money::render(&total)),
        );
        checkout_form(&mut out);
    }
    recommendation_block(&mut out, &recommended);
    footer(&mut out, session);
    Ok(html(200, out))
}

/// `POST /cart`.
fn add_to_cart(request: &Request, session: &Session) -> Outcome {
    let form = Form::parse(request.body());
    let product_id = form.required("product_id")?;
    let quantity = form.number("quantity")?;
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(error_page(
            400,
            &format!("invalid quantity {quantity}: add 1 to {MAX_QUANTITY} at a time"),
        ));
    }
    let Some(product) = catalog::get_product(product_id) else {
        return Err(error_page(404, &format!("no product {product_id:?}")));
    };
    cart::add_item(
        &session.id,
        &CartItem {
            product_id: product.id,
            quantity,
        },
    )
    .map_err(|e| error_page(503, &format!("cannot add to the cart: {e}")))?;
    Ok(redirect("/cart"))
}

/// `POST /cart/empty`.
fn empty_cart(session: &Session) -> Outcome {
    cart::empty_cart(&session.id)
        .map_err(|e| error_page(503, &format!("cannot empty the cart: {e}")))?;
    Ok(redirect("/"))
}

/// `POST /setCurrency`.
fn set_currency(request: &Request) -> Outcome {
    let form = Form::parse(request.body());
    let code = form.required("currency_code")?;
    if !valid_currency_code(code)
        || !currency::get_supported_currencies()
            .iter()
            .any(|c| c == code)
    {
        return Err(error_page(400, &format!("unsupported currency {code:?}")));
    }
    Ok(redirect("/").with_header(
        "set-cookie",
        format!("{CURRENCY_COOKIE}={code}; Path=/; Max-Age={SESSION_MAX_AGE}; SameSite=Lax"),
    ))
}

/// `POST /cart/checkout`.
fn place_order(request: &Request, session: &Session) -> Outcome {
    let currency_code = user_currency(request)?;
    let form = Form::parse(request.body());
    let order_request = PlaceOrderRequest {
        user_id: session.id.clone(),
        user_currency: currency_code.clone(),
        address: Address {
            street_address: form.required("street_address")?.to_string(),
            city: form.required("city")?.to_string(),
            state: form.required("state")?.to_string(),
            country: form.required("country")?.to_string(),
            zip_code: form.required("zip_code")?.to_string(),
        },
        email: form.required("email")?.to_string(),
        credit_card: CreditCardInfo {
            credit_card_number: form.required("credit_card_number")?.to_string(),
            credit_card_cvv: form.number("credit_card_cvv")?,
            credit_card_expiration_year: form.number("credit_card_expiration_year")?,
            credit_card_expiration_month: form.number("credit_card_expiration_month")?,
        },
    };
    let order = checkout::place_order(&order_request).map_err(|error| match error {
        CheckoutError::PaymentDeclined(reason) => error_page(
            402,
            &format!("payment declined: {}", describe_payment(&reason)),
        ),
        CheckoutError::EmptyCart => error_page(400, "your cart is empty"),
        CheckoutError::InvalidRequest(message) => {
            error_page(400, &format!("the order is invalid: {message}"))
        }
        CheckoutError::Failed(message) => {
            error_page(502, &format!("the order could not be placed: {message}"))
        }
    })?;
    let total = order_total(&order)?;

    let mut out = String::with_capacity(2048);
    header(&mut out, "Order complete", session, &currency_code, &[], 0);
    let _ = write!(
        out,
        "<h1>Your order is complete!</h1>\n<p>We've sent you a confirmation email.</p>\n\
         <p class=\"order-id\">Order confirmation ID: <strong>{order_id}</strong></p>\n\
         <p class=\"tracking-id\">Shipping tracking ID: <strong>{tracking_id}</strong></p>\n\
         <p class=\"total\">Total paid: <strong>{total}</strong></p>\n\
         <p><a href=\"/\">Continue shopping</a></p>\n",
        order_id = escape(&order.order_id),
        tracking_id = escape(&order.shipping_tracking_id),
        total = escape(&money::render(&total)),
    );
    footer(&mut out, session);
    Ok(html(200, out))
}

/// What the order cost: shipping plus each line.
fn order_total(order: &OrderResult) -> Result<money::Money, Response> {
    let mut lines = Vec::with_capacity(order.items.len());
    for line in &order.items {
        lines.push(line_total(&line.cost, line.item.quantity)?);
    }
    sum(
        &order.shipping_cost.currency_code,
        &order.shipping_cost,
        &lines,
    )
}

/// The payment service's reason, for the customer.
fn describe_payment(error: &PaymentError) -> &str {
    match error {
        PaymentError::InvalidCard(message)
        | PaymentError::UnacceptedCard(message)
        | PaymentError::ExpiredCard(message)
        | PaymentError::InvalidAmount(message) => message,
    }
}

/// The address the cart page quotes shipping for (as in the demo, none).
fn no_address() -> Address {
    Address {
        street_address: String::new(),
        city: String::new(),
        state: String::new(),
        country: String::new(),
        zip_code: String::new(),
    }
}

// ---------------------------------------------------------------------------
// HTML

/// `text` with HTML's special characters escaped.
fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn html(status: u16, body: String) -> Response {
    Response::new(status)
        .with_header("content-type", "text/html; charset=utf-8")
        .with_body(body)
}

fn redirect(location: &str) -> Response {
    Response::new(302).with_header("location", location)
}

fn not_allowed(allow: &str) -> Response {
    Response::text(405, format!("method not allowed: use {allow}\n")).with_header("allow", allow)
}

/// A page saying what went wrong; makes no call.
fn error_page(status: u16, message: &str) -> Response {
    let mut out = String::with_capacity(512);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error | Online Boutique</title></head>\n<body>\n\
         <header><a href=\"/\">Online Boutique</a></header>\n\
         <h1>Uh, oh!</h1>\n<p class=\"error\">HTTP {status}: {}</p>\n<p><a href=\"/\">Back to the shop</a></p>\n</body></html>\n",
        escape(message)
    );
    html(status, out)
}

/// The page's start: title, the currency selector (when `currencies` is
/// not empty) and the cart link.
fn header(
    out: &mut String,
    title: &str,
    session: &Session,
    currency_code: &str,
    currencies: &[String],
    cart_size: i64,
) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} | Online Boutique</title></head>\n<body>\n<header><a href=\"/\">Online Boutique</a>\n",
        escape(title)
    );
    if !currencies.is_empty() {
        out.push_str(
            "<form method=\"post\" action=\"/setCurrency\"><select name=\"currency_code\">",
        );
        for code in currencies {
            let selected = if code == currency_code {
                " selected"
            } else {
                ""
            };
            let code = escape(code);
            let _ = write!(out, "<option value=\"{code}\"{selected}>{code}</option>");
        }
        out.push_str("</select> <button type=\"submit\">Change currency</button></form>\n");
    }
    let _ = write!(
        out,
        "<span class=\"currency\">{}</span> <a class=\"cart-link\" href=\"/cart\">Cart ({cart_size})</a>\n</header>\n<main data-session=\"{}\">\n",
        escape(currency_code),
        escape(&session.id)
    );
}

fn footer(out: &mut String, session: &Session) {
    let _ = write!(
        out,
        "</main>\n<footer>session-id: {} — a demo of Amimono, after Google's Online Boutique</footer>\n</body></html>\n",
        escape(&session.id)
    );
}

fn ad_block(out: &mut String, ads: &[Ad]) {
    if let Some(ad) = ads.first() {
        let _ = writeln!(
            out,
            "<div class=\"ad\"><strong>Ad</strong> <a href=\"{}\">{}</a></div>",
            escape(&ad.redirect_url),
            escape(&ad.text)
        );
    }
}

fn recommendation_block(out: &mut String, products: &[Product]) {
    if products.is_empty() {
        return;
    }
    out.push_str("<h2>You may also like</h2>\n<ul class=\"recommendations\">\n");
    for product in products {
        let _ = writeln!(
            out,
            "<li><a href=\"/product/{}\">{}</a></li>",
            escape(&product.id),
            escape(&product.name)
        );
    }
    out.push_str("</ul>\n");
}

/// The checkout form, filled with the demo's sample customer and a card
/// that expires next year.
fn checkout_form(out: &mut String) {
    let (year, _) = calendar::today();
    let _ = write!(
        out,
        "<form class=\"checkout\" method=\"post\" action=\"/cart/checkout\">\n\
         <label>E-mail <input name=\"email\" value=\"someone@example.com\"></label>\n\
         <label>Street address <input name=\"street_address\" value=\"1600 Amphitheatre Parkway\"></label>\n\
         <label>Zip code <input name=\"zip_code\" value=\"94043\"></label>\n\
         <label>City <input name=\"city\" value=\"Mountain View\"></label>\n\
         <label>State <input name=\"state\" value=\"CA\"></label>\n\
         <label>Country <input name=\"country\" value=\"United States\"></label>\n\
         <label>Credit card number <input name=\"credit_card_number\" value=\"4432-8015-6152-0454\"></label>\n\
         <label>Month <input name=\"credit_card_expiration_month\" value=\"1\"></label>\n\
         <label>Year <input name=\"credit_card_expiration_year\" value=\"{}\"></label>\n\
         <label>CVV <input name=\"credit_card_cvv\" value=\"672\"></label>\n\
         <button type=\"submit\">Place order</button>\n</form>\n",
        year + 1
    );
}

amimono_sdk::http_component!(Frontend);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies() {
        let request = Request::new("GET", "/")
            .with_header("Cookie", "a=1; shop_session-id=abc-123;shop_currency=EUR")
            .with_header("cookie", "late=2");
        assert_eq!(
            cookie(&request, "shop_session-id").as_deref(),
            Some("abc-123")
        );
        assert_eq!(cookie(&request, "shop_currency").as_deref(), Some("EUR"));
        assert_eq!(cookie(&request, "late").as_deref(), Some("2"));
        assert_eq!(cookie(&request, "shop"), None);
        assert!(valid_session_id("abc-123_X"));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id("a b"));
        assert!(!valid_session_id(&"a".repeat(65)));
    }

    #[test]
    fn currency_choice() {
        let request =
            Request::new("GET", "/?currency=EUR").with_header("cookie", "shop_currency=JPY");
        assert_eq!(user_currency(&request).ok().as_deref(), Some("EUR"));
        let request = Request::new("GET", "/").with_header("cookie", "shop_currency=JPY");
        assert_eq!(user_currency(&request).ok().as_deref(), Some("JPY"));
        assert_eq!(
            user_currency(&Request::new("GET", "/")).ok().as_deref(),
            Some("USD")
        );
        let bad = user_currency(&Request::new("GET", "/?currency=%3Cb%3E")).unwrap_err();
        assert_eq!(bad.status(), 400);
        let body = String::from_utf8_lossy(bad.body()).into_owned();
        assert!(
            body.contains("&lt;b&gt;") && !body.contains("<b>"),
            "{body}"
        );
    }

    #[test]
    fn forms() {
        let form = Form::parse(
            b"product_id=OLJCESPC7Z&quantity=3&email=a%40b.c&street_address=1600+Amph%2Bx&empty=",
        );
        assert_eq!(form.required("product_id").ok(), Some("OLJCESPC7Z"));
        assert_eq!(form.number("quantity").ok(), Some(3));
        assert_eq!(form.required("email").ok(), Some("a@b.c"));
        assert_eq!(form.required("street_address").ok(), Some("1600 Amph+x"));
        assert_eq!(form.required("empty").unwrap_err().status(), 400);
        assert_eq!(form.required("missing").unwrap_err().status(), 400);
        assert_eq!(form.number("email").unwrap_err().status(), 400);
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("Mug"), "Mug");
        assert_eq!(
            escape("Salt & Pepper <\"'>"),
            "Salt &amp; Pepper &lt;&quot;&#39;&gt;"
        );
    }

    #[test]
    fn totals() {
        let usd = |units, nanos| Money {
            currency_code: "USD".into(),
            units,
            nanos,
        };
        let lines = [
            line_total(&usd(19, 990_000_000), 3).unwrap(),
            line_total(&usd(8, 990_000_000), 1).unwrap(),
        ];
        let total = sum("USD", &usd(8, 990_000_000), &lines).unwrap();
        assert_eq!(money::render(&total), "$77.95");
    }
}
