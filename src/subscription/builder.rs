//! [`Subscribe`]: a subscription being configured, and what awaiting it does: validate, claim
//! the consumer name, load the checkpoint, open the first consumer, start saving checkpoints.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::backend::{ConsumerSpec, DeliverFrom};
use crate::checkpoint::progress::{Acks, Saver};
use crate::checkpoint::{
    Checkpoint, CheckpointKey, CheckpointPolicy, CheckpointStore, MemoryCheckpointStore,
};
use crate::emitter::{emit, emit_for, Names};
use crate::error::{Error, ErrorKind, Result};
use crate::position::StartPosition;
use crate::reporter::{NullReporter, Reporter};
use crate::state::{CoordinatorState, Signals};
use crate::subscription::cursor::initial_cursor;
use crate::subscription::resume::{open_consumer, Known, Resume};
use crate::subscription::Subscription;

/// Options of a subscription, set through [`Coordinator::subscribe`](crate::Coordinator::subscribe).
struct SubscribeOptions {
    durable: Option<String>,
    start: StartPosition,
    store: Arc<dyn CheckpointStore>,
    policy: CheckpointPolicy,
    heartbeat: Option<Duration>,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self {
            durable: None,
            start: StartPosition::default(),
            store: Arc::new(MemoryCheckpointStore::new()),
            policy: CheckpointPolicy::default(),
            heartbeat: None,
        }
    }
}

/// A subscription being configured; `.await` it to subscribe.
///
/// Made by [`Coordinator::subscribe`](crate::Coordinator::subscribe).
#[must_use = "a subscription starts only when awaited"]
pub struct Subscribe<'a, R: Reporter = NullReporter> {
    state: &'a Arc<CoordinatorState<R>>,
    filter: String,
    options: SubscribeOptions,
}

impl<R: Reporter> fmt::Debug for Subscribe<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscribe")
            .field("filter", &self.filter)
            .field("durable", &self.options.durable)
            .field("start", &self.options.start)
            .finish()
    }
}

impl<'a, R: Reporter> Subscribe<'a, R> {
    pub(crate) fn new(state: &'a Arc<CoordinatorState<R>>, filter: String) -> Self {
        Self {
            state,
            filter,
            options: SubscribeOptions::default(),
        }
    }

    /// The durable name: identifies the subscription's checkpoint and, with the node id, its
    /// consumer. Default: derived from the filter. `[A-Za-z0-9_-]`, at most 200 characters.
    pub fn durable(mut self, name: impl Into<String>) -> Self {
        self.options.durable = Some(name.into());
        self
    }

    /// Where to start; default [`StartPosition::LastProcessed`].
    pub fn start(mut self, start: StartPosition) -> Self {
        self.options.start = start;
        self
    }

    /// Where the checkpoint is kept; default a fresh [`MemoryCheckpointStore`].
    pub fn checkpoint_store(mut self, store: impl CheckpointStore) -> Self {
        self.options.store = Arc::new(store);
        self
    }

    /// When the checkpoint is saved; default [`CheckpointPolicy::default`].
    pub fn checkpoint_policy(mut self, policy: CheckpointPolicy) -> Self {
        self.options.policy = policy;
        self
    }

    /// The idle heartbeat interval for this subscription; default the coordinator's.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.options.heartbeat = Some(interval);
        self
    }
}

impl<'a, R: Reporter> std::future::IntoFuture for Subscribe<'a, R> {
    type Output = Result<Subscription<R>>;
    type IntoFuture = BoxFuture<'a, Result<Subscription<R>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(subscribe(self.state.clone(), self.filter, self.options))
    }
}

