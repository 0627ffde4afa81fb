//! Training-speed benchmark: one epoch of the study's LeNet-5 (batch 64) on MNIST held in
//! memory, several times, with the median and minimum, the throughput, the fraction of the
//! machine's arithmetic bound, and where the time goes layer by layer (in one more epoch,
//! after the timed ones, so that timing each layer does not weigh on them). When PyTorch is
//! installed (`python3 -c "import torch"` works), the same epoch in PyTorch (same model,
//! batch size and thread count, data already in memory as tensors) runs in the same
//! invocation, and both medians are printed with their ratio.
//!
//! cargo bench --bench epoch -- [--epochs N] [--threads T] [--variant plain|bn-dropout]
//!                             [--batch-size B] [--no-torch]
//!                             [--instruments none|cheap|noise|curvature|all] [--instruments-every K]
//!
//! Data: MNIST from $LENET_DATA or the cache directory (fetched on first use).

use std::process::Command;
use std::time::Instant;

use lenet::data::{Dataset, Split, fetch};
use lenet::nn::{BatchNormAt, ModelConfig};
use lenet::optim::{OptimizerConfig, OptimizerName, ScheduleConfig};
use lenet::train::{DataConfig, Silent, TrainConfig, Trainer, evaluate};

/// As in the `lenet` binary: large buffers on cache lines.
#[global_allocator]
static ALLOC: lenet::alloc::CacheAligned = lenet::alloc::CacheAligned;

/// Multiply-adds of one training step per image (forward, input and weight gradients) for
/// the study's model: conv1 117,600 x 2 (no input gradient), conv2 240,000 x 3,
/// conv3 48,000 x 3, fc1 10,080 x 3, fc2 840 x 3.
const MACS_PER_IMAGE: f64 = 117_600.0 * 2.0 + 240_000.0 * 3.0 + 48_000.0 * 3.0 + 10_920.0 * 3.0;
/// Peak float32 multiply-adds per second and core of this machine (AVX-512, two FMA units,
/// 2.1 GHz: 2 x 16 x 2.1e9). The brief's 0.45 s bound for 136 GFLOP on two cores.
const PEAK_MACS_PER_CORE: f64 = 2.0 * 16.0 * 2.1e9;

