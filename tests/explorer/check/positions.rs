//! Positions: what each subscription delivered or reported lost, per stream epoch; no
//! duplicates within a process, no silent gaps, loss reported exactly.

use std::collections::HashMap;

use super::{Checker, Kind, Segment};
use crate::log::Tag;

impl Checker<'_> {
    pub(super) fn lost(
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
    pub(super) fn resolve_recreated(&mut self, at: usize, i: usize, lost_from: Option<u64>) {
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
    pub(super) fn carry_over(
        &mut self,
        at: usize,
        i: usize,
        epoch: u32,
        resumed_after: u64,
        what: &str,
    ) {
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

    pub(super) fn taken(
        &mut self,
        at: usize,
        tag: Tag,
        slot: usize,
        inc_id: u32,
        seq: u64,
        replayed: bool,
    ) {
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
            let failing = self.incs[i].opened_failing;
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

    /// Completeness: within each segment, and for each durable and epoch over all of them.
    pub(super) fn gaps(&mut self) {
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
