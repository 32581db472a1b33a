//! The store on disk: an append-only log of JSON lines, one per new series
//! (`{"series": id, "key": …}`) and one per recorded minute (`{"minute": m, "points": [[id,
//! value], …]}`). Replayed on open; a torn last line from a crash is cut off. Compaction rewrites
//! it through [`atomic_write`].

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::atomic::{Durability, atomic_write};
use crate::key::StoredKey;

/// One line of the log. Written untagged; read by its fields (`series` or `minute`), so that a
/// bad key is reported as what is wrong with it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum LogLine {
    Series {
        series: u32,
        key: Box<StoredKey>,
    },
    Minute {
        minute: i64,
        points: Vec<(u32, u64)>,
    },
}

impl<'de> Deserialize<'de> for LogLine {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(Deserialize)]
        struct SeriesLine {
            series: u32,
            key: Box<StoredKey>,
        }
        #[derive(Deserialize)]
        struct MinuteLine {
            minute: i64,
            points: Vec<(u32, u64)>,
        }
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("series").is_some() {
            let line = SeriesLine::deserialize(value).map_err(D::Error::custom)?;
            Ok(LogLine::Series {
                series: line.series,
                key: line.key,
            })
        } else if value.get("minute").is_some() {
            let line = MinuteLine::deserialize(value).map_err(D::Error::custom)?;
            Ok(LogLine::Minute {
                minute: line.minute,
                points: line.points,
            })
        } else {
            Err(D::Error::custom("neither a series nor a minute line"))
        }
    }
}

/// The open log, appended to after every recorded minute.
#[derive(Debug)]
pub(crate) struct Log {
    path: PathBuf,
    writer: BufWriter<File>,
    /// Lines in the file, to decide when to compact.
    pub(crate) lines: usize,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |error| StoreError::Io {
        path: path.to_owned(),
        error,
    }
}

fn encode(line: &LogLine) -> std::io::Result<String> {
    serde_json::to_string(line).map_err(std::io::Error::other)
}

impl Log {
    /// Replays the log at `path` into `apply` (nothing if there is none yet), cuts a torn last
    /// line, and opens it for appending.
    pub(crate) fn open(path: &Path, apply: &mut dyn FnMut(LogLine)) -> Result<Log, StoreError> {
        let io = io_error(path);
        let mut lines_read = 0;
        if path.exists() {
            let file = File::open(path).map_err(&io)?;
            let lines: Vec<String> = BufReader::new(file)
                .lines()
                .collect::<Result<_, _>>()
                .map_err(&io)?;
            let last = lines.len();
            for (n, text) in lines.iter().enumerate() {
                if text.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<LogLine>(text) {
                    Ok(line) => apply(line),
                    // A crash while appending leaves a torn last line; the minute it held is lost.
                    Err(_) if n + 1 == last => break,
                    Err(e) => {
                        return Err(StoreError::Corrupt {
                            path: path.to_owned(),
                            line: n + 1,
                            reason: e.to_string(),
                        });
                    }
                }
                lines_read += 1;
            }
        }
        truncate_torn_tail(path).map_err(&io)?;
        Log::append_to(path, lines_read)
    }

    fn append_to(path: &Path, lines: usize) -> Result<Log, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_error(path))?;
        Ok(Log {
            path: path.to_owned(),
            writer: BufWriter::new(file),
            lines,
        })
    }

    /// Appends `lines` and flushes them to the kernel.
    pub(crate) fn append(&mut self, lines: &[LogLine]) -> Result<(), StoreError> {
        let io = io_error(&self.path);
        for line in lines {
            writeln!(self.writer, "{}", encode(line).map_err(&io)?).map_err(&io)?;
            self.lines += 1;
        }
        self.writer.flush().map_err(io)
    }

    /// Replaces the log with `lines`, durably, and goes on appending to the new file.
    pub(crate) fn rewrite(
        &mut self,
        lines: impl Iterator<Item = LogLine>,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let mut lines = Some(lines);
        let mut written = 0;
        atomic_write(&path, Durability::Durable, &mut |file| {
            let mut w = BufWriter::new(file);
            for line in lines.take().into_iter().flatten() {
                writeln!(w, "{}", encode(&line)?)?;
                written += 1;
            }
            w.flush()
        })
        .map_err(io_error(&path))?;
        *self = Log::append_to(&path, written)?;
        Ok(())
    }
}

/// Cuts a partial last line (a crash mid-append) so the next append starts on a line of its own.
fn truncate_torn_tail(path: &Path) -> std::io::Result<()> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(keep as u64)
}
