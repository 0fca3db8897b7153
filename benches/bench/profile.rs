//! `--profile CASE`: one case in a loop with no timing windows or report, so that `perf
//! record` or `valgrind --tool=callgrind` see little but the code under study.

use std::time::{Duration, Instant};

use super::args::Options;
use super::e2e;
use super::fixtures::{self, NS, Pki, SA};
use super::load::{self, Spec};
use super::pipeline::{certifier_step, core_step};
use super::server::InProcess;
use crate::common::AUDIENCE;

pub fn run(opts: &Options, case: &str) -> Result<(), String> {
    super::init_logging(&super::workdir().join("profile.log"));
    let pki = Pki::new();
    let n = opts.count;
    let csrs = fixtures::csr_pool(&fixtures::identity(), n.min(1000));
    let start = Instant::now();
    match case {
        "pipeline" => (0..n).for_each({
            let mut step = core_step(&pki, &csrs);
            move |_| step()
        }),
        "certifier" => (0..n).for_each({
            let mut step = certifier_step(&pki, &csrs);
            move |_| step()
        }),
        "plaintext" | "tls" | "audit" | "istio" | "hsm" => {
            // `audit`: plaintext with the audit trail as the e2e section runs it; `istio`:
            // plaintext through Istio's CreateCertificate.
            let audit_dir = tempfile::tempdir().expect("audit dir");
            let env = InProcess::start(&pki, case == "tls", |c| {
                if case == "audit" {
                    e2e::audit_on(c, audit_dir.path());
                }
                if case == "hsm" {
                    let soft = crate::common::softhsm::softhsm().expect("SoftHSM2 installed");
                    e2e::hsm_on(c, soft, &pki);
                }
                c.istio.enabled = case == "istio";
            });
            let aud = if case == "istio" {
                "istio-ca"
            } else {
                AUDIENCE
            };
            let token = env
                .kube
                .kube
                .mint_token(NS, SA, &[aud], Duration::from_secs(3600));
            let pool = match case {
                "istio" => fixtures::istio_csr_pool(n.min(1000)),
                _ => csrs.clone(),
            };
            let out = load::run(&Spec {
                target: env.target.clone(),
                identity: fixtures::identity(),
                token: token.into_bytes(),
                csrs: &pool,
                istio: case == "istio",
                first_csr: 0,
                requests: n,
                warmup: 100,
                concurrency: 64,
                conns: 1,
                time_cap: None,
            });
            eprintln!("{} ok, {} errors, {:.0}/s", out.ok, out.errors, out.rate());
        }
        "hsm-sign" | "memory-sign" => sign_only(case == "hsm-sign", n),
        other => return Err(format!("unknown --profile case {other:?}")),
    }
    eprintln!("{case}: {n} iterations in {:.2?}", start.elapsed());
    Ok(())
}

/// Issuer-key signatures alone, from one thread per CPU: SoftHSM through certmint's session
/// pool (`hsm-sign`) or aws-lc in memory (`memory-sign`), to see what a signature costs
/// apart from the rest of Certify.
fn sign_only(hsm: bool, n: usize) {
    use certmint_core::ca::{CaKey, ExternalKey};
    use rcgen::SigningKey;
    let key: CaKey = match hsm {
        true => {
            use crate::common::softhsm::{config, key_uri, softhsm};
            let soft = softhsm().expect("SoftHSM2 installed");
            let token = soft.token("sign");
            let keys =
                certmint_hsm::HsmKeys::new(&config(soft, &soft.pin_file), Default::default())
                    .expect("SoftHSM");
            let key = keys
                .generate(&key_uri(&token, "k"), certmint_hsm::Curve::P256)
                .expect("key");
            CaKey::External(std::sync::Arc::new(key) as std::sync::Arc<dyn ExternalKey>)
        }
        false => CaKey::Local(rcgen::KeyPair::generate().expect("key")),
    };
    let threads = std::thread::available_parallelism().map_or(2, |t| t.get());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for i in 0..n / threads {
                    key.sign(format!("tbs {i}").as_bytes()).expect("signature");
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{} signatures on {threads} threads: {:.0}/s ({:.1} µs of wall time per signature per thread)",
        n,
        n as f64 / secs,
        secs * 1e6 * threads as f64 / n as f64
    );
}
