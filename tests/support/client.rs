//! The client side of a test nats-server: quick NATS options for coordinators, and the
//! JetStream API as an operator uses it.

use std::time::Duration;

use async_nats::jetstream::{self, stream::Stream};
use futures::TryStreamExt;

use super::nats_server::NatsServer;
use super::wait::{wait_until, DEADLINE};

/// NATS options for tests: quick pings, timeouts and reconnects, so faults are noticed fast.
pub(crate) fn fast_options(urls: &str) -> herald::NatsOptions {
    herald::NatsOptions::new(urls)
        .ping_interval(Duration::from_millis(500))
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(2))
        .reconnect_backoff(herald::Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(250),
        })
}

/// An operator on a test nats-server: the JetStream API (by `Deref`), on a connection of its
/// own, and what an operator does with it.
pub(crate) struct Operator(jetstream::Context);

impl std::ops::Deref for Operator {
    type Target = jetstream::Context;

    fn deref(&self) -> &jetstream::Context {
        &self.0
    }
}

impl Operator {
    pub(crate) async fn on(server: &NatsServer) -> Self {
        let client = async_nats::connect(server.url()).await.expect("connect");
        Operator(jetstream::new(client))
    }

    /// The stream `name`, which must exist, with its info as of now.
    pub(crate) async fn stream(&self, name: &str) -> Stream {
        self.0.get_stream(name).await.expect("stream")
    }

    /// The names of `stream`'s consumers, sorted.
    pub(crate) async fn consumer_names(&self, stream: &str) -> Vec<String> {
        let stream = self.stream(stream).await;
        let names = stream.consumer_names().try_collect::<Vec<String>>();
        let mut names = names.await.expect("consumer names");
        names.sort();
        names
    }

    /// Deletes a consumer; false when the stream has no consumer of that name (a subscription
    /// between two consumers, say).
    pub(crate) async fn delete_consumer(&self, stream: &str, consumer: &str) -> bool {
        match self.stream(stream).await.delete_consumer(consumer).await {
            Ok(_) => true,
            Err(e) if e.to_string().contains("consumer not found") => false,
            Err(e) => panic!("deleting consumer {consumer} failed: {e}"),
        }
    }

    /// Waits until `stream` holds no message: every message of a stream with a short max age
    /// has expired.
    pub(crate) async fn wait_until_expired(&self, stream: &str) {
        let empty = async || self.stream(stream).await.cached_info().state.messages == 0;
        wait_until(DEADLINE, empty, || format!("{stream} still holds messages")).await;
    }
}
