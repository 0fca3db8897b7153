//! A PodCertificateRequest as the signer sees it: the v1 object's spec, read once, with
//! sizes bounded (the API server's bytes are not trusted). Kept apart from the API version
//! so that another version's adapter only has to fill this in.

use std::collections::BTreeMap;

use k8s_openapi::api::certificates::v1::PodCertificateRequest;

/// Conditions that decide a request.
pub const ISSUED: &str = "Issued";
pub const DENIED: &str = "Denied";
pub const FAILED: &str = "Failed";

/// The largest stub CSR and annotation set read (the API's own limits are smaller).
const MAX_CSR: usize = 16 * 1024;
const MAX_ANNOTATIONS: usize = 64 * 1024;

/// The spec fields the signer uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub namespace: String,
    pub name: String,
    /// The request object's UID.
    pub uid: String,
    pub signer_name: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub service_account: String,
    pub service_account_uid: String,
    pub node_name: String,
    pub node_uid: String,
    pub max_expiration_seconds: Option<i32>,
    pub stub_csr: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
}

impl Request {
    /// Reads `pcr`; Err says why it cannot be handled at all (oversized or nameless).
    pub fn read(pcr: &PodCertificateRequest) -> Result<Self, &'static str> {
        let meta = &pcr.metadata;
        let (Some(namespace), Some(name)) = (meta.namespace.clone(), meta.name.clone()) else {
            return Err("request has no namespace or name");
        };
        let spec = &pcr.spec;
        if spec.stub_pkc_s10_request.0.len() > MAX_CSR {
            return Err("stubPKCS10Request is larger than 16 KiB");
        }
        let annotations = spec.unverified_user_annotations.clone().unwrap_or_default();
        let size: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_ANNOTATIONS {
            return Err("unverifiedUserAnnotations are larger than 64 KiB");
        }
        let fields = [
            &spec.pod_name,
            &spec.pod_uid,
            &spec.service_account_name,
            &spec.service_account_uid,
            &spec.node_name,
            &spec.node_uid,
            &spec.signer_name,
        ];
        if fields.iter().any(|f| f.is_empty() || f.len() > 253) {
            return Err("a spec name or UID is empty or longer than 253 bytes");
        }
        Ok(Self {
            namespace,
            name,
            uid: meta.uid.clone().unwrap_or_default(),
            signer_name: spec.signer_name.clone(),
            pod_name: spec.pod_name.clone(),
            pod_uid: spec.pod_uid.clone(),
            service_account: spec.service_account_name.clone(),
            service_account_uid: spec.service_account_uid.clone(),
            node_name: spec.node_name.clone(),
            node_uid: spec.node_uid.clone(),
            max_expiration_seconds: spec.max_expiration_seconds,
            stub_csr: spec.stub_pkc_s10_request.0.clone(),
            annotations,
        })
    }

    /// `namespace/name`, for logs and audit records.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The condition that decided `pcr` (`Issued`, `Denied` or `Failed` with status True).
pub fn decided(pcr: &PodCertificateRequest) -> Option<&str> {
    let status = pcr.status.as_ref()?;
    if status
        .certificate_chain
        .as_ref()
        .is_some_and(|c| !c.is_empty())
    {
        return Some(ISSUED);
    }
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.status == "True" && matches!(c.type_.as_str(), ISSUED | DENIED | FAILED))
        .map(|c| c.type_.as_str())
}

/// `namespace/name` of an object, whatever its state.
pub fn key_of(pcr: &PodCertificateRequest) -> Option<String> {
    let meta = &pcr.metadata;
    Some(format!(
        "{}/{}",
        meta.namespace.as_deref()?,
        meta.name.as_deref()?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pcr(csr_len: usize, status: serde_json::Value) -> PodCertificateRequest {
        use base64::Engine;
        let csr = base64::engine::general_purpose::STANDARD.encode(vec![0x30u8; csr_len]);
        serde_json::from_value(json!({
            "metadata": {"namespace": "shop", "name": "r", "uid": "u"},
            "spec": {
                "signerName": "certmint.io/spiffe", "podName": "web-0", "podUID": "p",
                "serviceAccountName": "web", "serviceAccountUID": "s", "nodeName": "n",
                "nodeUID": "nu", "stubPKCS10Request": csr,
            },
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn reads_the_spec_and_refuses_oversized_input() {
        let r = Request::read(&pcr(100, json!({}))).unwrap();
        assert_eq!((r.key().as_str(), r.uid.as_str()), ("shop/r", "u"));
        assert_eq!(r.stub_csr.len(), 100);
        assert!(Request::read(&pcr(MAX_CSR + 1, json!({}))).is_err());
    }

    #[test]
    fn a_terminal_condition_or_a_chain_decides() {
        assert_eq!(decided(&pcr(10, json!({}))), None);
        let failed = json!({"conditions": [{"type": "Failed", "status": "True", "reason": "X",
            "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        assert_eq!(decided(&pcr(10, failed)), Some(FAILED));
        let other = json!({"conditions": [{"type": "Progressing", "status": "True", "reason": "X",
            "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        assert_eq!(decided(&pcr(10, other)), None);
        assert_eq!(
            decided(&pcr(10, json!({"certificateChain": "x"}))),
            Some(ISSUED)
        );
    }
}
