//! An in-process certmint server on its own multi-thread runtime (2 workers, as on a 2-core
//! node), authenticating with TokenReview against the fake API server, which runs on a
//! thread of its own. Issuer and anchors come from files.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use certmint::app::Server;
use certmint::config::{AuthnMode, Config};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use super::fixtures::{Pki, SERVER_NAME};
use super::load;
use crate::CaFiles;
use crate::fake_kube::FakeKube;

/// The fake Kubernetes API server on a current-thread runtime in its own OS thread.
pub struct KubeThread {
    pub kube: FakeKube,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KubeThread {
    pub fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-kube".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake kube runtime");
                rt.block_on(async move {
                    let kube = FakeKube::start().await;
                    let _ = tx.send(kube.clone());
                    let _ = stopped.await;
                    kube.shutdown();
                });
            })
            .expect("fake kube thread");
        let kube = rx.recv().expect("fake kube started");
        KubeThread {
            kube,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for KubeThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running server and everything it depends on.
pub struct InProcess {
    pub kube: KubeThread,
    pub target: load::Target,
    rt: Option<Runtime>,
    server: Option<Server>,
    _files: CaFiles,
}

impl InProcess {
    /// Starts certmint (TLS or plaintext) with `tweak` applied to its config, and waits
    /// until it is ready.
    pub fn start(pki: &Pki, tls: bool, tweak: impl FnOnce(&mut Config)) -> Self {
        let kube = KubeThread::start();
        let files = pki.files();
        let kubeconfig: PathBuf = files.dir.path().join("kubeconfig");
        kube.kube.write_kubeconfig(&kubeconfig);
        let mut c = files.config();
        c.issuer.reload_interval = Duration::from_secs(60);
        c.trust_anchors.reload_interval = Duration::from_secs(60);
        c.authn.mode = AuthnMode::Kubernetes;
        c.kubeconfig = Some(kubeconfig);
        c.tls.enabled = tls;
        tweak(&mut c);
        let rt = certmint::runtime::build().expect("server runtime");
        let server = rt.block_on(Server::start(c)).expect("certmint starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Err(why) = server.readiness.check() {
            assert!(Instant::now() < deadline, "certmint not ready: {why}");
            std::thread::sleep(Duration::from_millis(5));
        }
        let target = load::Target {
            addr: server.grpc_addr,
            tls: tls.then(|| (pki.root.cert_pem.clone(), SERVER_NAME.to_owned())),
        };
        InProcess {
            kube,
            target,
            rt: Some(rt),
            server: Some(server),
            _files: files,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let (Some(rt), Some(server)) = (self.rt.take(), self.server.take()) else {
            return;
        };
        let _ = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), server.shutdown()).await
        });
        rt.shutdown_timeout(Duration::from_secs(1));
    }
}
