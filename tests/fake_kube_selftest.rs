//! Checks the fake Kubernetes API server with the real `kube` client, reached through the
//! kubeconfig the fake writes.

use certmint_testsupport::fake_kube;

use std::{collections::BTreeMap, future::Future, time::Duration};

use fake_kube::{FakeKube, Fault, RequestKind};
use futures::{StreamExt, future::join_all};
use k8s_openapi::api::{
    apps::v1::Deployment,
    authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus},
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    core::v1::{ConfigMap, Node, ObjectReference, Pod, Secret, ServiceAccount},
};
use kube::{
    Api, Client, Config,
    api::{ListParams, PostParams, WatchEvent, WatchParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{
        WatchStreamExt,
        events::{Event, EventType, Recorder, Reporter},
        watcher,
    },
};
use rustls_pki_types::{CertificateDer, pem::PemObject};
use std::sync::Arc;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};

const WAIT: Duration = Duration::from_secs(20);
const L5D: &str = "identity.l5d.io";
const HOUR: Duration = Duration::from_secs(3600);

/// Starts a fake and a client built from the kubeconfig file it writes.
async fn start() -> (FakeKube, Client) {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&path);
    let kubeconfig = Kubeconfig::read_from(&path).expect("read kubeconfig");
    let options = KubeConfigOptions::default();
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("config from kubeconfig");
    (fake, Client::try_from(config).expect("client"))
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn review(client: &Client, token: &str, audiences: &[&str]) -> TokenReviewStatus {
    let api: Api<TokenReview> = Api::all(client.clone());
    let review = token_review(token, audiences);
    let created = api.create(&PostParams::default(), &review).await;
    created.expect("TokenReview").status.expect("status")
}

fn token_review(token: &str, audiences: &[&str]) -> TokenReview {
    let audiences = audiences.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    TokenReview {
        spec: TokenReviewSpec {
            token: token.to_string(),
            audiences: (!audiences.is_empty()).then_some(audiences),
        },
        ..Default::default()
    }
}

fn api_error_code(result: Result<impl std::fmt::Debug, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn error_of(status: &TokenReviewStatus) -> &str {
    assert_ne!(status.authenticated, Some(true), "{status:?}");
    status.error.as_deref().unwrap_or_default()
}

#[tokio::test]
async fn rejects_requests_without_the_kubeconfig_token() {
    let (fake, _) = start().await;
    for token in [Some("wrong"), None] {
        let mut config = fake.kube_config();
        config.auth_info.token = token.map(|t| t.to_string().into());
        let secrets: Api<Secret> = Api::namespaced(Client::try_from(config).unwrap(), "default");
        assert_eq!(api_error_code(secrets.get("any").await), 401);
    }
    assert_eq!(fake.request_count(RequestKind::Unauthorized), 2);
    assert_eq!(fake.request_count(RequestKind::SecretGet), 0);
}

#[tokio::test]
async fn token_review_verifies_minted_tokens() {
    let (fake, client) = start().await;
    let token = fake.mint_token("shop", "web", &[L5D, "other"], HOUR);
    let ok = review(&client, &token, &[L5D]).await;
    assert_eq!(ok.authenticated, Some(true), "{ok:?}");
    let user = ok.user.expect("user");
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:shop:web")
    );
    let groups = user.groups.unwrap_or_default();
    assert!(groups.contains(&"system:serviceaccounts:shop".to_string()));
    assert_eq!(ok.audiences, Some(vec![L5D.to_string()]));

    let wrong = review(&client, &token, &["someone-else"]).await;
    assert!(error_of(&wrong).contains("token audiences"), "{wrong:?}");

    let expired = fake.mint_expired_token("shop", "web", &[L5D]);
    let expired = review(&client, &expired, &[L5D]).await;
    assert!(error_of(&expired).contains("expired"), "{expired:?}");

    let foreign = fake.mint_foreign_token("shop", "web", &[L5D], HOUR);
    assert!(!error_of(&review(&client, &foreign, &[L5D]).await).is_empty());
    assert!(!error_of(&review(&client, "garbage", &[L5D]).await).is_empty());
    assert_eq!(fake.request_count(RequestKind::TokenReview), 5);
}

