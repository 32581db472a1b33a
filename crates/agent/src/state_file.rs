//! The `--state-file` on disk: written atomically after every cycle, read once at start.
//!
//! Atomic means a crash at any instant leaves either the old file or the new one, never a mix:
//! write a temporary file beside it, fsync it, rename it over the old one, fsync the directory.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use netcost_core::checkpoint::{Checkpoint, CheckpointError};

/// Why a state file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateFileError {
    /// Reading or writing failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The content is not a valid checkpoint.
    #[error("state file {path}: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: CheckpointError,
    },
    /// The checkpoint was written by the agent of another node.
    #[error("state file {path} belongs to node {found:?}, not {expected:?}")]
    OtherNode {
        /// The file.
        path: PathBuf,
        /// The node in the file.
        found: String,
        /// This node.
        expected: String,
    },
}

/// Reads the checkpoint at `path`; `Ok(None)` when there is none yet.
pub fn load(path: &Path, node_name: &str) -> Result<Option<Checkpoint>, StateFileError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateFileError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let checkpoint = Checkpoint::decode(&bytes).map_err(|source| StateFileError::Corrupt {
        path: path.to_owned(),
        source,
    })?;
    if checkpoint.node_name != node_name {
        return Err(StateFileError::OtherNode {
            path: path.to_owned(),
            found: checkpoint.node_name,
            expected: node_name.to_owned(),
        });
    }
    Ok(Some(checkpoint))
}

/// Replaces the checkpoint at `path` atomically.
pub fn save(path: &Path, checkpoint: &Checkpoint) -> Result<(), StateFileError> {
    let io_err = |source| StateFileError::Io {
        path: path.to_owned(),
        source,
    };
    // Per process, so that two agents briefly sharing a hostPath during a rollout cannot write
    // into each other's temporary file.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut file = fs::File::create(&tmp).map_err(io_err)?;
    file.write_all(&checkpoint.encode()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable only once the directory entry is.
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err)?;
    }
    Ok(())
}

/// Moves a damaged state file aside (to `<path>.corrupt`) so it can be inspected, and returns the
/// new name.
pub fn quarantine(path: &Path) -> io::Result<PathBuf> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    let aside = PathBuf::from(aside);
    fs::rename(path, &aside)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("netcost-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    #[test]
    fn a_saved_checkpoint_loads_back() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("state");
        let c = Checkpoint {
            node_name: "n1".into(),
            ..Checkpoint::default()
        };
        save(&path, &c).expect("save");
        assert_eq!(load(&path, "n1").expect("load"), Some(c));
        let leftovers = fs::read_dir(&dir).expect("list").count();
        assert_eq!(leftovers, 1, "only the state file remains");
    }

    #[test]
    fn a_missing_file_means_a_fresh_start() {
        let dir = temp_dir("missing");
        assert_eq!(load(&dir.join("none"), "n1").expect("load"), None);
    }

    #[test]
    fn another_nodes_checkpoint_is_refused_by_name() {
        let dir = temp_dir("other");
        let path = dir.join("state");
        save(
            &path,
            &Checkpoint {
                node_name: "n2".into(),
                ..Checkpoint::default()
            },
        )
        .expect("save");
        let err = load(&path, "n1").expect_err("must refuse").to_string();
        assert!(err.contains("\"n2\"") && err.contains("\"n1\""), "{err}");
    }

    #[test]
    fn a_truncated_file_is_reported_as_corrupt() {
        let dir = temp_dir("truncated");
        let path = dir.join("state");
        save(
            &path,
            &Checkpoint {
                node_name: "n1".into(),
                ..Checkpoint::default()
            },
        )
        .expect("save");
        let bytes = fs::read(&path).expect("read");
        fs::write(&path, &bytes[..bytes.len() - 3]).expect("write");
        assert!(matches!(
            load(&path, "n1"),
            Err(StateFileError::Corrupt { .. })
        ));
    }
}
