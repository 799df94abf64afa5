//! Connection changes as events. A `Connected` after a `Disconnected` is a reconnect
//! (async-nats has no event of its own for it), and a reconnect tells every subscription to
//! resubscribe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::backend::{ConnectionChange, ConnectionListener};
use crate::emitter::{emit, Emitter};
use crate::reporter::Reporter;
use crate::state::Subscriptions;

/// Turns the backend's connection changes into events. A `Connected` after a `Disconnected` is a
/// reconnect: async-nats has no event of its own for it.
///
/// On a reconnect every subscription is told to resubscribe at its cursor + 1 at once, rather
/// than waiting for missed heartbeats to reveal that a restarted server lost its consumers.
pub(super) fn connection_listener<R: Reporter>(
    emitter: Arc<Emitter<R>>,
    subscriptions: Subscriptions,
    shut: Arc<AtomicBool>,
) -> ConnectionListener {
    let down_since: Mutex<Option<Instant>> = Mutex::new(None);
    Arc::new(move |change| match change {
        // Closing the connection at shutdown is not news: nothing follows `Shutdown`.
        _ if shut.load(Ordering::Acquire) => {}
        // The first connection is reported by `connect` itself, in order with `StreamReady`.
        ConnectionChange::Connected { server } => {
            if let Some(since) = down_since.lock().take() {
                emit!(
                    emitter,
                    Reconnected {
                        server,
                        downtime: since.elapsed(),
                    }
                );
                for sub in subscriptions.lock().values() {
                    sub.reconnected();
                }
            }
        }
        ConnectionChange::Disconnected { server, cause } => {
            down_since.lock().get_or_insert_with(Instant::now);
            emit!(emitter, Disconnected { server, cause });
        }
        // async-nats also asks for a delay before the first connection: not a reconnect.
        ConnectionChange::Reconnecting { .. } if down_since.lock().is_none() => {}
        ConnectionChange::Reconnecting { attempt, delay } => {
            emit!(emitter, Reconnecting { attempt, delay })
        }
        ConnectionChange::LameDuck { server } => emit!(emitter, LameDuck { server }),
        ConnectionChange::SlowConsumer { sid } => emit!(emitter, SlowConsumer { sid }),
        ConnectionChange::ServerError { message } => emit!(emitter, ServerError { message }),
    })
}