#[tokio::test]
async fn token_review_of_legacy_tokens_needs_the_api_audience() {
    let (fake, client) = start().await;
    let legacy = fake.mint_legacy_token("shop", "web");
    let with_audience = review(&client, &legacy, &[L5D]).await;
    assert!(
        error_of(&with_audience).contains("token audiences"),
        "{with_audience:?}"
    );

    let without = review(&client, &legacy, &[]).await;
    assert_eq!(without.authenticated, Some(true), "{without:?}");
    let username = without.user.and_then(|u| u.username);
    assert_eq!(username.as_deref(), Some("system:serviceaccount:shop:web"));
    assert_eq!(without.audiences, Some(vec![fake_kube::ISSUER.to_string()]));
}

fn tls_data(generation: &str) -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        (
            "tls.crt".to_string(),
            format!("cert {generation}").into_bytes(),
        ),
        (
            "tls.key".to_string(),
            format!("key {generation}").into_bytes(),
        ),
    ])
}

#[tokio::test]
async fn serves_secrets_and_configmaps() {
    let (fake, client) = start().await;
    fake.put_secret("certmint", "issuer", "kubernetes.io/tls", tls_data("1"));
    fake.put_secret("certmint", "other", "Opaque", tls_data("x"));
    let anchors = BTreeMap::from([("ca-bundle.crt".to_string(), "roots".to_string())]);
    fake.put_configmap("certmint", "anchors", anchors);

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "certmint");
    let issuer = secrets.get("issuer").await.expect("get issuer");
    assert_eq!(issuer.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(issuer.data.unwrap()["tls.crt"].0, b"cert 1");
    let by_name = ListParams::default().fields("metadata.name=issuer");
    let list = secrets.list(&by_name).await.expect("list");
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());
    assert_eq!(
        secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    assert_eq!(api_error_code(secrets.get("missing").await), 404);
    // Equality label selectors only; set-based ones are refused, not ignored.
    let count = async |selector: &str| {
        let by_label = ListParams::default().labels(selector);
        secrets.list(&by_label).await.map(|l| l.items.len())
    };
    assert_eq!(count("app=certmint").await.unwrap(), 0);
    assert_eq!(count("app!=certmint").await.unwrap(), 2);
    assert_eq!(api_error_code(count("app in (certmint)").await), 400);
    let by_data = ListParams::default().fields("data.tls.crt=x");
    assert_eq!(api_error_code(secrets.list(&by_data).await), 400);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "certmint");
    assert_eq!(api_error_code(pods.get("web").await), 404);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "certmint");
    assert_eq!(api_error_code(deployments.get("web").await), 404);

    let maps: Api<ConfigMap> = Api::namespaced(client, "certmint");
    let bundle = maps
        .get("anchors")
        .await
        .expect("get anchors")
        .data
        .unwrap();
    assert_eq!(bundle["ca-bundle.crt"], "roots");
    assert_eq!(fake.request_count(RequestKind::SecretGet), 2);
    assert_eq!(
        fake.request_count(RequestKind::SecretList),
        6,
        "four answered, two rejected"
    );
    assert_eq!(fake.request_count(RequestKind::ConfigMapGet), 1);
}

