//! `lenet explore` end to end: the server started as a user starts it, over a small study and
//! a 1998 network trained on the MNIST subset; every endpoint on loopback (answers checked
//! against `lenet eval` and against finite differences), the bad requests a server meets
//! (each a 4xx with a message, the server serving on), the access token, runs that move away
//! under it; and the page in a real browser (headless Chromium driven through the DevTools
//! protocol): a stroke drawn with the browser's own input events gives a prediction and layer
//! maps, and a test image picked on the page is predicted as `lenet eval` predicts it.
//! Screenshots go to `target/tmp/explore-screenshots/`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{chromium, lenet, run_study, study_file, subset_dir, succeeded};
use serde_json::{Value, json};

/// The runs every test serves: the `explore` study (2 configurations x 2 seeds, and the
/// tuning runs) and one 1998 network (RBF output), trained once for the whole file.
struct Fixture {
    _tmp: tempfile::TempDir,
    study: PathBuf,
    lecun: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let study = tmp.path().join("explore");
        run_study(
            &study_file("explore.toml"),
            &study,
            &["--quiet", "--jobs", "2"],
        );
        let lecun = tmp.path().join("lecun1998");
        succeeded(
            lenet()
                .args(["train", "-q", "--arch", "lecun1998", "--optimizer", "adam"])
                .args(["--epochs", "1", "--valid-size", "500", "--out"])
                .arg(&lecun)
                .arg("--data-dir")
                .arg(subset_dir()),
        );
        Fixture {
            _tmp: tmp,
            study,
            lecun,
        }
    })
}

/// A `lenet explore` process, stopped when dropped.
struct Served {
    _child: KillOnDrop,
    /// Kept open while the server runs.
    _stdout: BufReader<std::process::ChildStdout>,
    /// `127.0.0.1:PORT`
    addr: String,
    /// The address it printed (with `?token=` when it has one).
    url: String,
    stderr: PathBuf,
    _log: tempfile::TempDir,
}

/// A child process, ended (and waited for) when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Served {
    fn token(&self) -> Option<&str> {
        self.url.split_once("?token=").map(|(_, t)| t)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// Starts `lenet explore ARGS --port 0` on the subset and waits for the address it prints.
fn serve(args: &[&std::ffi::OsStr]) -> Served {
    serve_with(args, &subset_dir())
}

/// [`serve`] with the datasets of `data`.
fn serve_with(args: &[&std::ffi::OsStr], data: &Path) -> Served {
    let log = tempfile::tempdir().unwrap();
    let stderr = log.path().join("stderr");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("lenet"))
        .arg("explore")
        .args(args)
        .args(["--port", "0", "--data-dir"])
        .arg(data)
        .env_remove("LENET_DATA")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| {
            panic!(
                "no address in {line:?}: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            )
        })
        .to_string();
    let addr = url["http://".len()..]
        .split('/')
        .next()
        .unwrap()
        .to_string();
    Served {
        _child: KillOnDrop(child),
        _stdout: stdout,
        addr,
        url,
        stderr,
        _log: log,
    }
}

fn os(p: &Path) -> &std::ffi::OsStr {
    p.as_os_str()
}

/// One HTTP/1.1 exchange on a fresh connection, every byte of the request as given.
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

fn raw(addr: &str, request: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // Written from a thread of its own, so that an answer given before the whole body is read
    // (413) can be read while the rest is still going out.
    let mut w = s.try_clone().unwrap();
    let request = request.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&request);
    });
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes);
    let _ = writer.join();
    let split = (bytes.windows(4).position(|w| w == b"\r\n\r\n"))
        .unwrap_or_else(|| panic!("no response: {:?}", String::from_utf8_lossy(&bytes)));
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head,
        body: bytes[split + 4..].to_vec(),
    }
}

/// A request with `Host: 127.0.0.1` (and the server's token, when it has one) and `extra`
/// headers.
fn request(s: &Served, method: &str, path: &str, body: &[u8], extra: &[(&str, &str)]) -> Reply {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        s.addr,
        body.len()
    );
    if let Some(t) = s.token() {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    raw(&s.addr, &[head.as_bytes(), body].concat())
}

fn get(s: &Served, path: &str) -> Reply {
    request(s, "GET", path, b"", &[])
}

fn post(s: &Served, path: &str, body: &Value) -> Reply {
    request(s, "POST", path, body.to_string().as_bytes(), &[])
}

fn ok(r: Reply) -> Value {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn runs(s: &Served) -> Vec<Value> {
    ok(get(s, "/api/runs"))["runs"].as_array().unwrap().clone()
}

fn find<'a>(runs: &'a [Value], config: &str, seed: u64) -> &'a Value {
    (runs.iter())
        .find(|r| r["config"] == config && r["seed"] == seed && r["phase"] != "tune")
        .unwrap_or_else(|| panic!("no {config} seed {seed} in {runs:?}"))
}

fn id(run: &Value) -> String {
    run["id"].as_str().unwrap().to_string()
}

