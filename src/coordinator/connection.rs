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

/// What the listener knows of the connection.
#[derive(Debug, Default)]
struct Link {
    /// The first connection happened (it is reported by `connect`, in order with
    /// `StreamReady`); async-nats asks for a delay before it too, which is not a reconnect.
    connected: bool,
    /// When the connection was lost, while it is.
    down_since: Option<Instant>,
    /// The server last connected to.
    server: Option<Arc<str>>,
}

/// Turns the backend's connection changes into events. A `Connected` after a `Disconnected` is a
/// reconnect: async-nats has no event of its own for it.
///
/// async-nats asks for the first reconnect delay from its connection task, before its
/// `Disconnected` event reaches this listener through the event queue: a `Reconnecting` that
/// arrives while the connection looks up reports the `Disconnected` first, and the late one is
/// not reported twice. A failed attempt is not reported on its own: the next `Reconnecting`
/// says it.
///
/// On a reconnect every subscription is told to resubscribe at its cursor + 1 at once, rather
/// than waiting for missed heartbeats to reveal that a restarted server lost its consumers.
pub(super) fn connection_listener<R: Reporter>(
    emitter: Arc<Emitter<R>>,
    subscriptions: Subscriptions,
    shut: Arc<AtomicBool>,
) -> ConnectionListener {
    let link: Mutex<Link> = Mutex::default();
    Arc::new(move |change| {
        // Closing the connection at shutdown is not news: nothing follows `Shutdown`.
        if shut.load(Ordering::Acquire) {
            return;
        }
        let mut link = link.lock();
        match change {
            ConnectionChange::Connected { server } => {
                link.server = Some(server.clone());
                if !std::mem::replace(&mut link.connected, true) {
                    return;
                }
                if let Some(since) = link.down_since.take() {
                    drop(link);
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
                if link.connected && link.down_since.is_none() {
                    link.down_since = Some(Instant::now());
                    drop(link);
                    emit!(emitter, Disconnected { server, cause });
                }
            }
            ConnectionChange::Reconnecting { attempt, delay } if link.connected => {
                if link.down_since.is_none() {
                    link.down_since = Some(Instant::now());
                    let server = link.server.clone().unwrap_or_else(|| "unknown".into());
                    emit!(
                        emitter,
                        Disconnected {
                            server,
                            cause: "connection lost".into(),
                        }
                    );
                }
                drop(link);
                emit!(emitter, Reconnecting { attempt, delay })
            }
            ConnectionChange::Reconnecting { .. } => {}
            ConnectionChange::AttemptFailed { .. } if link.down_since.is_some() => {}
            ConnectionChange::AttemptFailed { error } => {
                drop(link);
                emit!(emitter, ServerError { message: error })
            }
            ConnectionChange::LameDuck { server } => emit!(emitter, LameDuck { server }),
            ConnectionChange::SlowConsumer { sid } => emit!(emitter, SlowConsumer { sid }),
            ConnectionChange::ServerError { message } => emit!(emitter, ServerError { message }),
        }
    })
}
