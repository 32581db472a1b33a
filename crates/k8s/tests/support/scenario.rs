//! The scenario cluster of the real API server tests, created through the API as the admin:
//! two zones of one region, a Deployment's ReplicaSet with two pods, a CronJob's Job with one, a
//! pod without owner and a ClusterIP Service, and the chart installed with the helm CLI. What the
//! tests expect is these objects, never what the code under test says about them.

use std::net::IpAddr;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::real_cluster::RealCluster;

pub const RELEASE: &str = "netcost";
pub const RELEASE_NAMESPACE: &str = "netcost";
/// The chart's ServiceAccount and ClusterRole: `{{ .Release.Name }}-network-costs`.
pub const CHART_ACCOUNT: &str = "netcost-network-costs";
pub const NS: &str = "shop";

pub fn from<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
}

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Creates a namespaced object as the admin; the server's copy (uid, defaults) comes back.
pub fn create<K>(cluster: &RealCluster, namespace: &str, object: Value) -> K
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    post(cluster, Api::namespaced(cluster.admin(), namespace), object)
}

/// [`create`] for a cluster-scoped object.
pub fn create_cluster_wide<K>(cluster: &RealCluster, object: Value) -> K
where
    K: Resource<DynamicType = (), Scope = ClusterResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    post(cluster, Api::all(cluster.admin()), object)
}

fn post<K>(cluster: &RealCluster, api: Api<K>, object: Value) -> K
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = from(object);
    cluster
        .block_on(api.create(&PostParams::default(), &object))
        .unwrap_or_else(|e| panic!("create {:?}: {e}", object.meta().name))
}

pub fn uid<K: Resource>(object: &K) -> String {
    object
        .meta()
        .uid
        .clone()
        .unwrap_or_else(|| panic!("no uid"))
}

pub fn owner_ref(api_version: &str, kind: &str, name: &str, uid: &str) -> Value {
    json!([{"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
            "controller": true, "blockOwnerDeletion": true}])
}

/// A namespace and its `default` ServiceAccount, which the controller-manager would create and
/// the ServiceAccount admission plugin requires of every pod.
pub fn namespace(cluster: &RealCluster, name: &str) {
    let _: Namespace = create_cluster_wide(cluster, json!({"metadata": {"name": name}}));
    let _: ServiceAccount = create(cluster, name, json!({"metadata": {"name": "default"}}));
}

pub fn node(cluster: &RealCluster, name: &str, zone: &str, region: &str, address: &str) {
    let _: Node = create_cluster_wide(
        cluster,
        json!({"metadata": {"name": name, "labels": {
            "topology.kubernetes.io/zone": zone, "topology.kubernetes.io/region": region}}}),
    );
    let api: Api<Node> = Api::all(cluster.admin());
    let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": address}]}});
    cluster
        .block_on(api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)))
        .unwrap_or_else(|e| panic!("node {name} status: {e}"));
}

pub fn template(labels: &Value) -> Value {
    json!({"metadata": {"labels": labels},
           "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}})
}

/// A pod on `node`, owned by `owner` (kind, name, uid), with `phase` and `address` set through
/// the status subresource as the kubelet would.
pub fn pod(
    cluster: &RealCluster,
    name: &str,
    node: &str,
    owner: Option<(&str, &str, &str)>,
    phase: &str,
    address: &str,
) {
    let refs = match owner {
        Some(("ReplicaSet", owner, uid)) => owner_ref("apps/v1", "ReplicaSet", owner, uid),
        Some((kind, owner, uid)) => owner_ref("batch/v1", kind, owner, uid),
        None => json!([]),
    };
    let restart = if matches!(owner, Some(("Job", ..))) {
        "Never"
    } else {
        "Always"
    };
    let _: Pod = create(
        cluster,
        NS,
        json!({
            "metadata": {"name": name, "ownerReferences": refs},
            "spec": {"nodeName": node, "restartPolicy": restart,
                     "containers": [{"name": "app", "image": "registry.example/app:1"}]},
        }),
    );
    set_pod_status(cluster, name, phase, address);
}

pub fn set_pod_status(cluster: &RealCluster, name: &str, phase: &str, address: &str) {
    let api: Api<Pod> = Api::namespaced(cluster.admin(), NS);
    let status = json!({"status": {"phase": phase, "podIP": address, "podIPs": [{"ip": address}],
                                   "hostIP": "192.0.2.1", "hostIPs": [{"ip": "192.0.2.1"}]}});
    cluster
        .block_on(api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)))
        .unwrap_or_else(|e| panic!("pod {name} status: {e}"));
}