fn arg<T: std::str::FromStr>(args: &[String], flag: &str, default: T) -> T {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let epochs: usize = arg(&args, "--epochs", 5);
    let threads: usize = arg(&args, "--threads", 2);
    let batch: usize = arg(&args, "--batch-size", 64);
    let variant: String = arg(&args, "--variant", "plain".to_string());
    let no_torch = args.iter().any(|a| a == "--no-torch");
    // Per-step instruments recorded every K steps (every step by default): their cost
    // against a run without them.
    let instruments = match arg(&args, "--instruments", "none".to_string()).as_str() {
        "none" => lenet::train::instruments::InstrumentSet::None,
        "cheap" => lenet::train::instruments::InstrumentSet::Cheap,
        "noise" => lenet::train::instruments::InstrumentSet::Noise,
        "curvature" => lenet::train::instruments::InstrumentSet::Curvature,
        "all" => lenet::train::instruments::InstrumentSet::All,
        other => panic!("unknown --instruments {other}: none, cheap, noise, curvature or all"),
    };
    let instruments_every: usize = arg(&args, "--instruments-every", 1);

    let dir = fetch::default_data_dir();
    let data = fetch::load(&dir, Dataset::Mnist, true).expect("MNIST loads");
    // The whole training set, as in the PyTorch baseline: 60,000 images per epoch.
    let split = Split {
        train: (0..data.train.len() as u32).collect(),
        valid: vec![],
    };

    let model = match variant.as_str() {
        "plain" => ModelConfig::default(),
        "bn-dropout" => ModelConfig {
            batch_norm: BatchNormAt::First,
            dropout: 0.4,
            ..Default::default()
        },
        other => panic!("unknown --variant {other}: plain or bn-dropout"),
    };
    let (name, batch_size) = match batch {
        1 => (OptimizerName::Sgd, 1),
        b => (OptimizerName::Adam, b),
    };
    let config = TrainConfig {
        model,
        optimizer: OptimizerConfig::defaults(name),
        schedule: ScheduleConfig::default(),
        batch_size,
        epochs,
        seed: 0,
        data: DataConfig::default(),
        vary: None,
        instruments,
        instruments_every,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let (mut times, eval_times, profile) = pool.install(|| {
        let mut trainer = Trainer::new(config).unwrap();
        let mut times = Vec::new();
        for e in 0..epochs {
            let start = Instant::now();
            trainer
                .train_epoch(&data.train, &split, &mut Silent)
                .unwrap();
            let t = start.elapsed().as_secs_f64();
            eprintln!("lenet epoch {}: {t:.3} s", e + 1);
            times.push(t);
        }
        // One more epoch, not timed with the others, with every layer's passes timed.
        trainer.net.set_profiling(true);
        let start = Instant::now();
        trainer
            .train_epoch(&data.train, &split, &mut Silent)
            .unwrap();
        let profiled = start.elapsed().as_secs_f64();
        let profile = (profiled, trainer.net.take_profile());
        trainer.net.set_profiling(false);
        let all: Vec<u32> = (0..data.test.len() as u32).collect();
        let mut eval_times = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            evaluate(&mut trainer.net, config_preprocess(), &data.test, &all);
            eval_times.push(start.elapsed().as_secs_f64());
        }
        (times, eval_times, profile)
    });
    let images = split.train.len() as f64;
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let med = median(&mut times);
    let bound = images * MACS_PER_IMAGE / (PEAK_MACS_PER_CORE * threads as f64);
    println!(
        "\nlenet, {variant}, batch {batch_size}, {threads} threads, {epochs} epochs of {images} images"
    );
    println!("  epoch seconds: min {min:.3}, median {med:.3}");
    println!("  images per second (median): {:.0}", images / med);
    println!(
        "  arithmetic bound {bound:.3} s (study model, {} MAC/image): {:.1}% of it",
        MACS_PER_IMAGE,
        100.0 * bound / med
    );
    let mut ev = eval_times.clone();
    println!(
        "  evaluation of {} test images: median {:.4} s",
        data.test.len(),
        median(&mut ev)
    );
    let (profiled, profile) = profile;
    let total: f64 = profile.iter().map(|p| p.2 + p.3).sum();
    println!(
        "\n  where the time goes (one more epoch, {profiled:.3} s, timed stage by stage of the \
         network's plan: {total:.3} s in the stages, {:.3} s outside them):",
        profiled - total
    );
    println!(
        "  {:66} {:>9} {:>9} {:>6}",
        "stage", "forward", "backward", "share"
    );
    for (n, d, f, b) in &profile {
        println!(
            "  {n:66} {f:8.3}s {b:8.3}s {:5.1}%\n    {d}",
            100.0 * (f + b) / total
        );
    }

    if no_torch || batch_size == 1 {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_baseline.py");
    let out = Command::new("python3")
        .args([
            script,
            "--epochs",
            &epochs.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .args([
            "--batch-size",
            &batch_size.to_string(),
            "--variant",
            &variant,
        ])
        .env("LENET_DATA", &dir)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let mut torch: Vec<f64> = text
                .lines()
                .filter_map(|l| l.strip_prefix("epoch_seconds "))
                .filter_map(|v| v.trim().parse().ok())
                .collect();
            if torch.is_empty() {
                println!("\nPyTorch baseline printed no timings:\n{text}");
                return;
            }
            let tmin = torch.iter().copied().fold(f64::INFINITY, f64::min);
            let tmed = median(&mut torch);
            println!(
                "\nPyTorch {}, same model, batch {batch_size}, {threads} threads:",
                text.lines().next().unwrap_or("?")
            );
            println!("  epoch seconds: min {tmin:.3}, median {tmed:.3}");
            println!(
                "\nlenet is {:.2}x faster than PyTorch (median epoch {med:.3} s vs {tmed:.3} s)",
                tmed / med
            );
        }
        Ok(o) => println!(
            "\nPyTorch baseline skipped (torch not installed?): {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!("\nPyTorch baseline skipped: python3 not runnable ({e})"),
    }
}

fn config_preprocess() -> lenet::data::Preprocess {
    DataConfig::default().preprocess
}
