//! `lenet explore`: the browser's view of trained runs.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use super::args::DataDirArgs;

#[derive(Args, Debug)]
pub(super) struct ExploreArgs {
    /// Run directories (from `lenet train`), study directories (their runs listed by
    /// configuration and seed), or folders of them [default: studies-out]
    dirs: Vec<PathBuf>,
    /// Listen on this address (e.g. 0.0.0.0 for every interface) instead of 127.0.0.1; every
    /// request must then carry the access token printed at start.
    #[arg(long, value_name = "ADDR")]
    bind: Option<std::net::IpAddr>,
    /// The port; 0 picks a free one.
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// Threads running forward passes and other answers [default: the cores, at least 2]
    #[arg(long)]
    workers: Option<usize>,
    #[command(flatten)]
    data: DataDirArgs,
}

/// Starts `lenet explore`'s server and serves until interrupted.
pub(super) fn explore(args: &ExploreArgs) -> Result<()> {
    let dirs = if args.dirs.is_empty() {
        let default = PathBuf::from("studies-out");
        if !default.is_dir() {
            bail!(
                "no directory given, and there is no studies-out/ here: name run or study \
                 directories (lenet explore DIR...), or run a study first (lenet study run)"
            );
        }
        vec![default]
    } else {
        args.dirs.clone()
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let server = crate::explore::Server::start(&crate::explore::Options {
        dirs,
        bind: args.bind,
        port: args.port,
        data_dir: args.data.dir(),
        workers: args.workers.unwrap_or(cores.max(2)),
    })?;
    let catalogue = server.catalogue();
    for dir in &catalogue.outside {
        eprintln!(
            "lenet explore: left out {}: it, or its model, is a link out of the directory given",
            dir.display()
        );
    }
    let runs = catalogue.len();
    // Written without `say!`: a server whose standard output has been closed goes on serving.
    let mut lines = format!(
        "lenet explore: {runs} run{} at {}\n",
        if runs == 1 { "" } else { "s" },
        server.url()
    );
    if server.token().is_some() {
        lines.push_str(
            "every request needs the token in that address (or an 'Authorization: Bearer \
             TOKEN' header); anyone who has it can see these runs\n",
        );
    }
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(lines.as_bytes()).and_then(|()| out.flush());
    }
    if !args.data.quiet {
        eprintln!("Ctrl-C stops the server");
    }
    Ok(server.serve()?)
}
