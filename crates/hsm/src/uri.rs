//! PKCS#11 URIs (RFC 7512) naming a key: `pkcs11:token=LABEL;object=LABEL` and/or
//! `id=%01%02`. The module and the PIN are configuration (`hsm:`), so a URI carrying
//! `module-path`, `module-name`, `pin-source` or `pin-value` is refused.

use std::fmt;

use percent_encoding::percent_decode_str;

/// Where a key is: the token (by label, and serial when given) and the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUri {
    pub token: String,
    pub serial: Option<String>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
}

/// Why a URI names no key certmint can use; the message says what to write instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("PKCS#11 URI: {0}")]
pub struct UriError(String);

const MAX_LEN: usize = 1024;

impl KeyUri {
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let err = |m: &str| Err(UriError(m.to_owned()));
        if text.len() > MAX_LEN {
            return err("longer than 1024 bytes");
        }
        let Some(rest) = text.strip_prefix("pkcs11:") else {
            return err("does not start with pkcs11:");
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if let Some(attr) = query.split('&').find(|a| !a.is_empty()) {
            let name = attr.split_once('=').map_or(attr, |(n, _)| n);
            return match name {
                "module-path" | "module-name" => {
                    err("names a module; the module comes from hsm.module in the configuration")
                }
                "pin-source" | "pin-value" => {
                    err("carries a PIN; the PIN comes from hsm.pin_file in the configuration")
                }
                _ => Err(UriError(format!("unknown query attribute {name:?}"))),
            };
        }
        let mut uri = KeyUri {
            token: String::new(),
            serial: None,
            object: None,
            id: None,
        };
        let mut token = None;
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let Some((name, value)) = attr.split_once('=') else {
                return Err(UriError(format!("attribute {attr:?} has no value")));
            };
            let text = || {
                percent_decode_str(value)
                    .decode_utf8()
                    .map(|v| v.into_owned())
                    .map_err(|_| UriError(format!("{name} is not UTF-8")))
            };
            match name {
                "token" => token = Some(text()?),
                "serial" => uri.serial = Some(text()?),
                "object" => uri.object = Some(text()?),
                "id" => uri.id = Some(percent_decode_str(value).collect()),
                "type" if value == "private" => {}
                "type" => return err("type must be private (the signing key)"),
                "manufacturer"
                | "model"
                | "library-manufacturer"
                | "library-description"
                | "library-version"
                | "slot-description"
                | "slot-manufacturer"
                | "slot-id" => {
                    return Err(UriError(format!(
                        "attribute {name} is not supported; name the token by its label (token=)"
                    )));
                }
                _ => return Err(UriError(format!("unknown attribute {name:?}"))),
            }
        }
        uri.token = token.ok_or(UriError("names no token (token=LABEL)".into()))?;
        if uri.object.is_none() && uri.id.is_none() {
            return err("names no key (object=LABEL or id=%XX…)");
        }
        Ok(uri)
    }
}

impl fmt::Display for KeyUri {
    /// The canonical form (no PIN, no module: safe to log).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
        // RFC 3986 unreserved characters stay as they are.
        const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let enc = |s: &str| utf8_percent_encode(s, ESCAPED).to_string();
        write!(f, "pkcs11:token={}", enc(&self.token))?;
        if let Some(s) = &self.serial {
            write!(f, ";serial={}", enc(s))?;
        }
        if let Some(o) = &self.object {
            write!(f, ";object={}", enc(o))?;
        }
        if let Some(id) = &self.id {
            f.write_str(";id=")?;
            for b in id {
                write!(f, "%{b:02X}")?;
            }
        }
        f.write_str(";type=private")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_object_and_id() {
        let u = KeyUri::parse("pkcs11:token=cert%20mint;object=issuer-2026;id=%01%ab").unwrap();
        assert_eq!(u.token, "cert mint");
        assert_eq!(u.object.as_deref(), Some("issuer-2026"));
        assert_eq!(u.id.as_deref(), Some(&[0x01, 0xab][..]));
        assert_eq!(
            u.to_string(),
            "pkcs11:token=cert%20mint;object=issuer-2026;id=%01%AB;type=private"
        );
        assert_eq!(KeyUri::parse(&u.to_string()).unwrap(), u);
    }

    #[test]
    fn refuses_modules_pins_and_incomplete_names() {
        for (uri, says) in [
            (
                "pkcs11:token=t;object=o?module-path=/tmp/evil.so",
                "hsm.module",
            ),
            ("pkcs11:token=t;object=o?pin-value=1234", "hsm.pin_file"),
            ("pkcs11:token=t;object=o?pin-source=file:/p", "hsm.pin_file"),
            ("pkcs11:object=o", "names no token"),
            ("pkcs11:token=t", "names no key"),
            ("pkcs11:token=t;object=o;type=cert", "type must be private"),
            ("pkcs11:token=t;object=o;slot-id=1", "not supported"),
            ("pkcs11:token=t;object", "has no value"),
            ("file:/x", "does not start"),
        ] {
            let e = KeyUri::parse(uri).unwrap_err().to_string();
            assert!(e.contains(says), "{uri}: {e}");
        }
        assert!(KeyUri::parse(&format!("pkcs11:token={}", "a".repeat(2000))).is_err());
    }
}
