//! `lenet explore`: a local web server that shows trained networks reading an input, layer by
//! layer, on a page of its own (one HTML file, script inline, nothing fetched from elsewhere).
//!
//! The server holds the [`catalogue`] of runs found at start, loads their models on first use
//! ([`models`]) and answers a small JSON API ([`api`]; the README lists it): the runs, one
//! run's details and first-layer kernels, a forward pass of a 28 x 28 or 32 x 32 image with
//! every layer's output, the saliency of a class, a drawing made into an MNIST digit
//! ([`drawing`]), dataset images, a run's test-set mistakes, and the report's layer figure of
//! an input. Every forward and backward pass is lenet's own engine: there is one
//! implementation of the network.
//!
//! Safe by default: it listens on 127.0.0.1 and answers only requests addressed to this
//! machine by name (so a web page elsewhere cannot reach it through DNS rebinding); listening
//! on another address takes `--bind`, and then every request must carry the access token the
//! server prints. Run identifiers are looked up in the catalogue, never joined into paths;
//! request bodies are bounded; a bad request gets a 4xx with a message and the server keeps
//! serving; a run whose directory disappears is an error for that run only.
//!
//! HTTP is `tiny_http`: a blocking server with four small dependencies (no async runtime),
//! which compiles in seconds; the forward passes are short CPU work, so a few worker threads
//! taking requests from its queue serve them as fast as an async server would.

pub mod api;
pub mod catalogue;
pub mod drawing;
pub mod models;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

pub use catalogue::Catalogue;

#[derive(Debug, Error)]
pub enum ExploreError {
    #[error("{dir}: {why}")]
    Dir { dir: String, why: String },
    #[error("run {id}: {why}")]
    Run { id: String, why: String },
    #[error("run {id}: its directory {dir} was removed while the server ran")]
    Gone { id: String, dir: String },
    #[error("cannot listen on {addr}: {why}")]
    Listen { addr: String, why: String },
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
}

/// What the server serves and where.
#[derive(Clone, Debug)]
pub struct Options {
    pub dirs: Vec<PathBuf>,
    /// The address to listen on; `None` is 127.0.0.1 without a token.
    pub bind: Option<IpAddr>,
    /// 0 picks a free port.
    pub port: u16,
    /// Where the datasets are (for dataset images and mistakes).
    pub data_dir: PathBuf,
    /// Threads answering requests.
    pub workers: usize,
}

/// A server listening, not yet serving.
pub struct Server {
    http: Arc<tiny_http::Server>,
    state: Arc<api::State>,
    workers: usize,
    pub addr: SocketAddr,
}

impl Server {
    /// Finds the runs and starts listening.
    pub fn start(options: &Options) -> Result<Server, ExploreError> {
        let catalogue = Catalogue::discover(&options.dirs)?;
        let ip = options.bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let addr = SocketAddr::new(ip, options.port);
        let http = tiny_http::Server::http(addr).map_err(|e| ExploreError::Listen {
            addr: addr.to_string(),
            why: e.to_string(),
        })?;
        let addr = http
            .server_addr()
            .to_ip()
            .ok_or_else(|| ExploreError::Listen {
                addr: addr.to_string(),
                why: "not an IP socket".into(),
            })?;
        let token = options.bind.is_some().then(new_token);
        let state = api::State::new(catalogue, &options.data_dir, token);
        Ok(Server {
            http: Arc::new(http),
            state: Arc::new(state),
            workers: options.workers.max(1),
            addr,
        })
    }

    /// The runs it serves.
    pub fn catalogue(&self) -> &Catalogue {
        &self.state.catalogue
    }

    /// The page's address, with the access token when one is needed.
    pub fn url(&self) -> String {
        let host = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
            IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        match &self.state.token {
            Some(t) => format!("http://{host}:{}/?token={t}", self.addr.port()),
            None => format!("http://{host}:{}/", self.addr.port()),
        }
    }

    /// The access token every request must carry, when listening with `--bind`.
    pub fn token(&self) -> Option<&str> {
        self.state.token.as_deref()
    }

    /// Serves until the process ends: each worker takes the next request from the queue.
    pub fn serve(self) {
        let threads: Vec<_> = (0..self.workers)
            .map(|_| {
                let (http, state) = (self.http.clone(), self.state.clone());
                std::thread::spawn(move || {
                    while let Ok(request) = http.recv() {
                        api::handle(&state, request);
                    }
                })
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// 128 random bits as 32 hex digits, from the operating system.
fn new_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if from_os.is_err() {
        // No /dev/urandom: the standard library's per-process random hash keys, twice.
        for half in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH))
                    .map_or(0, |d| d.as_nanos()),
            );
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
