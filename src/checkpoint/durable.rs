//! Files and directories that survive a crash: written and fsynced, created and their parent
//! entries fsynced.

use std::fs::{File, OpenOptions};
use std::path::Path;

/// Writes `body` to a new file at `path` and fsyncs it.
pub(crate) fn write_durably(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(body)?;
    file.sync_all()
}

/// Creates `dir` and its missing parents, and fsyncs the parent of each one created: a new
/// directory survives a crash only once its entry in its parent does.
pub(crate) fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    std::fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        match created.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent)?,
            _ => sync_dir(Path::new("."))?,
        }
    }
    Ok(())
}

/// Fsyncs a directory, which makes the entries created or renamed in it durable.
#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Directory entries are made durable with the files themselves outside Unix (and a directory
/// cannot be opened as a file there).
#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}
