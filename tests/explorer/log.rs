//! The one ordered history of a run: every event each coordinator reported, interleaved with
//! what the application saw (each message taken, each acknowledgement) and the explorer's own
//! markers (steps, opens, closes, crashes). The checker reads nothing else.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use herald::{
    Checkpoint, CheckpointKey, CheckpointStore, CoordinatorEvent, Error, ErrorKind,
    MemoryCheckpointStore, Reporter, StartPosition,
};
use parking_lot::Mutex;

use crate::model::StreamModel;

/// Where in the run an entry was made: the process (coordinator lifetime) and the stream as
/// the model knew it at that instant (the library read the same bounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tag {
    pub(crate) proc: u32,
    pub(crate) epoch: u32,
    /// The stream's first sequence (`last + 1` when it holds nothing).
    pub(crate) first: u64,
    pub(crate) last: u64,
}

/// How a subscription ended, as the explorer ended it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum How {
    Drop,
    Close,
    Shutdown,
}

/// The state of one subscription at a crash.
#[derive(Clone, Debug)]
pub(crate) struct CrashInfo {
    pub(crate) slot: usize,
    pub(crate) inc: u32,
    pub(crate) last_acked: u64,
    /// What the store held at the crash.
    pub(crate) saved: Option<u64>,
    pub(crate) store_failed: bool,
}

/// One entry of the history. Some fields are only read through `Debug`, in verbose output.
#[allow(dead_code)]
#[derive(Clone, Debug)]
pub(crate) enum Entry {
    Step {
        index: usize,
        step: String,
    },
    Event {
        tag: Tag,
        /// Which `connect` made the reporter (several per process when one fails).
        coordinator: u32,
        event: CoordinatorEvent,
    },
    /// The application got a message (pushed right after `next()` returned it).
    Taken {
        tag: Tag,
        slot: usize,
        inc: u32,
        seq: u64,
        replayed: bool,
    },
    Acked {
        proc: u32,
        slot: usize,
        inc: u32,
        seq: u64,
    },
    /// A checkpoint store load.
    Loaded {
        proc: u32,
        slot: usize,
        value: Option<u64>,
    },
    /// A checkpoint save begins (the value was read from the acknowledgements just now).
    Saving {
        proc: u32,
        slot: usize,
        seq: u64,
    },
    ProcessStarted {
        proc: u32,
    },
    /// `connect` failed (the server was disconnected): the coordinator never existed.
    ConnectFailed {
        proc: u32,
        coordinator: u32,
        error: String,
    },
    Opening {
        proc: u32,
        slot: usize,
        inc: u32,
        start: StartPosition,
    },
    Opened {
        proc: u32,
        slot: usize,
        inc: u32,
    },
    OpenFailed {
        proc: u32,
        slot: usize,
        inc: u32,
        error: String,
    },
    Closed {
        /// The stream when the subscription ended.
        tag: Tag,
        slot: usize,
        inc: u32,
        how: How,
        /// `Subscription::last_acked()`: the position the subscription would save.
        last_acked: u64,
        store_failed: bool,
    },
    /// The subscription ended on its own (an error or `None`).
    Ended {
        proc: u32,
        slot: usize,
        inc: u32,
        error: String,
    },
    ShutdownCalled {
        proc: u32,
        open: u64,
    },
    Crash {
        /// The stream at the crash.
        tag: Tag,
        subs: Vec<CrashInfo>,
    },
    /// The process is gone: its coordinator, subscriptions and tasks are dropped.
    Dead {
        proc: u32,
    },
    Note(String),
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Step { index, step } => write!(f, "---- step {index}: {step}"),
            Entry::Event { tag, event, .. } => write!(
                f,
                "p{} e{} [{}..{}] {}",
                tag.proc,
                tag.epoch,
                tag.first,
                tag.last,
                short_event(event)
            ),
            Entry::Taken {
                tag,
                slot,
                inc,
                seq,
                replayed,
            } => write!(
                f,
                "p{} e{} [{}..{}]   app: sub {slot} (inc {inc}) took {seq}{}",
                tag.proc,
                tag.epoch,
                tag.first,
                tag.last,
                if *replayed { " (replayed)" } else { "" }
            ),
            other => write!(f, "   {other:?}"),
        }
    }
}

