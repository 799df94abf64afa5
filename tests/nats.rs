//! NATS-only behaviour against a real nats-server: frozen and killed servers, operators deleting
//! consumers, auth and TLS, redaction, stream ownership, idempotent publish.

mod support;

use std::time::{Duration, Instant};

use herald::{Coordinator, CoordinatorEvent, ErrorKind, EventKind, NatsOptions, StartPosition};
use support::nats_server::{generate_test_certs, ServerConfig};
use support::{take_seqs, NatsServer, Recorder, Target, DEADLINE};

fn fast(url: String) -> NatsOptions {
    support::fast_options(&url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_is_noticed_within_two_heartbeats_and_nothing_is_lost() {
    let server = NatsServer::start();
    let rec = Recorder::new();
    let heartbeat = Duration::from_secs(1);
    let c = Coordinator::builder()
        .nats_options(fast(server.url()))
        .stream("FROZEN")
        .heartbeat(heartbeat)
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    for i in 0..3 {
        c.publish(&format!("k.{i}"), "x").await.expect("publish");
    }
    assert_eq!(take_seqs(&mut sub, 3).await, vec![1, 2, 3]);

    let reader = tokio::spawn(async move {
        let seqs = take_seqs(&mut sub, 3).await;
        (sub, seqs)
    });
    server.pause();
    let paused_at = Instant::now();
    rec.wait_for(EventKind::HeartbeatMissed).await;
    let noticed = paused_at.elapsed();
    // Three heartbeats of silence, then the server comes back.
    tokio::time::sleep((heartbeat * 3).saturating_sub(noticed)).await;
    server.resume();
    for i in 3..6 {
        c.publish(&format!("k.{i}"), "x")
            .await
            .expect("publish after resume");
    }
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
    let rec = Recorder::new();
    let c = target
        .builder()
        .stream("TEN")
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    let mut expected = 0u64;
    let mut delivered = Vec::new();
    for _ in 0..10 {
        for i in 0..5 {
            c.publish(&format!("k.{i}"), "x").await.expect("publish");
        }
        delivered.extend(take_seqs(&mut sub, 5).await);
        expected += 5;
        target.delete_consumer("TEN", sub.consumer_name()).await;
    }
    c.publish("k.last", "x").await.expect("publish");
    delivered.extend(take_seqs(&mut sub, 1).await);
    assert_eq!(delivered, (1..=expected + 1).collect::<Vec<_>>());
    assert_eq!(rec.count(EventKind::ConsumerDeleted), 10);
    assert_eq!(rec.count(EventKind::ConsumerRecreated), 10);
    assert_eq!(
        target.consumer_names("TEN").await,
        vec![sub.consumer_name().to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_server_loses_and_duplicates_nothing() {
    let mut server = NatsServer::start();
    let rec = Recorder::new();
    let c = Coordinator::builder()
        .nats_options(fast(server.url()))
        .stream("KILL")
        .heartbeat(Duration::from_millis(300))
        .backoff(herald::Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        })
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    for i in 0..20 {
        c.publish(&format!("k.{i}"), "x").await.expect("publish");
    }
    let mut delivered = take_seqs(&mut sub, 10).await;

    server.kill();
    server.restart();
    for i in 20..40 {
        c.publish(&format!("k.{i}"), "x")
            .await
            .expect("publish after restart");
    }
    delivered.extend(take_seqs(&mut sub, 30).await);
    assert_eq!(delivered, (1..=40).collect::<Vec<_>>());
    rec.wait_for(EventKind::Reconnected).await;
    assert!(rec.count(EventKind::Disconnected) >= 1, "{:?}", rec.kinds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_password_and_token_are_accepted_and_wrong_ones_rejected_fast() {
    let server = NatsServer::start_with(ServerConfig {
        user_password: Some(("herald".into(), "pw-9f3k".into())),
        ..Default::default()
    });
    let connect = |options: NatsOptions| async move {
        Coordinator::builder().nats_options(options).connect().await
    };
    connect(fast(server.url()).user_and_password("herald", "pw-9f3k"))
        .await
        .expect("right password");
    let started = Instant::now();
    let err = connect(fast(server.url()).user_and_password("herald", "wrong-pw"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!format!("{err} {err:?}").contains("wrong-pw"));

    let server = NatsServer::start_with(ServerConfig {
        token: Some("tok-77aa".into()),
        ..Default::default()
    });
    connect(fast(server.url()).token("tok-77aa"))
        .await
        .expect("right token");
    let err = connect(fast(server.url()).token("nope-token"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert!(!format!("{err} {err:?}").contains("nope-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_right_ca_connects_and_a_wrong_ca_is_rejected() {
    let certs_dir = tempfile::tempdir().expect("tempdir");
    let certs = generate_test_certs(certs_dir.path());
    let server = NatsServer::start_with(ServerConfig {
        tls: Some(certs.clone()),
        ..Default::default()
    });
    let ca = certs.ca.clone().expect("ca");
    let c = Coordinator::builder()
        .nats_options(
            fast(server.tls_url())
                .root_certificates(&ca)
                .require_tls(true),
        )
        .connect()
        .await
        .expect("tls connect");
    c.publish("k", "x").await.expect("publish over tls");

    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = generate_test_certs(other_dir.path());
    let err = Coordinator::builder()
        .nats_options(
            fast(server.tls_url())
                .root_certificates(other.ca.expect("ca"))
                .require_tls(true),
        )
        .connect()
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
    let rec = Recorder::everything();
    let options = fast(url.clone());
    let c = Coordinator::builder()
        .nats_options(options.clone())
        .stream("REDACT")
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect with credentials in the URL");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    c.publish("k", "x").await.expect("publish");
    take_seqs(&mut sub, 1).await;
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
            [
                e.to_string(),
                format!("{e:?}"),
                serde_json::to_string(e).expect("json"),
            ]
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
    let server = NatsServer::start();
    let js = support::jetstream(&server).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "THEIRS".into(),
        subjects: vec!["THEIRS.>".into()],
        retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
        ..Default::default()
    })
    .await
    .expect("create");
    let err = Coordinator::builder()
        .nats_options(fast(server.url()))
        .stream("THEIRS")
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamMismatch);
    assert!(err.to_string().contains("WorkQueue"), "{err}");
    let info = js.get_stream("THEIRS").await.expect("still there");
    assert_eq!(
        info.cached_info().config.retention,
        async_nats::jetstream::stream::RetentionPolicy::WorkQueue
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_is_idempotent_and_oversized_payloads_are_typed_errors() {
    let server = NatsServer::start_with(ServerConfig {
        max_payload: Some(4096),
        ..Default::default()
    });
    let rec = Recorder::everything();
    let c = Coordinator::builder()
        .nats_options(fast(server.url()))
        .stream("IDEM")
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let first = c
        .publish_idempotent("k", "x", "order-1")
        .await
        .expect("publish");
    let again = c
        .publish_idempotent("k", "x", "order-1")
        .await
        .expect("publish");
    assert_eq!((first.seq, first.duplicate), (1, false));
    assert_eq!((again.seq, again.duplicate), (1, true));
    assert!(rec.events().iter().any(|e| matches!(
        e,
        CoordinatorEvent::Published {
            duplicate: true,
            seq: 1,
            ..
        }
    )));
    // The server's limit (4 KiB) is lower than Herald's default (1 MiB) and wins.
    let err = c.publish("big", vec![0u8; 8192]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge, "{err}");
    assert_eq!(c.publish("ok", "x").await.expect("publish"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_on_different_filters_never_share_a_consumer() {
    let target = Target::nats();
    let c = target
        .builder()
        .stream("NAMES")
        .connect()
        .await
        .expect("connect");
    let mut a = c
        .subscribe("alerts.>")
        .start(StartPosition::All)
        .await
        .expect("a");
    let mut p = c
        .subscribe("pipelines.>")
        .start(StartPosition::All)
        .await
        .expect("p");
    assert_ne!(a.consumer_name(), p.consumer_name());
    c.publish("alerts.1", "x").await.expect("publish");
    c.publish("pipelines.1", "x").await.expect("publish");
    assert_eq!(take_seqs(&mut a, 1).await, vec![1]);
    assert_eq!(take_seqs(&mut p, 1).await, vec![2]);
    assert_eq!(target.consumer_names("NAMES").await.len(), 2);
    let _ = DEADLINE;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nkey_seed_is_accepted_and_an_unknown_one_rejected() {
    let user = nkeys::KeyPair::new_user();
    let server = NatsServer::start_with(ServerConfig {
        extra: format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}",
            user.public_key()
        ),
        ..Default::default()
    });
    let seed = user.seed().expect("seed");
    Coordinator::builder()
        .nats_options(fast(server.url()).nkey(seed.clone()))
        .connect()
        .await
        .expect("nkey accepted");
    let stranger = nkeys::KeyPair::new_user().seed().expect("seed");
    let err = Coordinator::builder()
        .nats_options(fast(server.url()).nkey(stranger.clone()))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert!(!format!("{err} {err:?}").contains(&stranger));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_resubscribes_at_once_without_waiting_for_heartbeats() {
    let mut server = NatsServer::start();
    let rec = Recorder::new();
    let c = Coordinator::builder()
        .nats_options(fast(server.url()))
        .stream("RECON")
        .heartbeat(Duration::from_secs(30)) // heartbeats alone would take a minute to notice
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    c.publish("k.1", "x").await.expect("publish");
    assert_eq!(take_seqs(&mut sub, 1).await, vec![1]);
    server.kill();
    server.restart(); // in-memory consumers are gone with the old process
    rec.wait_for(EventKind::Reconnected).await;
    c.publish("k.2", "x").await.expect("publish after restart");
    assert_eq!(take_seqs(&mut sub, 1).await, vec![2]);
    assert_eq!(
        rec.count(EventKind::HeartbeatMissed),
        0,
        "{:?}",
        rec.kinds()
    );
    assert!(rec.events().iter().any(|e| matches!(
        e,
        CoordinatorEvent::Resubscribing {
            cause: herald::ResubscribeCause::Disconnected,
            ..
        }
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_consumer_behind() {
    let target = Target::nats();
    let c = target
        .builder()
        .stream("BYE")
        .connect()
        .await
        .expect("connect");
    let _a = c.subscribe("a.>").await.expect("a");
    let _b = c.subscribe("b.>").await.expect("b");
    assert_eq!(target.consumer_names("BYE").await.len(), 2);
    c.shutdown().await;
    assert!(target.consumer_names("BYE").await.is_empty());
}