#[tokio::test]
async fn a_pods_service_account_and_node_exist_and_can_be_recreated_or_deleted() {
    let (fake, client) = start().await;
    fake.put_pod("shop", "web-0", "web", "node-a");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "shop");
    let nodes: Api<Node> = Api::all(client.clone());
    let uid = |m: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| m.uid.unwrap();
    let sa = uid(accounts.get_metadata("web").await.expect("get sa").metadata);
    let node = uid(nodes.get("node-a").await.expect("get node").metadata);
    assert_eq!(Some(sa.clone()), fake.service_account_uid("shop", "web"));
    assert_eq!(Some(node.clone()), fake.node_uid("node-a"));
    // Another pod of the same account and node leaves them as they are.
    fake.put_pod("shop", "web-1", "web", "node-a");
    assert_eq!(fake.service_account_uid("shop", "web"), Some(sa.clone()));

    let new_sa = fake.recreate_service_account("shop", "web");
    assert_ne!(new_sa, sa);
    assert_eq!(uid(accounts.get("web").await.unwrap().metadata), new_sa);
    let new_node = fake.recreate_node("node-a");
    assert_eq!(
        uid(nodes.get_metadata("node-a").await.unwrap().metadata),
        new_node
    );
    assert!(fake.delete_service_account("shop", "web") && fake.delete_node("node-a"));
    assert!(accounts.get_opt("web").await.unwrap().is_none());
    assert!(nodes.get_opt("node-a").await.unwrap().is_none());
    let listed = nodes.list(&ListParams::default()).await.unwrap();
    assert!(listed.items.is_empty());
    assert_eq!(fake.request_count(RequestKind::ServiceAccountGet), 3);
    assert_eq!(fake.request_count(RequestKind::NodeGet), 3);

    fake.put_pod("shop", "web-2", "web", "node-a");
    fake.set_get_fault("serviceaccounts", Some(Fault::Status(500)));
    assert_eq!(api_error_code(accounts.get("web").await), 500);
    assert!(
        nodes.get("node-a").await.is_ok(),
        "only the named resource fails"
    );
    fake.set_get_fault("serviceaccounts", None);
    assert_eq!(uid(accounts.get("web").await.unwrap().metadata), sa);
}

/// An issuer watcher as certmint runs it (field selector on the name, default backoff),
/// polled by its own task so it keeps running while the test waits on the fake.
fn issuer_watch(client: &Client) -> mpsc::UnboundedReceiver<Secret> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "certmint");
    let config = watcher::Config::default().fields("metadata.name=issuer");
    let mut objects = watcher(secrets, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(item) = objects.next().await {
            // Errors are the watcher reporting a fault it recovers from: never stop on one.
            if let Ok(secret) = item
                && tx.send(secret).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// Waits until the watcher delivers the issuer at `generation`.
async fn sees(objects: &mut mpsc::UnboundedReceiver<Secret>, generation: &str) {
    let want = format!("cert {generation}").into_bytes();
    within(&format!("issuer generation {generation}"), async {
        while let Some(secret) = objects.recv().await {
            if secret.data.as_ref().is_some_and(|d| d["tls.crt"].0 == want) {
                return;
            }
        }
        panic!("watch stream ended");
    })
    .await;
}

/// Starts a watcher, checks it follows updates, applies `fault`, then checks it sees the
/// next update once the watch is re-established: after exactly one re-list when `relist`
/// (else resuming from its resourceVersion), and after `new_watches` more watch requests.
async fn watcher_survives(fault: impl FnOnce(&FakeKube), relist: bool, new_watches: u64) {
    let (fake, client) = start().await;
    fake.put_secret("certmint", "issuer", "kubernetes.io/tls", tls_data("1"));
    let mut stream = issuer_watch(&client);
    sees(&mut stream, "1").await;
    assert!(
        fake.wait_for_requests(RequestKind::SecretWatch, 1, WAIT)
            .await
    );
    fake.put_secret("certmint", "issuer", "kubernetes.io/tls", tls_data("2"));
    sees(&mut stream, "2").await;

    let (watches, lists) = (
        fake.request_count(RequestKind::SecretWatch),
        fake.request_count(RequestKind::SecretList),
    );
    fault(&fake);
    let expected_lists = lists + u64::from(relist);
    let relisted = fake.wait_for_requests(RequestKind::SecretList, expected_lists, WAIT);
    assert!(relisted.await, "the watcher did not list again");
    let rewatched = fake.wait_for_requests(RequestKind::SecretWatch, watches + new_watches, WAIT);
    assert!(rewatched.await, "the watcher did not watch again");
    fake.put_secret("certmint", "issuer", "kubernetes.io/tls", tls_data("3"));
    sees(&mut stream, "3").await;
    let lists_now = fake.request_count(RequestKind::SecretList);
    assert_eq!(
        lists_now, expected_lists,
        "resumed from its resourceVersion or re-listed once"
    );
}

#[tokio::test]
async fn watcher_survives_dropped_watches() {
    watcher_survives(|fake| fake.drop_watches(), false, 1).await;
}

#[tokio::test]
async fn watcher_relists_after_a_410_event() {
    watcher_survives(
        |fake| {
            fake.fail_next_watch_with_gone();
            fake.drop_watches();
        },
        true,
        2,
    )
    .await;
}

#[tokio::test]
async fn watcher_recovers_from_an_http_410() {
    watcher_survives(
        |fake| {
            fake.fail_next_watch_with_http_gone();
            fake.drop_watches();
        },
        false,
        2,
    )
    .await;
}

#[tokio::test]
async fn watcher_relists_when_its_resource_version_was_compacted() {
    watcher_survives(
        |fake| {
            // A change the watcher does not see moves the revision past its resourceVersion
            // (no await here, so no bookmark can tell it); then that revision is compacted.
            fake.put_secret("certmint", "other", "Opaque", tls_data("x"));
            fake.compact_history();
            fake.drop_watches();
        },
        true,
        2,
    )
    .await;
}

#[tokio::test]
async fn records_events_from_the_kube_recorder() {
    let (fake, client) = start().await;
    let reporter = Reporter {
        controller: "certmint".to_string(),
        instance: None,
    };
    let recorder = Recorder::new(client, reporter);
    let secret = ObjectReference {
        api_version: Some("v1".to_string()),
        kind: Some("Secret".to_string()),
        namespace: Some("certmint".to_string()),
        name: Some("issuer".to_string()),
        ..Default::default()
    };
    let event = |type_, reason: &str| Event {
        type_,
        reason: reason.to_string(),
        note: Some(format!("{reason} for the test")),
        action: "Reload".to_string(),
        secondary: None,
    };
    let updated = event(EventType::Normal, "IssuerUpdated");
    recorder.publish(&updated, &secret).await.expect("publish");
    recorder
        .publish(&updated, &secret)
        .await
        .expect("publish repeat");
    let skipped = event(EventType::Warning, "IssuerUpdateSkipped");
    recorder
        .publish(&skipped, &secret)
        .await
        .expect("publish warning");

    let events = fake.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0]["reason"], "IssuerUpdated");
    assert_eq!(events[0]["series"]["count"], 2);
    assert_eq!(events[0]["regarding"]["name"], "issuer");
    assert_eq!(events[1]["type"], "Warning");
    assert_eq!(events[1]["apiVersion"], "events.k8s.io/v1");
    assert_eq!(fake.request_count(RequestKind::EventCreate), 2);
    assert_eq!(fake.request_count(RequestKind::EventPatch), 1);
}

