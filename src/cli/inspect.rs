//! `certmint inspect FILE | --connect HOST:PORT`: every certificate in a chain and, with
//! `--trust-anchors`, whether the chain verifies (and why not).

mod connect;
mod verify;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::Args;
use rustls_pki_types::CertificateDer;
use serde::Serialize;

use crate::cli::describe::{CertView, OutputFormat};
use certmint_core::ca::cert::{CertInfo, parse_pem_chain};
use certmint_core::fsutil::read_bounded;
use certmint_k8s::sources::files::MAX_PEM_BYTES;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Certificate file: PEM (one or more certificates, leaf first) or one DER
    /// certificate; `-` reads standard input.
    #[arg(required_unless_present = "connect", conflicts_with = "connect")]
    file: Option<PathBuf>,
    /// Connect to HOST:PORT and inspect the chain the TLS server presents.
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<String>,
    /// Name to verify the leaf for; with --connect also the SNI sent (default: the host).
    #[arg(long)]
    server_name: Option<String>,
    /// Verify the chain against this PEM bundle of trust anchors.
    #[arg(long)]
    trust_anchors: Option<PathBuf>,
    /// The first certificate's private key: a PEM file, or a PKCS#11 URI (or a file
    /// holding one, as an issuer Secret's tls.key does) of a key in a token. Reports where
    /// it is and whether it matches (exit 1 when not).
    #[arg(long, value_name = "FILE|URI")]
    key: Option<String>,
    #[command(flatten)]
    hsm: crate::cli::hsm::HsmArgs,
    #[arg(long, value_enum, default_value = "table")]
    output: OutputFormat,
}

/// Where the first certificate's key is, and whether it matches.
#[derive(Debug, Serialize)]
struct KeyCheck {
    location: String,
    matches: bool,
}

/// Everything `inspect` reports.
#[derive(Debug, Serialize)]
struct Report {
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<connect::TlsInfo>,
    certificates: Vec<CertView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<verify::Verification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<KeyCheck>,
}

/// Exit 0 when shown (and verified, if asked), 1 when the chain does not verify.
pub async fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now();
    let (source, tls, certs, name) = match (&args.connect, &args.file) {
        (Some(target), _) => {
            let (chain, tls) =
                connect::presented_chain(target, args.server_name.as_deref()).await?;
            let certs = parse_ders(chain).with_context(|| format!("{target} presented"))?;
            let name = Some(tls.server_name.clone());
            (target.clone(), Some(tls), certs, name)
        }
        (None, Some(file)) => {
            let certs = read_certs(file)?;
            let name = args.server_name.clone();
            (file.display().to_string(), None, certs, name)
        }
        (None, None) => bail!("give a certificate FILE or --connect HOST:PORT"),
    };
    let verification = match &args.trust_anchors {
        Some(path) => Some(verify::verify(&certs, path, name.as_deref(), now)?),
        None => None,
    };
    let key = match &args.key {
        Some(key) => Some(key_check(key, &args.hsm, &certs[0])?),
        None => None,
    };
    let report = Report {
        source,
        tls,
        certificates: certs.iter().map(|c| CertView::new(c, now)).collect(),
        verification,
        key,
    };
    match args.output {
        OutputFormat::Table => print!("{}", table(&report)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    let failed = report.verification.as_ref().is_some_and(|v| !v.verified)
        || report.key.as_ref().is_some_and(|k| !k.matches);
    Ok(ExitCode::from(u8::from(failed)))
}

/// Opens the key `--key` names (a file, a URI, or a file holding a URI).
fn key_check(
    key: &str,
    hsm: &crate::cli::hsm::HsmArgs,
    cert: &CertInfo,
) -> anyhow::Result<KeyCheck> {
    use certmint_core::ca::CaKey;
    use certmint_core::ca::signing_key::external_reference;
    let bytes = match external_reference(key.as_bytes()) {
        Some(uri) => uri.as_bytes().to_vec(),
        None => read_bounded(Path::new(key), MAX_PEM_BYTES)
            .with_context(|| format!("cannot read --key {key}"))?,
    };
    let keys = hsm.boxed_resolver(&bytes)?;
    let opened =
        CaKey::from_key_file(&bytes, keys.as_ref()).with_context(|| format!("--key {key}"))?;
    Ok(KeyCheck {
        location: opened.location().map_or_else(
            || format!("in memory, from {key}"),
            |at| format!("in an HSM: {at}"),
        ),
        matches: opened.public_key_raw() == cert.public_key.as_slice(),
    })
}

/// PEM certificates, or a single DER certificate.
fn read_certs(path: &Path) -> anyhow::Result<Vec<CertInfo>> {
    let shown = path.display();
    let bytes = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(MAX_PEM_BYTES + 1)
            .read_to_end(&mut buf)
            .context("cannot read standard input")?;
        buf
    } else {
        read_bounded(path, MAX_PEM_BYTES).with_context(|| format!("cannot read {shown}"))?
    };
    if bytes.len() as u64 > MAX_PEM_BYTES {
        bail!("{shown} is larger than {MAX_PEM_BYTES} bytes");
    }
    if bytes.first() == Some(&0x30) {
        return CertInfo::parse(CertificateDer::from(bytes), 0)
            .map(|c| vec![c])
            .map_err(|_| anyhow::anyhow!("{shown}: not a valid DER X.509 certificate"));
    }
    parse_pem_chain(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{shown}: {e}; expected PEM certificates (-----BEGIN CERTIFICATE-----) or one DER certificate"
        )
    })
}

