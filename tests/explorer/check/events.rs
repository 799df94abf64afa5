//! The order of events: `Subscribed` first, `StreamReset` only for a reset stream, replays
//! reported around the replayed messages, `Delivered` before each message, nothing after
//! `Shutdown` or from a process that is gone.

use herald::{CoordinatorEvent, StartPosition};

use super::{slot_of, Checker, Kind, Replay, Segment};
use crate::log::{start_cursor, Tag};

impl Checker<'_> {
    pub(super) fn event(
        &mut self,
        at: usize,
        tag: Tag,
        coordinator: u32,
        event: &CoordinatorEvent,
    ) {
        let p = self.procs.entry(tag.proc).or_default();
        if (p.dead || p.shutdown_seen) && !p.reported_after.contains(&coordinator) {
            p.reported_after.push(coordinator);
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
            let whose = if self.failed_connects.contains(&coordinator) {
                " (by the reporter of a coordinator whose connect failed)"
            } else {
                ""
            };
            self.violation(
                kind,
                at,
                format!("process {} reported {event:?} {what}{whose}", tag.proc),
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

    pub(super) fn subscribed(
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
        // A checkpoint saved in another epoch belongs to another stream (the checkpoint keeps
        // the stream's identity): the subscription must report StreamReset and start over.
        // The checkpoint is what the previous subscription of this process acknowledged (its
        // store failed), or what the store saved.
        // Its position belongs to the stream it read last (a reset starts the position over).
        let acked_in = self.incs[i]
            .after
            .filter(|&(_, last)| last > 0 && Some(last) == checkpoint)
            .and_then(|(previous, last)| {
                let previous = self.incs[..i].iter().rev().find(|x| x.id == previous)?;
                previous.segments.last().map(|s| (last, s.epoch))
            });
        let saved_in = acked_in.or_else(|| self.saved.get(&slot).copied());
        let other_stream = matches!(
            (start, checkpoint, saved_in),
            (StartPosition::LastProcessed, Some(c), Some((value, epoch)))
                if value == c && c > 0 && epoch != tag.epoch
        );
        if reset || other_stream {
            self.incs[i].reset_expected = true;
            if !reset {
                // Did an earlier subscription of this durable see the reset?
                let seen = self.incs[..i].iter().any(|x| {
                    x.slot == slot
                        && x.segments
                            .iter()
                            .any(|s| s.by_reset && s.epoch == tag.epoch)
                });
                self.incs[i].missed_reset = if seen {
                    Kind::StaleCheckpoint
                } else {
                    Kind::UndetectedReset
                };
            }
        } else {
            let fresh = !(start == StartPosition::LastProcessed && checkpoint.is_some());
            self.incs[i]
                .segments
                .push(Segment::new(tag.epoch, cursor, fresh));
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

    pub(super) fn stream_reset(&mut self, at: usize, tag: Tag, i: usize) {
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
}