#[tokio::test]
async fn answers_self_subject_access_reviews() {
    let (fake, client) = start().await;
    let api: Api<SelfSubjectAccessReview> = Api::all(client);
    let question = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some("authentication.k8s.io".to_string()),
                resource: Some("tokenreviews".to_string()),
                verb: Some("create".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let allowed = api.create(&PostParams::default(), &question).await.unwrap();
    assert!(allowed.status.unwrap().allowed);
    fake.set_ssar_allowed(false);
    let denied = api.create(&PostParams::default(), &question).await.unwrap();
    assert!(!denied.status.unwrap().allowed);
    assert_eq!(fake.request_count(RequestKind::SelfSubjectAccessReview), 2);
}

#[tokio::test]
async fn token_review_faults_500_and_429() {
    let (fake, client) = start().await;
    let token = fake.mint_token("shop", "web", &[L5D], HOUR);
    let api: Api<TokenReview> = Api::all(client.clone());
    let post = PostParams::default();

    fake.set_token_review_fault(Some(Fault::Status(500)));
    assert_eq!(
        api_error_code(api.create(&post, &token_review(&token, &[L5D])).await),
        500
    );
    assert_eq!(
        fake.request_count(RequestKind::TokenReview),
        1,
        "500 is not retried"
    );

    // kube retries 429 by itself (honouring Retry-After: 1): watch the retries arrive.
    fake.set_token_review_fault(Some(Fault::Status(429)));
    let pending = tokio::spawn({
        let (api, review) = (api.clone(), token_review(&token, &[L5D]));
        async move { api.create(&PostParams::default(), &review).await }
    });
    assert!(
        fake.wait_for_requests(RequestKind::TokenReview, 3, WAIT)
            .await
    );
    pending.abort();
    // Without kube's retry layer the 429 surfaces at once.
    let mut config = fake.kube_config();
    config.default_retry = false;
    let no_retry: Api<TokenReview> = Api::all(Client::try_from(config).unwrap());
    let throttled = no_retry.create(&post, &token_review(&token, &[L5D])).await;
    assert_eq!(api_error_code(throttled), 429);

    fake.set_token_review_fault(None);
    assert_eq!(
        review(&client, &token, &[L5D]).await.authenticated,
        Some(true)
    );
}

#[tokio::test]
async fn injects_latency() {
    let (fake, client) = start().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    fake.set_latency(Duration::from_millis(300));
    let started = tokio::time::Instant::now();
    let _ = secrets.get_opt("issuer").await.expect("get");
    assert!(started.elapsed() >= Duration::from_millis(300));
    fake.set_latency(Duration::ZERO);

    fake.set_token_review_latency(Duration::from_millis(300));
    let token = fake.mint_token("shop", "web", &[L5D], HOUR);
    let started = tokio::time::Instant::now();
    review(&client, &token, &[L5D]).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_token_reviews_in_flight() {
    let (fake, client) = start().await;
    fake.set_token_review_latency(Duration::from_millis(50));
    let token = fake.mint_token("shop", "web", &[L5D], HOUR);
    let reviews = (0..20).map(|_| review(&client, &token, &[L5D]));
    let results = within("20 concurrent reviews", join_all(reviews)).await;
    assert!(results.iter().all(|s| s.authenticated == Some(true)));
    let max = fake.token_review_max_in_flight();
    assert!((2..=20).contains(&max), "max in flight {max}");
    assert_eq!(fake.request_count(RequestKind::TokenReview), 20);
}

#[tokio::test]
async fn watch_sends_bookmarks_and_ends_at_its_timeout() {
    let (fake, client) = start().await;
    fake.set_bookmark_interval(Duration::from_millis(100));
    let rv = fake.put_secret("certmint", "issuer", "kubernetes.io/tls", tls_data("1"));
    let secrets: Api<Secret> = Api::namespaced(client, "certmint");
    let params = WatchParams::default()
        .fields("metadata.name=issuer")
        .timeout(1);
    let stream = secrets.watch(&params, &rv).await.expect("watch");
    fake.put_secret("certmint", "other", "Opaque", tls_data("x"));
    let rv2 = fake.put_secret("certmint", "issuer", "kubernetes.io/tls", tls_data("2"));
    let events = within("the watch timeout", stream.collect::<Vec<_>>()).await;

    let events: Vec<_> = events
        .into_iter()
        .map(|e| e.expect("watch event"))
        .collect();
    let modified: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Modified(s) => s.metadata.resource_version.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(modified, vec![rv2.clone()], "{events:?}");
    let bookmarks: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Bookmark(b) => b.metadata.resource_version.parse().ok(),
            _ => None,
        })
        .collect();
    assert!(bookmarks.len() >= 2, "{events:?}");
    assert!(*bookmarks.last().unwrap() >= rv2.parse::<u64>().unwrap());
    assert_eq!(events.len(), modified.len() + bookmarks.len(), "{events:?}");
}

