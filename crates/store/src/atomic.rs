//! Replacing a file so that a crash leaves either the old or the new one, never a mix: write a
//! temporary file beside it, rename it over the old one. Used by the agent's state file and by
//! the store's log compaction.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// How far [`atomic_write`] waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file before the rename and the directory after it: the new file survives a
    /// power loss once this returns.
    Durable,
    /// No fsync: the new file survives the process dying (the page cache stays), not a power
    /// loss, where the old file or none may come back.
    ProcessCrash,
}

/// Replaces the file at `path` with what `write` writes into a temporary file beside it (which
/// it should buffer). On error the temporary file is removed and `path` is left as it was.
pub fn atomic_write(
    path: &Path,
    durability: Durability,
    write: &mut dyn FnMut(&File) -> io::Result<()>,
) -> io::Result<()> {
    // Per process, so that two processes briefly sharing a directory (two agents on a hostPath
    // during a rollout) cannot write into each other's temporary file.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let file = File::create(&tmp)?;
    let durable = durability == Durability::Durable;
    let written = write(&file).and_then(|()| if durable { file.sync_all() } else { Ok(()) });
    drop(file);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)?;
    if durable && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable only once the directory entry is.
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("netcost-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_one() {
        let dir = temp("failed");
        let path = dir.join("state");
        fs::write(&path, b"old").unwrap_or_else(|e| panic!("{e}"));
        let err = atomic_write(&path, Durability::Durable, &mut |mut f| {
            f.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .expect_err("the write failed");
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(fs::read(&path).unwrap_or_default(), b"old");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state")]);
    }

    #[test]
    fn a_successful_write_replaces_the_file() {
        let path = temp("ok").join("state");
        fs::write(&path, b"old").unwrap_or_else(|e| panic!("{e}"));
        for durability in [Durability::Durable, Durability::ProcessCrash] {
            atomic_write(&path, durability, &mut |mut f| f.write_all(b"new"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(fs::read(&path).unwrap_or_default(), b"new");
        }
    }
}
