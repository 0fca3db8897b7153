//! Loading Secrets, ConfigMaps and Pods from a directory tree, for running the fake by
//! hand: `<dir>/<namespace>/secrets/<name>/<key>` and
//! `<dir>/<namespace>/configmaps/<name>/<key>`, one file per data key (like a mounted
//! Secret). A Secret's type is read from a `.type` file, else inferred: `tls.crt` +
//! `tls.key` → `kubernetes.io/tls`, `crt.pem` + `key.pem` → `linkerd.io/tls`, otherwise
//! `Opaque`. `<dir>/<namespace>/pods/<name>.json` is merged (objects key by key, anything
//! else replaced) over a running pod of `spec.serviceAccountName` (default `default`) on
//! `spec.nodeName` (default `node-1`), started when loaded; removing the file deletes it.

use std::{collections::BTreeMap, fs, io, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD};

use super::{FakeKube, store::Kind};

impl FakeKube {
    /// Creates or updates every object under `dir` whose content differs from what the
    /// fake holds (so calling it again after editing files rotates just those objects).
    /// Returns how many objects changed.
    pub fn seed_from_dir(&self, dir: &Path) -> io::Result<usize> {
        let mut changed = 0;
        for ns in subdirectories(dir)? {
            let ns_name = file_name(&ns);
            for secret in subdirectories(&ns.join("secrets"))? {
                let (name, data) = (file_name(&secret), read_files(&secret)?);
                let type_ = secret_type(&secret, &data)?;
                if self.secret_differs(&ns_name, &name, &type_, &data) {
                    self.put_secret(&ns_name, &name, &type_, data);
                    changed += 1;
                }
            }
            for map in subdirectories(&ns.join("configmaps"))? {
                let name = file_name(&map);
                let data = read_files(&map)?
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                    .collect::<BTreeMap<_, _>>();
                let current = self.state().store.get(Kind::ConfigMap, &ns_name, &name);
                if current.is_none_or(|c| c["data"] != serde_json::json!(data)) {
                    self.put_configmap(&ns_name, &name, data);
                    changed += 1;
                }
            }
            changed += self.seed_pods(&ns_name, &ns.join("pods"))?;
        }
        Ok(changed)
    }

    /// Pods from `<ns>/pods/<name>.json`; a pod loaded before whose file is gone is deleted.
    fn seed_pods(&self, ns: &str, dir: &Path) -> io::Result<usize> {
        let mut changed = 0;
        let mut files = BTreeMap::new();
        if dir.is_dir() {
            for entry in fs::read_dir(dir)? {
                let path = entry?.path();
                let name = file_name(&path);
                if let Some(pod) = name.strip_suffix(".json").filter(|n| !n.starts_with('.')) {
                    files.insert(pod.to_owned(), fs::read(&path)?);
                }
            }
        }
        for (name, bytes) in &files {
            let digest = certmint_core::digest::hex(&certmint_core::digest::sha256(bytes));
            let current = self.state().store.get(Kind::Pod, ns, name);
            if current.is_some_and(|c| c["metadata"]["annotations"][SEEDED] == digest.as_str()) {
                continue;
            }
            let patch: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("pods/{name}.json: {e}"))
            })?;
            let field =
                |f: &str, default: &str| patch["spec"][f].as_str().unwrap_or(default).to_owned();
            let (sa, node) = (
                field("serviceAccountName", "default"),
                field("nodeName", "node-1"),
            );
            self.put_pod_with(ns, name, &sa, &node, |pod| {
                pod["status"]["startTime"] = super::resources::timestamp_now().into();
                merge(pod, &patch);
                pod["metadata"]["annotations"][SEEDED] = digest.into();
            });
            changed += 1;
        }
        for pod in self.state().store.list(Kind::Pod, Some(ns)).0 {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            if pod["metadata"]["annotations"][SEEDED].is_string() && !files.contains_key(name) {
                self.delete_pod(ns, name);
                changed += 1;
            }
        }
        Ok(changed)
    }

    fn secret_differs(
        &self,
        ns: &str,
        name: &str,
        type_: &str,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> bool {
        let Some(current) = self.state().store.get(Kind::Secret, ns, name) else {
            return true;
        };
        let encoded: BTreeMap<&String, String> =
            data.iter().map(|(k, v)| (k, STANDARD.encode(v))).collect();
        current["type"] != type_ || current["data"] != serde_json::json!(encoded)
    }
}

/// Marks a pod loaded from a file, with the file's digest.
const SEEDED: &str = "fake.certmint.io/seeded";

/// `patch` over `target`: objects merged key by key, anything else replaced.
fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn subdirectories(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut dirs = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !file_name(&path).starts_with('.') {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// The regular, non-hidden files of `dir` as data keys.
fn read_files(dir: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let mut data = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let key = file_name(&path);
        if path.is_file() && !key.starts_with('.') {
            data.insert(key, fs::read(&path)?);
        }
    }
    Ok(data)
}

fn secret_type(dir: &Path, data: &BTreeMap<String, Vec<u8>>) -> io::Result<String> {
    let explicit = dir.join(".type");
    if explicit.is_file() {
        return Ok(fs::read_to_string(explicit)?.trim().to_string());
    }
    let has = |a: &str, b: &str| data.contains_key(a) && data.contains_key(b);
    Ok(if has("tls.crt", "tls.key") {
        "kubernetes.io/tls"
    } else if has("crt.pem", "key.pem") {
        "linkerd.io/tls"
    } else {
        "Opaque"
    }
    .to_string())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
