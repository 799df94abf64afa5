//! NATS-only behaviour against a real nats-server: frozen and killed servers, operators deleting
//! consumers, auth and TLS, redaction, stream ownership, idempotent publish.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use herald::testing::RecordingReporter;
use herald::{Coordinator, CoordinatorEvent, ErrorKind, EventKind, NatsOptions, ResubscribeCause};

use crate::support::client::{fast_options, Operator};
use crate::support::nats_server::{generate_test_certs, ServerConfig};
use crate::support::{
    assert_recorded, connect, nats_builder, publish_and_take, publish_ids, publish_n,
    subscribe_all, take_seqs, take_seqs_meanwhile, NatsServer, Target,
};

/// Connects with `options` alone.
async fn connect_with(options: NatsOptions) -> herald::Result<Coordinator> {
    Coordinator::builder().nats_options(options).connect().await
}

/// On a server started with `config`, the options `right` makes connect, and those `wrong`
/// makes are refused as an authentication failure that never shows `secret`. Returns how long
/// the refusal took.
async fn accepts_right_and_refuses_wrong(
    config: ServerConfig,
    right: impl FnOnce(NatsOptions) -> NatsOptions,
    wrong: impl FnOnce(NatsOptions) -> NatsOptions,
    secret: &str,
) -> Duration {
    let server = NatsServer::start_with(config);
    let options = || fast_options(&server.url());
    connect_with(right(options()))
        .await
        .expect("right credentials");
    let started = Instant::now();
    let err = connect_with(wrong(options())).await.unwrap_err();
    let refused_after = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert!(!format!("{err} {err:?}").contains(secret));
    refused_after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_is_noticed_within_two_heartbeats_and_nothing_is_lost() {
    let server = NatsServer::start();
    let rec = RecordingReporter::new();
    let heartbeat = Duration::from_secs(1);
    let builder = nats_builder(&server).stream("FROZEN").heartbeat(heartbeat);
    let c = connect(builder, rec.clone()).await;
    let mut sub = subscribe_all(&c, ">").await;
    assert_eq!(publish_and_take(&c, &mut sub, 3).await, vec![1, 2, 3]);

    let reader = take_seqs_meanwhile(sub, 3);
    server.pause();
    let paused_at = Instant::now();
    rec.wait_for(EventKind::HeartbeatMissed).await;
    let noticed = paused_at.elapsed();
    // Three heartbeats of silence, then the server comes back.
    tokio::time::sleep((heartbeat * 3).saturating_sub(noticed)).await;
    server.resume();
    publish_n(&c, 3).await;
    let (_sub, seqs) = reader.await.expect("join");
    assert_eq!(seqs, vec![4, 5, 6]);
    assert!(
        noticed <= heartbeat.mul_f64(2.2),
        "HeartbeatMissed after {noticed:?}, more than 2.2 heartbeats"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_consumer_deletions_leave_exactly_one_consumer_and_lose_nothing() {
    let target = Target::nats();
    let (c, rec) = target.recorded("TEN").await;
    let mut sub = subscribe_all(&c, ">").await;
    let mut delivered = Vec::new();
    for _ in 0..10 {
        delivered.extend(publish_and_take(&c, &mut sub, 5).await);
        target.delete_consumer("TEN", sub.consumer_name()).await;
    }
    delivered.extend(publish_and_take(&c, &mut sub, 1).await);
    assert_eq!(delivered, (1..=10 * 5 + 1).collect::<Vec<_>>());
    assert_eq!(rec.count(EventKind::ConsumerDeleted), 10);
    assert_eq!(rec.count(EventKind::ConsumerRecreated), 10);
    let consumers = target.consumer_names("TEN").await;
    assert_eq!(consumers, vec![sub.consumer_name().to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_server_loses_and_duplicates_nothing() {
    let mut server = NatsServer::start();
    let rec = RecordingReporter::new();
    let builder = nats_builder(&server)
        .stream("KILL")
        .heartbeat(Duration::from_millis(300))
        .backoff(herald::Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        });
    let c = connect(builder, rec.clone()).await;
    let mut sub = subscribe_all(&c, ">").await;
    publish_n(&c, 20).await;
    let mut delivered = take_seqs(&mut sub, 10).await;

    server.kill();
    server.restart();
    publish_n(&c, 20).await;
    delivered.extend(take_seqs(&mut sub, 30).await);
    assert_eq!(delivered, (1..=40).collect::<Vec<_>>());
    rec.wait_for(EventKind::Reconnected).await;
    assert!(rec.count(EventKind::Disconnected) >= 1, "{:?}", rec.kinds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_password_and_token_are_accepted_and_wrong_ones_rejected_fast() {
    let password = ServerConfig {
        user_password: Some(("herald".into(), "pw-9f3k".into())),
        ..Default::default()
    };
    let refused_after = accepts_right_and_refuses_wrong(
        password,
        |options| options.user_and_password("herald", "pw-9f3k"),
        |options| options.user_and_password("herald", "wrong-pw"),
        "wrong-pw",
    )
    .await;
    assert!(refused_after < Duration::from_secs(5), "{refused_after:?}");

    let token = ServerConfig {
        token: Some("tok-77aa".into()),
        ..Default::default()
    };
    accepts_right_and_refuses_wrong(
        token,
        |options| options.token("tok-77aa"),
        |options| options.token("nope-token"),
        "nope-token",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nkey_seed_is_accepted_and_an_unknown_one_rejected() {
    let user = nkeys::KeyPair::new_user();
    let config = ServerConfig {
        extra: format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}",
            user.public_key()
        ),
        ..Default::default()
    };
    let seed = user.seed().expect("seed");
    let stranger = nkeys::KeyPair::new_user().seed().expect("seed");
    accepts_right_and_refuses_wrong(
        config,
        |options| options.nkey(seed),
        |options| options.nkey(stranger.clone()),
        &stranger,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_right_ca_connects_and_a_wrong_ca_is_rejected() {
    let certs_dir = tempfile::tempdir().expect("tempdir");
    let certs = generate_test_certs(certs_dir.path());
    let ca = certs.ca.clone().expect("ca");
    let server = NatsServer::start_with(ServerConfig {
        tls: Some(certs),
        ..Default::default()
    });
    let trusting = |ca: PathBuf| {
        fast_options(&server.tls_url())
            .root_certificates(ca)
            .require_tls(true)
    };
    let c = connect_with(trusting(ca)).await.expect("tls connect");
    c.publish("k", "x").await.expect("publish over tls");

    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = generate_test_certs(other_dir.path());
    let err = connect_with(trusting(other.ca.expect("ca")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_appears_in_events_errors_or_debug_output() {
    let mut server = NatsServer::start_with(ServerConfig {
        user_password: Some(("herald".into(), "Secr3tPassw0rd".into())),
        ..Default::default()
    });
    let url = server
        .url()
        .replace("nats://", "nats://herald:Secr3tPassw0rd@");
    let rec = RecordingReporter::everything();
    let options = fast_options(&url);
    let builder = Coordinator::builder().nats_options(options.clone());
    let c = connect(builder.stream("REDACT"), rec.clone()).await;
    let mut sub = subscribe_all(&c, ">").await;
    publish_and_take(&c, &mut sub, 1).await;
    server.kill();
    rec.wait_for(EventKind::Disconnected).await;
    server.restart();
    rec.wait_for(EventKind::Reconnected).await;

    let wrong = Coordinator::builder()
        .nats(url.replace("Secr3tPassw0rd", "Wr0ngPassw0rd"))
        .connect()
        .await
        .unwrap_err();
    let mut captured: Vec<String> = rec
        .events()
        .iter()
        .flat_map(|e| {
            let json = serde_json::to_string(e).expect("json");
            [e.to_string(), format!("{e:?}"), json]
        })
        .collect();
    captured.push(format!("{wrong} {wrong:?}"));
    captured.push(format!("{options:?}"));
    captured.push(format!("{c:?}"));
    for text in &captured {
        for secret in ["Secr3tPassw0rd", "Wr0ngPassw0rd"] {
            assert!(!text.contains(secret), "secret leaked: {text}");
        }
    }
    assert!(captured.iter().any(|t| t.contains("nats://***@127.0.0.1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_another_retention_policy_is_left_alone() {
    use async_nats::jetstream::stream::{Config, RetentionPolicy};
    let server = NatsServer::start();
    let js = Operator::on(&server).await;
    js.create_stream(Config {
        name: "THEIRS".into(),
        subjects: vec!["THEIRS.>".into()],
        retention: RetentionPolicy::WorkQueue,
        ..Default::default()
    })
    .await
    .expect("create");
    let theirs = nats_builder(&server).stream("THEIRS");
    let err = theirs.connect().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamMismatch);
    assert!(err.to_string().contains("WorkQueue"), "{err}");
    let info = js.get_stream("THEIRS").await.expect("still there");
    let retention = info.cached_info().config.retention;
    assert_eq!(retention, RetentionPolicy::WorkQueue);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_is_idempotent_and_oversized_payloads_are_typed_errors() {
    let server = NatsServer::start_with(ServerConfig {
        max_payload: Some(4096),
        ..Default::default()
    });
    let rec = RecordingReporter::everything();
    let c = connect(nats_builder(&server).stream("IDEM"), rec.clone()).await;
    let acks = publish_ids(&c, &["order-1", "order-1"]).await;
    assert_eq!(acks, [(1, false), (1, true)]);
    assert_recorded!(
        rec,
        CoordinatorEvent::Published {
            duplicate: true,
            seq: 1,
            ..
        }
    );
    // The server's limit (4 KiB) is lower than Herald's default (1 MiB) and wins.
    let err = c.publish("big", vec![0u8; 8192]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge, "{err}");
    assert_eq!(c.publish("ok", "x").await.expect("publish"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_on_different_filters_never_share_a_consumer() {
    let target = Target::nats();
    let c = target.connect("NAMES").await;
    let mut a = subscribe_all(&c, "alerts.>").await;
    let mut p = subscribe_all(&c, "pipelines.>").await;
    assert_ne!(a.consumer_name(), p.consumer_name());
    c.publish("alerts.1", "x").await.expect("publish");
    c.publish("pipelines.1", "x").await.expect("publish");
    assert_eq!(take_seqs(&mut a, 1).await, vec![1]);
    assert_eq!(take_seqs(&mut p, 1).await, vec![2]);
    assert_eq!(target.consumer_names("NAMES").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_resubscribes_at_once_without_waiting_for_heartbeats() {
    let mut server = NatsServer::start();
    let rec = RecordingReporter::new();
    // Heartbeats alone would take a minute to notice.
    let builder = nats_builder(&server).heartbeat(Duration::from_secs(30));
    let c = connect(builder.stream("RECON"), rec.clone()).await;
    let mut sub = subscribe_all(&c, ">").await;
    assert_eq!(publish_and_take(&c, &mut sub, 1).await, vec![1]);
    server.kill();
    server.restart(); // in-memory consumers are gone with the old process
    rec.wait_for(EventKind::Reconnected).await;
    assert_eq!(publish_and_take(&c, &mut sub, 1).await, vec![2]);
    let missed = rec.count(EventKind::HeartbeatMissed);
    assert_eq!(missed, 0, "{:?}", rec.kinds());
    assert_recorded!(
        rec,
        CoordinatorEvent::Resubscribing {
            cause: ResubscribeCause::Disconnected,
            ..
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_consumer_behind() {
    let target = Target::nats();
    let c = target.connect("BYE").await;
    let _a = c.subscribe("a.>").await.expect("a");
    let _b = c.subscribe("b.>").await.expect("b");
    assert_eq!(target.consumer_names("BYE").await.len(), 2);
    c.shutdown().await;
    assert!(target.consumer_names("BYE").await.is_empty());
}