fn parse_ders(chain: Vec<CertificateDer<'static>>) -> anyhow::Result<Vec<CertInfo>> {
    let parsed = chain
        .into_iter()
        .enumerate()
        .map(|(i, der)| CertInfo::parse(der, i));
    Ok(parsed.collect::<Result<_, _>>()?)
}

fn table(r: &Report) -> String {
    let mut out = String::new();
    if let Some(t) = &r.tls {
        let alpn = t.alpn.as_deref().unwrap_or("none");
        out += &format!(
            "connected to {} (server name {}): {}, {}, ALPN {alpn}\n\n",
            t.address, t.server_name, t.version, t.cipher_suite
        );
    }
    let n = r.certificates.len();
    for (i, c) in r.certificates.iter().enumerate() {
        out += &format!("certificate {} of {n}\n{}\n", i + 1, cert_block(c));
    }
    if let Some(v) = &r.verification {
        out += &v.line();
    }
    if let Some(k) = &r.key {
        let verdict = match k.matches {
            true => "matches certificate 1",
            false => "does NOT match certificate 1: it belongs to another certificate",
        };
        out += &format!("private key {}: {verdict}\n", k.location);
    }
    out
}

fn cert_block(c: &CertView) -> String {
    let sans = c.sans();
    let mut lines = vec![
        ("subject", c.subject.clone()),
        (
            "SANs",
            if sans.is_empty() {
                "none".into()
            } else {
                sans.join(", ")
            },
        ),
        ("issuer", c.issuer.clone()),
        ("serial", c.serial.clone()),
        ("not before", c.not_before.clone()),
        ("not after", format!("{} ({})", c.not_after, time_left(c))),
        ("key", c.key.clone()),
        ("CA", c.ca_text()),
    ];
    if !c.key_usage.is_empty() {
        lines.push(("key usage", c.key_usage.join(", ")));
    }
    if !c.extended_key_usage.is_empty() {
        lines.push(("ext usage", c.extended_key_usage.join(", ")));
    }
    lines.push(("sha256", c.fingerprint_sha256.clone()));
    lines
        .iter()
        .map(|(k, v)| format!("  {k:<11} {v}\n"))
        .collect()
}

fn time_left(c: &CertView) -> String {
    if c.remaining_seconds < 0 {
        c.left_text()
    } else {
        format!("{} left", c.left_text())
    }
}
