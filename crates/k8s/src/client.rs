//! The Kubernetes client (rustls with aws-lc-rs), from `--kubeconfig`, in-cluster, or `KUBECONFIG`.

use std::path::Path;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// Builds a client from an explicit kubeconfig, or the usual places.
pub async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| anyhow::anyhow!("cannot read kubeconfig {}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => Config::infer().await.map_err(|e| {
            anyhow::anyhow!(
                "no Kubernetes configuration (in-cluster or KUBECONFIG): {e}; set kubeconfig"
            )
        })?,
    };
    // kube's client retries 429/503/504 itself, up to 15 times and honouring Retry-After:
    // a throttled TokenReview would then hold its Certify call until certmint's review
    // deadline. certmint decides instead (local fallback, or UNAVAILABLE that the proxy
    // retries with its own backoff); watches and Event writes have their own retries.
    config.default_retry = false;
    Ok(Client::try_from(config)?)
}

/// Asks the API server whether this identity may create TokenReviews.
pub async fn can_create_tokenreviews(client: Client) -> Result<bool, kube::Error> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some("authentication.k8s.io".into()),
                resource: Some("tokenreviews".into()),
                verb: Some("create".into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client)
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}
