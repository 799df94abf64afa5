//! Herald's integration tests, in one binary:
//!
//! - `scenarios`: the core scenarios, each on the embedded backend and on a real nats-server;
//! - `memory`: the embedded backend as a real backend;
//! - `nats`: what only a real nats-server shows (frozen and killed servers, auth, TLS);
//! - `hostile`: bad input and misuse, hostile payloads, reporters and checkpoint files;
//! - `edges`: the edges the core fixed, each a scenario that failed before its fix.
//!
//! `cargo test --test integration` runs them; the chaos suite is a binary of its own
//! (`cargo test --test chaos`).

#[path = "../support/mod.rs"]
mod support;

mod edges;
mod hostile;
mod memory;
mod nats;
mod scenarios;