#[tokio::test]
async fn drop_watches_cuts_the_connection_without_close_notify() {
    let (fake, _) = start().await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(fake.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let address = fake.url().trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let request = format!(
        "GET /api/v1/namespaces/certmint/secrets?watch=true HTTP/1.1\r\nHost: fake\r\n\
         Authorization: Bearer {}\r\n\r\n",
        fake.admin_token()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = vec![0; 16384];
    fake.put_secret("certmint", "issuer", "kubernetes.io/tls", tls_data("1"));
    while !String::from_utf8_lossy(&received).contains("\"type\":\"ADDED\"") {
        let n = within("the ADDED event", tls.read(&mut buffer))
            .await
            .unwrap();
        received.extend_from_slice(&buffer[..n]);
    }

    fake.drop_watches();
    let end = loop {
        match within("the cut", tls.read(&mut buffer)).await {
            Ok(0) => break None,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) => break Some(e),
        }
    };
    let error = end.expect("the connection ended with a TLS close_notify");
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error}");
    let text = String::from_utf8_lossy(&received);
    assert!(
        !text.contains("\r\n0\r\n\r\n"),
        "a clean end of the chunked body: {text}"
    );
}

#[tokio::test]
async fn shutdown_cuts_pooled_connections() {
    let (fake, client) = start().await;
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    assert!(secrets.get_opt("x").await.expect("first request").is_none());
    fake.shutdown();
    let after = within("a request after shutdown", secrets.get_opt("x")).await;
    assert!(
        matches!(after, Err(ref e) if !matches!(e, kube::Error::Api(_))),
        "{after:?}"
    );
}

