//! Turning on conntrack accounting (`net.netfilter.nf_conntrack_acct`).
//!
//! Without it the kernel keeps no byte counters, and every flow reads as zero bytes. The sysctl is
//! per network namespace and only affects entries created after it is set.

use std::fs;
use std::path::Path;

use crate::error::{AccountingFailure, Error};

/// Where the sysctl lives, for the network namespace of the calling thread's process.
pub const ACCOUNTING_SYSCTL_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_acct";

/// What [`ensure_accounting`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounting {
    /// Accounting was already on.
    AlreadyOn,
    /// Accounting was off and this call turned it on. Entries created before now have no
    /// counters; the caller should log that.
    TurnedOn,
}

/// Makes sure `nf_conntrack_acct` is on, turning it on if it is off.
///
/// `path` is normally [`ACCOUNTING_SYSCTL_PATH`]; tests pass another file.
///
/// # Errors
///
/// [`Error::Accounting`], whose message names the sysctl and the fix, when the file cannot be
/// read, holds something unexpected, or cannot be written (no NET_ADMIN in the namespace).
pub fn ensure_accounting(path: &Path) -> Result<Accounting, Error> {
    let fail = |reason: AccountingFailure| Error::Accounting {
        path: path.to_path_buf(),
        reason,
    };
    if read_flag(path).map_err(fail)? {
        return Ok(Accounting::AlreadyOn);
    }
    fs::write(path, b"1\n").map_err(|e| fail(e.into()))?;
    if !read_flag(path).map_err(fail)? {
        return Err(fail(AccountingFailure::DidNotStick));
    }
    tracing::info!(path = %path.display(), "turned on conntrack accounting");
    Ok(Accounting::TurnedOn)
}

fn read_flag(path: &Path) -> Result<bool, AccountingFailure> {
    let text = fs::read_to_string(path)?;
    match text.trim().parse::<u32>() {
        Ok(value) => Ok(value != 0),
        Err(_) => Err(AccountingFailure::Unexpected(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A scratch file that removes itself.
    struct Scratch(PathBuf);

    impl Scratch {
        fn with(name: &str, content: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("netcost-conntrack-{}-{name}", std::process::id()));
            fs::write(&path, content).expect("write scratch file");
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }

    #[test]
    fn accounting_that_is_on_is_left_alone() {
        let file = Scratch::with("acct-on", "1\n");
        assert_eq!(ensure_accounting(&file.0).ok(), Some(Accounting::AlreadyOn));
        assert_eq!(fs::read_to_string(&file.0).ok().as_deref(), Some("1\n"));
    }

    #[test]
    fn accounting_that_is_off_is_turned_on() {
        let file = Scratch::with("acct-off", "0\n");
        assert_eq!(ensure_accounting(&file.0).ok(), Some(Accounting::TurnedOn));
        assert_eq!(fs::read_to_string(&file.0).ok().as_deref(), Some("1\n"));
    }

    #[test]
    fn a_missing_sysctl_error_names_the_sysctl_and_the_fix() {
        let path = Path::new("/nonexistent/netcost/nf_conntrack_acct");
        let message = ensure_accounting(path)
            .expect_err("a missing file cannot be read")
            .to_string();
        assert!(
            message.contains("net.netfilter.nf_conntrack_acct"),
            "{message}"
        );
        assert!(
            message.contains("sysctl -w net.netfilter.nf_conntrack_acct=1"),
            "{message}"
        );
        assert!(message.contains("NET_ADMIN"), "{message}");
    }

    #[test]
    fn garbage_in_the_sysctl_file_is_an_error() {
        let file = Scratch::with("acct-garbage", "yes\n");
        assert!(matches!(
            ensure_accounting(&file.0),
            Err(Error::Accounting {
                reason: AccountingFailure::Unexpected(_),
                ..
            })
        ));
    }
}
