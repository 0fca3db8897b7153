//! Pod certificates at a node pool's cold start (issue 23): N PodCertificateRequests
//! created at once against the fake API server, one certmint replica signing them with
//! its write budget. Reports the time until all are Issued, the rate against the budget
//! (target ≥ 0.9 × write_qps once the burst is spent) and checks that no request was lost
//! or written twice.
//!
//! `cargo bench --bench podcert [-- --requests N] [--qps Q] [--burst B]`

use certmint_testsupport as common;
use certmint_testsupport::fake_kube;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{CaFiles, install_crypto, start_ready};
use fake_kube::{FakeKube, PodCertRequest, RequestKind};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    install_crypto();
    let n = arg("--requests", 10_000);
    let qps = arg("--qps", 500) as u32;
    let burst = arg("--burst", 100) as u32;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run(n, qps, burst));
}

async fn run(n: u64, qps: u32, burst: u32) {
    let kube = FakeKube::start().await;
    kube.put_pod("shop", "web-0", "web", "node-a");
    let files = CaFiles::with_fresh_ca();
    let mut c = files.config();
    c.kubeconfig = Some(files.kubeconfig(|p| kube.write_kubeconfig(p)));
    c.pod_certificates.enabled = true;
    c.pod_certificates.write_qps = qps;
    c.pod_certificates.write_burst = burst;
    c.pod_certificates.workers = 16;
    let _server = start_ready(c).await;
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    let stub = p.serialize_request(&key).expect("csr").der().to_vec();
    let uid = kube.pod_uid("shop", "web-0");
    let start = Instant::now();
    for i in 0..n {
        kube.create_pod_certificate_request(&PodCertRequest {
            namespace: "shop".into(),
            name: format!("cold-{i}"),
            signer_name: "certmint.io/spiffe".into(),
            pod_name: "web-0".into(),
            pod_uid: uid.clone(),
            service_account: "web".into(),
            node_name: "node-a".into(),
            max_expiration_seconds: None,
            stub_csr: stub.clone(),
            annotations: BTreeMap::new(),
        });
    }
    let created = start.elapsed();
    let issued = |k: &FakeKube| {
        k.pod_certificate_requests()
            .iter()
            .filter(|o| o["status"]["conditions"][0]["type"] == "Issued")
            .count() as u64
    };
    let deadline = Instant::now() + Duration::from_secs(n / u64::from(qps.max(1)) * 3 + 120);
    while issued(&kube) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = start.elapsed();
    let done = issued(&kube);
    let writes = kube.request_count(RequestKind::PodCertificateStatusWrite);
    let budget_floor = (n.saturating_sub(u64::from(burst))) as f64 / f64::from(qps);
    let rate = done as f64 / took.as_secs_f64();
    println!("pod certificates: {n} requests created in {created:.2?}");
    println!(
        "  all issued: {} ({done}/{n}) in {took:.2?}",
        if done == n { "yes" } else { "NO" }
    );
    println!(
        "  rate: {rate:.0}/s against a write budget of {qps}/s (burst {burst}); the budget alone allows it in {budget_floor:.1}s"
    );
    let ratio = budget_floor / took.as_secs_f64();
    println!(
        "  budget use: {ratio:.2} (target >= 0.9) {}",
        if ratio >= 0.9 { "PASS" } else { "FAIL" }
    );
    println!(
        "  status writes: {writes} (one per request: {})",
        if writes == n { "yes" } else { "NO" }
    );
}
