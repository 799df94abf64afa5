//! The invariants, checked on the recorded history of a run (the guarantees of DESIGN.md):
//!
//! - within one process, a durable never gets a stream sequence twice or out of order (across
//!   reconnects, resubscribes, and drop-and-resubscribe for what it acknowledged);
//! - completeness: every published message that matches a subscription and lies after its
//!   start is delivered or inside exactly one `EventsLost`, or the stream was reset
//!   (`StreamReset`); every `EventsLost` range holds at least one matching message;
//! - across a crash, the redelivered window stays within the documented bound;
//! - event order: `Subscribed` before `ReplayStarted` before the first replayed message,
//!   `ReplayCompleted` once the last replayed one was taken, `Delivered` before each message;
//!   nothing after `Shutdown`, nothing from a process that is gone.
//!
//! - this file: the kinds of violation, the state kept per subscription, the walk over the
//!   history;
//! - `events.rs`: the order of events; `positions.rs`: deliveries, losses and gaps;
//! - `checkpoints.rs`: what is saved and loaded, and the crash window.

mod checkpoints;
mod events;
mod positions;

use std::collections::HashMap;
use std::fmt;

use herald::StartPosition;

use crate::log::{CrashInfo, Entry};
use crate::model::StreamModel;
use crate::runner::NODE;
use crate::schedule::{Config, Filter};

/// The kinds of violation; the budget test knows which are open bugs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Panic,
    Hang,
    Stall,
    /// The explorer's model and the server disagree: a bug in the explorer or the server.
    ModelDesync,
    /// A subscription ended on its own.
    Ended,
    /// An API call failed or succeeded unexpectedly.
    Unexpected,
    /// A sequence delivered twice or out of order within one subscription.
    Duplicate,
    /// A message acknowledged in this process was delivered again after drop-and-resubscribe.
    AckedRedelivered,
    /// The same, after the store failed the last save of the dropped subscription.
    AckedRedeliveredStoreFailed,
    /// A subscription ended (dropped, closed) with a healthy store, and the next one of its
    /// durable in the process loaded another checkpoint than the position it acknowledged.
    UnsavedOnClose,
    /// A matching message neither delivered nor reported lost.
    Gap,
    /// A sequence both delivered and reported lost, or lost twice, or lost out of order.
    LossOverlap,
    /// An `EventsLost` range that holds no matching message.
    LossWithoutMatch,
    /// The stream was deleted and recreated, and a subscription went on without `StreamReset`.
    UndetectedReset,
    /// After a `StreamReset`, the checkpoint store kept the old stream's position, and a
    /// restarted subscription resumed from it in the new stream.
    StaleCheckpoint,
    /// `StreamReset` although the stream was not reset.
    FalseReset,
    /// A subscription's acknowledged position (what it saves) covers messages of the stream
    /// it reads that it never delivered nor reported lost, or lies beyond the stream's end.
    AckedUnprocessed,
    /// At a crash, more acknowledged messages after the saved checkpoint than the back-pressure
    /// allows: `every - 1` plus the messages held unacknowledged when the last was handed out.
    CrashWindow,
    /// At a crash, more than `every` acknowledged messages after the saved checkpoint (the
    /// documented bound: "at most `every` acknowledged messages, plus the messages it was given
    /// but had not acknowledged"), within what the back-pressure allows (see `CrashWindow`).
    CrashWindowDoc,
    /// A restarted subscription did not resume from the checkpoint saved before the crash.
    CrashResume,
    EventOrder,
    ReplayOrder,
    AfterShutdown,
    /// An event reported by a coordinator that was dropped (a crashed process).
    AfterDrop,
    ShutdownUnsaved,
    ShutdownCount,
    /// Consumers on the server that belong to no open subscription, or too many.
    Consumers,
}

#[derive(Clone, Debug)]
pub(crate) struct Violation {
    pub(crate) kind: Kind,
    pub(crate) detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)
    }
}

/// What was accounted for, in one epoch, by one subscription.
#[derive(Debug)]
struct Segment {
    epoch: u32,
    /// The subscription accounts for what follows this sequence.
    start: u64,
    /// The segment starts a new history of its durable (a start position other than
    /// `LastProcessed` from a checkpoint, or a `StreamReset`): what came before is not owed.
    fresh: bool,
    /// The segment began with a `StreamReset`.
    by_reset: bool,
    delivered: Vec<u64>,
    lost: Vec<(u64, u64)>,
}

impl Segment {
    fn new(epoch: u32, start: u64, fresh: bool) -> Self {
        Self {
            epoch,
            start,
            fresh,
            by_reset: false,
            delivered: Vec::new(),
            lost: Vec::new(),
        }
    }

    fn accounted(&self) -> u64 {
        let d = self.delivered.last().copied().unwrap_or(0);
        let l = self.lost.last().map_or(0, |r| r.1);
        d.max(l).max(self.start)
    }

