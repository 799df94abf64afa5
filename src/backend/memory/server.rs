//! [`MemoryServer`]: the in-process stand-in for a NATS server, holding streams and consumers.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::Mutex;

#[cfg(feature = "testing")]
use crate::backend::seam::ConnectionChange;
use crate::backend::seam::ConnectionListener;

use crate::backend::memory::stream::MemoryStream;

/// The address events show for the embedded server.
pub(crate) const MEMORY_SERVER_NAME: &str = "memory://embedded";

/// An in-process stand-in for a NATS server: it holds streams and their consumers.
///
/// [`Builder::memory`](crate::Builder::memory) gives each coordinator a private server. To let
/// several coordinators share streams (several "nodes" in one process, or a "restarted" process
/// in a test), create one server and pass clones of it to
/// [`Builder::memory_server`](crate::Builder::memory_server).
///
/// ```
/// use herald::{Coordinator, MemoryServer};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> herald::Result<()> {
/// let server = MemoryServer::new();
/// let a = Coordinator::builder().memory_server(server.clone()).connect().await?;
/// let b = Coordinator::builder().memory_server(server.clone()).connect().await?;
/// let seq = a.publish("alerts.1", "changed").await?;
/// assert_eq!(seq, 1); // b sees the same stream
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct MemoryServer {
    pub(super) inner: Arc<ServerInner>,
}

#[derive(Default)]
pub(super) struct ServerInner {
    pub(super) streams: Mutex<HashMap<Arc<str>, Arc<MemoryStream>>>,
    pub(super) listeners: Mutex<Vec<ConnectionListener>>,
    pub(super) connection: Mutex<ConnectionFaults>,
    pub(super) next_consumer_id: AtomicU64,
}

#[derive(Default)]
pub(super) struct ConnectionFaults {
    pub(super) disconnected: bool,
}

impl fmt::Debug for MemoryServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryServer")
            .field("streams", &self.inner.streams.lock().len())
            .finish()
    }
}

impl MemoryServer {
    /// A server with no streams.
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn is_disconnected(&self) -> bool {
        self.inner.connection.lock().disconnected
    }

    #[cfg(feature = "testing")]
    pub(super) fn notify(&self, change: ConnectionChange) {
        let listeners = self.inner.listeners.lock().clone();
        for listener in listeners {
            listener(change.clone());
        }
    }

    pub(super) fn stream(&self, name: &str) -> Option<Arc<MemoryStream>> {
        self.inner.streams.lock().get(name).cloned()
    }

    #[cfg(feature = "testing")]
    pub(super) fn wake_all(&self) {
        let streams: Vec<_> = self.inner.streams.lock().values().cloned().collect();
        for stream in streams {
            stream.state.lock().wake_all();
        }
    }
}
