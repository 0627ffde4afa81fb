//! Writing files so that readers never see half of one: the content goes to a temporary file
//! beside the target, which is then renamed over it (atomic on POSIX file systems). An
//! interrupted write leaves at most a stray temporary file, never a truncated target.

use std::path::Path;

/// Writes `content` to `path` through a temporary file and a rename.
pub fn write(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}
