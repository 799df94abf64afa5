//! Checkpoints: what a subscription saves, what the next one loads, and the crash window.

use std::collections::BTreeSet;

use super::{Checker, Kind};
use crate::log::{CrashInfo, Tag};

impl Checker<'_> {
    /// The first load after a subscription ended in this process finds the position it
    /// acknowledged (its last save completes first), unless its store failed.
    pub(super) fn loaded_after_close(
        &mut self,
        at: usize,
        proc: u32,
        slot: usize,
        value: Option<u64>,
    ) {
        let Some((inc, acked, failed)) = self.closed_at.remove(&(proc, slot)) else {
            return;
        };
        let failing = self.store_failing.get(&(proc, slot)).copied() == Some(true);
        if failed || failing || value.unwrap_or(0) == acked {
            return;
        }
        let why = if acked == 0 {
            "the reset position (0) after a StreamReset was never saved"
        } else {
            "a later save did not happen (a save in flight counted instead)"
        };
        self.violation(
            Kind::UnsavedOnClose,
            at,
            format!("subscription {slot} (inc {inc}) ended having acknowledged {acked}; the next subscription of its durable in process {proc} loaded {value:?}: {why}"),
        );
    }

    /// The position a subscription would save (`last_acked`, when it ended or crashed) covers
    /// only what it delivered or reported lost in the stream it reads (acknowledgements are
    /// cumulative; the position may also move over messages that do not match).
    pub(super) fn check_acked(
        &mut self,
        at: usize,
        i: usize,
        tag: Tag,
        last_acked: u64,
        when: &str,
    ) {
        let filter = self.filter(self.incs[i].slot);
        let inc = &self.incs[i];
        let (slot, id) = (inc.slot, inc.id);
        let Some(seg) = inc.segments.last().filter(|s| s.epoch == tag.epoch) else {
            return;
        };
        let unprocessed: Vec<u64> = self
            .model
            .matching(tag.epoch, filter, seg.start + 1, last_acked.min(tag.last))
            .into_iter()
            .filter(|s| !seg.covers(*s))
            .collect();
        if last_acked > tag.last || !unprocessed.is_empty() {
            self.violation(
                Kind::AckedUnprocessed,
                at,
                format!("subscription {slot} (inc {id}) {when} with acknowledged position {last_acked} in a stream (epoch {}) whose last sequence is {}; it never delivered nor reported lost {unprocessed:?} below it", tag.epoch, tag.last),
            );
        }
    }

    /// At a crash: the acknowledged messages the checkpoint does not cover yet are the part
    /// of the window the application had processed; there may be at most `every`
    /// (`CheckpointPolicy`'s crash window; what it had not acknowledged comes on top).
    pub(super) fn crash(&mut self, at: usize, tag: Tag, subs: &[CrashInfo]) {
        let proc = tag.proc;
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
            self.check_acked(at, i, tag, info.last_acked, "crashed");
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
            // Every message of this durable the application acknowledged in this process and
            // epoch, and every one it was given.
            let acked_here: BTreeSet<u64> = self
                .acked
                .get(&(proc, slot))
                .map(|m| {
                    m.keys()
                        .filter(|(e, _)| *e == epoch)
                        .map(|(_, s)| *s)
                        .collect()
                })
                .unwrap_or_default();
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
                acked_here
                    .range(saved + 1..=info.last_acked)
                    .copied()
                    .collect()
            } else {
                Vec::new()
            };
            let unacked = delivered.range(info.last_acked + 1..).count();
            let every = self.config.subs[slot].every;
            let window = acked.len() as u64;
            // The documented bound: `every - 1` plus the most messages held unacknowledged.
            if window >= every + held {
                self.violation(
                    Kind::CrashWindow,
                    at,
                    format!("at the crash of process {proc}, subscription {slot} (every {every}) had acknowledged {window} messages after its saved checkpoint {saved}: {acked:?} (last acknowledged {}; {unacked} more delivered, unacknowledged; the application held up to {held} unacknowledged at a handout)", info.last_acked),
                );
            }
        }
    }
}
