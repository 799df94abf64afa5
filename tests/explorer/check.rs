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

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use herald::{CoordinatorEvent, StartPosition};

use crate::log::{start_cursor, CrashInfo, Entry, Tag};
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
    /// A subscription's acknowledged position lies beyond the last sequence of the stream it
    /// reads (it would save a position the stream never reached).
    AckedBeyondStream,
    /// At a crash, more acknowledged messages after the saved checkpoint than the back-pressure
    /// allows: `every - 1` plus the messages held unacknowledged when the last was handed out.
    CrashWindow,
    /// At a crash, `every` or more acknowledged messages after the saved checkpoint (the
    /// documented bound says fewer), within what the back-pressure allows (see `CrashWindow`).
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
    loaded: Option<Option<u64>>,
    segments: Vec<Segment>,
    replay: Option<Replay>,
    awaiting_taken: Option<u64>,
    unsubscribed: bool,
    closed: bool,
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
    reported_after: bool,
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
    /// (process, slot) → saves begun: the value and the epoch the subscription was in.
    saving: HashMap<(u32, usize), Vec<(u64, u32)>>,
    /// slot → the checkpoint last saved, and the epoch the subscription was in when it was
    /// read (the store outlives processes).
    saved: HashMap<usize, (u64, u32)>,
    /// (process, slot) → a save failed since the last that succeeded.
    store_failing: HashMap<(u32, usize), bool>,
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
        store_failing: HashMap::new(),
        saving: HashMap::new(),
        saved: HashMap::new(),
        crashes: HashMap::new(),
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

