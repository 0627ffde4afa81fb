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
//! HTTP is `hyper` (HTTP/1.1 only) on a `tokio` runtime: the best-kept Rust HTTP
//! implementation, pure Rust, and with the features used here 18 small crates that build in
//! about 10 s on two cores (`tiny_http`, 4 crates and 3 s, was tried first: its thread per
//! connection lets the thread count grow with the clients, it has no timeouts, and its pool
//! leaves a connection that arrives in a burst unserved until another closes). Connections
//! are bounded in number and must send their headers within 5 s and bodies in time; one that
//! has not sent a whole request's headers gives way to a newer one from its address (or, past
//! the total, from anywhere), so a client that holds sockets open and sends nothing cannot
//! lock others out. The forward passes, short CPU work, run on a blocking pool of `workers`
//! threads beside the I/O threads.

mod answers;
pub mod api;
pub mod catalogue;
pub mod drawing;
pub mod models;
pub mod routes;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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

/// Connections open at once. A new one past it takes the place of the oldest connection that
/// has not sent a whole request's headers yet; when every one has, it is closed.
pub const MAX_CONNECTIONS: usize = 256;

/// Connections from one address that may wait for their first request's headers at once; a
/// new one past it takes the place of that address's oldest. A client that opens sockets
/// and sends its headers slowly (or never) so holds no more than this, and a normal request,
/// whose headers come at once, is served beside it.
pub const PENDING_PER_PEER: usize = 32;

/// How long a client may take to send a request's headers: a browser or script sends them
/// at once.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client may take to send a request's body.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The connections that have not sent a whole request's headers yet, oldest first: their
/// number, address and task, so that the oldest can be closed to make room
/// ([`MAX_CONNECTIONS`], [`PENDING_PER_PEER`]).
#[derive(Default)]
struct Pending {
    queue: std::collections::VecDeque<(u64, IpAddr, tokio::task::AbortHandle)>,
}

impl Pending {
    /// Closes the oldest pending connection from `peer` (any peer for `None`); false when
    /// there is none.
    fn evict_oldest(&mut self, peer: Option<IpAddr>) -> bool {
        let Some(i) = (self.queue.iter()).position(|e| peer.is_none_or(|p| e.1 == p)) else {
            return false;
        };
        if let Some((_, _, task)) = self.queue.remove(i) {
            task.abort();
        }
        true
    }

    fn count_of(&self, peer: IpAddr) -> usize {
        self.queue.iter().filter(|e| e.1 == peer).count()
    }

    fn remove(&mut self, id: u64) {
        self.queue.retain(|e| e.0 != id);
    }
}