/// Subscribes: everything that happens when a [`Subscribe`] is awaited.
async fn subscribe<R: Reporter>(
    state: Arc<CoordinatorState<R>>,
    filter: String,
    options: SubscribeOptions,
) -> Result<Subscription<R>> {
    state.check_open()?;
    crate::subject::validate_filter(&filter)?;
    let durable = match options.durable {
        Some(d) => d,
        None => format!("sub-{:08x}", fnv1a(filter.as_bytes())),
    };
    crate::subject::validate_name("durable name", ErrorKind::InvalidDurableName, &durable)?;
    let heartbeat = options.heartbeat.unwrap_or(state.config.heartbeat);
    if heartbeat.is_zero() {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            "the heartbeat interval must be greater than zero",
        ));
    }
    let full_filter: Arc<str> = format!("{}.{}", state.prefix, filter).into();
    let names = Names {
        stream: state.stream.clone(),
        // `:` is in neither a node id nor a durable name: node `a-b` with durable `c` and node
        // `a` with durable `b-c` get different consumers.
        consumer: format!("{}:{}", state.node, durable).into(),
    };
    let key = CheckpointKey {
        stream: names.stream.clone(),
        durable: durable.into(),
        filter: full_filter.clone(),
    };
    if options.policy.interval.is_zero() {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            "the checkpoint interval must be greater than zero",
        ));
    }
    let signals = state.register(names.consumer.clone())?;
    // Gives the name back unless subscribing completes: on an error, and when the caller drops
    // this future (a timeout around `subscribe`).
    let claim = Claim {
        state: &state,
        consumer: &names.consumer,
        signals: &signals,
    };

    // The previous subscription of this name (dropped, closed) saves its last acknowledgements
    // first: loading before that would deliver them again.
    state.previous_saved(&names.consumer).await;
    // A corrupt or foreign checkpoint ends the subscribe: never guess where to start.
    let checkpoint = match options.store.load(&key).await {
        Ok(c) => c,
        Err(error) => {
            emit_for!(
                state.emitter,
                names,
                CheckpointFailed {
                    seq: 0,
                    error: error.to_string().into(),
                }
            );
            return Err(error);
        }
    };

    // Within this process the previous subscription of this name may have acknowledged more
    // than its store kept (a failing store): never deliver that again.
    let checkpoint = newest(checkpoint, state.last_acked(&names.consumer));
    let spec = ConsumerSpec {
        name: names.consumer.clone(),
        filter: full_filter.clone(),
        from: match options.start {
            StartPosition::Time(t) => DeliverFrom::Time(t),
            _ => DeliverFrom::Sequence(1),
        },
        heartbeat,
    };
    // Only a subscription that resumes from its checkpoint inherits it (and the identity of
    // its stream); any other start position begins a new history that the first
    // acknowledgement overwrites.
    let inherited = match options.start {
        StartPosition::LastProcessed => checkpoint,
        _ => None,
    };
    let high_water = inherited.map_or(0, |c| c.seq);
    let start = options.start;
    let checkpoint = checkpoint.map(|c| c.seq);
    let opened = open_consumer(
        state.clone(),
        spec.clone(),
        move |bounds| initial_cursor(start, checkpoint, bounds),
        Known {
            high_water,
            // Nothing processed yet: the position means the same in any stream.
            created: inherited
                .filter(|c| c.seq > 0)
                .and_then(|c| c.stream_created),
            ..Known::default()
        },
    )
    .await;
    let resumed = opened?;

    let acks = Arc::new(Acks::new(
        key.clone(),
        high_water,
        options.policy.every,
        Some(resumed.stream_created()),
    ));
    state.track_saver(names.consumer.clone(), acks.clone());
    let saver = Saver {
        acks: acks.clone(),
        store: options.store.clone(),
        key,
        names: names.clone(),
        policy: options.policy,
        emitter: state.emitter.clone(),
    };
    let checkpointer = tokio::spawn(saver.supervise());
    emit!(
        state.emitter,
        Subscribed {
            stream: names.stream.clone(),
            consumer: names.consumer.clone(),
            filter: full_filter.clone(),
            start,
            checkpoint,
        }
    );
    std::mem::forget(claim);
    let covers_stream = &*filter == ">";
    let resume = Resume::new(
        state,
        signals,
        names,
        spec,
        acks,
        covers_stream,
        high_water,
        resumed,
    );
    Ok(Subscription::new(resume, checkpointer))
}

/// Where to resume: the loaded checkpoint, or what the previous subscription of this name in
/// this process acknowledged when its store kept less (a failing store). Of one stream the
/// furthest; of two, this process's, which saw the later stream (a store is written only by
/// the subscriptions of this process).
fn newest(loaded: Option<Checkpoint>, acked: Option<Checkpoint>) -> Option<Checkpoint> {
    match (loaded, acked) {
        // Nothing acknowledged: the store knows as much (a stale one names its stream).
        (loaded, None) => loaded,
        (loaded, Some(acked)) if acked.seq == 0 => loaded,
        (None, acked) => acked,
        (Some(loaded), Some(acked)) => match (loaded.stream_created, acked.stream_created) {
            (Some(a), Some(b)) if a != b => Some(acked),
            (a, b) => Some(Checkpoint::new(loaded.seq.max(acked.seq), b.or(a))),
        },
    }
}

/// A consumer name claimed by a subscribe in progress; dropped, it gives the name back.
struct Claim<'a, R> {
    state: &'a CoordinatorState<R>,
    consumer: &'a str,
    signals: &'a Arc<Signals>,
}

impl<R> Drop for Claim<'_, R> {
    fn drop(&mut self) {
        self.state.unregister(self.consumer, self.signals);
    }
}

/// A stable, dependency-free 32-bit hash for default durable names.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}
