//! Client configuration for the fake: a kubeconfig file (what `certmint --kubeconfig` and
//! `KUBECONFIG` read) and the same settings as an in-memory `kube::Config`.

use base64::{Engine, engine::general_purpose::STANDARD};

/// A kubeconfig with one cluster (server URL and CA data), one token user, one context.
pub(crate) fn yaml(url: &str, ca_pem: &str, token: &str) -> String {
    let ca_data = STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: fake-kube
  cluster:
    server: {url}
    certificate-authority-data: {ca_data}
users:
- name: fake-admin
  user:
    token: {token}
contexts:
- name: fake-kube
  context:
    cluster: fake-kube
    user: fake-admin
    namespace: default
current-context: fake-kube
"
    )
}

/// The same as [`yaml`], without a file.
pub(crate) fn config(url: &str, ca_der: &[u8], token: &str) -> kube::Config {
    let mut config = kube::Config::new(url.parse().expect("fake API server URL"));
    config.root_cert = Some(vec![ca_der.to_vec()]);
    config.auth_info.token = Some(token.to_string().into());
    config.default_namespace = "default".to_string();
    config
}
