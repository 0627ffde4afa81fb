//! Load on `lenet explore`: many clients sending forward passes (every layer's output in each
//! answer) over kept-alive connections, as fast as the server answers them, for a while; then
//! the errors, the throughput, the latency's median, 90th and 99th percentiles and maximum,
//! and the server's memory (resident now and at its peak, from /proc) before and after.
//!
//!     cargo bench --bench explore_load                        # 200 clients, 30 s, on a run
//!                                                              # trained on the MNIST subset
//!     cargo bench --bench explore_load -- --clients 1 --seconds 10
//!     cargo bench --bench explore_load -- --run DIR --data-dir D   # your own run
//!
//! The server is the `lenet` binary, started as a user starts it; the clients are threads of
//! this process on the same machine, so they share its cores with the server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Args {
    clients: usize,
    seconds: f64,
    run: Option<PathBuf>,
    data_dir: PathBuf,
    /// Each client waits this long between requests (0: none).
    pause_ms: u64,
}

fn parse() -> Args {
    let subset = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist-subset");
    let mut a = Args {
        clients: 200,
        seconds: 30.0,
        run: None,
        data_dir: subset,
        pause_ms: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} takes a value"));
        match flag.as_str() {
            "--clients" => a.clients = value().parse().expect("--clients N"),
            "--seconds" => a.seconds = value().parse().expect("--seconds S"),
            "--run" => a.run = Some(PathBuf::from(value())),
            "--data-dir" => a.data_dir = PathBuf::from(value()),
            "--pause-ms" => a.pause_ms = value().parse().expect("--pause-ms MS"),
            // What `cargo bench` passes to every bench target.
            "--bench" => {}
            other => panic!(
                "unknown argument {other}; expected --clients N, --seconds S, --run DIR, \
                 --data-dir DIR, --pause-ms MS"
            ),
        }
    }
    a
}

/// Resident and peak memory of process `pid`, in MiB, and its thread count.
fn memory(pid: u32) -> (f64, f64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        (status.lines())
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (
        field("VmRSS:") / 1024.0,
        field("VmHWM:") / 1024.0,
        field("Threads:") as usize,
    )
}

/// CPU seconds process `pid` has used (user and system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let field = |i: usize| {
        rest.split_whitespace()
            .nth(i)
            .and_then(|v| v.parse::<f64>().ok())
    };
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 a second on Linux).
    (field(11).unwrap_or(f64::NAN) + field(12).unwrap_or(f64::NAN)) / 100.0
}

/// One kept-alive connection that posts `body` to `path` and reads each answer whole.
struct Client {
    stream: BufReader<TcpStream>,
    request: Vec<u8>,
}