/// Counts a connection open until its task ends, aborted or not.
struct Open(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A server listening, not yet serving.
pub struct Server {
    listener: std::net::TcpListener,
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
        let listen_error = |e: std::io::Error| ExploreError::Listen {
            addr: addr.to_string(),
            why: match e.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    "{e} (another server is there: --port N chooses another, --port 0 a free one)"
                ),
                _ => e.to_string(),
            },
        };
        let listener = std::net::TcpListener::bind(addr).map_err(listen_error)?;
        listener.set_nonblocking(true).map_err(listen_error)?;
        let addr = listener.local_addr().map_err(listen_error)?;
        let token = options.bind.is_some().then(new_token);
        let state = api::State::new(catalogue, &options.data_dir, token);
        Ok(Server {
            listener,
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

    /// Serves until the process ends.
    pub fn serve(self) -> Result<(), ExploreError> {
        let addr = self.addr;
        let failed = |e: std::io::Error| ExploreError::Listen {
            addr: addr.to_string(),
            why: e.to_string(),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(self.workers)
            .thread_name("lenet-explore")
            .enable_io()
            .enable_time()
            .build()
            .map_err(failed)?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(self.listener).map_err(failed)?
        };
        let state = self.state;
        runtime.block_on(async move {
            use std::sync::atomic::{AtomicUsize, Ordering};
            let open = Arc::new(AtomicUsize::new(0));
            let pending = Arc::new(std::sync::Mutex::new(Pending::default()));
            let mut next_id = 0u64;
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    // Out of descriptors, or a connection reset before it was accepted:
                    // that connection is lost, not the server.
                    Err(e) => {
                        eprintln!("lenet explore: could not accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let peer = peer.ip();
                let mut waiting = pending.lock().unwrap_or_else(|e| e.into_inner());
                // Room first: an address's oldest pending connection gives way to its newest;
                // past the total, the oldest pending of all does, or the newcomer is closed.
                if waiting.count_of(peer) >= PENDING_PER_PEER {
                    waiting.evict_oldest(Some(peer));
                }
                if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS && !waiting.evict_oldest(None) {
                    drop(stream);
                    continue;
                }
                open.fetch_add(1, Ordering::SeqCst);
                let counted = Open(open.clone());
                // Answers go out as they are written, not held back for acknowledgements.
                let _ = stream.set_nodelay(true);
                let (id, state, queue) = (next_id, state.clone(), pending.clone());
                next_id += 1;
                let task = tokio::spawn(async move {
                    let _counted = counted;
                    let started = std::sync::atomic::AtomicBool::new(false);
                    let service = hyper::service::service_fn(move |request| {
                        // A whole request's headers arrived: no longer pending.
                        if !started.swap(true, Ordering::SeqCst) {
                            queue.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
                        }
                        http::answer(state.clone(), request)
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    // A client that goes away mid-answer is no error of the server's.
                    let _ = connection.await;
                });
                // Registered while the lock is held, so the task cannot mark itself started
                // before it is listed.
                waiting.queue.push_back((id, peer, task.abort_handle()));
                drop(waiting);
                // A finished connection leaves the list too (it may never have sent a request).
                let (queue, done) = (pending.clone(), task);
                tokio::spawn(async move {
                    let _ = done.await;
                    queue.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
                });
            }
        })
    }
}

/// The transport: a hyper request read (who may ask settled from the headers first, then the
/// body within [`api::MAX_BODY`] bytes and [`REQUEST_TIMEOUT`]) and answered on the blocking
/// pool.
mod http {
    use std::convert::Infallible;
    use std::sync::Arc;

    use http_body_util::{BodyExt, Full, Limited};
    use hyper::body::{Bytes, Incoming};

    use super::api::{self, MAX_BODY, Reply, fail};

    pub async fn answer(
        state: Arc<api::State>,
        request: hyper::Request<Incoming>,
    ) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
        let header = |name: hyper::header::HeaderName| {
            (request.headers().get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (host, authorization) = (
            header(hyper::header::HOST),
            header(hyper::header::AUTHORIZATION),
        );
        let declared = header(hyper::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
        let method = request.method().as_str().to_string();
        let target = (request.uri().path_and_query()).map_or_else(
            || request.uri().path().to_string(),
            |p| p.as_str().to_string(),
        );
        let too_large = || {
            fail(
                413,
                format!("request bodies are limited to {MAX_BODY} bytes"),
            )
        };
        let head = api::Request {
            method: &method,
            target: &target,
            host: host.as_deref(),
            authorization: authorization.as_deref(),
            body: &[],
        };
        // RFC 9112 §3.2: an HTTP/1.1 request carries exactly one Host header, and a target in
        // absolute form names the same host; anything else is answered 400, never guessed at.
        let hosts = request
            .headers()
            .get_all(hyper::header::HOST)
            .iter()
            .count();
        let authority = request.uri().authority().map(|a| a.as_str().to_string());
        let host_conflict = match (&authority, &host) {
            (Some(a), Some(h)) => !a.eq_ignore_ascii_case(h),
            _ => false,
        };
        let reply = if hosts != 1 || host.is_none() {
            fail(
                400,
                format!("a request carries exactly one Host header, not {hosts} (RFC 9112)"),
            )
            .reply()
        } else if host_conflict {
            fail(
                400,
                "the request's target names another host than its Host header (RFC 9112)",
            )
            .reply()
        } else if let Err(e) = api::check_access(&state, &head) {
            e.reply()
        } else if declared.is_some_and(|n| n > MAX_BODY as u64) {
            too_large().reply()
        } else {
            let limited = Limited::new(request.into_body(), MAX_BODY);
            match tokio::time::timeout(super::REQUEST_TIMEOUT, limited.collect()).await {
                Err(_) => fail(408, "the request body did not arrive in time").reply(),
                Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => too_large().reply(),
                Ok(Err(e)) => fail(400, format!("could not read the request body: {e}")).reply(),
                Ok(Ok(body)) => {
                    let body = body.to_bytes();
                    let work = tokio::task::spawn_blocking(move || {
                        let request = api::Request {
                            method: &method,
                            target: &target,
                            host: host.as_deref(),
                            authorization: authorization.as_deref(),
                            body: &body,
                        };
                        super::routes::answer(&state, &request)
                    });
                    work.await.unwrap_or_else(|_| {
                        fail(500, "the server failed on this request; it goes on serving").reply()
                    })
                }
            }
        };
        Ok(response(reply))
    }

    fn response(reply: Reply) -> hyper::Response<Full<Bytes>> {
        let mut builder = hyper::Response::builder()
            .status(reply.status)
            .header(hyper::header::CONTENT_TYPE, reply.content_type);
        for (name, value) in reply.headers() {
            builder = builder.header(name, value);
        }
        builder
            .body(Full::new(Bytes::from(reply.body)))
            .expect("a status and headers of our own making")
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
