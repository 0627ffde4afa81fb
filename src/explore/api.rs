//! The HTTP API: routes, checks, and the JSON of every answer (the README documents them).
//!
//! Every answer is JSON except the page (`GET /`) and the figures. An error is
//! `{"error": "..."}` with a 4xx status for a bad request (400 malformed, 401 no token, 403
//! not addressed to this machine, 404 unknown, 405 wrong method, 408 body too slow, 410 run
//! removed, 413 body too large, 422 well-formed but wrong) and 5xx for the server's own
//! trouble (500, or 503 when a dataset cannot be read); the server keeps serving after either.

use std::path::Path;

use serde::Serialize;

use super::ExploreError;
use super::catalogue::Catalogue;
use super::models::Models;
use crate::data::DataCache;

/// The largest request body accepted (a 512 x 512 drawing fits, as JSON).
pub const MAX_BODY: usize = 2 << 20;

/// Mistakes listed at most.
pub const MAX_MISTAKES: usize = 1000;

/// The page, one file with its script inline.
pub const PAGE: &str = include_str!("page.html");

/// What every worker shares.
pub struct State {
    pub catalogue: Catalogue,
    pub models: Models,
    pub(super) library: DataCache,
    pub token: Option<String>,
}

impl State {
    pub fn new(catalogue: Catalogue, data_dir: &Path, token: Option<String>) -> State {
        State {
            catalogue,
            models: Models::default(),
            library: DataCache::new(data_dir, true),
            token,
        }
    }
}

/// A request as the routes see it: the transport ([`super::Server`]) has read the body, within
/// [`MAX_BODY`] bytes.
pub struct Request<'a> {
    pub method: &'a str,
    /// The target: path and query, e.g. `/api/runs?token=...`.
    pub target: &'a str,
    pub host: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub body: &'a [u8],
}

/// An answer: status, content type, body.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// A file name to save it under (the figures).
    pub attachment: Option<String>,
}

impl Reply {
    /// The headers that go with the answer besides its type and length.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("Cache-Control", "no-store".to_string()),
            ("X-Content-Type-Options", "nosniff".to_string()),
        ];
        if self.content_type.starts_with("text/html") {
            // The page needs nothing from elsewhere, and may not load anything from elsewhere.
            out.push((
                "Content-Security-Policy",
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; \
                 form-action 'none'"
                    .to_string(),
            ));
        }
        if let Some(name) = &self.attachment {
            out.push((
                "Content-Disposition",
                format!("attachment; filename=\"{name}\""),
            ));
        }
        out
    }
}

pub(super) fn json<T: Serialize>(value: &T) -> Reply {
    Reply {
        status: 200,
        content_type: "application/json",
        body: serde_json::to_vec(value).expect("serialisable"),
        attachment: None,
    }
}

/// A request that cannot be answered: its status and what was wrong.
#[derive(Debug)]
pub struct HttpError {
    pub status: u16,
    pub message: String,
}

pub fn fail(status: u16, message: impl Into<String>) -> HttpError {
    HttpError {
        status,
        message: message.into(),
    }
}

impl HttpError {
    /// The error as an answer: `{"error": "..."}` with its status.
    pub fn reply(self) -> Reply {
        Reply {
            status: self.status,
            ..json(&serde_json::json!({ "error": self.message }))
        }
    }
}

impl From<ExploreError> for HttpError {
    fn from(e: ExploreError) -> Self {
        let status = match e {
            ExploreError::Gone { .. } => 410,
            ExploreError::Data(_) => 503,
            _ => 500,
        };
        fail(status, e.to_string())
    }
}

pub(super) type Answer = Result<Reply, HttpError>;

/// With a token, every request must carry it; without one (listening on 127.0.0.1), every
/// request must be addressed to this machine by name, which a page served from elsewhere
/// cannot do through DNS rebinding.
pub fn check_access(state: &State, request: &Request) -> Result<(), HttpError> {
    let query = request.target.split_once('?').map_or("", |(_, q)| q);
    match &state.token {
        Some(token) => {
            let from_query = (query.split('&')).find_map(|kv| kv.strip_prefix("token="));
            // The scheme's name is case-insensitive (RFC 9110 §11.1).
            let from_header = (request.authorization)
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, credentials)| credentials.trim_start());
            let given = from_header.or(from_query);
            if given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
                Ok(())
            } else {
                Err(fail(
                    401,
                    "this server needs its access token (printed when it started) on every \
                     request: ?token=... in the address, or an 'Authorization: Bearer ...' header",
                ))
            }
        }
        None => {
            let host = request.host.unwrap_or_default();
            let name = match host.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => host,
            };
            // Host names are case-insensitive (RFC 3986 §3.2.2).
            let name = name.to_ascii_lowercase();
            if matches!(name.as_str(), "127.0.0.1" | "localhost" | "[::1]") {
                Ok(())
            } else {
                Err(fail(
                    403,
                    format!(
                        "this server answers requests addressed to 127.0.0.1 or localhost, not \
                         '{host}' (start it with --bind to serve other addresses, with a token)"
                    ),
                ))
            }
        }
    }
}

/// Whether `a` and `b` are equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
