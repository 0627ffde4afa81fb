//! Writing files so that readers never see half of one: the content goes to a temporary file
//! beside the target, which is flushed to disk and then renamed over it (atomic on POSIX file
//! systems), and the directory is flushed so that the rename itself survives a power loss.
//! An interrupted write leaves the old file or the new one, never a truncated target; a
//! failed write (a full disk) removes its temporary file.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a temporary file's name holds before the writer's process ID.
const PARTIAL: &str = ".partial-";

/// Writes `content` to `path` through a temporary file and a rename. The temporary file's
/// name, `NAME.partial-PID-N`, is this write's alone (N counts the process's writes), so
/// threads writing the same target at once each rename a whole file of their own.
pub fn write(path: &Path, content: &[u8]) -> std::io::Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        "{PARTIAL}{}-{}",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(name);
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(content)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path)
}

/// Removes the temporary files in `dir` that a process killed in the middle of a write left:
/// those whose process is gone ([`crate::process::start_time`]). Where that cannot be told
/// (no `/proc`), they are left.
pub fn remove_stale(dir: &Path) -> std::io::Result<()> {
    if !crate::process::can_tell() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let Some((_, tail)) = name.rsplit_once(PARTIAL) else {
            continue;
        };
        let Ok(pid) = tail.split('-').next().unwrap_or_default().parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && crate::process::start_time(pid).is_none() {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Flushes the directory holding `path`, so that a rename into it is on disk (a no-op where
/// directories cannot be opened, as on Windows).
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::File::open(dir) {
        // Some file systems cannot flush a directory (EINVAL); the rename is still atomic.
        Ok(d) => match d.sync_all() {
            Err(e) if e.kind() != std::io::ErrorKind::InvalidInput => Err(e),
            _ => Ok(()),
        },
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("lenet-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.json");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // A write that cannot happen (the target is a directory) leaves nothing behind.
        let blocked = dir.join("sub");
        std::fs::create_dir_all(blocked.join("x")).unwrap();
        assert!(write(&blocked, b"three").is_err());
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(PARTIAL)), "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