/// Deletes a pod the way it goes in a cluster: the API marks it terminating, then its kubelet
/// confirms with a zero grace period once the containers stopped.
pub fn delete_pod(cluster: &RealCluster, name: &str) {
    let api: Api<Pod> = Api::namespaced(cluster.admin(), NS);
    cluster
        .block_on(api.delete(name, &DeleteParams::default()))
        .unwrap_or_else(|e| panic!("delete pod {name}: {e}"));
    cluster
        .block_on(api.delete(name, &DeleteParams::default().grace_period(0)))
        .unwrap_or_else(|e| panic!("confirm deletion of pod {name}: {e}"));
}

/// The cluster of the scenario: two zones of one region, a Deployment's ReplicaSet with two
/// pods, a CronJob's Job with one, a pod without owner and a ClusterIP Service.
pub fn populate(cluster: &RealCluster) {
    namespace(cluster, NS);
    node(cluster, "node-a", "us-east-1a", "us-east-1", "192.0.2.1");
    node(cluster, "node-b", "us-east-1b", "us-east-1", "192.0.2.2");
    let labels = json!({"app": "web"});
    let deployment: Deployment = create(
        cluster,
        NS,
        json!({"metadata": {"name": "web"},
               "spec": {"selector": {"matchLabels": labels}, "template": template(&labels)}}),
    );
    let rs_labels = json!({"app": "web", "pod-template-hash": "5d8f7"});
    let rs: ReplicaSet = create(
        cluster,
        NS,
        json!({"metadata": {"name": "web-5d8f7", "labels": rs_labels,
                            "ownerReferences": owner_ref("apps/v1", "Deployment", "web", &uid(&deployment))},
               "spec": {"selector": {"matchLabels": rs_labels}, "template": template(&rs_labels)}}),
    );
    let job_template = json!({"spec": {"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "app", "image": "registry.example/backup:1"}]}}}});
    let cron: CronJob = create(
        cluster,
        NS,
        json!({"metadata": {"name": "backup"},
               "spec": {"schedule": "0 3 * * *", "jobTemplate": job_template}}),
    );
    let job: Job = create(
        cluster,
        NS,
        json!({"metadata": {"name": "backup-29000",
                            "ownerReferences": owner_ref("batch/v1", "CronJob", "backup", &uid(&cron))},
               "spec": job_template["spec"]}),
    );
    let (rs_uid, job_uid) = (uid(&rs), uid(&job));
    let web = Some(("ReplicaSet", "web-5d8f7", rs_uid.as_str()));
    pod(
        cluster,
        "web-5d8f7-aaaaa",
        "node-a",
        web,
        "Running",
        "10.244.0.5",
    );
    pod(
        cluster,
        "web-5d8f7-bbbbb",
        "node-b",
        web,
        "Running",
        "10.244.1.5",
    );
    let backup = Some(("Job", "backup-29000", job_uid.as_str()));
    pod(
        cluster,
        "backup-29000-ccccc",
        "node-b",
        backup,
        "Running",
        "10.244.1.6",
    );
    pod(cluster, "debug", "node-a", None, "Running", "10.244.0.9");
    let _: Service = create(
        cluster,
        NS,
        json!({"metadata": {"name": "web"},
               "spec": {"clusterIP": "10.96.0.50", "selector": labels,
                        "ports": [{"port": 80, "targetPort": 8080}]}}),
    );
}

/// Installs the chart with the helm CLI and returns a token of its ServiceAccount.
pub fn install_chart(cluster: &RealCluster) -> String {
    let chart = super::chart::chart();
    let chart = chart.to_str().unwrap_or_else(|| panic!("chart path"));
    cluster.helm(&[
        "install",
        RELEASE,
        chart,
        "--namespace",
        RELEASE_NAMESPACE,
        "--create-namespace",
    ]);
    let accounts: Api<ServiceAccount> = Api::namespaced(cluster.admin(), RELEASE_NAMESPACE);
    let request: TokenRequest = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = cluster
        .block_on(accounts.create_token_request(CHART_ACCOUNT, &PostParams::default(), &request))
        .unwrap_or_else(|e| panic!("TokenRequest for {CHART_ACCOUNT}: {e}"));
    answer
        .status
        .map(|s| s.token)
        .unwrap_or_else(|| panic!("TokenRequest answered without a token"))
}

/// The chart's rules with `verbs` for pods instead of get, list and watch.
pub fn set_pod_verbs(cluster: &RealCluster, verbs: &[&str]) {
    let read = ["get", "list", "watch"];
    let rules = json!({"rules": [
        {"apiGroups": [""], "resources": ["nodes", "services"], "verbs": read},
        {"apiGroups": [""], "resources": ["pods"], "verbs": verbs},
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": read},
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": read},
    ]});
    let roles: Api<ClusterRole> = Api::all(cluster.admin());
    cluster
        .block_on(roles.patch(
            CHART_ACCOUNT,
            &PatchParams::default(),
            &Patch::Merge(&rules),
        ))
        .unwrap_or_else(|e| panic!("patch the chart's ClusterRole: {e}"));
}
