//! The `--state-file` on disk: written atomically after every cycle, read once at start, both as
//! streams (a million flows' baselines are 24 MB; the agent never holds a second copy).
//!
//! Atomic means a crash at any instant leaves either the old file or the new one, never a mix
//! ([`atomic_write`]: write a temporary file beside it, fsync it, rename it over the old one,
//! fsync the directory).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use netcost_core::checkpoint::{Checkpoint, CheckpointError, Interim};
use netcost_core::classify::Classifier;
use netcost_core::pipeline::{Pipeline, PipelineConfig, Restored};
use netcost_core::topology::Topology;
use netcost_store::atomic::{Durability, atomic_write};

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
    save_with(path, &mut |file| {
        let mut file = file;
        file.write_all(&checkpoint.encode())
    })
}

/// Replaces the file at `path` atomically with what `write` writes into the temporary file
/// (which it should buffer), so a checkpoint can be streamed instead of built in memory first.
pub fn save_with(
    path: &Path,
    write: &mut dyn FnMut(&fs::File) -> io::Result<()>,
) -> Result<(), StateFileError> {
    replace(path, true, write)
}

/// Where the interim checkpoint of the state file at `path` lives: beside it.
pub fn interim_path(path: &Path) -> PathBuf {
    let mut interim = path.as_os_str().to_owned();
    interim.push(".interim");
    PathBuf::from(interim)
}

/// Replaces the interim checkpoint of `path` atomically, without waiting for the disk: it
/// guards against the process dying, which leaves the page cache intact. After a power loss the
/// file may be an older one or missing, and an interim that names another checkpoint is ignored.
pub fn save_interim(
    path: &Path,
    write: &mut dyn FnMut(&fs::File) -> io::Result<()>,
) -> Result<(), StateFileError> {
    replace(&interim_path(path), false, write)
}

/// Replaces the file at `path` through [`atomic_write`]; with `durable`, fsyncs the file before
/// and the directory after the rename.
fn replace(
    path: &Path,
    durable: bool,
    write: &mut dyn FnMut(&fs::File) -> io::Result<()>,
) -> Result<(), StateFileError> {
    let durability = match durable {
        true => Durability::Durable,
        false => Durability::ProcessCrash,
    };
    atomic_write(path, durability, write).map_err(|source| StateFileError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Continues from the checkpoint at `path`, reading it as a stream so that neither the file
/// nor a list of its baselines is held in memory, and from its interim checkpoint if that
/// continues it; `Ok(None)` when there is no checkpoint yet.
pub fn restore(
    path: &Path,
    config: PipelineConfig,
    topology: Arc<Topology>,
    classifier: Classifier,
    now_ms: u64,
) -> Result<Option<Restored>, StateFileError> {
    let io_err = |source| StateFileError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let len = file.metadata().map_err(io_err)?.len();
    let interim = read_interim(path);
    let expected = config.node_name.to_string();
    let input = io::BufReader::with_capacity(256 << 10, file);
    match Pipeline::restore_from(config, topology, classifier, (input, len), interim, now_ms) {
        Ok(restored) => Ok(Some(restored)),
        Err(CheckpointError::OtherNode { found }) => Err(StateFileError::OtherNode {
            path: path.to_owned(),
            found,
            expected,
        }),
        Err(CheckpointError::Read(message)) => Err(io_err(io::Error::other(message))),
        Err(source) => Err(StateFileError::Corrupt {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The interim checkpoint beside `path`, if there is a readable one. A damaged one is only
/// logged: the checkpoint alone is a consistent state, just an older one.
fn read_interim(path: &Path) -> Option<Interim> {
    let interim = interim_path(path);
    let bytes = match fs::read(&interim) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %interim.display(), error = %e, "interim checkpoint not readable; continuing from the checkpoint alone");
            return None;
        }
    };
    Interim::decode(&bytes)
        .inspect_err(|e| tracing::warn!(path = %interim.display(), error = %e, "damaged interim checkpoint; continuing from the checkpoint alone"))
        .ok()
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

    #[test]
    fn an_interim_checkpoint_is_used_only_with_the_checkpoint_it_names() {
        use crate::run_loop::{Checkpointer, StateFileCheckpointer};
        use netcost_core::config::ClassificationConfig;

        let dir = temp_dir("interim");
        let path = dir.join("state");
        let topology = Arc::new(Topology::default());
        let classifier = Classifier::new(ClassificationConfig::kubecost_default());
        let pipeline = Pipeline::new(
            PipelineConfig::new("n1"),
            topology.clone(),
            classifier.clone(),
        );
        let mut checkpointer = StateFileCheckpointer {
            path: Some(path.clone()),
            checkpoint: None,
        };
        checkpointer.save(&pipeline).expect("save");
        checkpointer.save_interim(&pipeline).expect("save interim");
        let restore = || {
            restore(
                &path,
                PipelineConfig::new("n1"),
                topology.clone(),
                classifier.clone(),
                0,
            )
            .expect("restore")
            .expect("a checkpoint")
        };
        let restored = restore();
        assert!(restored.used_interim);
        assert_eq!(Some(restored.checkpoint), checkpointer.checkpoint);
        // A new checkpoint makes the old interim stale.
        let mut other = StateFileCheckpointer {
            path: Some(path.clone()),
            checkpoint: None,
        };
        let mut next = Pipeline::new(
            PipelineConfig::new("n1"),
            topology.clone(),
            classifier.clone(),
        );
        let mut source = NoFlows;
        next.dump_cycle(&mut source, 1).expect("a cycle");
        other.save(&next).expect("save");
        assert!(!restore().used_interim);
        // A damaged interim is ignored, not fatal.
        fs::write(interim_path(&path), b"garbage").expect("write");
        assert!(!restore().used_interim);
    }

    struct NoFlows;

    impl netcost_core::flow::FlowSource for NoFlows {
        type Error = std::convert::Infallible;
        fn dump(
            &mut self,
            _: &mut dyn FnMut(&netcost_core::flow::FlowRecord),
        ) -> Result<netcost_core::flow::ReadStats, Self::Error> {
            Ok(netcost_core::flow::ReadStats::default())
        }
        fn drain_destroyed(
            &mut self,
            _: &mut dyn FnMut(&netcost_core::flow::FlowRecord),
        ) -> Result<netcost_core::flow::ReadStats, Self::Error> {
            Ok(netcost_core::flow::ReadStats::default())
        }
    }
}