#[tokio::test]
async fn seeds_objects_from_a_directory() {
    let (fake, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let issuer = dir.path().join("certmint/secrets/issuer");
    let anchors = dir.path().join("certmint/configmaps/anchors");
    std::fs::create_dir_all(&issuer).unwrap();
    std::fs::create_dir_all(&anchors).unwrap();
    for (key, value) in tls_data("1") {
        std::fs::write(issuer.join(key), value).unwrap();
    }
    std::fs::write(anchors.join("ca-bundle.crt"), "roots").unwrap();
    assert_eq!(fake.seed_from_dir(dir.path()).unwrap(), 2);
    assert_eq!(
        fake.seed_from_dir(dir.path()).unwrap(),
        0,
        "nothing changed"
    );
    std::fs::write(issuer.join("tls.crt"), "cert 2").unwrap();
    assert_eq!(fake.seed_from_dir(dir.path()).unwrap(), 1);

    let secret = Api::<Secret>::namespaced(client.clone(), "certmint")
        .get("issuer")
        .await
        .unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(secret.data.unwrap()["tls.crt"].0, b"cert 2");

    // Pods: a JSON file merged over a running pod; removing the file deletes the pod.
    let pods_dir = dir.path().join("shop/pods");
    std::fs::create_dir_all(&pods_dir).unwrap();
    let env = r#"{"spec": {"serviceAccountName": "web", "containers": [{"name": "linkerd-proxy",
        "env": [{"name": "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", "value": "pem"}]}]}}"#;
    std::fs::write(pods_dir.join("web-1.json"), env).unwrap();
    assert_eq!(fake.seed_from_dir(dir.path()).unwrap(), 1);
    assert_eq!(fake.seed_from_dir(dir.path()).unwrap(), 0);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let pod = pods.get("web-1").await.unwrap();
    let spec = pod.spec.unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("web"));
    assert_eq!(spec.node_name.as_deref(), Some("node-1"));
    assert_eq!(
        spec.containers[0].env.as_ref().unwrap()[0].value.as_deref(),
        Some("pem")
    );
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(status.start_time.is_some());
    fake.put_pod("shop", "by-test", "web", "node-1");
    std::fs::remove_file(pods_dir.join("web-1.json")).unwrap();
    assert_eq!(fake.seed_from_dir(dir.path()).unwrap(), 1);
    assert!(pods.get_opt("web-1").await.unwrap().is_none());
    assert!(
        pods.get_opt("by-test").await.unwrap().is_some(),
        "a pod not loaded from a file stays"
    );
}