    fn covers(&self, seq: u64) -> bool {
        self.delivered.binary_search(&seq).is_ok()
            || self.lost.iter().any(|(a, b)| (*a..=*b).contains(&seq))
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Replay {
    from: u64,
    to: u64,
    taken: u64,
    /// A message after the replay was taken: `ReplayCompleted` must come before the next.
    finished: bool,
}

/// One subscription object (an *incarnation* of a slot) in one process.
#[derive(Debug)]
struct Inc {
    proc: u32,
    slot: usize,
    id: u32,
    start: StartPosition,
    subscribed: bool,
    reset_expected: bool,
    /// The previous subscription of this durable in this process, and what it acknowledged.
    after: Option<(u32, u64)>,
    /// The violation when the expected `StreamReset` does not come.
    missed_reset: Kind,
    loaded: Option<Option<u64>>,
    segments: Vec<Segment>,
    replay: Option<Replay>,
    awaiting_taken: Option<u64>,
    unsubscribed: bool,
    closed: bool,
    /// The durable's last checkpoint save had failed when this subscription loaded its own.
    opened_failing: bool,
    /// The kind of the subscription's previous event.
    previous: Option<herald::EventKind>,
    /// Messages taken and acknowledged so far (the application acknowledges in order).
    taken: u64,
    acked: u64,
    /// Per message taken: how many the application held unacknowledged with it.
    held: Vec<(u64, u64)>,
    /// Messages taken and not acknowledged yet, in order: (sequence, epoch).
    unacked: std::collections::VecDeque<(u64, u32)>,
    /// A `ConsumerRecreated` in this epoch, not yet followed by anything: a `StreamReset` may
    /// come next (the stream was reset), or the subscription goes on from its position.
    recreated: Option<(u32, u64)>,
}

#[derive(Default)]
struct ProcState {
    shutdown_seen: bool,
    dead: bool,
    /// The coordinators (connect attempts) already reported for an event after the end.
    reported_after: Vec<u32>,
    shutdown_open: Option<u64>,
}

struct Checker<'a> {
    config: &'a Config,
    model: &'a StreamModel,
    violations: Vec<Violation>,
    incs: Vec<Inc>,
    /// The current incarnation of (process, slot).
    current: HashMap<(u32, usize), usize>,
    procs: HashMap<u32, ProcState>,
    /// (process, slot) → the messages (epoch, sequence) the application acknowledged, and
    /// the incarnation that delivered each.
    acked: HashMap<(u32, usize), HashMap<(u32, u64), u32>>,
    /// Incarnations that ended while their store was failing.
    failed_at_close: HashMap<u32, bool>,
    /// (process, slot) → the subscription that last ended there: its id, the position it
    /// acknowledged, and whether its store had failed.
    closed_at: HashMap<(u32, usize), (u32, u64, bool)>,
    /// The last subscription of each durable in each process that ended, and what it
    /// acknowledged (where the next one of the process resumes when its store failed).
    ended: HashMap<(u32, usize), (u32, u64)>,
    /// (process, slot) → saves begun: the value and the epoch the subscription was in.
    saving: HashMap<(u32, usize), Vec<(u64, u32)>>,
    /// slot → the checkpoint last saved, and the epoch the subscription was in when it was
    /// read (the store outlives processes).
    saved: HashMap<usize, (u64, u32)>,
    /// (process, slot) → a save failed since the last that succeeded.
    store_failing: HashMap<(u32, usize), bool>,
    /// The coordinators whose `connect` failed.
    failed_connects: Vec<u32>,
    /// slot → the state at the last crash, waiting for the next open.
    crashes: HashMap<usize, (u32, CrashInfo, u32)>,
}

/// Checks the history of a run.
pub(crate) fn check(log: &[Entry], config: &Config, model: &StreamModel) -> Vec<Violation> {
    let mut c = Checker {
        config,
        model,
        violations: Vec::new(),
        incs: Vec::new(),
        current: HashMap::new(),
        procs: HashMap::new(),
        acked: HashMap::new(),
        failed_at_close: HashMap::new(),
        closed_at: HashMap::new(),
        ended: HashMap::new(),
        store_failing: HashMap::new(),
        saving: HashMap::new(),
        saved: HashMap::new(),
        crashes: HashMap::new(),
        failed_connects: Vec::new(),
    };
    for (i, entry) in log.iter().enumerate() {
        c.entry(i, entry);
    }
    for i in 0..c.incs.len() {
        c.resolve_recreated(log.len(), i, None);
    }
    c.gaps();
    c.violations
}

/// The slot of a consumer name: `<node>-<durable>` or `<node>:<durable>`.
fn slot_of(config: &Config, consumer: &str) -> Option<usize> {
    let rest = consumer.strip_prefix(NODE)?;
    let durable = rest.strip_prefix('-').or_else(|| rest.strip_prefix(':'))?;
    config.subs.iter().position(|s| s.durable == durable)
}

impl Checker<'_> {
    fn violation(&mut self, kind: Kind, at: usize, detail: String) {
        self.violations.push(Violation {
            kind,
            detail: format!("[log #{at}] {detail}"),
        });
    }

