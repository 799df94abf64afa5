//! Support for the integration tests: the nats-server harness and its client side, waits with
//! deadlines, publishing and taking messages, assertions on recorded events, a checkpoint store
//! that misbehaves on demand, and a `Target` that runs one scenario on the embedded backend or on
//! a real nats-server.
//!
//! The chaos suite includes only the parts it uses (see `tests/chaos.rs`).

pub(crate) mod client;
pub(crate) mod events;
pub(crate) mod messages;
pub(crate) mod nats_server;
pub(crate) mod stores;
pub(crate) mod target;
pub(crate) mod wait;

use herald::{Builder, Coordinator, Reporter};

pub(crate) use events::{assert_recorded, recorded};
pub(crate) use messages::{
    assert_quiet, publish_and_take, publish_ids, publish_n, seqs, subscribe_all, take, take_seqs,
    take_seqs_meanwhile,
};
pub(crate) use nats_server::NatsServer;
pub(crate) use target::{on_both_backends, Target};
pub(crate) use wait::{wait_until, DEADLINE};

/// Connects `builder`, reporting to `reporter`.
pub(crate) async fn connect<R: Reporter>(builder: Builder, reporter: R) -> Coordinator<R> {
    builder.reporter(reporter).connect().await.expect("connect")
}

/// A builder on `server` with the quick NATS options of the tests.
pub(crate) fn nats_builder(server: &NatsServer) -> Builder {
    Coordinator::builder().nats_options(client::fast_options(&server.url()))
}
