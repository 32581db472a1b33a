//! Interning: one shared `Arc<str>` per distinct namespace, node name and owner, so that 150,000
//! pods do not each allocate their own copies.

use std::collections::HashSet;
use std::sync::Arc;

/// Shares one `Arc<str>` among equal strings (namespaces, node names, owner kinds and names),
/// which 150,000 pods otherwise each allocate.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Arc<str>>,
}

impl Interner {
    /// The shared copy of `text`.
    pub fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(text) {
            return shared.clone();
        }
        let shared = Arc::<str>::from(text);
        self.strings.insert(shared.clone());
        shared
    }

    /// Forgets strings nothing else holds any more (a deleted namespace, a removed node), so that
    /// a long-running watch does not grow the interner forever.
    pub fn prune(&mut self) {
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }

    /// How many distinct strings are held.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// True when no string is held.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}
