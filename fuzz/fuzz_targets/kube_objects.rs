//! A Secret and a ConfigMap as the API server sends them (JSON): the issuer is taken
//! from the Secret, the anchors from the ConfigMap, and the issuer validated against them.

#![no_main]

use std::time::SystemTime;

use certmint_core::ca::{Issuer, TrustAnchors};
use certmint_k8s::sources::kube::{anchors_from_configmap, issuer_from_secret};
use certmint_fuzz::probe_names;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

/// The anchors key of the default config.
const ANCHORS_KEY: &str = "ca-bundle.crt";

#[derive(Deserialize)]
struct Objects {
    secret: Option<Secret>,
    configmap: Option<ConfigMap>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(objects) = serde_json::from_slice::<Objects>(data) else {
        return;
    };
    let now = SystemTime::now();
    let material = objects.secret.as_ref().map(issuer_from_secret);
    let anchors = objects
        .configmap
        .as_ref()
        .map(|cm| anchors_from_configmap(cm, ANCHORS_KEY));
    let Some(Ok(pem)) = anchors else {
        return;
    };
    let Ok(anchors) = TrustAnchors::from_pem(&pem, now) else {
        return;
    };
    if let Some(Ok(material)) = material {
        let _ = Issuer::load(&material, &anchors, &probe_names(), now);
    }
});