    fn filter(&self, slot: usize) -> Filter {
        self.config.subs[slot].filter
    }

    fn entry(&mut self, at: usize, entry: &Entry) {
        match entry {
            Entry::Event {
                tag,
                coordinator,
                event,
            } => self.event(at, *tag, *coordinator, event),
            Entry::ConnectFailed { coordinator, .. } => {
                self.failed_connects.push(*coordinator);
            }
            Entry::Taken {
                tag,
                slot,
                inc,
                seq,
                replayed,
            } => self.taken(at, *tag, *slot, *inc, *seq, *replayed),
            Entry::Saving { proc, slot, seq } => {
                let epoch = self
                    .incs
                    .iter()
                    .rev()
                    .filter(|x| x.proc == *proc && x.slot == *slot)
                    .find_map(|x| x.segments.last().map(|s| s.epoch));
                if let Some(epoch) = epoch {
                    self.saving
                        .entry((*proc, *slot))
                        .or_default()
                        .push((*seq, epoch));
                }
            }
            Entry::Loaded { proc, slot, value } => {
                if let Some(&i) = self.current.get(&(*proc, *slot)) {
                    if self.incs[i].loaded.is_none() && !self.incs[i].subscribed {
                        self.incs[i].loaded = Some(*value);
                        self.incs[i].opened_failing =
                            self.store_failing.get(&(*proc, *slot)).copied() == Some(true);
                        self.incs[i].after = self.ended.get(&(*proc, *slot)).copied();
                    }
                }
                self.loaded_after_close(at, *proc, *slot, *value);
            }
            Entry::Opening {
                proc,
                slot,
                inc,
                start,
            } => {
                self.incs.push(Inc {
                    proc: *proc,
                    slot: *slot,
                    id: *inc,
                    start: *start,
                    subscribed: false,
                    reset_expected: false,
                    after: None,
                    missed_reset: Kind::EventOrder,
                    loaded: None,
                    segments: Vec::new(),
                    replay: None,
                    awaiting_taken: None,
                    unsubscribed: false,
                    closed: false,
                    recreated: None,
                    opened_failing: false,
                    previous: None,
                    taken: 0,
                    acked: 0,
                    held: Vec::new(),
                    unacked: Default::default(),
                });
                self.current.insert((*proc, *slot), self.incs.len() - 1);
            }
            Entry::Opened { proc, slot, inc } => {
                if let Some(&i) = self.current.get(&(*proc, *slot)) {
                    let (reset_expected, subscribed) =
                        (self.incs[i].reset_expected, self.incs[i].subscribed);
                    if reset_expected {
                        self.violation(
                            self.incs[i].missed_reset,
                            at,
                            format!("subscription {slot} (inc {inc}) resumed from a checkpoint of another stream (beyond it, or saved before it was reset) without reporting StreamReset"),
                        );
                    }
                    if !subscribed {
                        self.violation(
                            Kind::EventOrder,
                            at,
                            format!(
                                "subscription {slot} (inc {inc}) opened without a Subscribed event"
                            ),
                        );
                    }
                }
            }
            Entry::OpenFailed { proc, slot, .. } => {
                if let Some(i) = self.current.remove(&(*proc, *slot)) {
                    self.incs[i].closed = true;
                }
            }
            Entry::Closed {
                tag,
                slot,
                inc,
                last_acked,
                store_failed,
                ..
            } => {
                if let Some(&i) = self.current.get(&(tag.proc, *slot)) {
                    self.resolve_recreated(at, i, None);
                    self.incs[i].closed = true;
                    self.failed_at_close.insert(*inc, *store_failed);
                    self.check_acked(at, i, *tag, *last_acked, "ended");
                    self.closed_at
                        .insert((tag.proc, *slot), (*inc, *last_acked, *store_failed));
                    self.ended.insert((tag.proc, *slot), (*inc, *last_acked));
                }
            }
            Entry::Ended { proc, slot, .. } => {
                if let Some(&i) = self.current.get(&(*proc, *slot)) {
                    self.resolve_recreated(at, i, None);
                    self.incs[i].closed = true;
                }
            }
            Entry::ShutdownCalled { proc, open } => {
                self.procs.entry(*proc).or_default().shutdown_open = Some(*open);
            }
            Entry::Crash { tag, subs } => self.crash(at, *tag, subs),
            Entry::Dead { proc } => self.procs.entry(*proc).or_default().dead = true,
            Entry::Acked {
                proc,
                slot,
                inc,
                seq,
            } => {
                if let Some(x) = self
                    .incs
                    .iter_mut()
                    .rev()
                    .find(|x| x.id == *inc && x.slot == *slot)
                {
                    x.acked += 1;
                    if let Some((s, epoch)) = x.unacked.pop_front() {
                        if s == *seq {
                            self.acked
                                .entry((*proc, *slot))
                                .or_default()
                                .insert((epoch, s), *inc);
                        }
                    }
                }
            }
            Entry::Step { .. } | Entry::ProcessStarted { .. } | Entry::Note(_) => {}
        }
    }
}
