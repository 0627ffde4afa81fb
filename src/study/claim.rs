//! Claims on runs, so that processes sharing a study directory (shards of a SLURM array, a
//! requeued task whose old copy still runs, two commands typed by hand) never train the same
//! run at once, and each takes the runs nobody holds.
//!
//! A claim is the file `claims/<run id>.lock`, created atomically (`O_EXCL`): whoever creates
//! it owns the run. It holds the owner's host, PID, the process's start time and when the
//! claim was made; while the run trains, a heartbeat thread touches the file every
//! [`heartbeat`] seconds. A claim is stale, and is taken over, when its owner is gone: on
//! the same host, when no process with that PID and start time exists; on any host, when
//! its file has not been touched for the claim timeout (the owner is dead, or its machine
//! is). A takeover happens under a second lock file, `<run id>.takeover`, so two processes
//! that both find a claim stale cannot both take it. Each claim, takeover and release is
//! appended to `claims.log` in the study directory: one line each, for whoever wonders
//! which process trained what.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::process::start_time;

/// The default claim timeout: a claim from another host whose heartbeat is older than this
/// is taken over.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// What a claim file says of its owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    /// The process's start time in clock ticks since boot (Linux), which tells a live owner
    /// from a later process that reuses its PID.
    pub process_start: Option<u64>,
    /// When the claim was made, in seconds since 1970.
    pub claimed_at: u64,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        let pid = std::process::id();
        Owner {
            host: hostname(),
            pid,
            process_start: start_time(pid),
            claimed_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    pub fn describe(&self) -> String {
        format!("process {} on {}", self.pid, self.host)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether the owner is known to be gone: on this host, no process with its PID and start
/// time exists. `None` when this cannot be told (another host, or no `/proc`).
fn owner_gone(owner: &Owner) -> Option<bool> {
    if owner.host != hostname() || !crate::process::can_tell() {
        return None;
    }
    Some(match start_time(owner.pid) {
        None => true,
        Some(start) => owner.process_start.is_some_and(|s| s != start),
    })
}

/// How often an owner touches its claim: a quarter of the timeout, at most a minute, at
/// least a second.
pub fn heartbeat(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// An owned claim: released (its file removed) when dropped.
pub struct Claim {
    path: PathBuf,
    log: PathBuf,
    id: String,
    owner: Owner,
    stop: Arc<AtomicBool>,
    heart: Option<std::thread::JoinHandle<()>>,
}

/// What trying to claim a run found.
pub enum Attempt {
    Claimed(Claim),
    /// Someone else holds it (and is not known to be gone).
    Held(Owner),
}

fn claims_dir(study_dir: &Path) -> PathBuf {
    study_dir.join("claims")
}

/// Tries to claim run `id` of the study in `study_dir`, taking over a stale claim.
pub fn try_claim(study_dir: &Path, id: &str, timeout: Duration) -> std::io::Result<Attempt> {
    let dir = claims_dir(study_dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{id}.lock"));
    let log = study_dir.join("claims.log");
    let me = Owner::me();
    for _ in 0..3 {
        if create_claim(&path, &me)? {
            append_log(&log, &format!("claim {id} by {}", me.describe()));
            return Ok(Attempt::Claimed(Claim::start(path, log, id, me, timeout)));
        }
        let Some(holder) = read_owner(&path) else {
            // Being written right now, or removed since: look again.
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        if !is_stale(&path, &holder, timeout) {
            return Ok(Attempt::Held(holder));
        }
        if take_over(&dir, &path, id, &holder, &me)? {
            append_log(
                &log,
                &format!(
                    "takeover {id} by {} from {} (gone)",
                    me.describe(),
                    holder.describe()
                ),
            );
            return Ok(Attempt::Claimed(Claim::start(path, log, id, me, timeout)));
        }
    }
    match read_owner(&path) {
        Some(holder) => Ok(Attempt::Held(holder)),
        None => Err(std::io::Error::other(format!(
            "{}: cannot claim the run (the claim file keeps changing)",
            path.display()
        ))),
    }
}

/// Creates the claim file with `owner` in it; false when it exists already. The content is
/// written to a temporary file first and linked into place, so a reader never sees a claim
/// half written.
fn create_claim(path: &Path, owner: &Owner) -> std::io::Result<bool> {
    let tmp = path.with_extension(format!("lock.new-{}", owner.pid));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(
        serde_json::to_string(owner)
            .expect("serialisable")
            .as_bytes(),
    )?;
    file.sync_all()?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

fn read_owner(path: &Path) -> Option<Owner> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn is_stale(path: &Path, holder: &Owner, timeout: Duration) -> bool {
    if owner_gone(holder) == Some(true) {
        return true;
    }
    let touched = std::fs::metadata(path).and_then(|m| m.modified());
    touched.is_ok_and(|t| t.elapsed().unwrap_or_default() > timeout)
}

/// Replaces the stale claim of `holder` by one of `me`, under the takeover lock; false when
/// another process is taking it over or the claim changed meanwhile.
fn take_over(
    dir: &Path,
    path: &Path,
    id: &str,
    holder: &Owner,
    me: &Owner,
) -> std::io::Result<bool> {
    let guard = dir.join(format!("{id}.takeover"));
    // A takeover lock left by a process killed in the middle of one (it lasts milliseconds).
    if let Ok(age) = std::fs::metadata(&guard).and_then(|m| m.modified())
        && age.elapsed().unwrap_or_default() > Duration::from_secs(30)
    {
        let _ = std::fs::remove_file(&guard);
    }
    if !create_claim(&guard, me)? {
        return Ok(false);
    }
    // Under the guard, nobody else replaces the claim: if it still names the stale holder,
    // it is ours to replace.
    let taken = read_owner(path).as_ref() == Some(holder) && {
        std::fs::remove_file(path)?;
        create_claim(path, me)?
    };
    std::fs::remove_file(&guard)?;
    Ok(taken)
}

fn append_log(path: &Path, line: &str) {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    // One write of one line, in append mode: lines of several processes never interleave.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(format!("{stamp:.3} {line}\n").as_bytes());
    }
}

impl Claim {
    fn start(path: PathBuf, log: PathBuf, id: &str, owner: Owner, timeout: Duration) -> Claim {
        let stop = Arc::new(AtomicBool::new(false));
        let heart = {
            let (stop, path) = (stop.clone(), path.clone());
            let every = heartbeat(timeout);
            std::thread::Builder::new()
                .name(format!("claim {id}"))
                .spawn(move || {
                    // Woken early (unparked) when the claim is released.
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(every);
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Ok(f) = std::fs::File::options().write(true).open(&path) {
                            let _ = f.set_modified(SystemTime::now());
                        }
                    }
                })
                .ok()
        };
        Claim {
            path,
            log,
            id: id.to_string(),
            owner,
            stop,
            heart,
        }
    }

    /// Whether the claim file still names this process (a claim is only taken over when its
    /// owner looks gone, so this is false only after a stall longer than the timeout).
    pub fn still_ours(&self) -> bool {
        read_owner(&self.path).as_ref() == Some(&self.owner)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(heart) = self.heart.take() {
            heart.thread().unpark();
            let _ = heart.join();
        }
        if self.still_ours() {
            // Logged before the file goes, so the log never shows the next claim first.
            append_log(
                &self.log,
                &format!("release {} by {}", self.id, self.owner.describe()),
            );
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn study_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "lenet-claim-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_claim_is_held_until_released() {
        let dir = study_dir();
        let Attempt::Claimed(claim) = try_claim(&dir, "run1", DEFAULT_TIMEOUT).unwrap() else {
            panic!("the first claim succeeds");
        };
        let Attempt::Held(owner) = try_claim(&dir, "run1", DEFAULT_TIMEOUT).unwrap() else {
            panic!("a held claim is not taken");
        };
        assert_eq!(owner.pid, std::process::id());
        assert!(claim.still_ours());
        drop(claim);
        assert!(matches!(
            try_claim(&dir, "run1", DEFAULT_TIMEOUT).unwrap(),
            Attempt::Claimed(_)
        ));
        let log = std::fs::read_to_string(dir.join("claims.log")).unwrap();
        assert_eq!(
            log.lines().filter(|l| l.contains(" claim run1 ")).count(),
            2
        );
        assert_eq!(
            log.lines().filter(|l| l.contains(" release run1 ")).count(),
            2
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A claim held by a process that was killed but not yet reaped (a zombie: its PID and
    /// start time still in /proc, state Z) is taken over at once: the process will never
    /// run again.
    #[test]
    fn a_zombie_holder_is_gone() {
        if start_time(std::process::id()).is_none() {
            return; // no /proc
        }
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let owner = Owner {
            pid: child.id(),
            process_start: start_time(child.id()),
            ..Owner::me()
        };
        assert!(owner.process_start.is_some(), "the child runs");
        let dir = study_dir();
        std::fs::create_dir_all(claims_dir(&dir)).unwrap();
        create_claim(&claims_dir(&dir).join("run3.lock"), &owner).unwrap();
        // Exited and not waited for: a zombie until `wait` below.
        std::thread::sleep(Duration::from_millis(700));
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
        assert!(stat.contains(") Z "), "{stat}");
        assert!(matches!(
            try_claim(&dir, "run3", DEFAULT_TIMEOUT).unwrap(),
            Attempt::Claimed(_)
        ));
        child.wait().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A claim whose owner process is gone (here: a PID with another start time) is taken
    /// over at once; one from another host only after the timeout.
    #[test]
    fn stale_claims_are_taken_over() {
        if start_time(std::process::id()).is_none() {
            return; // no /proc: only the timeout rule applies
        }
        let dir = study_dir();
        std::fs::create_dir_all(claims_dir(&dir)).unwrap();
        let path = claims_dir(&dir).join("run2.lock");
        let mut dead = Owner::me();
        dead.process_start = dead.process_start.map(|s| s + 1);
        create_claim(&path, &dead).unwrap();
        assert!(matches!(
            try_claim(&dir, "run2", DEFAULT_TIMEOUT).unwrap(),
            Attempt::Claimed(_)
        ));
        let elsewhere = Owner {
            host: "another-host".into(),
            ..Owner::me()
        };
        create_claim(&path, &elsewhere).unwrap();
        assert!(matches!(
            try_claim(&dir, "run2", DEFAULT_TIMEOUT).unwrap(),
            Attempt::Held(_)
        ));
        std::thread::sleep(Duration::from_millis(1100));
        assert!(matches!(
            try_claim(&dir, "run2", Duration::from_secs(1)).unwrap(),
            Attempt::Claimed(_)
        ));
        let log = std::fs::read_to_string(dir.join("claims.log")).unwrap();
        assert_eq!(
            log.lines().filter(|l| l.contains("takeover run2")).count(),
            2
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