/// `lenet eval --test-image N`'s predicted class for the model of run `dir`, on `data`.
fn eval_prediction(dir: &Path, index: usize, data: &Path) -> String {
    let out = succeeded(
        lenet()
            .args(["eval", "-q", "--checkpoint"])
            .arg(dir.join("model.safetensors"))
            .args(["--test-image", &index.to_string(), "--data-dir"])
            .arg(data),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().find(|l| l.starts_with("test image")).unwrap();
    let predicted = line.split("predicted ").nth(1).unwrap();
    predicted.split("  (").next().unwrap().to_string()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn every_endpoint_answers_on_loopback() {
    let f = fixture();
    let s = serve(&[os(&f.study), os(&f.lecun)]);
    assert_eq!(s.token(), None, "no token on 127.0.0.1");

    // The page: one self-contained file that may load nothing from elsewhere.
    let page = get(&s, "/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("Content-Type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.header("Content-Security-Policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = String::from_utf8(page.body).unwrap();
    assert!(
        html.contains("<canvas id=\"pad\"")
            && !html.contains("http://")
            && !html.contains("https://")
    );
    assert!(ok(get(&s, "/api"))["endpoints"].as_array().unwrap().len() >= 10);

    // The study's runs by configuration and seed (and its tuning runs), then the lone run.
    let all = runs(&s);
    let finals: Vec<_> = all.iter().filter(|r| r["phase"] == "final").collect();
    assert_eq!(finals.len(), 4, "{all:?}");
    assert_eq!(all.iter().filter(|r| r["phase"] == "tune").count(), 2);
    let adam = find(&all, "adam", 1);
    assert_eq!(adam["study"], "explore");
    assert!(adam["label"].as_str().unwrap().contains("adam — seed 1"));
    let lone = all.iter().find(|r| r["phase"] == "run").unwrap();
    assert_eq!(
        (lone["config"].as_str(), lone["arch"].as_str()),
        (Some("lecun1998"), Some("lecun1998"))
    );
    let adam_dir = PathBuf::from(adam["dir"].as_str().unwrap());
    let (adam, lone) = (id(adam), id(lone));

    // Details and kernels.
    let d = ok(get(&s, &format!("/api/runs/{adam}")));
    assert_eq!(d["output"], "probabilities");
    assert_eq!(d["config"]["optimizer"]["name"], "adam");
    assert_eq!(d["class_names"][3], "3");
    assert!(d["summary"]["test_accuracy"].as_f64().unwrap() > 0.5);
    let k = ok(get(&s, &format!("/api/runs/{adam}/kernels")));
    let shapes: Vec<&Value> = k["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["shape"])
        .collect();
    assert_eq!(
        shapes,
        [
            &json!([6, 1, 5, 5]),
            &json!([16, 6, 5, 5]),
            &json!([120, 16, 5, 5])
        ]
    );
    let k98 = ok(get(&s, &format!("/api/runs/{lone}/kernels")));
    let c3 = &k98["layers"][1];
    assert_eq!(c3["role"], "c3");
    let links = c3["connected"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .filter(|c| c.as_bool().unwrap())
        .count();
    assert_eq!(
        links, 60,
        "C3's table (LeCun et al. 1998, Table I) has 60 connections"
    );

    // A forward pass of a test image: every layer, probabilities, and the prediction that
    // `lenet eval` makes for the same image.
    let r = ok(post(
        &s,
        &format!("/api/runs/{adam}/forward"),
        &json!({"test_image": 7}),
    ));
    assert_eq!(r["source"]["kind"], "test");
    let layers: Vec<(String, usize, usize, usize)> = (r["layers"].as_array().unwrap().iter())
        .map(|l| {
            let n = l["maps"].as_array().unwrap().len();
            (
                l["role"].as_str().unwrap().into(),
                n,
                l["height"].as_u64().unwrap() as usize,
                l["width"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    let want = [
        ("conv1 → relu", 6, 28, 28),
        ("pool1", 6, 14, 14),
        ("conv2 → relu", 16, 10, 10),
        ("pool2", 16, 5, 5),
        ("conv3 → relu", 1, 12, 10),
        ("fc1 → relu", 1, 12, 7),
    ];
    assert_eq!(layers, want.map(|(r, n, h, w)| (r.to_string(), n, h, w)));
    assert_eq!(r["layers"][0]["kernels_of"], "feature_extractor.0");
    let p = f64s(&r["values"]);
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    let best = (0..10).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
    assert_eq!(r["prediction"]["class"], best);
    assert_eq!(r["top"][0]["class"], best);
    assert_eq!(
        r["prediction"]["name"].as_str().unwrap(),
        eval_prediction(&adam_dir, 7, &subset_dir())
    );

    // The same image given as pixels (28 x 28 and padded 32 x 32): the same scores.
    let img = ok(get(&s, &format!("/api/runs/{adam}/images/test/7")));
    assert_eq!(img["label"], r["source"]["label"]);
    let pixels: Vec<f64> = f64s(&img["pixels"]).iter().map(|v| v / 255.0).collect();
    let r28 = ok(post(
        &s,
        &format!("/api/runs/{adam}/forward"),
        &json!({"image": pixels}),
    ));
    let mut padded = vec![0.0; 1024];
    for y in 0..28 {
        for x in 0..28 {
            padded[(y + 2) * 32 + x + 2] = pixels[y * 28 + x];
        }
    }
    let r32 = ok(post(
        &s,
        &format!("/api/runs/{adam}/forward"),
        &json!({"image": padded}),
    ));
    let scores = f64s(&r["scores"]);
    for other in [&r28, &r32] {
        for (a, b) in scores.iter().zip(f64s(&other["scores"])) {
            assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "{a} against {b}");
        }
    }
    assert!(
        ok(post(
            &s,
            &format!("/api/runs/{adam}/forward"),
            &json!({"train_image": 3})
        ))["source"]["label"]
            .is_u64()
    );

    // Saliency: lenet's backward pass against centred differences of the score.
    let sal = ok(post(
        &s,
        &format!("/api/runs/{adam}/saliency"),
        &json!({"image": padded, "class": 3}),
    ));
    assert_eq!(sal["class"], 3);
    let g = f64s(&sal["gradient"]);
    assert_eq!(g.len(), 1024);
    let mut by_size: Vec<usize> = (0..1024).collect();
    by_size.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
    let score_at = |image: &[f64]| {
        f64s(
            &ok(post(
                &s,
                &format!("/api/runs/{adam}/forward"),
                &json!({"image": image}),
            ))["scores"],
        )[3]
    };
    let mut close = 0;
    for &i in &by_size[..5] {
        let h = 0.01;
        let (mut up, mut down) = (padded.clone(), padded.clone());
        up[i] = (up[i] + h).min(1.0);
        down[i] = (down[i] - h).max(0.0);
        let numeric = (score_at(&up) - score_at(&down)) / (up[i] - down[i]);
        // Unit preprocessing: the network's input is the pixel itself.
        if (numeric - g[i]).abs() <= 0.05 * g[i].abs() {
            close += 1;
        }
    }
    assert!(
        close >= 4,
        "saliency against finite differences: {close} of 5 within 5%"
    );

    // A drawing made into MNIST's 28 x 28: a tall bar fills 20 rows, centred.
    let mut drawing = vec![0.0; 100 * 100];
    for y in 10..90 {
        for x in 40..60 {
            drawing[y * 100 + x] = 1.0;
        }
    }
    let pre = ok(post(
        &s,
        "/api/preprocess",
        &json!({"width": 100, "height": 100, "pixels": drawing}),
    ));
    let image = f64s(&pre["image"]);
    let rows: Vec<usize> = (0..28)
        .filter(|y| (0..28).any(|x| image[y * 28 + x] > 0.0))
        .collect();
    assert_eq!((rows.len(), rows[0]), (20, 4));

    // The test set's mistakes: as many as `lenet eval`'s accuracy leaves.
    let m = ok(get(&s, &format!("/api/runs/{adam}/mistakes")));
    assert_eq!(m["total"], 500);
    let acc = d["summary"]["test_accuracy"].as_f64().unwrap();
    assert_eq!(
        m["count"].as_u64().unwrap(),
        ((1.0 - acc) * 500.0).round() as u64
    );
    if let Some(first) = m["mistakes"].as_array().unwrap().first() {
        let i = first["index"].as_u64().unwrap() as usize;
        let r = ok(post(
            &s,
            &format!("/api/runs/{adam}/forward"),
            &json!({"test_image": i}),
        ));
        assert_eq!(r["prediction"]["class"], first["predicted"]);
        assert_ne!(first["predicted"], first["label"]);
    }

    // The report's layer figure, as SVG and PNG.
    let svg = post(
        &s,
        &format!("/api/runs/{adam}/figure.svg"),
        &json!({"test_image": 7}),
    );
    assert_eq!(
        (svg.status, svg.header("Content-Type").as_deref()),
        (200, Some("image/svg+xml"))
    );
    roxmltree::Document::parse(std::str::from_utf8(&svg.body).unwrap()).expect("well-formed SVG");
    let png = post(
        &s,
        &format!("/api/runs/{lone}/figure.png"),
        &json!({"image": pixels}),
    );
    assert_eq!(png.status, 200);
    assert_eq!(&png.body[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.header("Content-Disposition").unwrap().contains(".png"));

    // The 1998 network: squared distances to the prototypes, F6 as 84 values.
    let d98 = ok(get(&s, &format!("/api/runs/{lone}")));
    assert_eq!(d98["output"], "distances");
    assert_eq!(d98["prototypes"].as_array().unwrap().len(), 10);
    let r98 = ok(post(
        &s,
        &format!("/api/runs/{lone}/forward"),
        &json!({"test_image": 7}),
    ));
    let y = f64s(&r98["values"]);
    let nearest = (0..10).min_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap();
    assert_eq!(r98["prediction"]["class"], nearest);
    let f6 = r98["layers"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (
            f6["role"].as_str(),
            f6["height"].as_u64(),
            f6["width"].as_u64()
        ),
        (Some("f6_squash"), Some(12), Some(7))
    );
    assert_eq!(
        r98["prediction"]["name"].as_str().unwrap(),
        eval_prediction(&f.lecun, 7, &subset_dir())
    );
}

#[test]
fn bad_requests_get_a_4xx_with_a_message_and_the_server_keeps_serving() {
    let f = fixture();
    let s = serve(&[os(&f.study)]);
    let run = id(find(&runs(&s), "sgd", 0));
    let fw = format!("/api/runs/{run}/forward");
    let big = vec![b' '; 9 << 20];
    let cases: Vec<(&str, String, Vec<u8>, u16)> = vec![
        ("GET", "/api/runs/../../etc/passwd".into(), vec![], 404),
        (
            "GET",
            "/api/runs/..%2f..%2fetc%2fpasswd".into(),
            vec![],
            404,
        ),
        ("GET", "/api/runs/%2e%2e/kernels".into(), vec![], 404),
        ("GET", "/../../etc/passwd".into(), vec![], 404),
        ("GET", "/api/runs/0123456789ab".into(), vec![], 404),
        ("GET", "/nothing".into(), vec![], 404),
        (
            "GET",
            format!("/api/runs/{run}/images/test/500"),
            vec![],
            404,
        ),
        (
            "GET",
            format!("/api/runs/{run}/images/valid/0"),
            vec![],
            404,
        ),
        (
            "GET",
            format!("/api/runs/{run}/images/test/-1"),
            vec![],
            404,
        ),
        ("GET", fw.clone(), vec![], 405),
        ("POST", "/api/runs".into(), vec![], 405),
        ("DELETE", format!("/api/runs/{run}"), vec![], 405),
        ("POST", fw.clone(), b"{".to_vec(), 400),
        ("POST", fw.clone(), b"not json".to_vec(), 400),
        ("POST", fw.clone(), b"{\"image\": [NaN]}".to_vec(), 400),
        ("POST", fw.clone(), b"{\"image\": \"NaN\"}".to_vec(), 400),
        ("POST", fw.clone(), b"{\"image\": [1e999]}".to_vec(), 400),
        ("POST", fw.clone(), b"{\"picture\": []}".to_vec(), 400),
        ("POST", fw.clone(), b"{\"image\": [0.5, 0.5]}".to_vec(), 422),
        (
            "POST",
            fw.clone(),
            json!({"image": vec![2.0; 784]}).to_string().into_bytes(),
            422,
        ),
        (
            "POST",
            fw.clone(),
            json!({"image": vec![-0.5; 1024]}).to_string().into_bytes(),
            422,
        ),
        (
            "POST",
            fw.clone(),
            json!({"image": vec![1e39; 784]}).to_string().into_bytes(),
            400,
        ),
        ("POST", fw.clone(), b"{}".to_vec(), 422),
        (
            "POST",
            fw.clone(),
            b"{\"test_image\": 1, \"train_image\": 1}".to_vec(),
            422,
        ),
        ("POST", fw.clone(), b"{\"test_image\": 500}".to_vec(), 422),
        ("POST", fw.clone(), b"{\"test_image\": -3}".to_vec(), 400),
        (
            "POST",
            fw.clone(),
            b"{\"test_image\": 1, \"class\": 2}".to_vec(),
            422,
        ),
        (
            "POST",
            format!("/api/runs/{run}/saliency"),
            b"{\"test_image\": 1, \"class\": 10}".to_vec(),
            422,
        ),
        (
            "POST",
            "/api/preprocess".into(),
            b"{\"width\": 0, \"height\": 5, \"pixels\": []}".to_vec(),
            422,
        ),
        (
            "POST",
            "/api/preprocess".into(),
            b"{\"width\": 5000, \"height\": 1, \"pixels\": []}".to_vec(),
            422,
        ),
        (
            "POST",
            "/api/preprocess".into(),
            b"{\"width\": 2, \"height\": 2, \"pixels\": [0, 1]}".to_vec(),
            422,
        ),
        ("POST", fw.clone(), big, 413),
    ];
    let mut seen = Vec::new();
    for (method, path, body, want) in &cases {
        let r = request(&s, method, path, body, &[]);
        let message = r.json()["error"].as_str().map(str::to_string);
        assert_eq!(r.status, *want, "{method} {path}: {:?}", message);
        assert!(
            message.as_ref().is_some_and(|m| m.len() > 10),
            "{method} {path}: no message"
        );
        let shown = match body.len() {
            0 => String::new(),
            n if n > 60 => format!(" ({n} bytes: {}...)", String::from_utf8_lossy(&body[..40])),
            _ => format!(" {}", String::from_utf8_lossy(body)),
        };
        seen.push(format!(
            "{method} {path}{shown} -> {} {}",
            r.status,
            message.unwrap()
        ));
    }
    // Not addressed to this machine by name (DNS rebinding): refused.
    let head = format!(
        "GET /api/runs HTTP/1.1\r\nHost: evil.example:{}\r\nConnection: close\r\n\r\n",
        s.addr.rsplit(':').next().unwrap()
    );
    let r = raw(&s.addr, head.as_bytes());
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    // Host names are case-insensitive; two Host headers, none, or a target in absolute form
    // naming another host than the Host header are malformed (RFC 9112): 400.
    let port = s.addr.rsplit(':').next().unwrap();
    for (head, want) in [
        (
            format!("GET /api/runs HTTP/1.1\r\nHost: LOCALHOST:{port}\r\n"),
            200,
        ),
        (
            "GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n".to_string(),
            400,
        ),
        ("GET /api/runs HTTP/1.1\r\n".to_string(), 400),
        (
            "GET http://evil.example/api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_string(),
            400,
        ),
    ] {
        let r = raw(
            &s.addr,
            format!("{head}Connection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(
            r.status,
            want,
            "{head:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // A body cut short, then the connection dropped.
    let mut half = TcpStream::connect(&s.addr).unwrap();
    half.write_all(
        format!(
            "POST {fw} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n{{\"image\": ["
        )
        .as_bytes(),
    )
    .unwrap();
    drop(half);
    // Still serving, every run.
    assert_eq!(runs(&s).len(), 6);
    ok(post(&s, &fw, &json!({"test_image": 1})));
    assert!(!s.log().contains("panicked"), "{}", s.log());
    eprintln!("{}", seen.join("\n"));
}

/// 300 connections that send half their headers and hold their sockets (the server's
/// connection limit is 256) do not lock a normal client out: its request is answered within
/// a second, with or without --bind (where such a client needs no token), and again after
/// more slow connections arrive. Before, every slot was held until the 30 s header timeout.
#[test]
fn slow_clients_holding_sockets_do_not_lock_others_out() {
    let f = fixture();
    for bind in [false, true] {
        let mut args = vec![os(&f.lecun)];
        if bind {
            args.extend([
                std::ffi::OsStr::new("--bind"),
                std::ffi::OsStr::new("127.0.0.1"),
            ]);
        }
        let s = serve(&args);
        let mut slow = Vec::new();
        for _ in 0..300 {
            let mut c = TcpStream::connect(&s.addr).unwrap();
            c.write_all(b"GET /api/runs HTTP/1.1\r\nHo").unwrap();
            slow.push(c);
        }
        std::thread::sleep(Duration::from_millis(300));
        for round in 0..3 {
            let started = std::time::Instant::now();
            let r = get(&s, "/api/runs");
            let took = started.elapsed();
            assert_eq!(r.status, 200, "bind {bind}, round {round}");
            eprintln!(
                "bind {bind}, round {round}: a normal request beside 300 slow ones: {took:?}"
            );
            assert!(
                took < Duration::from_secs(1),
                "bind {bind}, round {round}: {took:?} beside 300 slow connections"
            );
            for _ in 0..50 {
                let mut c = TcpStream::connect(&s.addr).unwrap();
                let _ = c.write_all(b"GET / HTTP/1.1\r\n");
                slow.push(c);
            }
        }
        drop(slow);
        assert_eq!(get(&s, "/api/runs").status, 200);
    }
}

#[test]
fn with_bind_every_request_needs_the_printed_token() {
    let f = fixture();
    let s = serve(&[
        os(&f.lecun),
        std::ffi::OsStr::new("--bind"),
        std::ffi::OsStr::new("127.0.0.1"),
    ]);
    let token = s
        .token()
        .expect("a token in the printed address")
        .to_string();
    assert_eq!(token.len(), 32);
    let bare = |path: &str, auth: &str| {
        raw(
            &s.addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n").as_bytes(),
        )
    };
    assert_eq!(bare("/api/runs", "").status, 401);
    assert_eq!(bare("/", "").status, 401);
    assert_eq!(bare("/api/runs?token=0123", "").status, 401);
    assert_eq!(
        bare(
            "/api/runs",
            &format!("Authorization: Bearer {}\r\n", "f".repeat(32))
        )
        .status,
        401
    );
    assert_eq!(bare(&format!("/api/runs?token={token}"), "").status, 200);
    assert_eq!(
        bare("/api/runs", &format!("Authorization: Bearer {token}\r\n")).status,
        200
    );
    assert_eq!(bare(&format!("/?token={token}"), "").status, 200);
    // The scheme's name is case-insensitive (RFC 9110).
    assert_eq!(
        bare("/api/runs", &format!("Authorization: bearer {token}\r\n")).status,
        200
    );
}

/// Copies the files of the run in `from` to a new directory `to`, the model only if `model`.
fn copy_run(from: &Path, to: &Path, model: bool) {
    std::fs::create_dir(to).unwrap();
    for name in [
        "config.json",
        "metrics.csv",
        "summary.json",
        "model.safetensors",
    ] {
        if model || name != "model.safetensors" {
            std::fs::copy(from.join(name), to.join(name)).unwrap();
        }
    }
}

#[test]
fn a_removed_or_rewritten_run_changes_that_run_alone() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("copy");
    copy_run(&f.lecun, &copy, true);
    let s = serve(&[os(&copy), os(&f.study)]);
    let all = runs(&s);
    let (gone, kept) = (id(&all[0]), id(find(&all, "adam", 0)));
    let before = ok(post(
        &s,
        &format!("/api/runs/{gone}/forward"),
        &json!({"test_image": 2}),
    ));

    // Another model written in its place is loaded again.
    let other = PathBuf::from(find(&all, "adam", 0)["dir"].as_str().unwrap());
    std::fs::copy(
        other.join("model.safetensors"),
        copy.join("model.safetensors"),
    )
    .unwrap();
    let after = ok(post(
        &s,
        &format!("/api/runs/{gone}/forward"),
        &json!({"test_image": 2}),
    ));
    assert_eq!(
        (before["output"].as_str(), after["output"].as_str()),
        (Some("distances"), Some("probabilities"))
    );

    std::fs::remove_dir_all(&copy).unwrap();
    let r = post(
        &s,
        &format!("/api/runs/{gone}/forward"),
        &json!({"test_image": 2}),
    );
    assert_eq!(r.status, 410);
    assert!(
        r.json()["error"].as_str().unwrap().contains("was removed"),
        "{:?}",
        r.json()
    );
    assert_eq!(get(&s, &format!("/api/runs/{gone}")).status, 410);
    ok(post(
        &s,
        &format!("/api/runs/{kept}/forward"),
        &json!({"test_image": 2}),
    ));
    let listed = runs(&s);
    assert!(listed[0]["error"].is_string() && listed[1]["error"].is_null());
}

#[cfg(unix)]
#[test]
fn a_link_out_of_the_tree_is_not_served() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    // A run of its own; a run directory that is a link to a run elsewhere; and a run whose
    // model is a link out of the tree.
    copy_run(&f.lecun, &tree.join("real"), true);
    std::os::unix::fs::symlink(&f.lecun, tree.join("linked")).unwrap();
    copy_run(&f.lecun, &tree.join("model-linked"), false);
    std::os::unix::fs::symlink(
        f.lecun.join("model.safetensors"),
        tree.join("model-linked/model.safetensors"),
    )
    .unwrap();
    let s = serve(&[os(&tree)]);
    let listed = runs(&s);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["config"], "real");
    assert_eq!(s.log().matches("left out").count(), 2, "{}", s.log());

    // With nothing else in it, the tree is an error that says why.
    std::fs::remove_dir_all(tree.join("real")).unwrap();
    let err = explore_fails(&tree);
    assert!(
        err.contains("no run with a saved model") && err.contains("links out of it"),
        "{err}"
    );
}

/// `lenet explore DIR`'s standard error, once it has failed as it should (exit status 1).
fn explore_fails(dir: &Path) -> String {
    let out = lenet()
        .arg("explore")
        .arg(dir)
        .args(["--port", "0"])
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_directory_without_runs_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = explore_fails(tmp.path());
    assert!(err.contains("expected a study directory"), "{err}");
    assert!(explore_fails(&tmp.path().join("nowhere")).contains("no such directory"));
    // No directory named: the runs under ./studies-out, when there is one.
    let out = lenet()
        .arg("explore")
        .current_dir(tmp.path())
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no studies-out/"));
    let f = fixture();
    std::fs::create_dir(tmp.path().join("studies-out")).unwrap();
    copy_run(&f.lecun, &tmp.path().join("studies-out/mine"), true);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("lenet"))
        .args(["explore", "--port", "0"])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _served = KillOnDrop(child);
    assert!(
        line.starts_with("lenet explore: 1 run at http://127.0.0.1:"),
        "{line}"
    );
}

// ---- the page in a real browser ------------------------------------------------------------

/// Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
/// NUL-terminated JSON messages on file descriptors 3 and 4), attached to one page.
struct Browser {
    _child: KillOnDrop,
    to: std::process::ChildStdin,
    from: BufReader<std::process::ChildStdout>,
    next: u64,
    session: String,
    /// Exceptions and console errors the page reported.
    problems: Vec<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn open(url: &str, (width, height): (u32, u32)) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        // The shell gives Chromium its ends of the pipe as descriptors 3 and 4; `timeout`
        // ends a browser that hangs.
        let mut child = Command::new("timeout")
            .args([
                "180",
                "sh",
                "-c",
                "exec \"$0\" \"$@\" 3<&0 4>&1 0</dev/null 1>&2",
            ])
            .arg(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut b = Browser {
            to: child.stdin.take().unwrap(),
            from: BufReader::new(child.stdout.take().unwrap()),
            _child: KillOnDrop(child),
            next: 0,
            session: String::new(),
            problems: Vec::new(),
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b.call("Runtime.enable", json!({}));
        b.call("Page.enable", json!({}));
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        b.call("Page.navigate", json!({"url": url}));
        b
    }

    /// Sends a command (to the page once attached) and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let mut message = json!({"id": self.next, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.to.write_all(message.to_string().as_bytes()).unwrap();
        self.to.write_all(b"\0").unwrap();
        loop {
            let mut buf = Vec::new();
            let n = self.from.read_until(0, &mut buf).unwrap();
            assert!(n > 0, "Chromium closed the pipe while {method} was pending");
            buf.pop();
            let m: Value = serde_json::from_slice(&buf).unwrap();
            match m["method"].as_str() {
                Some("Runtime.exceptionThrown") => self.problems.push(m["params"].to_string()),
                Some("Runtime.consoleAPICalled") if m["params"]["type"] == "error" => {
                    self.problems.push(m["params"].to_string())
                }
                _ => {}
            }
            if m["id"] == self.next {
                assert!(m["error"].is_null(), "{method}: {}", m["error"]);
                return m["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            r["exceptionDetails"].is_null(),
            "{expression}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Waits until `expression` is true, for at most a minute.
    fn wait_for(&mut self, expression: &str) {
        let start = Instant::now();
        while self.eval(&format!("!!({expression})")) != json!(true) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {expression}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn mouse(&mut self, kind: &str, (x, y): (f64, f64), buttons: u32) {
        self.call(
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": buttons, "clickCount": 1, "pointerType": "mouse"}),
        );
    }

    /// The centre of the element that `selector` finds, in viewport pixels.
    fn centre(&mut self, selector: &str) -> (f64, f64) {
        let r = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2, r.width, r.height]; }})()"
        ));
        (r[0].as_f64().unwrap(), r[1].as_f64().unwrap())
    }

    fn click(&mut self, selector: &str) {
        let at = self.centre(selector);
        self.mouse("mousePressed", at, 1);
        self.mouse("mouseReleased", at, 0);
    }

    fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }
}

/// Where the browser test leaves its screenshots: $LENET_SCREENSHOTS, else
/// `target/tmp/explore-screenshots`.
fn screenshots() -> PathBuf {
    std::env::var_os("LENET_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("explore-screenshots"))
}

/// For each run column, the layer maps drawn and how many of them are not blank (more than
/// one grey level), and the prediction shown.
const MAPS_SHOWN: &str = "['A', 'B'].map(w => { const maps = [...document.querySelectorAll(`#run-${w} .layers canvas.map`)]; const inked = maps.filter(c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; for (let i = 4; i < d.length; i += 4) if (d[i] !== d[0]) return true; return false; }).length; return [maps.length, inked, document.querySelector(`#run-${w} .prediction`).textContent]; })";

#[test]
fn chromium_draws_on_the_page_and_sees_what_lenet_eval_sees() {
    if common::skip_without_chromium("chromium_draws_on_the_page_and_sees_what_lenet_eval_sees") {
        return;
    }
    let f = fixture();
    // The runs to show: the fixture's, or $LENET_EXPLORE_DIRS (':'-separated) with the data
    // of $LENET_DATA, for screenshots of real runs.
    let dirs: Vec<PathBuf> = match std::env::var("LENET_EXPLORE_DIRS") {
        Ok(v) => v.split(':').map(PathBuf::from).collect(),
        Err(_) => vec![f.study.clone(), f.lecun.clone()],
    };
    let data = std::env::var_os("LENET_DATA").map_or_else(subset_dir, PathBuf::from);
    let args: Vec<&std::ffi::OsStr> = dirs.iter().map(|d| d.as_os_str()).collect();
    let s = serve_with(&args, &data);
    // $LENET_EXPLORE_QUERY (e.g. `a=ID&b=ID`) chooses the page's two runs.
    let url = match std::env::var("LENET_EXPLORE_QUERY") {
        Ok(q) => format!("{}?{q}", s.url),
        Err(_) => s.url.clone(),
    };
    let mut b = Browser::open(&url, (1400, 1500));
    b.wait_for("window.lenet && window.lenet.ready");
    b.screenshot("explore-start");

    // A stroke drawn with the browser's own mouse events: a seven, top bar then diagonal.
    let (cx, cy) = b.centre("#pad");
    let before = b.eval("window.lenet.updates").as_u64().unwrap();
    let path: Vec<(f64, f64)> = (0..=20)
        .map(|i| (cx - 70.0 + 7.0 * i as f64, cy - 90.0))
        .chain((1..=30).map(|i| (cx + 70.0 - 3.0 * i as f64, cy - 90.0 + 6.0 * i as f64)))
        .collect();
    b.mouse("mousePressed", path[0], 1);
    for &p in &path[1..] {
        b.mouse("mouseMoved", p, 1);
    }
    b.mouse("mouseReleased", *path.last().unwrap(), 0);
    b.wait_for(&format!(
        "window.lenet.updates > {before} && !window.lenet.busy && window.lenet.input.drawing"
    ));
    // The pad has ink, the network saw it, and both runs show a prediction and their maps.
    let seen = b.eval("(() => { const d = document.getElementById('seen28').getContext('2d').getImageData(0, 0, 28, 28).data; let ink = 0; for (let i = 0; i < d.length; i += 4) ink += d[i] < 128; return ink; })()");
    assert!(
        seen.as_u64().unwrap() > 20,
        "the 28 x 28 input has {seen} dark pixels"
    );
    let shown = b.eval(MAPS_SHOWN);
    for column in shown.as_array().unwrap() {
        let (maps, inked) = (column[0].as_u64().unwrap(), column[1].as_u64().unwrap());
        let prediction = column[2].as_str().unwrap();
        assert!(
            prediction.len() == 1 && prediction.chars().all(|c| c.is_ascii_digit()),
            "prediction {prediction:?}"
        );
        assert!(
            maps >= 40 && inked * 10 >= maps * 7,
            "{inked} of {maps} maps not blank"
        );
    }
    b.screenshot("explore-drawing");

    // The export buttons fetch the report's layer figure of what is shown.
    b.click("#run-A .export-svg");
    b.wait_for("window.lenet.exported && window.lenet.exported.ext === 'svg'");
    let exported = b.eval("window.lenet.exported");
    assert_eq!(exported["type"], "image/svg+xml");
    assert!(exported["size"].as_u64().unwrap() > 10_000, "{exported}");
    b.click("#run-B .export-png");
    b.wait_for("window.lenet.exported.ext === 'png'");
    assert_eq!(b.eval("window.lenet.exported.type"), json!("image/png"));

    // Undo takes the stroke back; a stroke by touch, and one by pen, draw as the mouse does.
    b.click("#undo");
    b.wait_for("!window.lenet.busy");
    let ink = "(() => { const d = document.getElementById('pad').getContext('2d').getImageData(0, 0, 280, 280).data; let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] < 128; return n; })()";
    assert_eq!(b.eval(ink), json!(0), "undo leaves a blank pad");
    let (cx, cy) = b.centre("#pad");
    let touch = |b: &mut Browser, kind: &str, (x, y): (f64, f64)| {
        let points = if kind == "touchEnd" {
            json!([])
        } else {
            json!([{"x": x, "y": y}])
        };
        b.call(
            "Input.dispatchTouchEvent",
            json!({"type": kind, "touchPoints": points}),
        );
    };
    touch(&mut b, "touchStart", (cx, cy - 80.0));
    for i in 1..=16 {
        touch(&mut b, "touchMove", (cx, cy - 80.0 + 10.0 * i as f64));
    }
    touch(&mut b, "touchEnd", (cx, cy + 80.0));
    b.wait_for(&format!("{ink} > 500"));
    let pen = |b: &mut Browser, kind: &str, (x, y): (f64, f64), buttons: u32| {
        b.call(
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": buttons, "clickCount": 1, "pointerType": "pen", "force": 0.5}),
        );
    };
    let before = b.eval(ink).as_u64().unwrap();
    pen(&mut b, "mousePressed", (cx - 60.0, cy), 1);
    for i in 1..=12 {
        pen(&mut b, "mouseMoved", (cx - 60.0 + 10.0 * i as f64, cy), 1);
    }
    pen(&mut b, "mouseReleased", (cx + 60.0, cy), 0);
    b.wait_for(&format!("{ink} > {before} + 500 && !window.lenet.busy"));
    assert_eq!(b.eval("window.lenet.input.drawing"), json!(true));

    // Hovering a conv1 map shows its value range and kernel.
    let at = b.centre("#run-A .layers canvas.map");
    b.mouse("mouseMoved", at, 0);
    b.wait_for("document.getElementById('tip').style.display === 'block' && document.querySelector('#tip canvas')");
    b.screenshot("explore-hover");
    b.mouse("mouseMoved", (5.0, 5.0), 0);

    // A test image picked on the page (the first of run A's mistakes, where there is one) is
    // predicted as `lenet eval` predicts it.
    let a = b
        .eval("window.lenet.panes[0].id")
        .as_str()
        .unwrap()
        .to_string();
    let m = ok(get(&s, &format!("/api/runs/{a}/mistakes")));
    let index = m["mistakes"][0]["index"].as_u64().unwrap_or(3);
    b.eval(&format!("document.getElementById('index').value = {index}"));
    b.click("#load");
    b.wait_for(&format!(
        "!window.lenet.busy && window.lenet.panes[0].result && window.lenet.panes[0].result.source.index === {index}"
    ));
    let on_page = b.eval("document.querySelector('#run-A .prediction').textContent");
    let dir = ok(get(&s, &format!("/api/runs/{a}")))["run"]["dir"]
        .as_str()
        .unwrap()
        .to_string();
    let names = ok(get(&s, &format!("/api/runs/{a}")))["class_names"].clone();
    let evaluated = eval_prediction(Path::new(&dir), index as usize, &data);
    assert!(
        names
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == &json!(evaluated))
    );
    assert_eq!(
        on_page,
        json!(evaluated),
        "test image {index}: the page against lenet eval"
    );
    b.screenshot("explore-side-by-side");
    assert!(b.problems.is_empty(), "the page reported: {:?}", b.problems);
}
