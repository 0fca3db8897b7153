//! `certmint ca root | issuer | bundle`: create a trust anchor, an issuer signed by it, and
//! the anchor bundle for a rotation overlap.

mod bundle;
mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::cli::describe::{CertView, duration_text, left_text};
use crate::cli::hsm;
use crate::config::parse_duration;
use certmint_core::ca::cert::to_pem;
use certmint_core::ca::cert::{CertInfo, parse_pem_chain};
use certmint_core::ca::create::{KeyType, new_issuer_with, new_root_with};
use certmint_core::ca::keys::key_pair_from_pem;
use certmint_core::ca::signing_key::external_reference;
use certmint_core::ca::{CaKey, Issuer, IssuerMaterial, KeyResolver, TrustAnchors, fmt_time};
use certmint_core::fsutil::read_bounded;
use certmint_k8s::sources::files::MAX_PEM_BYTES;

use output::OutputFiles;

/// X.509's upper bound for a CommonName (ub-common-name).
const MAX_CN_LEN: usize = 64;
/// Longer lifetimes are almost certainly a typo (and overflow X.509 dates eventually).
const MAX_LIFETIME: Duration = Duration::from_secs(100 * 365 * 86_400);

#[derive(Debug, Args)]
pub struct CaArgs {
    #[command(subcommand)]
    command: CaCommand,
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Create a self-signed trust anchor (root CA).
    Root(RootArgs),
    /// Create an issuer (intermediate CA) signed by a trust anchor.
    Issuer(IssuerArgs),
    /// Print a bundle of trust anchors (de-duplicated, checked, earliest expiry first).
    Bundle(bundle::BundleArgs),
}

#[derive(Debug, Args)]
struct RootArgs {
    #[command(flatten)]
    out: OutputFiles,
    #[command(flatten)]
    hsm: hsm::HsmArgs,
    /// Subject common name.
    #[arg(long, default_value = "root.linkerd.cluster.local")]
    name: String,
    /// Validity period, e.g. 87600h or 10years.
    #[arg(long, default_value = "87600h", value_parser = parse_duration)]
    lifetime: Duration,
    #[arg(long, default_value = "p256", value_parser = key_types())]
    key_type: KeyType,
}

#[derive(Debug, Args)]
struct IssuerArgs {
    /// The signing CA's certificate (PEM), usually the trust anchor.
    #[arg(long)]
    ca_cert: PathBuf,
    /// The signing CA's private key (PEM: PKCS#8, SEC1 or PKCS#1), or a PKCS#11 URI
    /// (`pkcs11:token=LABEL;object=NAME`) of a key in a token.
    #[arg(long)]
    ca_key: String,
    #[command(flatten)]
    out: OutputFiles,
    #[command(flatten)]
    hsm: hsm::HsmArgs,
    /// Subject common name.
    #[arg(long, default_value = "identity.linkerd.cluster.local")]
    name: String,
    /// Validity period, e.g. 8760h or 1year; clamped to the signing CA's notAfter.
    #[arg(long, default_value = "8760h", value_parser = parse_duration)]
    lifetime: Duration,
    /// How many CA levels may exist below the issuer (0: it signs leaves only).
    #[arg(long, default_value_t = 0)]
    path_len: u8,
    #[arg(long, default_value = "p256", value_parser = key_types())]
    key_type: KeyType,
}

pub fn run(args: CaArgs) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now();
    match args.command {
        CaCommand::Root(a) => root(a, now),
        CaCommand::Issuer(a) => issuer(a, now),
        CaCommand::Bundle(a) => bundle::run(a, now),
    }
}

fn root(args: RootArgs, now: SystemTime) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    check_lifetime(args.lifetime)?;
    args.out.prepare()?;
    let keys = args.hsm.resolver(args.out.key_uri().is_some())?;
    let key = hsm::new_key(keys.as_ref(), args.out.key_uri(), args.key_type)?;
    let material = new_root_with(&args.name, args.lifetime, key, now)
        .context("cannot create the trust anchor")?;
    args.out.write(&material.cert_pem, &material.key_pem)?;
    print_created("trust anchor", &args.out, &material.cert_pem, now)
}

fn issuer(args: IssuerArgs, now: SystemTime) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    check_lifetime(args.lifetime)?;
    args.out.prepare()?;
    let ca_cert_pem = read_text(&args.ca_cert, "--ca-cert")?;
    let ca_uri = external_reference(args.ca_key.as_bytes());
    let keys = args
        .hsm
        .resolver(ca_uri.is_some() || args.out.key_uri().is_some())?;
    let ca_key = match ca_uri {
        Some(uri) => CaKey::from_key_file(uri.as_bytes(), hsm::resolver(keys.as_ref()))
            .with_context(|| format!("--ca-key {uri}"))?,
        None => {
            let pem = read_text(Path::new(&args.ca_key), "--ca-key")?;
            CaKey::Local(
                key_pair_from_pem(pem.as_bytes())
                    .with_context(|| format!("--ca-key {}", args.ca_key))?,
            )
        }
    };
    let ca_chain = parse_pem_chain(ca_cert_pem.as_bytes()).map_err(|e| {
        anyhow::anyhow!(
            "--ca-cert {}: {e}; expected the PEM certificate of the signing CA",
            args.ca_cert.display()
        )
    })?;
    check_signing_ca(&args, &ca_chain[0], &ca_key, now)?;
    let key = hsm::new_key(keys.as_ref(), args.out.key_uri(), args.key_type)?;
    let material = new_issuer_with(
        &ca_cert_pem,
        ca_key,
        &args.name,
        args.lifetime,
        args.path_len,
        key,
        now,
    )
    .context("cannot create the issuer")?;
    if material.not_after < now + args.lifetime {
        warn_clamped(&args, &ca_chain[0], now);
    }
    // Intermediates between the signing CA and its root belong in the issuer's chain file.
    let mut cert_pem = material.cert_pem;
    for c in ca_chain.iter().filter(|c| !c.self_signed) {
        cert_pem.push_str(&to_pem(&c.der));
    }
    let resolver = hsm::resolver(keys.as_ref());
    self_check(&ca_chain, &cert_pem, &material.key_pem, resolver, now)?;
    args.out.write(&cert_pem, &material.key_pem)?;
    print_created("issuer", &args.out, &cert_pem, now)
}

