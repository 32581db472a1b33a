//! Which pod a cgroup v2 id belongs to, from the names kubelet gives pod cgroups.
//!
//! A cgroup v2 id is the inode number of the cgroup's directory under the cgroup2 mount (kernfs
//! numbers its nodes, and `INET_DIAG_CGROUP_ID` reports that number). Kubelet puts each pod's
//! containers below a directory named after the pod's uid:
//! - systemd driver: `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice`
//!   (`kubepods-besteffort-pod…`, or `kubepods-pod<uid>.slice` for Guaranteed pods), with the
//!   uid's dashes written as underscores, since a dash separates slice levels;
//! - cgroupfs driver: `kubepods/burstable/pod<uid>` (`besteffort/`, or directly under
//!   `kubepods/`).
//!
//! [`PodCgroups`] walks the hierarchy and keeps the ids of pod cgroups (and of their container
//! cgroups below) with their uid, and the ids of every other directory it saw, so that a socket
//! of a node process is known not to be a pod's without a new walk. A walk is bounded in depth
//! and in directories; [`PodCgroups::owner`] walks again on an id it has never seen, at most once
//! per [`MIN_REFRESH_INTERVAL`].
//!
//! What it does not do: read `/proc`, follow cgroup v1 hierarchies (v1 ids are not what sockets
//! carry), or know whether a uid is a hostNetwork pod of this node (the pipeline checks that
//! against the topology). Static pods are named by kubelet's config hash, not by the mirror
//! pod's uid, so their cgroups match no pod in the topology and their bytes stay the node's.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `CGROUP2_SUPER_MAGIC` from `include/uapi/linux/magic.h`.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Deepest directory a walk enters, counted from the mount. Kubelet's pod cgroups sit 3 levels
/// down and their containers 4; the margin covers a kubelet `--cgroup-root` and nested runtimes.
pub const MAX_DEPTH: usize = 12;

/// Most directories one walk records; past it the rest of the hierarchy is not looked at (and
/// counted), which bounds the memory of the map at a few MiB.
pub const MAX_CGROUPS: usize = 200_000;

/// Shortest time between two walks started by unknown ids.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// The uid in one path component named by kubelet, with dashes, or `None`.
///
/// ```
/// use netcost_conntrack::cgroup::pod_uid_of_component;
/// assert_eq!(
///     pod_uid_of_component("kubepods-burstable-pod0f3e2b1c_9a8d_4c7e_b6f5_0123456789ab.slice").as_deref(),
///     Some("0f3e2b1c-9a8d-4c7e-b6f5-0123456789ab"),
/// );
/// assert_eq!(
///     pod_uid_of_component("pod0f3e2b1c-9a8d-4c7e-b6f5-0123456789ab").as_deref(),
///     Some("0f3e2b1c-9a8d-4c7e-b6f5-0123456789ab"),
/// );
/// assert_eq!(pod_uid_of_component("kubepods-burstable.slice"), None);
/// ```
pub fn pod_uid_of_component(name: &str) -> Option<String> {
    let raw = match name.strip_suffix(".slice") {
        // systemd: the last dash-separated level is `pod<uid with underscores>`.
        Some(slice) => slice
            .strip_prefix("kubepods-")?
            .rsplit('-')
            .next()?
            .strip_prefix("pod")?
            .replace('_', "-"),
        None => name.strip_prefix("pod")?.to_owned(),
    };
    is_uid(&raw).then_some(raw)
}

/// A uid as Kubernetes writes them (a UUID: 8-4-4-4-12 hex digits), or the 32 hex digits of a
/// static pod's config hash.
fn is_uid(text: &str) -> bool {
    let bytes = text.as_bytes();
    match bytes.len() {
        36 => bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        }),
        32 => bytes.iter().all(u8::is_ascii_hexdigit),
        _ => false,
    }
}

/// The pod uid of a cgroup path relative to the cgroup2 mount (`a/b/c`), or `None` when no
/// component below a `kubepods` one names a pod.
///
/// ```
/// use netcost_conntrack::cgroup::pod_uid_of_path;
/// let uid = "0f3e2b1c-9a8d-4c7e-b6f5-0123456789ab";
/// assert_eq!(
///     pod_uid_of_path(&format!("kubepods/besteffort/pod{uid}/cri-containerd-1a2b")).as_deref(),
///     Some(uid),
/// );
/// // A name like a pod's outside kubelet's hierarchy is not a pod.
/// assert_eq!(pod_uid_of_path(&format!("system.slice/pod{uid}")), None);
/// ```
pub fn pod_uid_of_path(path: &str) -> Option<String> {
    let mut under_kubepods = false;
    for component in path.split('/').filter(|c| !c.is_empty()) {
        if under_kubepods && let Some(uid) = pod_uid_of_component(component) {
            return Some(uid);
        }
        under_kubepods |= is_kubepods(component);
    }
    None
}

