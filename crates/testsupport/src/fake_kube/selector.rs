//! Field selectors (`metadata.name=x,type!=y`), with the fields the real API server
//! supports for Secrets and ConfigMaps, and equality label selectors (`app=x,tier!=y`);
//! set-based label selectors are refused rather than ignored.

use serde_json::Value;

use super::store::Kind;

#[derive(Clone, Debug, Default)]
pub(crate) struct FieldSelector {
    terms: Vec<Term>,
}

#[derive(Clone, Debug)]
struct Term {
    /// Where the value is in the object.
    path: Vec<String>,
    value: String,
    equal: bool,
}

/// `key=value`, `key==value` or `key!=value`: (key, value, equal).
fn split_term(term: &str) -> Result<(&str, &str, bool), String> {
    if let Some((f, v)) = term.split_once("!=") {
        Ok((f, v, false))
    } else if let Some((f, v)) = term.split_once("==") {
        Ok((f, v, true))
    } else if let Some((f, v)) = term.split_once('=') {
        Ok((f, v, true))
    } else {
        Err(format!(
            "invalid selector: '{term}'; can't understand '{term}'"
        ))
    }
}

impl FieldSelector {
    /// Parses `selector` for `kind`; `Err` is the BadRequest message.
    pub(crate) fn parse(kind: Kind, selector: Option<&str>) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for term in selector.unwrap_or("").split(',').filter(|t| !t.is_empty()) {
            let (field, value, equal) = split_term(term)?;
            if !supported(kind, field) {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push(Term {
                path: field.trim().split('.').map(str::to_owned).collect(),
                value: value.trim().to_string(),
                equal,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Adds the equality terms of a label selector (`Err`: the BadRequest message).
    pub(crate) fn with_labels(mut self, selector: Option<&str>) -> Result<Self, String> {
        for term in selector
            .unwrap_or("")
            .split(',')
            .filter(|t| !t.trim().is_empty())
        {
            let (key, value, equal) = split_term(term)?;
            if key.contains(['(', ' ', '!']) || value.contains(['(', ')', ' ']) {
                return Err(format!(
                    "the fake API server supports equality label selectors only (got {term:?})"
                ));
            }
            let path = ["metadata", "labels", key.trim()];
            self.terms.push(Term {
                path: path.map(str::to_owned).to_vec(),
                value: value.trim().to_string(),
                equal,
            });
        }
        Ok(self)
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|term| {
            let actual = term
                .path
                .iter()
                .fold(object, |v, part| &v[part.as_str()])
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