/// The signing CA must be usable: its key, CA flags, validity and path length.
fn check_signing_ca(
    args: &IssuerArgs,
    ca: &CertInfo,
    key: &CaKey,
    now: SystemTime,
) -> anyhow::Result<()> {
    let (cert_path, key_path) = (args.ca_cert.display(), &args.ca_key);
    if key.public_key_raw() != ca.public_key.as_slice() {
        bail!(
            "--ca-key {key_path} does not belong to --ca-cert {cert_path}: pass the key created with that certificate"
        );
    }
    if !ca.is_ca || !ca.can_sign_certs {
        bail!(
            "--ca-cert {cert_path} ({}) is not a CA (needs CA:true and keyCertSign): pass the trust anchor made by `certmint ca root`",
            ca.subject
        );
    }
    if !ca.is_valid_at(now) {
        bail!(
            "--ca-cert {cert_path} ({}) is not valid now (valid {} to {}): create a new trust anchor with `certmint ca root`",
            ca.subject,
            fmt_time(ca.not_before),
            fmt_time(ca.not_after)
        );
    }
    match CertView::new(ca, now).path_len {
        Some(0) => bail!(
            "--ca-cert {cert_path} ({}) has path length 0: it may sign leaves only, not another CA",
            ca.subject
        ),
        Some(n) if u32::from(args.path_len) >= n => bail!(
            "--path-len {} is too large: the signing CA allows at most {} below the issuer",
            args.path_len,
            n - 1
        ),
        _ => Ok(()),
    }
}

fn warn_clamped(args: &IssuerArgs, ca: &CertInfo, now: SystemTime) {
    let left = certmint_core::digest::unix_seconds(ca.not_after)
        - certmint_core::digest::unix_seconds(now);
    eprintln!(
        "warning: --lifetime {} would outlive the signing CA {}; the issuer's notAfter is clamped to the CA's, {} ({} from now). Plan a new trust anchor.",
        duration_text(args.lifetime),
        ca.subject,
        fmt_time(ca.not_after),
        left_text(left)
    );
}

/// Re-checks what was signed, as `certmint serve` would, when the root is at hand.
fn self_check(
    ca_chain: &[CertInfo],
    cert_pem: &str,
    key_pem: &str,
    keys: &dyn KeyResolver,
    now: SystemTime,
) -> anyhow::Result<()> {
    let Some(root) = ca_chain.iter().find(|c| c.self_signed) else {
        return Ok(());
    };
    let anchors = TrustAnchors::from_pem(to_pem(&root.der).as_bytes(), now)?;
    let material = IssuerMaterial {
        cert_pem: cert_pem.as_bytes().to_vec(),
        key_pem: key_pem.as_bytes().to_vec(),
    };
    let naming = certmint_core::identity::Naming::new("linkerd", "cluster.local")?;
    Issuer::load_with(
        &material,
        &anchors,
        &certmint_core::ca::probe_names(&naming),
        now,
        keys,
    )
    .context("the new issuer failed validation (nothing was written)")?;
    Ok(())
}

fn print_created(
    what: &str,
    out: &OutputFiles,
    cert_pem: &str,
    now: SystemTime,
) -> anyhow::Result<ExitCode> {
    let info = &parse_pem_chain(cert_pem.as_bytes())?[0];
    let view = CertView::new(info, now);
    let private = match out.key_uri() {
        Some(uri) => format!("in the token: {uri} (sensitive, not extractable)"),
        None => format!("{} (PKCS#8 PEM, mode 0600)", out.key),
    };
    println!(
        "created {what} {}\n  issuer       {}\n  certificate  {}\n  private key  {private}\n  key          {}\n  CA           {}\n  valid until  {} ({})\n  sha256       {}",
        view.subject,
        view.issuer,
        out.cert.display(),
        view.key,
        view.ca_text(),
        view.not_after,
        view.left_text(),
        view.fingerprint_sha256
    );
    Ok(ExitCode::SUCCESS)
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if name.trim().is_empty() {
        bail!("--name must not be empty");
    }
    if name.chars().count() > MAX_CN_LEN {
        bail!("--name {name:?} is longer than X.509's {MAX_CN_LEN}-character limit for a CN");
    }
    Ok(())
}

fn check_lifetime(lifetime: Duration) -> anyhow::Result<()> {
    if lifetime.is_zero() || lifetime > MAX_LIFETIME {
        bail!("--lifetime must be more than 0 and at most 100 years (e.g. 8760h)");
    }
    Ok(())
}

/// Reads a PEM input named by `flag`.
fn read_text(path: &Path, flag: &str) -> anyhow::Result<String> {
    let bytes = read_bounded(path, MAX_PEM_BYTES)
        .with_context(|| format!("cannot read {flag} {}", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{flag} {} is not a PEM text file", path.display()))
}

/// `--key-type`: the key types `ca` can generate, listed in `--help`.
fn key_types() -> impl clap::builder::TypedValueParser<Value = KeyType> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(KeyType::NAMES).try_map(|s| s.parse::<KeyType>())
}