/// `kubepods`, `kubepods.slice`, `kubepods-burstable.slice`, …: kubelet's top cgroups.
fn is_kubepods(component: &str) -> bool {
    component == "kubepods"
        || component.starts_with("kubepods.")
        || component.starts_with("kubepods-")
}

/// Why the cgroup v2 hierarchy cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CgroupUnavailable {
    /// No cgroup2 mount there, nor at its `unified/`: a cgroup v1 host (or nothing mounted).
    /// Sockets then carry the id of the v2 root only, which names no pod.
    #[error("no cgroup2 mount at {} or at its unified/ (a cgroup v1 host, or the host's cgroups are not mounted there)", root.display())]
    V1Only {
        /// The directory looked at.
        root: PathBuf,
    },
    /// The directory cannot be read.
    #[error("cannot read {}: {source}", root.display())]
    Unreadable {
        /// The directory looked at.
        root: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl CgroupUnavailable {
    /// A short, fixed label for a metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            CgroupUnavailable::V1Only { .. } => "cgroup_v1",
            CgroupUnavailable::Unreadable { .. } => "cgroup_unreadable",
        }
    }
}

/// The cgroup2 mount at `root`, or at `root/unified` (a hybrid host: systemd mounts v2 there
/// beside the v1 controllers, and sockets still carry v2 ids).
///
/// # Errors
///
/// [`CgroupUnavailable`] when neither is a cgroup2 mount.
pub fn find_cgroup2(root: &Path) -> Result<PathBuf, CgroupUnavailable> {
    match fs_type(root) {
        Ok(CGROUP2_SUPER_MAGIC) => return Ok(root.to_path_buf()),
        Ok(_) => {}
        Err(source) => {
            return Err(CgroupUnavailable::Unreadable {
                root: root.to_path_buf(),
                source,
            });
        }
    }
    let unified = root.join("unified");
    match fs_type(&unified) {
        Ok(CGROUP2_SUPER_MAGIC) => Ok(unified),
        _ => Err(CgroupUnavailable::V1Only {
            root: root.to_path_buf(),
        }),
    }
}

fn fs_type(path: &Path) -> io::Result<i64> {
    let found = nix::sys::statfs::statfs(path).map_err(io::Error::from)?;
    #[allow(clippy::unnecessary_cast)]
    Ok(found.filesystem_type().0 as i64)
}

/// Who a cgroup id belongs to, as far as the last walk knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupOwner {
    /// A pod's cgroup or one of its containers', with the pod's uid.
    Pod(Arc<str>),
    /// A cgroup the walk saw that is no pod's (the node's own processes).
    NotPod,
    /// An id the walk did not see: created since, or outside the walked hierarchy.
    Unknown,
}

/// What the walks did, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalkStats {
    /// Walks done.
    pub walks: u64,
    /// Directories recorded by the last walk.
    pub cgroups: u64,
    /// Pod cgroups (pods and their containers) found by the last walk.
    pub pod_cgroups: u64,
    /// Walks cut short by [`MAX_CGROUPS`] or [`MAX_DEPTH`], or by an unreadable directory.
    pub incomplete: u64,
}

/// The map from cgroup ids to pod uids. See the module docs.
#[derive(Debug)]
pub struct PodCgroups {
    root: PathBuf,
    pods: HashMap<u64, Arc<str>>,
    others: HashSet<u64>,
    last_walk: Option<Instant>,
    stats: WalkStats,
}

impl PodCgroups {
    /// A map of the cgroup2 hierarchy mounted at `root`, empty until [`Self::refresh`].
    pub fn new(root: PathBuf) -> PodCgroups {
        PodCgroups {
            root,
            pods: HashMap::new(),
            others: HashSet::new(),
            last_walk: None,
            stats: WalkStats::default(),
        }
    }

    /// The mount walked.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What the walks did.
    pub fn stats(&self) -> WalkStats {
        self.stats
    }

