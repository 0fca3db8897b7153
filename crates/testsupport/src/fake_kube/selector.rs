//! Field selectors (`metadata.name=x,type!=y`), with the fields the real API server
//! supports for Secrets and ConfigMaps. Label selectors are refused rather than ignored.

use serde_json::Value;

use super::store::Kind;

#[derive(Clone, Debug, Default)]
pub(crate) struct FieldSelector {
    terms: Vec<Term>,
}

#[derive(Clone, Debug)]
struct Term {
    field: String,
    value: String,
    equal: bool,
}

impl FieldSelector {
    /// Parses `selector` for `kind`; `Err` is the BadRequest message.
    pub(crate) fn parse(kind: Kind, selector: Option<&str>) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for term in selector.unwrap_or("").split(',').filter(|t| !t.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, true)
            } else {
                return Err(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ));
            };
            if !supported(kind, field) {
                return Err(format!("field label not supported: {field}"));
            }
            let (field, value) = (field.trim().to_string(), value.trim().to_string());
            terms.push(Term {
                field,
                value,
                equal,
            });
        }
        Ok(FieldSelector { terms })
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|term| {
            let actual = term
                .field
                .split('.')
                .fold(object, |v, part| &v[part])
                .as_str()
                .unwrap_or("");
            (actual == term.value) == term.equal
        })
    }
}

fn supported(kind: Kind, field: &str) -> bool {
    match field.trim() {
        "metadata.name" | "metadata.namespace" => true,
        "type" => kind == Kind::Secret,
        "spec.signerName" => {
            matches!(kind, Kind::PodCertificateRequest | Kind::ClusterTrustBundle)
        }
        _ => false,
    }
}

/// Only an empty label selector is accepted: the fake does not implement them.
pub(crate) fn check_label_selector(selector: Option<&str>) -> Result<(), String> {
    match selector {
        Some(s) if !s.trim().is_empty() => Err(format!(
            "the fake API server does not support label selectors (got {s:?})"
        )),
        _ => Ok(()),
    }
}
