//! The test's side of pod certificates: creating PodCertificateRequests as the kubelet
//! would, reading what the fake holds, and the test switches.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::{
    cert_versions::{CertVersion, CertificateVersions},
    certificates::create_pcr,
    store::Kind,
};

/// A PodCertificateRequest as the kubelet makes it for a pod's `podCertificate` volume.
#[derive(Clone, Debug)]
pub struct PodCertRequest {
    pub namespace: String,
    pub name: String,
    pub signer_name: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub service_account: String,
    pub node_name: String,
    pub max_expiration_seconds: Option<i64>,
    /// The stub CSR, DER.
    pub stub_csr: Vec<u8>,
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl super::FakeKube {
    /// Creates a request as the kubelet would (defaults applied, no status). Panics if the
    /// API would refuse it.
    pub fn create_pod_certificate_request(&self, r: &PodCertRequest) -> Value {
        use base64::Engine;
        let mut spec = kubelet_spec(r);
        spec["stubPKCS10Request"] =
            json!(base64::engine::general_purpose::STANDARD.encode(&r.stub_csr));
        let v = self.state().pcr_faults.versions().preferred();
        self.admit(r, spec, v)
    }

    /// Creates a `v1beta1` request in Kubernetes 1.35's form: the key as `pkixPublicKey`
    /// (DER SubjectPublicKeyInfo) with `proofOfPossession`, no stub CSR (`r.stub_csr` is
    /// not used). Panics if the API would refuse it.
    pub fn create_pkix_pod_certificate_request(
        &self,
        r: &PodCertRequest,
        pkix: &[u8],
        proof: &[u8],
    ) -> Value {
        use base64::Engine;
        let b64 = &base64::engine::general_purpose::STANDARD;
        let mut spec = kubelet_spec(r);
        spec["pkixPublicKey"] = json!(b64.encode(pkix));
        spec["proofOfPossession"] = json!(b64.encode(proof));
        self.admit(r, spec, CertVersion::V1beta1)
    }

    fn admit(&self, r: &PodCertRequest, spec: Value, v: CertVersion) -> Value {
        let object = json!({ "metadata": { "name": r.name }, "spec": spec });
        match create_pcr(self.state(), &r.namespace, object, v) {
            Ok(o) => o,
            Err(r) => panic!(
                "the fake refused the PodCertificateRequest: HTTP {}",
                r.status()
            ),
        }
    }

    /// Serves PodCertificateRequests and ClusterTrustBundles in these versions only (from
    /// the next request on; discovery answers accordingly).
    pub fn serve_certificate_versions(&self, versions: CertificateVersions) {
        *self
            .state()
            .pcr_faults
            .versions
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = versions;
    }

    /// A request as stored now.
    pub fn pod_certificate_request(&self, ns: &str, name: &str) -> Option<Value> {
        self.state()
            .store
            .get(Kind::PodCertificateRequest, ns, name)
    }

    /// Every request, in every namespace.
    pub fn pod_certificate_requests(&self) -> Vec<Value> {
        self.state().store.list(Kind::PodCertificateRequest, None).0
    }

    /// A ClusterTrustBundle as stored now.
    pub fn cluster_trust_bundle(&self, name: &str) -> Option<Value> {
        self.state().store.get(Kind::ClusterTrustBundle, "", name)
    }

    /// The next `n` status writes meet a concurrent change: the request's resourceVersion
    /// moves on just before, and the write is answered 409 Conflict.
    pub fn conflict_next_status_writes(&self, n: u32) {
        self.state().pcr_faults.conflicts.store(n, Ordering::SeqCst);
    }

    /// Sets a request's status directly, as another signer would (no validation, no HTTP
    /// request counted).
    pub fn set_pod_certificate_status(&self, ns: &str, name: &str, status: Value) {
        let updated =
            self.state()
                .store
                .update(Kind::PodCertificateRequest, ns, name, |cur, rv| {
                    let mut o = cur.clone();
                    o["status"] = status;
                    o["metadata"]["resourceVersion"] = json!(rv.to_string());
                    Ok::<_, ()>(o)
                });
        assert!(matches!(updated, Ok(Some(_))), "no request {ns}/{name}");
    }

    /// The uid of the pod `put_pod` made for `ns/name`.
    pub fn pod_uid(&self, ns: &str, name: &str) -> String {
        super::tokens::stable_uid(&["pod", ns, name])
    }
}

/// A request's spec as the kubelet fills it in, without the key.
fn kubelet_spec(r: &PodCertRequest) -> Value {
    let mut spec = json!({
            "signerName": r.signer_name,
        "podName": r.pod_name,
        "podUID": r.pod_uid,
        "serviceAccountName": r.service_account,
        "serviceAccountUID": super::owners::account_uid(&r.namespace, &r.service_account),
        "nodeName": r.node_name,
        "nodeUID": super::owners::node_uid(&r.node_name),
    });
    if let Some(max) = r.max_expiration_seconds {
        spec["maxExpirationSeconds"] = json!(max);
    }
    if !r.annotations.is_empty() {
        spec["unverifiedUserAnnotations"] = json!(r.annotations);
    }
    spec
}
