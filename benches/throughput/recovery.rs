//! Recovery: how long a coordinator takes to deliver again after its server was killed and
//! restarted, and to notice a frozen (`SIGSTOP`) server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use herald::reporter::{from_fn, ReporterExt};
use herald::{Coordinator, CoordinatorEvent, EventKind, Reporter, StartPosition};
use parking_lot::Mutex;
use tokio::runtime::Runtime;

use crate::measure::rounded;
use crate::support::median;
use crate::support::nats_server::NatsServer;
use crate::{builder, deadline, Config, RUN_DEADLINE};

/// The coordinator's non-per-message events, with the instant each was reported.
#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<(Instant, EventKind)>>>);

impl Timeline {
    fn reporter(&self) -> impl Reporter {
        let events = self.0.clone();
        from_fn(move |e: &CoordinatorEvent| events.lock().push((Instant::now(), e.kind())))
            .only(|kind| !kind.is_per_message())
    }

    fn since(&self, after: Instant) -> Vec<(Instant, EventKind)> {
        self.0
            .lock()
            .iter()
            .copied()
            .filter(|(at, _)| *at >= after)
            .collect()
    }

    /// Waits (polling every millisecond; the instant returned is the one the reporter recorded)
    /// for the first event of `kind` reported at or after `after`.
    fn wait_for(&self, kind: EventKind, after: Instant, limit: Duration) -> Option<Instant> {
        let give_up = Instant::now() + limit;
        while Instant::now() < give_up {
            if let Some((at, _)) = self.since(after).into_iter().find(|(_, k)| *k == kind) {
                return Some(at);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }
}

/// `kind@+ms` for each event after `from`, relative to `zero`.
fn describe(events: &[(Instant, EventKind)], zero: Instant) -> String {
    events
        .iter()
        .map(|(at, kind)| {
            let ms = if *at >= zero {
                at.duration_since(zero).as_secs_f64() * 1e3
            } else {
                -(zero.duration_since(*at).as_secs_f64() * 1e3)
            };
            format!("{kind}@{ms:+.0}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

type Deliveries = tokio::sync::mpsc::UnboundedReceiver<(Instant, u64)>;

/// Subscribes to the messages published from now on and, in a task of its own, acknowledges
/// each and records when it was delivered.
async fn record_deliveries<R: Reporter>(c: &Coordinator<R>) -> Deliveries {
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::New)
        .await
        .expect("subscribe");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(item) = sub.next().await {
            match item {
                Ok(message) => {
                    message.ack();
                    if tx.send((Instant::now(), message.seq)).is_err() {
                        return;
                    }
                }
                Err(error) if error.kind() == herald::ErrorKind::Shutdown => return,
                Err(error) => panic!("the recovery subscription ended: {error}"),
            }
        }
    });
    rx
}

/// Waits for the delivery of stream sequence `seq`; returns when it was delivered.
async fn delivered(deliveries: &mut Deliveries, seq: u64) -> Instant {
    deadline("delivery", async {
        loop {
            let (at, got) = deliveries.recv().await.expect("the subscriber task ended");
            if got >= seq {
                return at;
            }
        }
    })
    .await
}

/// Publishes through the coordinator and waits until the subscription delivered it.
async fn steady<R: Reporter>(c: &Coordinator<R>, deliveries: &mut Deliveries) {
    let seq = deadline("steady publish", c.publish("k", "steady"))
        .await
        .expect("publish");
    delivered(deliveries, seq).await;
}

/// The instant the port at `port` first accepts a TCP connection (polled every millisecond).
fn accept_probe(port: u16) -> std::thread::JoinHandle<Instant> {
    std::thread::spawn(move || {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let give_up = Instant::now() + RUN_DEADLINE;
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Instant::now();
            }
            assert!(
                Instant::now() < give_up,
                "the restarted server never accepted"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

/// Publishes one message from a fresh raw client, retrying until the stream stores it.
async fn raw_publish_retrying(url: &str, subject: &'static str) -> u64 {
    deadline("raw publish after restart", async {
        loop {
            if let Ok(client) = async_nats::connect(url).await {
                let js = jetstream::new(client);
                if let Ok(sent) = js.publish(subject, Bytes::from_static(b"after")).await {
                    if let Ok(ack) = sent.await {
                        return ack.sequence;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

pub(crate) fn recovery(rt: &Runtime, cfg: &Config) {
    let heartbeat = Duration::from_secs(1);
    let rounds = cfg.recovery_rounds;
    println!(
        "# recovery: a dedicated nats-server (file storage); a coordinator with default NatsOptions and backoff, heartbeat {} s, one idle subscription; {rounds} rounds each",
        heartbeat.as_secs()
    );
    let mut server = NatsServer::start();
    let url = server.url();
    let timeline = Timeline::default();
    let (c, mut deliveries) = rt.block_on(async {
        let c = builder(&url, "RECOVER", timeline.reporter())
            .heartbeat(heartbeat)
            .connect()
            .await
            .expect("herald connect");
        let deliveries = record_deliveries(&c).await;
        (c, deliveries)
    });

    // A killed server restarted at once on the same port and store.
    let mut kill_ms = Vec::new();
    for round in 0..rounds {
        rt.block_on(steady(&c, &mut deliveries));
        server.kill();
        let killed = Instant::now();
        let probe = accept_probe(server.port());
        server.restart();
        let accepted = probe.join().expect("accept probe");
        let seq = rt.block_on(raw_publish_retrying(&url, "RECOVER.after"));
        let published = Instant::now();
        let at = rt.block_on(delivered(&mut deliveries, seq));
        let ms = at.duration_since(accepted).as_secs_f64() * 1e3;
        println!(
            "#   kill {round}: ms from accept: killed@{:+.0} published@{:+.0} delivered@{ms:+.0}; events: {}",
            -(accepted.duration_since(killed).as_secs_f64() * 1e3),
            published.duration_since(accepted).as_secs_f64() * 1e3,
            describe(&timeline.since(killed), accepted)
        );
        kill_ms.push(ms);
    }
    println!("#   kill runs (ms): {:?}", rounded(&kill_ms));
    println!(
        "ms recovery_killed_accept_to_delivered = {:.0}",
        median(&kill_ms)
    );

    // A frozen server (SIGSTOP): how long until HeartbeatMissed is reported.
    let mut stop_ms = Vec::new();
    let mut cont_ms = Vec::new();
    for round in 0..rounds {
        rt.block_on(steady(&c, &mut deliveries));
        // Spread the freeze over the heartbeat phase: 1 to 2 heartbeats after the last message.
        let phase = (round as f64 + 0.5) / rounds as f64;
        std::thread::sleep(heartbeat.mul_f64(1.0 + phase));
        let stopped = Instant::now();
        server.pause();
        let missed =
            timeline.wait_for(EventKind::HeartbeatMissed, stopped, Duration::from_secs(30));
        server.resume();
        let resumed = Instant::now();
        let missed = missed.expect("no HeartbeatMissed within 30 s of SIGSTOP");
        rt.block_on(steady(&c, &mut deliveries));
        let ms = missed.duration_since(stopped).as_secs_f64() * 1e3;
        cont_ms.push(resumed.elapsed().as_secs_f64() * 1e3);
        println!(
            "#   sigstop {round}: HeartbeatMissed after {ms:.0} ms ({:.2} heartbeats); SIGCONT to the next publish delivered {:.0} ms; events: {}",
            ms / heartbeat.as_secs_f64() / 1e3,
            cont_ms[round],
            describe(&timeline.since(stopped), stopped)
        );
        stop_ms.push(ms);
    }
    let stop = median(&stop_ms);
    println!("#   sigstop runs (ms): {:?}", rounded(&stop_ms));
    println!(
        "#   sigstop_to_heartbeat_missed = {:.2} heartbeats of {} ms (the design bound is 2)",
        stop / heartbeat.as_secs_f64() / 1e3,
        heartbeat.as_millis()
    );
    println!("ms recovery_sigstop_to_heartbeat_missed = {stop:.0}");
    println!("ms recovery_sigcont_to_delivered = {:.0}", median(&cont_ms));
    rt.block_on(c.shutdown());
}