impl Client {
    fn connect(addr: &str, path: &str, body: &str) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Ok(Client {
            stream: BufReader::new(stream),
            request: request.into_bytes(),
        })
    }

    /// Sends the request and returns the answer's status and body length.
    fn exchange(&mut self) -> std::io::Result<(u16, usize)> {
        self.stream.get_mut().write_all(&self.request)?;
        let mut line = String::new();
        self.stream.read_line(&mut line)?;
        let status: u16 = (line.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0;
        loop {
            line.clear();
            self.stream.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body)?;
        Ok((status, length))
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}

fn main() {
    let args = parse();
    let lenet = env!("CARGO_BIN_EXE_lenet");
    let tmp = std::env::temp_dir().join(format!("lenet-explore-load-{}", std::process::id()));
    let run = args.run.clone().unwrap_or_else(|| {
        // A run of the study's model, trained for one epoch on the committed subset.
        let run = tmp.join("run");
        let status = Command::new(lenet)
            .args([
                "train",
                "-q",
                "--epochs",
                "1",
                "--valid-size",
                "500",
                "--out",
            ])
            .arg(&run)
            .arg("--data-dir")
            .arg(&args.data_dir)
            .status()
            .expect("lenet train");
        assert!(status.success(), "lenet train failed");
        run
    });
    let mut server = Command::new(lenet)
        .arg("explore")
        .arg(&run)
        .args(["--port", "0", "--data-dir"])
        .arg(&args.data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("lenet explore");
    let mut out = BufReader::new(server.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("the server's address");
    let url = (line.split_whitespace())
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let addr = url["http://".len()..].trim_end_matches('/').to_string();

    // The run's id, and test image 0's pixels as the body every client sends.
    let get = |path: &str| -> serde_json::Value {
        let mut s = TcpStream::connect(&addr).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split_once("\r\n\r\n").expect("an answer").1;
        serde_json::from_str(body).expect("JSON")
    };
    let id = get("/api/runs")["runs"][0]["id"]
        .as_str()
        .expect("a run")
        .to_string();
    let pixels: Vec<f64> = (get(&format!("/api/runs/{id}/images/test/0"))["pixels"])
        .as_array()
        .expect("pixels")
        .iter()
        .map(|v| v.as_f64().unwrap() / 255.0)
        .collect();
    let body = serde_json::json!({ "image": pixels }).to_string();
    let path = format!("/api/runs/{id}/forward");
    // One answer first: the model loaded, and the size of what each request gets back.
    let (_, bytes) = Client::connect(&addr, &path, &body)
        .and_then(|mut c| c.exchange())
        .expect("a first forward pass");
    let before = memory(server.id());
    let cpu_before = cpu_seconds(server.id());

    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..args.clients)
        .map(|_| {
            let (addr, path, body) = (addr.clone(), path.clone(), body.clone());
            let pause = Duration::from_millis(args.pause_ms);
            std::thread::spawn(move || {
                let (mut latencies, mut errors) = (Vec::new(), Vec::new());
                let mut client = None;
                while Instant::now() < deadline {
                    if client.is_none() {
                        match Client::connect(&addr, &path, &body) {
                            Ok(c) => client = Some(c),
                            Err(e) => {
                                errors.push(format!("connect: {e}"));
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        }
                    }
                    let t = Instant::now();
                    match client.as_mut().expect("connected").exchange() {
                        Ok((200, _)) => latencies.push(t.elapsed().as_secs_f64()),
                        Ok((status, _)) => errors.push(format!("status {status}")),
                        Err(e) => {
                            errors.push(format!("{e}"));
                            client = None;
                        }
                    }
                    if !pause.is_zero() {
                        std::thread::sleep(pause);
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut peak_during = (0.0f64, 0usize);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let (rss, _, threads) = memory(server.id());
        peak_during = (peak_during.0.max(rss), peak_during.1.max(threads));
    }
    let (mut latencies, mut errors) = (Vec::new(), Vec::new());
    for t in threads {
        let (l, e) = t.join().expect("a client thread");
        latencies.extend(l);
        errors.extend(e);
    }
    let wall = started.elapsed().as_secs_f64();
    let after = memory(server.id());
    let server_cpu = cpu_seconds(server.id()) - cpu_before;
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&tmp);

    latencies.sort_by(f64::total_cmp);
    let ms = |q: f64| 1000.0 * percentile(&latencies, q);
    println!(
        "lenet explore under load: {} clients for {:.0} s{}, POST /api/runs/ID/forward of a 28 x 28 \
         image ({} bytes of JSON back: every layer's output)",
        args.clients,
        args.seconds,
        if args.pause_ms > 0 {
            format!(" ({} ms between each client's requests)", args.pause_ms)
        } else {
            String::new()
        },
        bytes
    );
    println!(
        "  requests {}  errors {}  throughput {:.0} /s  server CPU {:.2} ms a request ({:.0}% of \
         the machine's {} cores)",
        latencies.len(),
        errors.len(),
        latencies.len() as f64 / wall,
        1000.0 * server_cpu / latencies.len().max(1) as f64,
        100.0 * server_cpu / wall / cores() as f64,
        cores()
    );
    println!(
        "  latency ms: median {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}; {} over 1 s",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(1.0),
        latencies.iter().filter(|&&l| l > 1.0).count()
    );
    println!(
        "  server memory MiB: resident {:.1} before, {:.1} at most during, {:.1} after (peak \
         {:.1}); threads {} before, {} at most during",
        before.0, peak_during.0, after.0, after.1, before.2, peak_during.1
    );
    if !errors.is_empty() {
        errors.sort();
        errors.dedup();
        println!("  kinds of error: {}", errors.join("; "));
        std::process::exit(1);
    }
}