/// An event without the stream name, to keep verbose logs readable.
fn short_event(event: &CoordinatorEvent) -> String {
    let text = format!("{event:?}");
    text.replace("stream: \"HERALD\", ", "")
}

/// What the live tracker knows of a subscription: the epoch it reads and how far it has
/// accounted (delivered, declared lost, or started after).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Live {
    pub(crate) epoch: u32,
    pub(crate) accounted: u64,
}

/// What the reporters, the stores and the runner share.
pub(crate) struct Shared {
    pub(crate) log: Mutex<Vec<Entry>>,
    pub(crate) model: Mutex<StreamModel>,
    /// Disagreements between the model and the server, found while reporting.
    pub(crate) desync: Mutex<Vec<String>>,
    pub(crate) proc: AtomicU32,
    /// Per consumer name (current process): how far it has accounted.
    pub(crate) live: Mutex<HashMap<String, Live>>,
    pub(crate) verbose: bool,
}

impl Shared {
    pub(crate) fn new(model: StreamModel, verbose: bool) -> Self {
        Self {
            log: Mutex::new(Vec::new()),
            model: Mutex::new(model),
            desync: Mutex::new(Vec::new()),
            proc: AtomicU32::new(0),
            live: Mutex::new(HashMap::new()),
            verbose,
        }
    }

    pub(crate) fn push(&self, entry: Entry) {
        if self.verbose {
            eprintln!("{entry}");
        }
        self.log.lock().push(entry);
    }

    pub(crate) fn tag(&self, proc: u32) -> Tag {
        let m = self.model.lock();
        Tag {
            proc,
            epoch: m.epoch,
            first: m.first,
            last: m.last,
        }
    }

    /// The live tracker saw `consumer` account up to `seq` in `epoch`.
    pub(crate) fn advance(&self, consumer: &str, epoch: u32, seq: u64) {
        let mut live = self.live.lock();
        let entry = live.entry(consumer.to_string()).or_insert(Live {
            epoch,
            accounted: 0,
        });
        if entry.epoch != epoch {
            *entry = Live {
                epoch,
                accounted: seq,
            };
        } else {
            entry.accounted = entry.accounted.max(seq);
        }
    }

    fn restart_live(&self, consumer: &str, epoch: u32, cursor: u64) {
        self.live.lock().insert(
            consumer.to_string(),
            Live {
                epoch,
                accounted: cursor,
            },
        );
    }
}

/// Where a subscription starts, given its start position, the checkpoint it loaded and the
/// stream's bounds: `(cursor, reset)`; `reset` when the checkpoint lies beyond the stream (it
/// was deleted and recreated), and the subscription starts over at the stream's first message.
pub(crate) fn start_cursor(
    start: StartPosition,
    checkpoint: Option<u64>,
    first: u64,
    last: u64,
) -> (u64, bool) {
    let high_water = match start {
        StartPosition::LastProcessed => checkpoint.unwrap_or(0),
        _ => 0,
    };
    let before_first = first.saturating_sub(1);
    if high_water > last {
        return (before_first, true);
    }
    let cursor = match start {
        StartPosition::New => last,
        StartPosition::Sequence(n) => n.saturating_sub(1),
        StartPosition::LastProcessed => checkpoint.unwrap_or(before_first),
        _ => before_first,
    };
    (cursor, false)
}

/// The reporter of one process: records every event, tagged, into the shared log, and feeds
/// stored messages to the model.
#[derive(Clone)]
pub(crate) struct LogReporter {
    pub(crate) proc: u32,
    /// Which `connect` this reporter was given to.
    pub(crate) coordinator: u32,
    pub(crate) shared: Arc<Shared>,
}