    /// Walks the hierarchy again and replaces the map.
    pub fn refresh(&mut self, now: Instant) {
        self.last_walk = Some(now);
        self.stats.walks += 1;
        let mut pods = HashMap::new();
        let mut others = HashSet::new();
        let mut uids: HashMap<String, Arc<str>> = HashMap::new();
        let mut incomplete = false;
        match std::fs::metadata(&self.root) {
            Ok(meta) => {
                others.insert(meta.ino());
            }
            Err(e) => {
                tracing::debug!(root = %self.root.display(), error = %e, "cgroup root unreadable");
                incomplete = true;
            }
        }
        // (directory, depth, the pod it belongs to, whether a kubepods directory is above it)
        let mut stack: Vec<(PathBuf, usize, Option<Arc<str>>, bool)> =
            vec![(self.root.clone(), 0, None, false)];
        while let Some((dir, depth, pod, under_kubepods)) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) => {
                    // A cgroup removed during the walk is normal; anything else is counted.
                    if e.kind() != io::ErrorKind::NotFound {
                        incomplete = true;
                    }
                    continue;
                }
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if pods.len() + others.len() >= MAX_CGROUPS {
                    incomplete = true;
                    stack.clear();
                    break;
                }
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let id = entry.ino();
                let own = match &pod {
                    Some(uid) => Some(uid.clone()),
                    None if under_kubepods => pod_uid_of_component(&name).map(|uid| {
                        uids.entry(uid.clone())
                            .or_insert_with(|| Arc::from(uid.as_str()))
                            .clone()
                    }),
                    None => None,
                };
                match &own {
                    Some(uid) => {
                        pods.insert(id, uid.clone());
                    }
                    None => {
                        others.insert(id);
                    }
                }
                if depth + 1 < MAX_DEPTH {
                    stack.push((
                        entry.path(),
                        depth + 1,
                        own,
                        under_kubepods || is_kubepods(&name),
                    ));
                } else {
                    incomplete = true;
                }
            }
        }
        self.stats.cgroups = (pods.len() + others.len()) as u64;
        self.stats.pod_cgroups = pods.len() as u64;
        if incomplete {
            self.stats.incomplete += 1;
            tracing::warn!(
                root = %self.root.display(),
                cgroups = self.stats.cgroups,
                "the cgroup walk was cut short (too deep, too many cgroups, or unreadable): \
                 sockets of the cgroups it missed stay with the node"
            );
        }
        self.pods = pods;
        self.others = others;
    }

    /// Who `id` belongs to, as the last walk saw it.
    pub fn lookup(&self, id: u64) -> CgroupOwner {
        if let Some(uid) = self.pods.get(&id) {
            CgroupOwner::Pod(uid.clone())
        } else if self.others.contains(&id) {
            CgroupOwner::NotPod
        } else {
            CgroupOwner::Unknown
        }
    }

    /// The pod `id` belongs to, walking again first when the id is unknown and the last walk is
    /// older than [`MIN_REFRESH_INTERVAL`].
    pub fn owner(&mut self, id: u64, now: Instant) -> Option<Arc<str>> {
        match self.lookup(id) {
            CgroupOwner::Pod(uid) => Some(uid),
            CgroupOwner::NotPod => None,
            CgroupOwner::Unknown => {
                let stale = self
                    .last_walk
                    .is_none_or(|at| now.saturating_duration_since(at) >= MIN_REFRESH_INTERVAL);
                if !stale {
                    return None;
                }
                self.refresh(now);
                match self.lookup(id) {
                    CgroupOwner::Pod(uid) => Some(uid),
                    _ => None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f3e2b1c-9a8d-4c7e-b6f5-0123456789ab";

    fn underscored() -> String {
        UID.replace('-', "_")
    }

    #[test]
    fn systemd_driver_names_of_every_qos_class() {
        for qos in ["kubepods-burstable-", "kubepods-besteffort-", "kubepods-"] {
            let name = format!("{qos}pod{}.slice", underscored());
            assert_eq!(pod_uid_of_component(&name).as_deref(), Some(UID), "{name}");
        }
        let path = format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-abc.scope",
            underscored()
        );
        assert_eq!(pod_uid_of_path(&path).as_deref(), Some(UID));
    }

    #[test]
    fn cgroupfs_driver_names_of_every_qos_class() {
        for parent in ["kubepods/burstable", "kubepods/besteffort", "kubepods"] {
            let path = format!("/{parent}/pod{UID}/0123abcd");
            assert_eq!(pod_uid_of_path(&path).as_deref(), Some(UID), "{path}");
        }
    }

    #[test]
    fn a_kubelet_cgroup_root_above_kubepods_is_fine() {
        let path = format!("/system.slice/k8s/kubepods/burstable/pod{UID}");
        assert_eq!(pod_uid_of_path(&path).as_deref(), Some(UID));
    }

    #[test]
    fn misses() {
        for path in [
            // kubelet's own levels, no pod yet
            "kubepods.slice/kubepods-burstable.slice".to_owned(),
            "kubepods/besteffort".to_owned(),
            // the node's processes
            "system.slice/kubelet.service".to_owned(),
            "user.slice/user-0.slice/session-1.scope".to_owned(),
            "/".to_owned(),
            String::new(),
            // a pod-like name outside kubepods
            format!("system.slice/pod{UID}"),
            // a uid that is not one: too short, not hex, dashes in the systemd form
            "kubepods/pod0f3e2b1c-9a8d".to_owned(),
            "kubepods/podzzzzzzzz-9a8d-4c7e-b6f5-0123456789ab".to_owned(),
            format!("kubepods.slice/kubepods-pod{UID}.slice"),
            // underscores in the cgroupfs form
            format!("kubepods/pod{}", underscored()),
            // a slice that is not kubelet's
            format!("kubepods.slice/machine-pod{}.slice", underscored()),
        ] {
            assert_eq!(pod_uid_of_path(&path), None, "{path:?}");
        }
    }

    #[test]
    fn a_static_pods_config_hash_is_read_as_its_uid() {
        let hash = "8f4e1a2b3c4d5e6f708192a3b4c5d6e7";
        assert_eq!(
            pod_uid_of_path(&format!("kubepods/besteffort/pod{hash}")).as_deref(),
            Some(hash)
        );
    }

    /// A directory tree named like a cgroup hierarchy: walking needs no cgroup2 mount.
    #[test]
    fn a_walk_maps_pod_and_container_directories_to_the_uid_and_the_rest_to_no_pod() {
        let root = std::env::temp_dir().join(format!("netcost-cgroup-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let pod = root.join(format!(
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice",
            underscored()
        ));
        let container = pod.join("cri-containerd-1.scope");
        let node = root.join("system.slice/kubelet.service");
        for dir in [&container, &node] {
            std::fs::create_dir_all(dir).expect("create");
        }
        let ino = |p: &Path| std::fs::metadata(p).expect("stat").ino();
        let mut map = PodCgroups::new(root.clone());
        let now = Instant::now();
        assert_eq!(map.lookup(ino(&container)), CgroupOwner::Unknown);
        map.refresh(now);
        assert_eq!(map.lookup(ino(&pod)), CgroupOwner::Pod(Arc::from(UID)));
        assert_eq!(
            map.lookup(ino(&container)),
            CgroupOwner::Pod(Arc::from(UID))
        );
        assert_eq!(map.lookup(ino(&node)), CgroupOwner::NotPod);
        assert_eq!(map.lookup(ino(&root)), CgroupOwner::NotPod);
        assert_eq!(map.stats().pod_cgroups, 2);

        // A pod created after the walk: found by the refresh on miss, unless the last walk is
        // too recent.
        let other = "11111111-2222-4333-8444-555555555555";
        let late = root.join(format!(
            "kubepods.slice/kubepods-pod{}.slice",
            other.replace('-', "_")
        ));
        std::fs::create_dir_all(&late).expect("create");
        assert_eq!(map.owner(ino(&late), now), None);
        let later = now + MIN_REFRESH_INTERVAL;
        assert_eq!(map.owner(ino(&late), later).as_deref(), Some(other));
        assert_eq!(map.stats().walks, 2);
        // A known node cgroup never starts a walk.
        assert_eq!(map.owner(ino(&node), later + MIN_REFRESH_INTERVAL), None);
        assert_eq!(map.stats().walks, 2);
        std::fs::remove_dir_all(&root).expect("clean up");
    }

    #[test]
    fn a_plain_directory_is_not_a_cgroup2_mount() {
        let dir = std::env::temp_dir();
        assert!(matches!(
            find_cgroup2(&dir),
            Err(CgroupUnavailable::V1Only { .. })
        ));
        assert!(matches!(
            find_cgroup2(Path::new("/nonexistent-netcost")),
            Err(CgroupUnavailable::Unreadable { .. })
        ));
    }
}