fn slot_of(config: &Config, consumer: &str) -> Option<usize> {
    let durable = consumer.strip_prefix(NODE)?.strip_prefix('-')?;
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
            Entry::Event { tag, event } => self.event(at, *tag, event),
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
                    }
                }
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
                    loaded: None,
                    segments: Vec::new(),
                    replay: None,
                    awaiting_taken: None,
                    unsubscribed: false,
                    closed: false,
                    recreated: None,
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
                            Kind::EventOrder,
                            at,
                            format!("subscription {slot} (inc {inc}) resumed from a checkpoint beyond the stream without reporting StreamReset"),
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
                    // The position it would save lies in the stream it reads.
                    let epoch = self.incs[i].segments.last().map(|s| s.epoch);
                    if epoch == Some(tag.epoch) && *last_acked > tag.last {
                        self.violation(
                            Kind::AckedBeyondStream,
                            at,
                            format!("subscription {slot} (inc {inc}) ended with acknowledged position {last_acked}, beyond the stream's last sequence {} (epoch {})", tag.last, tag.epoch),
                        );
                    }
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
            Entry::Crash { proc, subs } => self.crash(at, *proc, subs),
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

    fn event(&mut self, at: usize, tag: Tag, event: &CoordinatorEvent) {
        let p = self.procs.entry(tag.proc).or_default();
        if (p.dead || p.shutdown_seen) && !p.reported_after {
            p.reported_after = true;
            let kind = if p.dead {
                Kind::AfterDrop
            } else {
                Kind::AfterShutdown
            };
            let what = if p.dead {
                "after its coordinator was dropped"
            } else {
                "after Shutdown"
            };
            self.violation(
                kind,
                at,
                format!("process {} reported {event:?} {what}", tag.proc),
            );
        }
        if let CoordinatorEvent::Shutdown { subscriptions, .. } = event {
            let p = self.procs.entry(tag.proc).or_default();
            p.shutdown_seen = true;
            if p.shutdown_open.is_some_and(|open| open != *subscriptions) {
                let open = p.shutdown_open;
                self.violation(
                    Kind::ShutdownCount,
                    at,
                    format!("Shutdown reported {subscriptions} subscriptions, {open:?} were open"),
                );
            }
            return;
        }
        let Some(consumer) = event.consumer() else {
            return;
        };
        let Some(slot) = slot_of(self.config, consumer) else {
            self.violation(
                Kind::EventOrder,
                at,
                format!("an event for an unknown consumer: {event:?}"),
            );
            return;
        };
        let Some(&i) = self.current.get(&(tag.proc, slot)) else {
            self.violation(
                Kind::EventOrder,
                at,
                format!("an event for subscription {slot} before it was opened: {event:?}"),
            );
            return;
        };
        let checkpointing = matches!(
            event,
            CoordinatorEvent::CheckpointSaved { .. } | CoordinatorEvent::CheckpointFailed { .. }
        );
        if checkpointing {
            let failed = matches!(event, CoordinatorEvent::CheckpointFailed { .. });
            self.store_failing.insert((tag.proc, slot), failed);
            if let CoordinatorEvent::CheckpointSaved { seq, .. } = event {
                let begun = self.saving.get(&(tag.proc, slot));
                if let Some(&(_, epoch)) =
                    begun.and_then(|v| v.iter().rev().find(|(s, _)| s == seq))
                {
                    self.saved.insert(slot, (*seq, epoch));
                }
            }
            return;
        }
        let inc = &self.incs[i];
        if inc.unsubscribed {
            self.violation(
                Kind::EventOrder,
                at,
                format!(
                    "subscription {slot} (inc {}) reported {event:?} after Unsubscribed",
                    inc.id
                ),
            );
            return;
        }
        if !inc.subscribed && !matches!(event, CoordinatorEvent::Subscribed { .. }) {
            self.violation(
                Kind::EventOrder,
                at,
                format!(
                    "subscription {slot} (inc {}) reported {event:?} before Subscribed",
                    inc.id
                ),
            );
            return;
        }
        match event {
            CoordinatorEvent::StreamReset { .. } => {}
            CoordinatorEvent::EventsLost { first, .. } => {
                self.resolve_recreated(at, i, Some(*first));
            }
            _ => self.resolve_recreated(at, i, None),
        }
        let previous = self.incs[i].previous.replace(event.kind());
        match event {
            CoordinatorEvent::Subscribed {
                start, checkpoint, ..
            } => self.subscribed(at, tag, i, *start, *checkpoint),
            CoordinatorEvent::StreamReset { .. } => self.stream_reset(at, tag, i),
            CoordinatorEvent::EventsLost { first, last, .. } => {
                self.lost(at, tag, i, *first, *last, previous)
            }
            CoordinatorEvent::Delivered { seq, .. } => {
                let inc = &mut self.incs[i];
                if let Some(previous) = inc.awaiting_taken.replace(*seq) {
                    let id = inc.id;
                    self.violation(
                        Kind::EventOrder,
                        at,
                        format!("subscription {slot} (inc {id}) reported Delivered {seq} while {previous} never reached the application"),
                    );
                }
            }
            CoordinatorEvent::ReplayStarted { from, to, .. } => {
                let inc = &mut self.incs[i];
                let id = inc.id;
                if let Some(running) = inc.replay.replace(Replay {
                    from: *from,
                    to: *to,
                    taken: 0,
                    finished: false,
                }) {
                    self.violation(
                        Kind::ReplayOrder,
                        at,
                        format!("subscription {slot} (inc {id}) reported ReplayStarted {from}..={to} while the replay {}..={} was running", running.from, running.to),
                    );
                }
            }
            CoordinatorEvent::ReplayCompleted { events, .. } => {
                let inc = &mut self.incs[i];
                let id = inc.id;
                match inc.replay.take() {
                    None => self.violation(
                        Kind::ReplayOrder,
                        at,
                        format!("subscription {slot} (inc {id}) reported ReplayCompleted without ReplayStarted"),
                    ),
                    Some(r) if r.taken != *events => self.violation(
                        Kind::ReplayOrder,
                        at,
                        format!("subscription {slot} (inc {id}) reported ReplayCompleted with {events} events, the application took {} replayed messages", r.taken),
                    ),
                    Some(_) => {}
                }
            }
            CoordinatorEvent::Unsubscribed { .. } => self.incs[i].unsubscribed = true,
            CoordinatorEvent::ConsumerRecreated { resume_from, .. } => {
                let inc = &mut self.incs[i];
                inc.recreated = Some((tag.epoch, *resume_from));
                // A replay interrupted by a resubscribe goes on to the new end of the stream.
                if let Some(r) = inc.replay.as_mut().filter(|r| !r.finished) {
                    r.to = r.to.max(tag.last);
                }
            }
            _ => {}
        }
    }

    fn subscribed(
        &mut self,
        at: usize,
        tag: Tag,
        i: usize,
        start: StartPosition,
        checkpoint: Option<u64>,
    ) {
        let (slot, id, proc) = (self.incs[i].slot, self.incs[i].id, self.incs[i].proc);
        if self.incs[i].subscribed {
            self.violation(
                Kind::EventOrder,
                at,
                format!("subscription {slot} (inc {id}) reported Subscribed twice"),
            );
            return;
        }
        if start != self.incs[i].start {
            self.violation(
                Kind::EventOrder,
                at,
                format!(
                    "subscription {slot} (inc {id}) reported start {start:?}, asked {:?}",
                    self.incs[i].start
                ),
            );
        }
        self.incs[i].subscribed = true;
        let (cursor, reset) = start_cursor(start, checkpoint, tag.first, tag.last);
        if reset {
            self.incs[i].reset_expected = true;
        } else {
            let fresh = !(start == StartPosition::LastProcessed && checkpoint.is_some());
            self.incs[i]
                .segments
                .push(Segment::new(tag.epoch, cursor, fresh));
            // A checkpoint saved in another epoch, within the new stream's range: its
            // sequences mean other messages.
            let saved_in = self.saved.get(&slot).copied();
            if let (StartPosition::LastProcessed, Some(c), Some((value, epoch))) =
                (start, checkpoint, saved_in)
            {
                if value == c && epoch != tag.epoch {
                    let skipped = self.model.matching(tag.epoch, self.filter(slot), 1, c);
                    if !skipped.is_empty() {
                        // Did an earlier subscription of this durable see the reset?
                        let seen = self.incs[..i].iter().any(|x| {
                            x.slot == slot
                                && x.segments
                                    .iter()
                                    .any(|s| s.by_reset && s.epoch == tag.epoch)
                        });
                        self.violation(
                            if seen { Kind::StaleCheckpoint } else { Kind::UndetectedReset },
                            at,
                            format!("subscription {slot} (inc {id}) resumed at checkpoint {c}, saved in epoch {epoch}, in epoch {}: the new stream's matching {skipped:?} are skipped without StreamReset", tag.epoch),
                        );
                    }
                }
            }
        }
        // The first open after a crash resumes from what the store held at the crash.
        if let Some((crashed, info, _)) = self.crashes.remove(&slot) {
            if crashed != proc && start == StartPosition::LastProcessed {
                let saved = info.saved;
                if checkpoint != saved {
                    self.violation(
                        Kind::CrashResume,
                        at,
                        format!("subscription {slot} (inc {id}) loaded checkpoint {checkpoint:?} after the crash of process {crashed}, whose store held {saved:?}"),
                    );
                }
            }
        }
    }

    fn stream_reset(&mut self, at: usize, tag: Tag, i: usize) {
        let inc = &mut self.incs[i];
        inc.recreated = None;
        let (slot, id) = (inc.slot, inc.id);
        let start = tag.first.saturating_sub(1);
        let mut segment = Segment::new(tag.epoch, start, true);
        segment.by_reset = true;
        if inc.reset_expected {
            inc.reset_expected = false;
            inc.segments.push(segment);
            return;
        }
        let same = inc.segments.last().is_some_and(|s| s.epoch == tag.epoch);
        inc.segments.push(segment);
        if same {
            self.violation(
                Kind::FalseReset,
                at,
                format!("subscription {slot} (inc {id}) reported StreamReset, but the stream (epoch {}) was not reset", tag.epoch),
            );
        }
    }

    fn lost(
        &mut self,
        at: usize,
        tag: Tag,
        i: usize,
        first: u64,
        last: u64,
        previous: Option<herald::EventKind>,
    ) {
        let filter = self.filter(self.incs[i].slot);
        let inc = &mut self.incs[i];
        let (slot, id) = (inc.slot, inc.id);
        let Some(seg) = inc.segments.last_mut() else {
            self.violation(
                Kind::EventOrder,
                at,
                format!("subscription {slot} (inc {id}) reported EventsLost {first}..={last} before it had a position"),
            );
            return;
        };
        if seg.epoch != tag.epoch {
            self.carry_over(at, i, tag.epoch, 0, &format!("EventsLost {first}..={last}"));
        }
        let Some(seg) = self.incs[i].segments.last_mut() else {
            return;
        };
        let accounted = seg.accounted();
        let overlap = first <= accounted;
        seg.lost.push((first, last));
        if first > last || last > tag.last {
            self.violation(
                Kind::LossOverlap,
                at,
                format!("subscription {slot} (inc {id}) reported EventsLost {first}..={last}; the stream's last sequence is {}", tag.last),
            );
        } else if overlap {
            self.violation(
                Kind::LossOverlap,
                at,
                format!("subscription {slot} (inc {id}) reported EventsLost {first}..={last}, but had already accounted up to {accounted}"),
            );
        }
        let matching = self.model.matching(tag.epoch, filter, first, last);
        if matching.is_empty() {
            let keys: Vec<&str> = (first..=last.min(first + 20))
                .filter_map(|s| self.model.key(tag.epoch, s))
                .collect();
            self.violation(
                Kind::LossWithoutMatch,
                at,
                format!("subscription {slot} (inc {id}, filter {:?}) reported EventsLost {first}..={last}, which held no matching message: {keys:?} (after {previous:?})", filter.as_str()),
            );
        }
    }

    /// A `ConsumerRecreated` not followed by `StreamReset`: if it was on a new stream, the
    /// subscription carried its position over.
    /// `lost_from`: the `EventsLost` that follows the recreation, whose first sequence is
    /// the cursor + 1 (the consumer then resumes at the stream's first sequence instead).
    fn resolve_recreated(&mut self, at: usize, i: usize, lost_from: Option<u64>) {
        if let Some((epoch, resume_from)) = self.incs[i].recreated.take() {
            let old = self.incs[i].segments.last().map(|s| s.epoch);
            if old.is_some_and(|e| e != epoch) {
                let cursor = lost_from.unwrap_or(resume_from).saturating_sub(1);
                self.carry_over(
                    at,
                    i,
                    epoch,
                    cursor,
                    &format!("ConsumerRecreated at {resume_from}"),
                );
            }
        }
    }

    /// The subscription went on in a new epoch without `StreamReset`: it carries its old
    /// position over, so the new stream's matching messages up to it are skipped silently.
    fn carry_over(&mut self, at: usize, i: usize, epoch: u32, resumed_after: u64, what: &str) {
        let filter = self.filter(self.incs[i].slot);
        let inc = &mut self.incs[i];
        let (slot, id) = (inc.slot, inc.id);
        let Some(old) = inc.segments.last() else {
            return;
        };
        // The library's cursor may be past what was delivered (it moved over non-matching
        // messages); the new consumer started after it.
        let (old_epoch, position) = (old.epoch, old.accounted().max(resumed_after));
        inc.segments.push(Segment::new(epoch, position, false));
        let skipped = self.model.matching(epoch, filter, 1, position);
        if !skipped.is_empty() {
            self.violation(
                Kind::UndetectedReset,
                at,
                format!("subscription {slot} (inc {id}) went from epoch {old_epoch} (position {position}) to epoch {epoch} without StreamReset ({what}): the new stream's matching {skipped:?} are skipped silently"),
            );
        }
    }

    fn taken(&mut self, at: usize, tag: Tag, slot: usize, inc_id: u32, seq: u64, replayed: bool) {
        let Some(i) = self
            .incs
            .iter()
            .rposition(|x| x.id == inc_id && x.slot == slot)
        else {
            return;
        };
        self.resolve_recreated(at, i, None);
        let inc = &mut self.incs[i];
        inc.taken += 1;
        inc.held.push((seq, inc.taken - inc.acked));
        let proc = inc.proc;
        match inc.awaiting_taken.take() {
            Some(d) if d == seq => {}
            other => self.violation(
                Kind::EventOrder,
                at,
                format!("subscription {slot} (inc {inc_id}) gave the application {seq}, but reported Delivered {other:?}"),
            ),
        }
        // Replay order.
        let inc = &mut self.incs[i];
        let mut replay_problem = None;
        match (&mut inc.replay, replayed) {
            (Some(r), true) if !r.finished && (r.from..=r.to).contains(&seq) => {
                r.taken += 1;
                if seq == r.to {
                    r.finished = true;
                }
            }
            (Some(r), true) => {
                replay_problem = Some(format!(
                    "replayed message {seq} outside the running replay {}..={} (finished: {})",
                    r.from, r.to, r.finished
                ))
            }
            (None, true) => {
                replay_problem = Some(format!(
                    "replayed message {seq} taken with no ReplayStarted before it (or after ReplayCompleted)"
                ))
            }
            (Some(r), false) if r.finished => {
                replay_problem = Some(format!(
                    "message {seq} taken after the replay {}..={} ended, before ReplayCompleted",
                    r.from, r.to
                ))
            }
            (Some(r), false) => r.finished = true,
            (None, false) => {}
        }
        if let Some(problem) = replay_problem {
            self.violation(
                Kind::ReplayOrder,
                at,
                format!("subscription {slot} (inc {inc_id}): {problem}"),
            );
        }
        // Position.
        let inc = &mut self.incs[i];
        let Some(seg) = inc.segments.last() else {
            self.violation(
                Kind::EventOrder,
                at,
                format!(
                    "subscription {slot} (inc {inc_id}) delivered {seq} before it had a position"
                ),
            );
            return;
        };
        if seg.epoch != tag.epoch {
            self.carry_over(at, i, tag.epoch, 0, &format!("delivered {seq}"));
        }
        let Some(seg) = self.incs[i].segments.last_mut() else {
            return;
        };
        let accounted = seg.accounted();
        let epoch = seg.epoch;
        if seq <= accounted {
            let recent: Vec<u64> = seg.delivered.iter().rev().take(5).rev().copied().collect();
            let lost = seg.lost.iter().rev().take(3).copied().collect::<Vec<_>>();
            let start = seg.start;
            seg.delivered.push(seq);
            seg.delivered.sort_unstable();
            self.violation(
                Kind::Duplicate,
                at,
                format!("subscription {slot} (inc {inc_id}) delivered {seq} after accounting up to {accounted} (start {start}, recent deliveries {recent:?}, losses {lost:?})"),
            );
        } else {
            seg.delivered.push(seq);
        }
        self.incs[i].unacked.push_back((seq, epoch));
        let earlier = self
            .acked
            .get(&(proc, slot))
            .and_then(|m| m.get(&(epoch, seq)))
            .copied()
            .filter(|by| *by != inc_id);
        if let Some(by) = earlier {
            let failing = self.store_failing.get(&(proc, slot)).copied() == Some(true);
            let failed = self.failed_at_close.get(&by).copied().unwrap_or(false);
            let kind = if failed || failing {
                Kind::AckedRedeliveredStoreFailed
            } else {
                Kind::AckedRedelivered
            };
            self.violation(
                kind,
                at,
                format!("subscription {slot} (inc {inc_id}) delivered {seq} (epoch {epoch}) again in process {proc}; the application had acknowledged it from subscription inc {by} of the same durable"),
            );
            // Once per earlier subscription is enough.
            if let Some(m) = self.acked.get_mut(&(proc, slot)) {
                m.retain(|_, i| *i != by);
            }
        }
    }

    /// At a crash: the acknowledged messages the checkpoint does not cover yet are the part
    /// of the window the application had processed; there must be fewer than `every`.
    fn crash(&mut self, at: usize, proc: u32, subs: &[CrashInfo]) {
        for info in subs {
            let slot = info.slot;
            let Some(i) = self
                .incs
                .iter()
                .rposition(|x| x.id == info.inc && x.slot == slot)
            else {
                continue;
            };
            self.resolve_recreated(at, i, None);
            let Some(seg) = self.incs[i].segments.last() else {
                continue;
            };
            let epoch = seg.epoch;
            self.crashes.insert(slot, (proc, info.clone(), epoch));
            let saved = info.saved.unwrap_or(0);
            let saved_epoch = match (info.saved, self.saved.get(&slot)) {
                (None, _) => epoch,
                (Some(v), Some(&(s, e))) if s == v => e,
                (Some(_), _) => u32::MAX,
            };
            if info.store_failed || saved_epoch != epoch {
                continue;
            }
            // Every delivery of this durable in this process and epoch.
            let mut delivered = BTreeSet::new();
            for x in self
                .incs
                .iter()
                .filter(|x| x.proc == proc && x.slot == slot)
            {
                for s in x.segments.iter().filter(|s| s.epoch == epoch) {
                    delivered.extend(s.delivered.iter().copied());
                }
            }
            // The most messages the application held unacknowledged at a handout after the
            // checkpoint (1 for an application that acknowledges before asking for more).
            let held = self.incs[i]
                .held
                .iter()
                .filter(|(seq, _)| *seq > saved)
                .map(|(_, h)| *h)
                .max()
                .unwrap_or(1);
            let acked: Vec<u64> = if info.last_acked > saved {
                delivered
                    .range(saved + 1..=info.last_acked)
                    .copied()
                    .collect()
            } else {
                Vec::new()
            };
            let unacked = delivered.range(info.last_acked + 1..).count();
            let every = self.config.subs[slot].every;
            let window = acked.len() as u64;
            if window >= every {
                let kind = if window < every + held {
                    Kind::CrashWindowDoc
                } else {
                    Kind::CrashWindow
                };
                self.violation(
                    kind,
                    at,
                    format!("at the crash of process {proc}, subscription {slot} (every {every}) had acknowledged {window} messages after its saved checkpoint {saved}: {acked:?} (last acknowledged {}; {unacked} more delivered, unacknowledged; the application held up to {held} unacknowledged at a handout)", info.last_acked),
                );
            }
        }
    }

    /// Completeness: within each segment, and for each durable and epoch over all of them.
    fn gaps(&mut self) {
        let mut found = Vec::new();
        for inc in &self.incs {
            let filter = self.config.subs[inc.slot].filter;
            for seg in inc.segments.iter() {
                let missing: Vec<u64> = self
                    .model
                    .matching(seg.epoch, filter, seg.start + 1, seg.accounted())
                    .into_iter()
                    .filter(|s| !seg.covers(*s))
                    .collect();
                if !missing.is_empty() {
                    found.push(format!(
                        "subscription {} (inc {}, process {}, filter {:?}) started after {} in epoch {}, accounted up to {}, and never delivered nor reported lost {missing:?}",
                        inc.slot, inc.id, inc.proc, filter.as_str(), seg.start, seg.epoch, seg.accounted()
                    ));
                }
            }
        }
        // Over all incarnations of a durable, per epoch, from each fresh start on: what one
        // skipped, another covered.
        let mut by: HashMap<(usize, u32), Vec<Vec<&Segment>>> = HashMap::new();
        for inc in &self.incs {
            for seg in &inc.segments {
                let chains = by.entry((inc.slot, seg.epoch)).or_default();
                match chains.last_mut() {
                    Some(chain) if !seg.fresh => chain.push(seg),
                    _ => chains.push(vec![seg]),
                }
            }
        }
        let mut keys: Vec<_> = by.keys().copied().collect();
        keys.sort_unstable();
        for (slot, epoch) in keys {
            let filter = self.config.subs[slot].filter;
            for segs in &by[&(slot, epoch)] {
                let from = segs.iter().map(|s| s.start).min().unwrap_or(0);
                let to = segs.iter().map(|s| s.accounted()).max().unwrap_or(0);
                let missing: Vec<u64> = self
                    .model
                    .matching(epoch, filter, from + 1, to)
                    .into_iter()
                    .filter(|s| !segs.iter().any(|g| g.covers(*s)))
                    .collect();
                if !missing.is_empty() {
                    found.push(format!(
                        "durable {} (filter {:?}) in epoch {epoch}: over its subscriptions since a fresh start after {from}, up to {to}, never delivered nor reported lost {missing:?}",
                        self.config.subs[slot].durable, filter.as_str()
                    ));
                }
            }
        }
        for detail in found {
            self.violation(Kind::Gap, 0, detail);
        }
    }
}
