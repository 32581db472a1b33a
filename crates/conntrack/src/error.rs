//! The crate's error type.

use std::io;
use std::path::PathBuf;

use crate::parse::KernelError;

/// A failure that stops a whole read or setup step. Per-entry garbage is not an error: it is
/// skipped and counted in [`ReadStats`](netcost_core::flow::ReadStats).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A netlink socket call failed (`socket`, `bind`, `setsockopt`, `send`, `recv`).
    #[error("netlink {operation} failed: {source}")]
    Socket {
        /// The call that failed, e.g. `"recv (dump)"`.
        operation: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel refused a request with `NLMSG_ERROR`.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The kernel closed a dump without `NLMSG_DONE`.
    #[error("the conntrack dump ended before NLMSG_DONE")]
    DumpCutShort,
    /// The conntrack table file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Proc {
        /// The file, normally `/proc/net/nf_conntrack`.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Conntrack accounting is off and could not be turned on.
    #[error(
        "conntrack byte counters are off and cannot be turned on: sysctl net.netfilter.nf_conntrack_acct \
         ({}): {reason}; run `sysctl -w net.netfilter.nf_conntrack_acct=1` in the node's network \
         namespace, or grant the agent the NET_ADMIN capability",
        path.display()
    )]
    Accounting {
        /// The sysctl file, normally `/proc/sys/net/netfilter/nf_conntrack_acct`.
        path: PathBuf,
        /// What went wrong with it.
        reason: AccountingFailure,
    },
}

impl Error {
    /// A short, fixed label for this error, for a bounded `reason` label on an error counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Socket { .. } => "socket",
            Error::Kernel(_) => "kernel",
            Error::DumpCutShort => "dump_cut_short",
            Error::Proc { .. } => "proc",
            Error::Accounting { .. } => "accounting",
        }
    }

    pub(crate) fn socket(operation: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Socket { operation, source }
    }
}

/// Why [`ensure_accounting`](crate::ensure_accounting) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountingFailure {
    /// Reading or writing the sysctl file failed (typically `EACCES`/`EROFS` without NET_ADMIN,
    /// or `ENOENT` without the nf_conntrack module).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The file held something other than a number.
    #[error("unexpected content {0:?}")]
    Unexpected(String),
    /// The write was accepted but the value read back is still 0.
    #[error("the value is still 0 after writing 1")]
    DidNotStick,
}
