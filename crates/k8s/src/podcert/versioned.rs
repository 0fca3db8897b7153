//! A `certificates.k8s.io` resource at the chosen version, read and written as
//! k8s-openapi's `v1` type. The `v1beta1` objects of Kubernetes 1.36 have the same JSON for
//! every field certmint reads or writes (`v1beta1` only adds the deprecated
//! `pkixPublicKey`/`proofOfPossession`), so the objects go through `DynamicObject` with the
//! apiVersion swapped, and the rest of the signer knows one type.

use std::marker::PhantomData;

use kube::api::{DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::version::{GROUP, Version};

/// `Api<K>` at `version`.
pub struct VersionedApi<K> {
    api: Api<DynamicObject>,
    api_version: String,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for VersionedApi<K> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            api_version: self.api_version.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K> VersionedApi<K>
where
    K: k8s_openapi::Resource + Serialize + DeserializeOwned,
{
    /// All objects (cluster-scoped, or across namespaces).
    pub fn all(client: Client, version: Version) -> Self {
        let resource = resource::<K>(version);
        Self::new(Api::all_with(client, &resource), version)
    }

    /// Objects in `namespace`.
    pub fn namespaced(client: Client, namespace: &str, version: Version) -> Self {
        let resource = resource::<K>(version);
        Self::new(Api::namespaced_with(client, namespace, &resource), version)
    }

    fn new(api: Api<DynamicObject>, version: Version) -> Self {
        Self {
            api,
            api_version: version.api_version(),
            _kind: PhantomData,
        }
    }

    /// The untyped API, for watches (convert their objects with [`typed`]).
    pub fn dynamic(&self) -> &Api<DynamicObject> {
        &self.api
    }

    pub async fn get_opt(&self, name: &str) -> kube::Result<Option<K>> {
        self.api.get_opt(name).await?.map(typed).transpose()
    }

    pub async fn create(&self, object: &K) -> kube::Result<K> {
        let pp = PostParams::default();
        typed(self.api.create(&pp, &self.untyped(object)?).await?)
    }

    pub async fn replace(&self, name: &str, object: &K) -> kube::Result<K> {
        let pp = PostParams::default();
        typed(self.api.replace(name, &pp, &self.untyped(object)?).await?)
    }

    /// `PUT …/NAME/status`.
    pub async fn replace_status(&self, name: &str, object: &K) -> kube::Result<K> {
        let pp = PostParams::default();
        typed(
            self.api
                .replace_status(name, &pp, &self.untyped(object)?)
                .await?,
        )
    }

    fn untyped(&self, object: &K) -> kube::Result<DynamicObject> {
        let mut json = serde_json::to_value(object).map_err(kube::Error::SerdeError)?;
        json["apiVersion"] = self.api_version.clone().into();
        serde_json::from_value(json).map_err(kube::Error::SerdeError)
    }
}

/// A served object as the `v1` type `K`.
pub fn typed<K>(object: DynamicObject) -> kube::Result<K>
where
    K: k8s_openapi::Resource + DeserializeOwned,
{
    let mut json = serde_json::to_value(object).map_err(kube::Error::SerdeError)?;
    json["apiVersion"] = K::API_VERSION.into();
    json["kind"] = K::KIND.into();
    serde_json::from_value(json).map_err(kube::Error::SerdeError)
}

fn resource<K: k8s_openapi::Resource>(version: Version) -> ApiResource {
    let gvk = GroupVersionKind::gvk(GROUP, version.as_str(), K::KIND);
    ApiResource::from_gvk_with_plural(&gvk, K::URL_PATH_SEGMENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::PodCertificateRequest;
    use serde_json::json;

    #[test]
    fn a_v1beta1_object_reads_as_the_v1_type_and_keeps_its_fields() {
        let served: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "certificates.k8s.io/v1beta1", "kind": "PodCertificateRequest",
            "metadata": {"namespace": "shop", "name": "r", "resourceVersion": "7"},
            "spec": {"signerName": "certmint.io/spiffe", "podName": "web-0", "podUID": "p",
                "serviceAccountName": "web", "serviceAccountUID": "s", "nodeName": "n",
                "nodeUID": "nu", "stubPKCS10Request": "MAA="},
        }))
        .unwrap();
        let pcr: PodCertificateRequest = typed(served).unwrap();
        assert_eq!(pcr.spec.pod_name, "web-0");
        assert_eq!(pcr.spec.stub_pkc_s10_request.0, vec![0x30, 0]);
        assert_eq!(pcr.metadata.resource_version.as_deref(), Some("7"));
        let r = resource::<PodCertificateRequest>(Version::V1beta1);
        assert_eq!(
            (r.api_version.as_str(), r.plural.as_str()),
            ("certificates.k8s.io/v1beta1", "podcertificaterequests")
        );
    }
}
