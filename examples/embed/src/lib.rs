//! `embed-hello`: the kind of native axum service a team already has, with
//! the hello app embedded in it through Amimono's library API:
//! - `/app/…` is the hello app's `frontend` component, mounted with
//!   [`axum::Router::nest_service`] on the job's tower service;
//! - `GET /native/greet/{name}` is a native handler that calls the
//!   `greeter` component in-process through a typed call (no HTTP).
//!
//! [`router`] builds the service from a prepared job; `main.rs` parses
//! arguments, opens the app or its bundle, serves and shuts down on Ctrl-C.

use amimono::{CallError, Job, TypedCall};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use wasmtime::component::{ComponentType, Lift, Lower};

/// `hello:app/types.greeting`, as a Rust type.
#[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq, Eq)]
#[component(record)]
pub struct Greeting {
    /// The name greeted, trimmed.
    pub name: String,
    /// The greeting itself, e.g. `Hello, world!`.
    pub message: String,
    /// The language of the message.
    pub language: String,
}

/// `hello:app/types.greet-error`, as a Rust type.
#[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq, Eq)]
#[component(variant)]
pub enum GreetError {
    /// The name is empty.
    #[component(name = "empty-name")]
    EmptyName,
    /// The name has characters the greeter refuses.
    #[component(name = "invalid-name")]
    InvalidName(String),
    /// No phrase in that language.
    #[component(name = "unknown-language")]
    UnknownLanguage(String),
}

/// `greet: func(name: string) -> result<greeting, greet-error>`.
pub type Greet = TypedCall<(String,), (Result<Greeting, GreetError>,)>;

/// The typed `greet` of the job's `greeter` component.
pub async fn greet_function(job: &Job) -> Result<Greet, CallError> {
    job.typed_call("greeter", "hello:app/greeter#greet").await
}

/// The service: the frontend component under `/app`, the native greeting
/// route beside it.
pub fn router(job: &Job, greet: Greet) -> anyhow::Result<Router> {
    Ok(Router::new()
        .nest_service("/app", job.http_service("frontend")?)
        .route("/native/greet/{name}", get(native_greet))
        .with_state(greet))
}

/// `GET /native/greet/{name}`: the greeter called in-process.
async fn native_greet(
    State(greet): State<Greet>,
    Path(name): Path<String>,
) -> (StatusCode, String) {
    match greet.call((name,)).await {
        Ok((Ok(greeting),)) => (StatusCode::OK, format!("{}\n", greeting.message)),
        Ok((Err(refused),)) => (StatusCode::BAD_REQUEST, format!("{}\n", describe(&refused))),
        Err(e) => {
            // The detail is for the log, not for the client.
            tracing::error!(error = %e, "the native call to the greeter failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error\n".to_string(),
            )
        }
    }
}

/// A greeter refusal, for people.
pub fn describe(error: &GreetError) -> String {
    match error {
        GreetError::EmptyName => "the name is empty".to_string(),
        GreetError::InvalidName(name) => format!("the name {name:?} is not accepted"),
        GreetError::UnknownLanguage(language) => format!("no greeting in {language:?}"),
    }
}
