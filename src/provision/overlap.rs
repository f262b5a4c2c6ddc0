//! Which volume already owns a directory: a new volume must never be made on a path another PV
//! uses, contains or lies inside, and a teardown must never remove such a path. Pure: the caller
//! hands in every PV (of any provisioner) as [`VolumeRef`]s.

use k8s_openapi::api::core::v1::PersistentVolume;

use super::reclaim::volume_location;
use crate::config::path;

/// Where one PV keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRef {
    /// The PV's name.
    pub name: String,
    /// Its node (the `selected-node` annotation, else its node affinity value); `None` for a
    /// shared filesystem or a PV pinned to no node, which is then on every node.
    pub node: Option<String>,
    /// Its hostPath or local path.
    pub path: String,
}

impl VolumeRef {
    /// The PV's data location; `None` for a PV with no hostPath or local path.
    pub fn of(pv: &PersistentVolume) -> Option<VolumeRef> {
        let (node, path) = volume_location(pv)?;
        Some(VolumeRef {
            name: pv.metadata.name.clone().unwrap_or_default(),
            node,
            path,
        })
    }
}

/// The first volume other than `own` whose directory overlaps `path` (equal, inside or
/// containing) on the same node. `node` is `None` for a shared filesystem, which overlaps on
/// every node; `same_node` says whether a PV's node value names this node (a node name, or the
/// node's affinity label value, which may differ from its name).
pub fn overlapping<'a>(
    volumes: &'a [VolumeRef],
    own: &str,
    node: Option<&str>,
    same_node: impl Fn(&str) -> bool,
    dir: &str,
) -> Option<&'a VolumeRef> {
    volumes.iter().find(|v| {
        v.name != own
            && path::overlaps(&v.path, dir)
            && match (node, v.node.as_deref()) {
                (None, _) | (_, None) => true,
                (Some(_), Some(theirs)) => same_node(theirs),
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, node: Option<&str>, path: &str) -> VolumeRef {
        VolumeRef {
            name: name.into(),
            node: node.map(str::to_owned),
            path: path.into(),
        }
    }

    #[test]
    fn finds_the_volume_that_owns_a_path() {
        let all = vec![
            v("a", Some("n1"), "/opt/lp/ns/a/data"),
            v("s", None, "/mnt/shared/x"),
        ];
        let on_n1 = |n: &str| n == "n1";
        let found = |node, dir| overlapping(&all, "me", node, on_n1, dir).map(|v| v.name.clone());
        assert_eq!(found(Some("n1"), "/opt/lp/ns/a/data"), Some("a".into()));
        assert_eq!(found(Some("n1"), "/opt/lp/ns/a"), Some("a".into()));
        assert_eq!(
            found(Some("n1"), "/opt/lp/ns/a/data/deeper"),
            Some("a".into())
        );
        assert_eq!(found(Some("n1"), "/opt/lp/ns/b"), None);
        // Another node's directory of the same name is another directory.
        assert_eq!(
            overlapping(&all, "me", Some("n2"), |n| n == "n2", "/opt/lp/ns/a").map(|v| &v.name),
            None
        );
        // A shared filesystem is on every node, and a shared path meets every node's volumes.
        assert_eq!(found(Some("n2"), "/mnt/shared"), Some("s".into()));
        assert_eq!(found(None, "/opt/lp/ns/a"), Some("a".into()));
        // The volume itself is not a conflict.
        assert_eq!(
            overlapping(&all, "a", Some("n1"), on_n1, "/opt/lp/ns/a/data"),
            None
        );
    }
}
