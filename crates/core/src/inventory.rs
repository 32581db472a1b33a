//! The static inventory file: Kubernetes `Node`, `Pod` and `Service` objects in YAML, read into
//! `k8s-openapi` types so that the topology is built by the same code as from the API.
//!
//! Accepted shapes, i.e. what `kubectl get nodes,pods,services -A -o yaml` prints and what people
//! write by hand:
//! - one `kind: List` document with `items`;
//! - a multi-document stream (`---`) of `Node`, `Pod` and `Service` objects;
//! - a mix: `List` documents inside a stream.
//!
//! Every error names the file, the field (`items[2].spec.nodeName`, or
//! `document 3: status.podIP` in a stream of several documents) and the reason.
//!
//! What it does not do: read the file (the caller hands over its text and name), watch anything,
//! or check fields the topology does not read (an inventory
//! may be a trimmed `kubectl` dump).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use serde_json::Value;

use crate::located;
use crate::topology::{Topology, TopologyError};

/// The object kinds an inventory may hold, for error messages.
const ACCEPTED_KINDS: &str = "Node, Pod, Service or List";

/// Why an inventory file cannot be used. Display always names the file, the field and the reason.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file is not YAML.
    #[error("{}: (document): not valid YAML: {reason}", file.display())]
    Yaml {
        /// The file.
        file: PathBuf,
        /// What the YAML parser said, with the line and column.
        reason: String,
    },
    /// The file holds no object at all.
    #[error(
        "{}: (document): the inventory holds no objects; expected a `kind: List` or a stream of \
         Node, Pod and Service documents",
        file.display()
    )]
    Empty {
        /// The file.
        file: PathBuf,
    },
    /// An object of a kind the inventory does not take.
    #[error("{}: {field}: {kind:?} is not accepted here; expected {ACCEPTED_KINDS}", file.display())]
    UnknownKind {
        /// The file.
        file: PathBuf,
        /// Path of the `kind` field, e.g. `document 3: kind`.
        field: String,
        /// The kind found.
        kind: String,
    },
    /// A field has a value the object's type does not allow.
    #[error("{}: {field}: {reason}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Path of the field, e.g. `items[2].spec.nodeName`.
        field: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The objects parse but do not make a topology (bad IP, missing uid, ...).
    // `error` is not a `source`: this message already quotes it, and a cause chain would say
    // it twice.
    #[error("{}: {field}: {}: {}", file.display(), error.object(), error.reason())]
    Topology {
        /// The file.
        file: PathBuf,
        /// Path of the field, from the document down, e.g. `items[4].status.podIPs[1].ip`.
        field: String,
        /// The topology's own error, which names the object.
        error: Box<TopologyError>,
    },
}

/// Where an object sits in the file: which document (when there are several) and which entry of a
/// `List`'s `items`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Origin {
    /// 1-based document number; `None` in a single-document file.
    document: Option<usize>,
    /// Index in `items`, for objects inside a `List`.
    item: Option<usize>,
}

impl Origin {
    /// The path of `field` (relative to the object, possibly empty) from the top of the file.
    fn path(&self, field: &str) -> String {
        let mut out = String::new();
        if let Some(d) = self.document {
            out.push_str(&format!("document {d}: "));
        }
        if let Some(i) = self.item {
            out.push_str(&format!("items[{i}]"));
            if !field.is_empty() {
                out.push('.');
            }
        }
        out.push_str(field);
        if out.is_empty() {
            out.push_str("(top level)");
        }
        out.trim_end_matches(": ").to_owned()
    }
}

/// The objects of an inventory file.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// The `Node` objects, in file order.
    pub nodes: Vec<Node>,
    /// The `Pod` objects, in file order.
    pub pods: Vec<Pod>,
    /// The `Service` objects, in file order.
    pub services: Vec<Service>,
    /// The file, for error messages.
    file: PathBuf,
    /// Parallel to `nodes`, `pods` and `services`: where each object came from.
    node_origins: Vec<Origin>,
    pod_origins: Vec<Origin>,
    service_origins: Vec<Origin>,
}