/// Runs a fake API server until interrupted, to try `certmint serve` against it by hand:
/// `FAKE_KUBE_DIR=/tmp/fake-kube cargo test --test fake_kube_selftest -- --ignored --nocapture`.
/// Writes `kubeconfig`, `token` (a projected token for `shop/web`, audience
/// `identity.l5d.io`, valid 24 h), `token-istio` (`demo/app`, audience `istio-ca`) and
/// `sa.pub` (the token signing key) into the directory, and loads `objects/`
/// (`<ns>/secrets/<name>/<key>`, `<ns>/configmaps/<name>/<key>`, `<ns>/pods/<name>.json`)
/// every second, so editing those files changes the objects.
#[tokio::test]
#[ignore = "runs until interrupted; for trying certmint against the fake by hand"]
async fn run_fake_api_server_by_hand() {
    let dir = std::env::var("FAKE_KUBE_DIR").unwrap_or_else(|_| "/tmp/fake-kube".to_string());
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(dir.join("objects")).unwrap();
    let fake = FakeKube::start().await;
    fake.write_kubeconfig(&dir.join("kubeconfig"));
    let day = Duration::from_secs(24 * 3600);
    std::fs::write(
        dir.join("token"),
        fake.mint_token("shop", "web", &[L5D], day),
    )
    .unwrap();
    std::fs::write(
        dir.join("token-istio"),
        fake.mint_token("demo", "app", &["istio-ca"], day),
    )
    .unwrap();
    std::fs::write(dir.join("sa.pub"), fake.service_account_public_key_pem()).unwrap();
    println!(
        "fake API server at {}; KUBECONFIG={}/kubeconfig",
        fake.url(),
        dir.display()
    );
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = every_second.tick() => match fake.seed_from_dir(&dir.join("objects")) {
                Ok(0) => {}
                Ok(changed) => println!("loaded {changed} changed object(s)"),
                Err(e) => eprintln!("cannot load {}/objects: {e}", dir.display()),
            },
        }
    }
}

/// The resource names `GET /apis/certificates.k8s.io/VERSION` lists, or the error code.
async fn certificate_resources(client: &Client, version: &str) -> Result<Vec<String>, u16> {
    let listed = client
        .list_api_group_resources(&format!("certificates.k8s.io/{version}"))
        .await;
    match listed {
        Ok(list) => Ok(list.resources.into_iter().map(|r| r.name).collect()),
        Err(e) => Err(api_error_code(Err::<(), _>(e))),
    }
}

fn certificate_api(client: &Client, version: &str) -> Api<kube::api::DynamicObject> {
    let gvk =
        kube::core::GroupVersionKind::gvk("certificates.k8s.io", version, "PodCertificateRequest");
    let resource = kube::core::ApiResource::from_gvk_with_plural(&gvk, "podcertificaterequests");
    Api::namespaced_with(client.clone(), "shop", &resource)
}

#[tokio::test]
async fn certificate_discovery_and_paths_follow_the_served_versions() {
    let (fake, client) = start().await;
    let v1 = certificate_resources(&client, "v1").await.unwrap();
    assert!(v1.contains(&"podcertificaterequests".to_owned()), "{v1:?}");
    assert_eq!(certificate_resources(&client, "v1beta1").await, Err(404));

    fake.serve_certificate_versions(fake_kube::CertificateVersions::V1beta1);
    let v1 = certificate_resources(&client, "v1").await.unwrap();
    assert_eq!(v1, ["certificatesigningrequests"]);
    let beta = certificate_resources(&client, "v1beta1").await.unwrap();
    for name in ["podcertificaterequests", "clustertrustbundles"] {
        assert!(beta.contains(&name.to_owned()), "{beta:?}");
    }
    fake.put_pod("shop", "web-0", "web", "node-a");
    fake.create_pod_certificate_request(&fake_kube::PodCertRequest {
        namespace: "shop".into(),
        name: "r".into(),
        signer_name: "certmint.io/spiffe".into(),
        pod_name: "web-0".into(),
        pod_uid: fake.pod_uid("shop", "web-0"),
        service_account: "web".into(),
        node_name: "node-a".into(),
        max_expiration_seconds: None,
        stub_csr: vec![0x30, 0],
        annotations: BTreeMap::new(),
    });
    let listed = certificate_api(&client, "v1beta1")
        .list(&ListParams::default())
        .await
        .unwrap();
    let types = listed.items[0].types.clone().unwrap();
    assert_eq!(types.api_version, "certificates.k8s.io/v1beta1");
    let v1_list = certificate_api(&client, "v1")
        .list(&ListParams::default())
        .await;
    assert_eq!(api_error_code(v1_list), 404);
}
