//! Publishing: awaited (one ack at a time) and pipelined (`publish_batch` against a window of
//! acks in flight).

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use herald::NullReporter;

use crate::measure::{report_cpu, report_ratio, timed, Runs};
use crate::support::{k, rate};
use crate::{deadline, herald, raw_first, Bench, Config, WINDOW};

impl Bench {
    async fn raw_publish(&self, stream: &str, n: usize, pipelined: bool) -> Duration {
        self.fresh_stream(stream).await;
        let subject = async_nats::Subject::from(format!("{stream}.bench.k"));
        let js = &self.js;
        let elapsed = deadline("raw publish", async {
            let start = Instant::now();
            if pipelined {
                let mut in_flight = VecDeque::with_capacity(WINDOW);
                for _ in 0..n {
                    if in_flight.len() == WINDOW {
                        let ack: jetstream::context::PublishAckFuture =
                            in_flight.pop_front().expect("window is full");
                        black_box(ack.await.expect("raw ack").sequence);
                    }
                    let sent = js
                        .publish(subject.clone(), self.payload.clone())
                        .await
                        .expect("raw publish");
                    in_flight.push_back(sent);
                }
                for ack in in_flight {
                    black_box(ack.await.expect("raw ack").sequence);
                }
            } else {
                for _ in 0..n {
                    let ack = js
                        .publish(subject.clone(), self.payload.clone())
                        .await
                        .expect("raw publish")
                        .await
                        .expect("raw ack");
                    black_box(ack.sequence);
                }
            }
            start.elapsed()
        })
        .await;
        self.delete_stream(stream).await;
        elapsed
    }

    async fn herald_publish(&self, stream: &str, n: usize, batched: bool) -> Duration {
        self.delete_stream(stream).await;
        let c = herald(&self.url, stream, NullReporter).await;
        let elapsed = deadline("herald publish", async {
            let start = Instant::now();
            if batched {
                let seqs = c
                    .publish_batch((0..n).map(|_| ("bench.k", self.payload.clone())))
                    .await
                    .expect("herald publish_batch");
                assert_eq!(seqs.len(), n);
            } else {
                for _ in 0..n {
                    black_box(
                        c.publish("bench.k", self.payload.clone())
                            .await
                            .expect("herald publish"),
                    );
                }
            }
            start.elapsed()
        })
        .await;
        c.shutdown().await;
        self.delete_stream(stream).await;
        elapsed
    }

    pub(crate) async fn publish_awaited(&self, cfg: &Config) {
        self.publish_row("publish_awaited", cfg.n_awaited, cfg.rounds, false)
            .await;
    }

    pub(crate) async fn publish_pipelined(&self, cfg: &Config) {
        self.publish_row("publish_pipelined", cfg.n, cfg.rounds_long, true)
            .await;
    }

    async fn publish_row(&self, name: &str, n: usize, rounds: usize, pipelined: bool) {
        let what = if pipelined {
            format!("raw: {WINDOW} acks in flight; herald: one publish_batch of {n}")
        } else {
            "both await each ack before the next publish".to_string()
        };
        println!("# {name}: N={n}, {rounds} alternating pairs; {what}");
        let warm = (n / 10).max(1);
        let raw_warm = self.raw_publish("WARM_RAW", warm, pipelined).await;
        let herald_warm = self.herald_publish("WARM_HERALD", warm, pipelined).await;
        println!(
            "#   warm-up ({warm}): raw {} msg/s, herald {} msg/s",
            k(rate(warm, raw_warm)),
            k(rate(warm, herald_warm))
        );
        let (mut raw, mut her) = (Runs::default(), Runs::default());
        for round in 0..rounds {
            let raw_stream = format!("P_RAW_{round}");
            let herald_stream = format!("P_HERALD_{round}");
            let order = if raw_first(round) {
                [true, false]
            } else {
                [false, true]
            };
            for is_raw in order {
                if is_raw {
                    raw.add(n, timed(self.raw_publish(&raw_stream, n, pipelined)).await);
                } else {
                    her.add(
                        n,
                        timed(self.herald_publish(&herald_stream, n, pipelined)).await,
                    );
                }
            }
        }
        report_ratio(name, &raw.rates, &her.rates, "msg/s");
        report_cpu(name, &raw, &her);
    }
}