impl Inventory {
    /// Parses an inventory; `file` is only used in error messages.
    pub fn from_yaml_str(text: &str, file: &Path) -> Result<Inventory, InventoryError> {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| InventoryError::Yaml {
                file: file.to_owned(),
                reason: located::yaml_syntax_reason(&e, file),
            })?;
        let mut inventory = Inventory {
            file: file.to_owned(),
            ..Inventory::default()
        };
        let several = docs.len() > 1;
        for (d, doc) in docs.iter().enumerate() {
            let origin = Origin {
                document: several.then_some(d + 1),
                item: None,
            };
            inventory.add(doc, origin)?;
        }
        if inventory.nodes.is_empty() && inventory.pods.is_empty() && inventory.services.is_empty()
        {
            return Err(InventoryError::Empty {
                file: file.to_owned(),
            });
        }
        Ok(inventory)
    }

    /// The file this inventory was read from (empty for one built in code).
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Builds the topology of these objects. Errors name the file and the field's path in it.
    pub fn topology(&self) -> Result<Topology, InventoryError> {
        Topology::from_objects(&self.nodes, &self.pods, &self.services).map_err(|error| {
            let object = error.object();
            let origins = match object.kind {
                "Node" => &self.node_origins,
                "Pod" => &self.pod_origins,
                _ => &self.service_origins,
            };
            // Objects pushed onto the public vectors by hand have no origin; their path is then
            // relative to the object.
            let origin = origins.get(object.index).copied().unwrap_or_default();
            InventoryError::Topology {
                file: self.file.clone(),
                field: origin.path(error.field()),
                error: Box::new(error),
            }
        })
    }

    fn add(&mut self, doc: &Value, origin: Origin) -> Result<(), InventoryError> {
        let invalid = |field: String, reason: String| InventoryError::Invalid {
            file: self.file.clone(),
            field,
            reason,
        };
        let Some(object) = doc.as_object() else {
            return Err(invalid(
                origin.path(""),
                format!(
                    "expected a Kubernetes object (a mapping with `kind`), found {}",
                    located::describe(doc)
                ),
            ));
        };
        let kind = match object.get("kind") {
            Some(Value::String(kind)) => kind.as_str(),
            Some(other) => {
                return Err(invalid(
                    origin.path("kind"),
                    format!("expected a string, found {}", located::describe(other)),
                ));
            }
            None => {
                return Err(invalid(
                    origin.path("kind"),
                    format!("is missing; expected {ACCEPTED_KINDS}"),
                ));
            }
        };
        match kind {
            // `kubectl get -o yaml` of several kinds prints `List`; of one kind, `List` too, but
            // typed lists (`PodList`) appear when objects come straight from the API.
            "List" | "NodeList" | "PodList" | "ServiceList" if origin.item.is_none() => {
                let items = match object.get("items") {
                    Some(Value::Array(items)) => items.as_slice(),
                    Some(Value::Null) | None => &[],
                    Some(other) => {
                        return Err(invalid(
                            origin.path("items"),
                            format!("expected a list, found {}", located::describe(other)),
                        ));
                    }
                };
                for (i, item) in items.iter().enumerate() {
                    self.add(
                        item,
                        Origin {
                            item: Some(i),
                            ..origin
                        },
                    )?;
                }
                Ok(())
            }
            "Node" => {
                let node = self.parse::<Node>(doc, origin)?;
                self.nodes.push(node);
                self.node_origins.push(origin);
                Ok(())
            }
            "Pod" => {
                let pod = self.parse::<Pod>(doc, origin)?;
                self.pods.push(pod);
                self.pod_origins.push(origin);
                Ok(())
            }
            "Service" => {
                let service = self.parse::<Service>(doc, origin)?;
                self.services.push(service);
                self.service_origins.push(origin);
                Ok(())
            }
            other => Err(InventoryError::UnknownKind {
                file: self.file.clone(),
                field: origin.path("kind"),
                kind: other.to_owned(),
            }),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        doc: &Value,
        origin: Origin,
    ) -> Result<T, InventoryError> {
        located::deserialize::<T>(doc).map_err(|e| InventoryError::Invalid {
            file: self.file.clone(),
            field: origin.path(&e.field),
            reason: e.reason,
        })
    }
}
