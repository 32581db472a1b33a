//! The billing classes of traffic and the labels they are exported with.

/// Where the remote end of a flow sits, relative to the local node, in the terms clouds bill by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrafficClass {
    /// Same zone: free on every major cloud.
    InZone,
    /// Another zone of the same region.
    CrossZone,
    /// Another region of the same cloud.
    CrossRegion,
    /// Anything outside the cloud network.
    Internet,
}

impl TrafficClass {
    /// Every class, in a stable order (used to create series at zero).
    pub const ALL: [TrafficClass; 4] = [
        TrafficClass::InZone,
        TrafficClass::CrossZone,
        TrafficClass::CrossRegion,
        TrafficClass::Internet,
    ];

    /// The Kubecost label values `(internet, same_zone, same_region)` of this class.
    pub fn kubecost_labels(self) -> (&'static str, &'static str, &'static str) {
        match self {
            TrafficClass::InZone => ("false", "true", "true"),
            TrafficClass::CrossZone => ("false", "false", "true"),
            TrafficClass::CrossRegion => ("false", "false", "false"),
            TrafficClass::Internet => ("true", "false", "false"),
        }
    }

    /// The class named by [`Self::as_str`], or `None` for any other text.
    pub fn from_label(label: &str) -> Option<TrafficClass> {
        TrafficClass::ALL.into_iter().find(|c| c.as_str() == label)
    }

    /// A short lowercase name: `in-zone`, `cross-zone`, `cross-region`, `internet`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficClass::InZone => "in-zone",
            TrafficClass::CrossZone => "cross-zone",
            TrafficClass::CrossRegion => "cross-region",
            TrafficClass::Internet => "internet",
        }
    }
}

/// Direction of bytes, seen from the local endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Bytes the local endpoint sent.
    Egress,
    /// Bytes the local endpoint received.
    Ingress,
}

impl Direction {
    /// Both directions.
    pub const ALL: [Direction; 2] = [Direction::Egress, Direction::Ingress];

    /// `egress` or `ingress`, as metric names and the embedded store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        }
    }

    /// The direction named by [`Self::as_str`], or `None` for any other text.
    pub fn from_label(label: &str) -> Option<Direction> {
        Direction::ALL.into_iter().find(|d| d.as_str() == label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_match_the_design_contract() {
        assert_eq!(
            TrafficClass::InZone.kubecost_labels(),
            ("false", "true", "true")
        );
        assert_eq!(
            TrafficClass::CrossZone.kubecost_labels(),
            ("false", "false", "true")
        );
        assert_eq!(
            TrafficClass::CrossRegion.kubecost_labels(),
            ("false", "false", "false")
        );
        assert_eq!(
            TrafficClass::Internet.kubecost_labels(),
            ("true", "false", "false")
        );
    }
}
