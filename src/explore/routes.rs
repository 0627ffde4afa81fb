//! Routing: each request to the answer of its endpoint ([`super::answers`]), with the method
//! checked and the body parsed.

use std::panic::AssertUnwindSafe;

use serde::de::DeserializeOwned;

use super::answers::{
    InputBody, details, endpoints, figure, forward, image, kernels, list, mistakes, preprocess,
    saliency,
};
use super::api::{Answer, HttpError, PAGE, Reply, Request, State, fail, json};
use super::catalogue::Entry;

/// Answers one request that [`check_access`] has let through (the transport asks it before
/// reading a body). A panic while answering is a 500 for that request alone.
pub fn answer(state: &State, request: &Request) -> Reply {
    std::panic::catch_unwind(AssertUnwindSafe(|| route(state, request)))
        .unwrap_or_else(|_| {
            Err(fail(
                500,
                "the server failed on this request (a bug in lenet); it goes on serving",
            ))
        })
        .unwrap_or_else(HttpError::reply)
}

fn route(state: &State, request: &Request) -> Answer {
    let path = request
        .target
        .split_once('?')
        .map_or(request.target, |(p, _)| p);
    let method = request.method;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let run = |id: &str| -> Result<&Entry, HttpError> {
        state.catalogue.get(id).ok_or_else(|| {
            fail(
                404,
                format!("no run '{id}' here: GET /api/runs lists the runs this server shows"),
            )
        })
    };
    match parts.as_slice() {
        [""] | ["index.html"] => {
            allow(method, "GET")?;
            Ok(Reply {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: PAGE.as_bytes().to_vec(),
                attachment: None,
            })
        }
        ["api"] => allow(method, "GET").map(|()| json(&endpoints())),
        ["api", "runs"] => allow(method, "GET").map(|()| list(state)),
        ["api", "preprocess"] => {
            allow(method, "POST")?;
            preprocess(&body(request)?)
        }
        ["api", "runs", id] => {
            allow(method, "GET")?;
            details(state, run(id)?)
        }
        ["api", "runs", id, "kernels"] => {
            allow(method, "GET")?;
            kernels(&*state.models.get(run(id)?)?)
        }
        ["api", "runs", id, "mistakes"] => {
            allow(method, "GET")?;
            mistakes(state, &*state.models.get(run(id)?)?)
        }
        ["api", "runs", id, "images", split, index] => {
            allow(method, "GET")?;
            image(state, &*state.models.get(run(id)?)?, split, index)
        }
        [
            "api",
            "runs",
            id,
            action @ ("forward" | "saliency" | "figure.svg" | "figure.png"),
        ] => {
            allow(method, "POST")?;
            let entry = run(id)?;
            let input: InputBody = body(request)?;
            let loaded = state.models.get(entry)?;
            match *action {
                "forward" => forward(state, &loaded, &input),
                "saliency" => saliency(state, &loaded, &input),
                _ => figure(state, entry, &loaded, &input, action.ends_with("png")),
            }
        }
        _ => Err(fail(
            404,
            format!("no such endpoint: {path}; GET /api lists them"),
        )),
    }
}

fn allow(method: &str, wanted: &str) -> Result<(), HttpError> {
    if method == wanted {
        Ok(())
    } else {
        Err(fail(
            405,
            format!("this endpoint takes {wanted}, not {method}"),
        ))
    }
}

/// The request body as JSON of type `T`.
fn body<T: DeserializeOwned>(request: &Request) -> Result<T, HttpError> {
    serde_json::from_slice(request.body).map_err(|e| fail(400, format!("malformed JSON body: {e}")))
}
