//! Why a set of objects cannot become a topology: errors that name the object, the field and the
//! reason.

/// Which Kubernetes object an error is about: `Pod default/web-1`, `Node node-a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// `Node`, `Pod` or `Service`.
    pub kind: &'static str,
    /// `metadata.namespace`, for namespaced kinds.
    pub namespace: Option<String>,
    /// `metadata.name`; `None` when the object has none (which is itself an error).
    pub name: Option<String>,
    /// Position of the object in the slice handed to [`super::Topology::from_objects`], so that callers
    /// that read the objects from a file can say where it came from.
    pub index: usize,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ", self.kind)?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        match &self.name {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "#{} (unnamed)", self.index),
        }
    }
}

/// Why a set of objects cannot become a [`super::Topology`]. Every variant names the object, the field
/// path inside it and the reason, e.g.
/// `Pod default/web-1: status.podIPs[1].ip: "10.0.0.x" is not an IP address`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// A field that must hold an IP address does not.
    InvalidIp {
        /// The object.
        object: Box<ObjectRef>,
        /// Field path inside the object.
        field: String,
        /// The offending text.
        value: String,
    },
    /// A field that must hold a CIDR (`10.244.1.0/24`) does not.
    InvalidCidr {
        /// The object.
        object: Box<ObjectRef>,
        /// Field path inside the object.
        field: String,
        /// The offending text.
        value: String,
        /// What the parser said.
        reason: String,
    },
    /// A field the topology cannot do without is missing or empty.
    MissingField {
        /// The object.
        object: Box<ObjectRef>,
        /// Field path inside the object.
        field: String,
    },
    /// Two objects of the same kind share a key that must be unique (node name, pod uid).
    Duplicate {
        /// The later object.
        object: Box<ObjectRef>,
        /// Field path of the key.
        field: String,
        /// The shared value.
        value: String,
        /// The earlier object.
        other: Box<ObjectRef>,
    },
}

impl std::fmt::Display for TopologyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.object(), self.field(), self.reason())
    }
}

impl TopologyError {
    /// The object the error is about.
    pub fn object(&self) -> &ObjectRef {
        match self {
            TopologyError::InvalidIp { object, .. }
            | TopologyError::InvalidCidr { object, .. }
            | TopologyError::MissingField { object, .. }
            | TopologyError::Duplicate { object, .. } => object.as_ref(),
        }
    }

    /// Why the field is rejected, without the object and the field.
    pub fn reason(&self) -> String {
        match self {
            TopologyError::InvalidIp { value, .. } => format!("{value:?} is not an IP address"),
            TopologyError::InvalidCidr { value, reason, .. } => {
                format!("{value:?} is not a CIDR ({reason})")
            }
            TopologyError::MissingField { .. } => "is missing or empty, and is required".into(),
            TopologyError::Duplicate { value, other, .. } => {
                format!("{value:?} is already used by {other}")
            }
        }
    }

    /// The field path inside the object, e.g. `status.podIPs[1].ip`.
    pub fn field(&self) -> &str {
        match self {
            TopologyError::InvalidIp { field, .. }
            | TopologyError::InvalidCidr { field, .. }
            | TopologyError::MissingField { field, .. }
            | TopologyError::Duplicate { field, .. } => field,
        }
    }
}

/// The [`ObjectRef`] of an already parsed object, whose name is known to be there.
pub(super) fn parsed_ref(
    kind: &'static str,
    namespace: Option<&str>,
    name: &str,
    index: usize,
) -> Box<ObjectRef> {
    Box::new(ObjectRef {
        kind,
        namespace: namespace.map(str::to_owned),
        name: Some(name.to_owned()),
        index,
    })
}
