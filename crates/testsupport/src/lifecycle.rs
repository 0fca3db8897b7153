//! Helpers for the lifecycle-command tests: run the real binary, write files, sign leaves
//! under generated issuers, and read certificate fields from the DER.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The PKCS#8 PEM header, assembled so that no committed file looks like it holds a key.
pub fn pkcs8_header() -> String {
    format!("-----BEGIN {}-----", "PRIVATE KEY")
}

/// A PEM block labelled as a PKCS#8 key whose content is not a key.
pub fn bogus_key_pem() -> String {
    format!(
        "{}\nAAAA\n-----END {}-----\n",
        pkcs8_header(),
        "PRIVATE KEY"
    )
}

/// What one run of `certmint` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing the output when it differs.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }
}

/// Runs the `certmint` binary with `args`; a panic is always a failure.
pub fn certmint<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(crate::certmint_bin())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env_remove("KUBECONFIG")
        .output()
        .expect("run certmint");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "certmint panicked: {run:#?}"
    );
    run
}

/// [`certmint`] from async code.
pub async fn certmint_async(args: Vec<String>) -> Run {
    tokio::task::spawn_blocking(move || certmint(&args))
        .await
        .expect("certmint task")
}

pub fn p(path: &Path) -> String {
    path.display().to_string()
}

pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, contents).unwrap();
    path
}

/// An issuer directory (tls.crt, tls.key) under `dir`.
pub fn issuer_dir(dir: &Path, name: &str, cert_pem: &str, key_pem: &str) -> PathBuf {
    write(dir, &format!("{name}/tls.crt"), cert_pem);
    write(dir, &format!("{name}/tls.key"), key_pem);
    dir.join(name)
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A mesh leaf for `dns` (+ SPIFFE URI) signed by the issuer in PEM, valid for a day.
pub fn leaf_pem(issuer_cert_pem: &str, issuer_key_pem: &str, dns: &str, spiffe: &str) -> String {
    let issuer_key = KeyPair::from_pem(issuer_key_pem).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(issuer_cert_pem, issuer_key).unwrap();
    let mut params = CertificateParams::new(vec![dns.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, dns);
    params
        .subject_alt_names
        .push(SanType::URI(spiffe.try_into().unwrap()));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(60)).into();
    params.not_after = (now + Duration::from_secs(86_400)).into();
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    params.signed_by(&key, &issuer).unwrap().pem()
}

/// Every certificate (DER) in a PEM text.
pub fn ders(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Facts about a certificate, read from its DER.
#[derive(Debug)]
pub struct Facts {
    pub subject: String,
    pub issuer: String,
    pub ca: bool,
    pub path_len: Option<u32>,
    pub key_cert_sign: bool,
    pub crl_sign: bool,
    pub ski: Option<Vec<u8>>,
    pub aki: Option<Vec<u8>>,
    pub lifetime: Duration,
    pub not_after: i64,
    pub key_alg: String,
    pub key_bits: usize,
}

pub fn facts(der: &[u8]) -> Facts {
    let (_, x) = X509Certificate::from_der(der).unwrap();
    let bc = x.basic_constraints().unwrap().map(|b| b.value.clone());
    let ku = x.key_usage().unwrap().map(|k| *k.value);
    let mut ski = None;
    let mut aki = None;
    for ext in x.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => {}
        }
    }
    let v = x.validity();
    Facts {
        subject: x.subject().to_string(),
        issuer: x.issuer().to_string(),
        ca: bc.as_ref().is_some_and(|b| b.ca),
        path_len: bc.and_then(|b| b.path_len_constraint),
        key_cert_sign: ku.is_some_and(|k| k.key_cert_sign()),
        crl_sign: ku.is_some_and(|k| k.crl_sign()),
        ski,
        aki,
        lifetime: Duration::from_secs((v.not_after.timestamp() - v.not_before.timestamp()) as u64),
        not_after: v.not_after.timestamp(),
        key_alg: x.public_key().algorithm.algorithm.to_id_string(),
        key_bits: x.public_key().parsed().map_or(0, |k| k.key_size()),
    }
}

/// Facts about the first certificate in a PEM file.
pub fn facts_of_file(path: &Path) -> Facts {
    facts(&ders(&read(path))[0])
}
