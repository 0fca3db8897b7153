//! A client of Istio's CA API generated from certmint's `proto/istio_ca.proto`, and the
//! two CSR shapes Istio's data plane sends.

use certmint_grpc::proto::istio::IstioCertificateRequest;
use certmint_grpc::proto::istio::istio_certificate_service_client::IstioCertificateServiceClient;
use prost_types::{Struct, Value, value::Kind};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use tonic::transport::Channel;

/// One CreateCertificate call as Istio's clients make it.
pub struct Call {
    pub csr: String,
    pub token: Option<String>,
    pub cluster_id: Option<&'static str>,
    pub validity: i64,
    pub impersonate: Option<Value>,
}

impl Call {
    /// ztunnel's defaults: a day, cluster `Kubernetes`.
    pub fn new(csr: String, token: String) -> Self {
        Self {
            csr,
            token: Some(token),
            cluster_id: Some("Kubernetes"),
            validity: 86_400,
            impersonate: None,
        }
    }

    pub fn on_behalf_of(mut self, spiffe_id: &str) -> Self {
        self.impersonate = Some(Value {
            kind: Some(Kind::StringValue(spiffe_id.into())),
        });
        self
    }

    pub async fn send(self, ch: Channel) -> Result<Vec<String>, tonic::Status> {
        let metadata = self.impersonate.map(|v| Struct {
            fields: [("ImpersonatedIdentity".to_owned(), v)].into(),
        });
        let mut req = tonic::Request::new(IstioCertificateRequest {
            csr: self.csr,
            validity_duration: self.validity,
            metadata,
        });
        if let Some(t) = self.token {
            let value = format!("Bearer {t}").parse().unwrap();
            req.metadata_mut().insert("authorization", value);
        }
        if let Some(id) = self.cluster_id {
            req.metadata_mut().insert("clusterid", id.parse().unwrap());
        }
        let mut client = IstioCertificateServiceClient::new(ch);
        client
            .create_certificate(req)
            .await
            .map(|r| r.into_inner().cert_chain)
    }
}

fn pem_csr(p: CertificateParams, key: &KeyPair) -> String {
    p.serialize_request(key).unwrap().pem().unwrap()
}

/// ztunnel's CSR: a fresh P-256 key, empty subject, one URI SAN (critical, as the subject
/// is empty).
pub fn ztunnel_csr(uris: &[&str]) -> String {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    for u in uris {
        p.subject_alt_names
            .push(SanType::URI((*u).to_owned().try_into().unwrap()));
    }
    pem_csr(p, &KeyPair::generate().unwrap())
}

/// Istio's sidecar agent's CSR: an RSA 2048 key, subject `O=` (empty organisation), one
/// URI SAN.
pub fn sidecar_csr(uri: &str) -> String {
    use rsa::pkcs8::EncodePrivateKey;
    let rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pem = rsa.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let key = KeyPair::from_pem(&pem).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, String::new());
    p.subject_alt_names
        .push(SanType::URI(uri.to_owned().try_into().unwrap()));
    pem_csr(p, &key)
}
