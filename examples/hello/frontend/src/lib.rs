//! The HTTP frontend of the hello example. Serves
//! `wasi:http/incoming-handler` through [`amimono_sdk::http_component!`] and
//! imports `hello:app/greeter@0.1.0`.
//!
//! Routes (GET only, anything else is `405`):
//! - `/hello/<name>[?lang=xx]`: the greeting and how many times this name
//!   was greeted (`Hello, world! (visit 2)`), counted in the `visits`
//!   key-value store.
//! - `/greet-all/<name>,<name>,...`: one line per name.
//! - `/languages`: the known languages, one per line.
//! - `/about`: this component's runtime context as JSON.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "hello:app/frontend-world",
    });
}

use amimono_sdk::http::{Handler, Request, Response, percent_decode};
use amimono_sdk::runtime;
use bindings::hello::app::greeter;
use bindings::hello::app::types::GreetError;

struct Frontend;

impl Handler for Frontend {
    fn handle(request: Request) -> Response {
        if request.method() != "GET" {
            return Response::text(405, "method not allowed: use GET\n")
                .with_header("allow", "GET");
        }
        let path = request.path();
        if path == "/hello" {
            return hello("", None);
        }
        if let Some(name) = path.strip_prefix("/hello/") {
            let language = request.query_param("lang").filter(|lang| !lang.is_empty());
            return hello(&percent_decode(name), language);
        }
        if path == "/greet-all" || path == "/greet-all/" {
            return Response::text(400, "error: no names; use /greet-all/<name>,<name>,...\n");
        }
        if let Some(names) = path.strip_prefix("/greet-all/") {
            return greet_all(names);
        }
        match path {
            "/languages" => languages(),
            "/about" => about(),
            _ => Response::text(404, format!("not found: {path}\n")),
        }
    }
}

fn hello(name: &str, language: Option<String>) -> Response {
    match greeter::greet_in(name, language.as_deref()) {
        Ok(greeting) => match count_visit(&greeting.name) {
            Ok(visits) => Response::text(200, format!("{} (visit {visits})\n", greeting.message)),
            Err(e) => Response::text(503, format!("error: cannot count the visit: {e}\n")),
        },
        Err(GreetError::UnknownLanguage(language)) => Response::text(
            404,
            format!(
                "error: {} (known: {})\n",
                describe(&GreetError::UnknownLanguage(language)),
                greeter::languages().join(", ")
            ),
        ),
        Err(error) => Response::text(400, format!("error: {}\n", describe(&error))),
    }
}

/// Counts a visit of `name` in the `visits` key-value store; the count.
fn count_visit(name: &str) -> Result<u64, amimono_sdk::kv::Error> {
    amimono_sdk::kv::Store::open("visits")?.increment(name, 1)
}

fn greet_all(names: &str) -> Response {
    let names: Vec<String> = names.split(',').map(percent_decode).collect();
    let mut body = String::new();
    for result in greeter::greet_all(&names) {
        match result {
            Ok(greeting) => body.push_str(&greeting.message),
            Err(error) => {
                body.push_str("error: ");
                body.push_str(&describe(&error));
            }
        }
        body.push('\n');
    }
    Response::text(200, body)
}

fn languages() -> Response {
    let mut body = String::new();
    for language in greeter::languages() {
        body.push_str(&language);
        body.push('\n');
    }
    Response::text(200, body)
}

fn about() -> Response {
    let greeter = match runtime::binding("greeter") {
        Some(binding) => format!(
            "{{\"type\": {}, \"job\": {}, \"url\": {}}}",
            json_string(binding.kind.as_str()),
            json_string(&binding.job),
            binding
                .url
                .as_deref()
                .map_or("null".to_string(), json_string),
        ),
        None => "null".to_string(),
    };
    let body = format!(
        "{{\"label\": {}, \"app\": {}, \"job\": {}, \"revision\": {}, \"greeter\": {}}}\n",
        json_string(&runtime::label()),
        json_string(&runtime::app()),
        json_string(&runtime::job()),
        json_string(&runtime::revision()),
        greeter,
    );
    Response::json(200, body)
}

/// A human explanation of a greeter error.
fn describe(error: &GreetError) -> String {
    match error {
        GreetError::EmptyName => "the name is empty".to_string(),
        GreetError::InvalidName(name) => format!(
            "invalid name {name:?}: use at most 64 ASCII letters, digits, '-', '_', '.' or spaces"
        ),
        GreetError::UnknownLanguage(language) => format!("unknown language {language:?}"),
    }
}

/// `text` as a JSON string literal, quotes included.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

amimono_sdk::http_component!(Frontend);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escaping() {
        assert_eq!(json_string("plain"), "\"plain\"");
        assert_eq!(
            json_string("a\"b\\c\nd\u{1}é"),
            "\"a\\\"b\\\\c\\nd\\u0001é\""
        );
    }
}
