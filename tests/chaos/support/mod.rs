//! The parts of the integration tests' support (`tests/support/`) that the chaos suite uses.

#[path = "../../support/client.rs"]
pub(crate) mod client;
#[path = "../../support/events.rs"]
pub(crate) mod events;
#[path = "../../support/nats_server.rs"]
pub(crate) mod nats_server;
#[path = "../../support/wait.rs"]
pub(crate) mod wait;