impl Reporter for LogReporter {
    fn report(&self, event: &CoordinatorEvent) {
        let shared = &*self.shared;
        if let CoordinatorEvent::Published {
            seq,
            subject,
            duplicate: false,
            ..
        } = event
        {
            if let Err(e) = shared.model.lock().stored(*seq, subject) {
                shared.desync.lock().push(e);
            }
        }
        let tag = shared.tag(self.proc);
        match event {
            CoordinatorEvent::Subscribed {
                consumer,
                start,
                checkpoint,
                ..
            } => {
                let (cursor, _) = start_cursor(*start, *checkpoint, tag.first, tag.last);
                shared.restart_live(consumer, tag.epoch, cursor);
            }
            CoordinatorEvent::StreamReset { consumer, .. } => {
                shared.restart_live(consumer, tag.epoch, tag.first.saturating_sub(1));
            }
            CoordinatorEvent::EventsLost { consumer, last, .. } => {
                shared.advance(consumer, tag.epoch, *last);
            }
            CoordinatorEvent::ConsumerRecreated {
                consumer,
                resume_from,
                ..
            } => {
                // On the new stream the subscription goes on from where it was.
                let mut live = shared.live.lock();
                if let Some(l) = live.get_mut(&**consumer) {
                    l.epoch = tag.epoch;
                    l.accounted = l.accounted.max(resume_from.saturating_sub(1));
                }
            }
            _ => {}
        }
        shared.push(Entry::Event {
            tag,
            coordinator: self.coordinator,
            event: event.clone(),
        });
    }
}

/// A checkpoint store over a [`MemoryCheckpointStore`] that can be slow, can fail on demand,
/// and logs its loads and saves.
#[derive(Clone)]
pub(crate) struct TestStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    slot: usize,
    delay: Duration,
    memory: MemoryCheckpointStore,
    failing: AtomicBool,
    failed_since_success: AtomicBool,
    shared: Arc<Shared>,
}

impl TestStore {
    pub(crate) fn new(slot: usize, delay: Duration, shared: Arc<Shared>) -> Self {
        Self {
            inner: Arc::new(StoreInner {
                slot,
                delay,
                memory: MemoryCheckpointStore::new(),
                failing: AtomicBool::new(false),
                failed_since_success: AtomicBool::new(false),
                shared,
            }),
        }
    }

    pub(crate) fn set_failing(&self, failing: bool) {
        self.inner.failing.store(failing, Ordering::SeqCst);
    }

    /// Whether a save failed since the last one that succeeded: the crash bound is void.
    pub(crate) fn failed_since_success(&self) -> bool {
        self.inner.failed_since_success.load(Ordering::SeqCst)
    }

    /// The value saved in the underlying memory store for `key`.
    pub(crate) fn current(&self, key: &CheckpointKey) -> Option<u64> {
        self.inner.memory.get(key).map(|c| c.seq)
    }
}

impl CheckpointStore for TestStore {
    fn load<'a>(
        &'a self,
        key: &'a CheckpointKey,
    ) -> BoxFuture<'a, herald::Result<Option<Checkpoint>>> {
        let inner = &*self.inner;
        let loaded = inner.memory.get(key);
        let value = loaded.map(|c| c.seq);
        inner.shared.push(Entry::Loaded {
            proc: inner.shared.proc.load(Ordering::SeqCst),
            slot: inner.slot,
            value,
        });
        Box::pin(async move { Ok(loaded) })
    }

    fn save<'a>(
        &'a self,
        key: &'a CheckpointKey,
        at: Checkpoint,
    ) -> BoxFuture<'a, herald::Result<()>> {
        let inner = &*self.inner;
        let seq = at.seq;
        inner.shared.push(Entry::Saving {
            proc: inner.shared.proc.load(Ordering::SeqCst),
            slot: inner.slot,
            seq,
        });
        Box::pin(async move {
            if !inner.delay.is_zero() {
                tokio::time::sleep(inner.delay).await;
            }
            if inner.failing.load(Ordering::SeqCst) {
                inner.failed_since_success.store(true, Ordering::SeqCst);
                return Err(Error::new(
                    ErrorKind::CheckpointIo,
                    "the explorer's store is failing",
                ));
            }
            inner.memory.save(key, at).await?;
            inner.failed_since_success.store(false, Ordering::SeqCst);
            Ok(())
        })
    }
}
