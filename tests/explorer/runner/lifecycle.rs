//! Processes: starting one (a runtime and a coordinator), crashing it, shutting it down, and
//! the final drain every schedule ends with.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;
use herald::{Coordinator, ErrorKind};
use tokio::time::Instant;

use super::app::record_taken;
use super::{
    block, key_of, take_panics, Abort, Open, Process, Runner, BACKOFF, DRAIN_DEADLINE, HEARTBEAT,
    NODE, PUBLISH_DEADLINE, QUIET, STEP_DEADLINE,
};
use crate::check::{Kind, Violation};
use crate::log::{CrashInfo, Entry, How, LogReporter, Shared};
use crate::model::PREFIX;

impl Runner<'_> {
    /// Starts a process: a runtime whose clock continues where the last one stopped, and a
    /// coordinator (unless the server is disconnected: then it connects later).
    pub(super) fn start_process(&mut self) -> Result<(), Abort> {
        let id = self.next_proc;
        self.next_proc += 1;
        self.shared.proc.store(id, Ordering::SeqCst);
        self.shared.live.lock().clear();
        self.shared.push(Entry::ProcessStarted { proc: id });
        let rt = Self::new_runtime();
        if let Some(then) = self.clock {
            let _ = block(&rt, STEP_DEADLINE, async move {
                let now = Instant::now();
                if then > now {
                    tokio::time::advance(then - now).await;
                }
            });
        }
        self.proc = Some(Process {
            id,
            rt,
            coord: None,
            subs: (0..self.schedule.config.subs.len()).map(|_| None).collect(),
            shut: false,
        });
        self.ensure_coord()
    }

    /// Connects the process's coordinator if it has none yet, and reopens the subscriptions
    /// a crash interrupted.
    pub(super) fn ensure_coord(&mut self) -> Result<(), Abort> {
        let Some(p) = self.proc.as_mut() else {
            return Ok(());
        };
        if p.coord.is_some() || p.shut {
            return Ok(());
        }
        let cfg = &self.schedule.config;
        let mut builder = Coordinator::builder()
            .memory_server(self.server.clone())
            .node_id(NODE)
            .heartbeat(HEARTBEAT)
            .backoff(BACKOFF)
            .publish_deadline(PUBLISH_DEADLINE)
            .max_age(Duration::from_millis(cfg.max_age_ms));
        if let Some(m) = cfg.max_msgs {
            builder = builder.max_msgs(m);
        }
        if let Some(b) = cfg.max_bytes {
            builder = builder.max_bytes(b);
        }
        let coordinator = self.next_coordinator;
        self.next_coordinator += 1;
        let reporter = LogReporter {
            proc: p.id,
            coordinator,
            shared: self.shared.clone(),
        };
        let connected = block(&p.rt, STEP_DEADLINE, builder.reporter(reporter).connect());
        match connected {
            Ok(Ok(c)) => p.coord = Some(c),
            Ok(Err(e)) if e.kind() == ErrorKind::Disconnected => {
                self.shared.push(Entry::ConnectFailed {
                    proc: p.id,
                    coordinator,
                    error: e.to_string(),
                });
                return Ok(());
            }
            Ok(Err(e)) => {
                self.violation(Kind::Unexpected, format!("connect failed: {e}"));
                return Ok(());
            }
            Err(e) => return Err(self.abort("connect", e)),
        }
        for slot in 0..self.slots.len() {
            if self.slots[slot].reopen {
                self.open(slot)?;
            }
        }
        Ok(())
    }

    /// Shuts the process's coordinator down; every acknowledgement must be saved when it
    /// returns, each subscription yields one `Shutdown` error and ends (or is dropped), and
    /// nothing is reported afterwards.
    pub(super) fn shutdown(&mut self) -> Result<(), Abort> {
        let Some(p) = self.proc.as_mut() else {
            return Ok(());
        };
        let Some(coord) = p.coord.clone() else {
            return Ok(());
        };
        if p.shut {
            return Ok(());
        }
        let id = p.id;
        let open: Vec<usize> = (0..p.subs.len()).filter(|s| p.subs[*s].is_some()).collect();
        let acked: Vec<(usize, u64)> = open
            .iter()
            .filter_map(|s| p.subs[*s].as_ref().map(|o| (*s, o.sub.last_acked())))
            .collect();
        self.shared.push(Entry::ShutdownCalled {
            proc: id,
            open: open.len() as u64,
        });
        if let Err(e) = block(&p.rt, STEP_DEADLINE, coord.shutdown()) {
            return Err(self.abort("shutdown", e));
        }
        p.shut = true;
        for (slot, acked) in acked {
            let store = &self.stores[slot];
            let saved = store.current(&key_of(&self.schedule.config.subs[slot]));
            if !store.failed_since_success() && saved.unwrap_or(0) < acked {
                self.violations.push(Violation {
                    kind: Kind::ShutdownUnsaved,
                    detail: format!(
                        "after shutdown of process {id}, subscription {slot} had acknowledged {acked} but its store holds {saved:?}"
                    ),
                });
            }
        }
        for slot in open {
            let Some(open) = p.subs[slot].take() else {
                continue;
            };
            self.shared.push(Entry::Closed {
                tag: self.shared.tag(id),
                slot,
                inc: open.inc,
                how: How::Shutdown,
                last_acked: open.sub.last_acked(),
                store_failed: self.stores[slot].failed_since_success(),
            });
            self.slots[slot].reopen = true;
            self.slots[slot].leftover = false;
            if self.rng.chance(50) {
                // The application notices: one `Shutdown` error, then the end.
                let Open { mut sub, .. } = open;
                let seen = block(&p.rt, STEP_DEADLINE, async move {
                    let first = tokio::time::timeout(QUIET, sub.next()).await;
                    let second = tokio::time::timeout(QUIET, sub.next()).await;
                    (
                        first.map(|r| r.map(|m| m.map(|m| m.seq).map_err(|e| e.kind()))),
                        second.map(|r| r.map(|m| m.map(|m| m.seq).map_err(|e| e.kind()))),
                    )
                });
                match seen {
                    Ok((Ok(Some(Err(ErrorKind::Shutdown))), Ok(None))) => {}
                    Ok(other) => self.violations.push(Violation {
                        kind: Kind::Unexpected,
                        detail: format!(
                            "after shutdown, subscription {slot} yielded {other:?} instead of one Shutdown error and the end"
                        ),
                    }),
                    Err(e) => return Err(self.abort("polling after shutdown", e)),
                }
            } else {
                let _guard = p.rt.enter();
                drop(open);
            }
        }
        Ok(())
    }

    /// Kills the process: subscriptions and coordinator dropped without closing, then the
    /// runtime with every task in it (checkpoint saves in flight die too).
    pub(super) fn crash(&mut self) -> Result<(), Abort> {
        let Some(mut p) = self.proc.take() else {
            return Ok(());
        };
        let mut subs = Vec::new();
        for (slot, open) in p.subs.iter().enumerate() {
            if let Some(open) = open {
                let store = &self.stores[slot];
                subs.push(CrashInfo {
                    slot,
                    inc: open.inc,
                    last_acked: open.sub.last_acked(),
                    saved: store.current(&key_of(&self.schedule.config.subs[slot])),
                    store_failed: store.failed_since_success(),
                });
                self.slots[slot].leftover = true;
                self.slots[slot].reopen = true;
            }
        }
        self.shared.push(Entry::Crash {
            tag: self.shared.tag(p.id),
            subs,
        });
        let now = block(&p.rt, STEP_DEADLINE, async { Instant::now() }).ok();
        self.clock = now.or(self.clock);
        {
            let _guard = p.rt.enter();
            p.subs.clear();
            p.coord = None;
        }
        let id = p.id;
        drop(p);
        self.shared.push(Entry::Dead { proc: id });
        Ok(())
    }

    /// The end of every schedule: heal every fault, reopen every subscription ever opened,
    /// drain them all (while a few more messages are published, so waiting subscribers must be
    /// woken), and shut down.
    pub(super) fn finish(&mut self) -> Result<(), Abort> {
        let needs_new = self
            .proc
            .as_ref()
            .is_none_or(|p| p.shut || p.coord.is_none());
        self.in_process(|s| s.server.reconnect())?;
        for store in &self.stores {
            store.set_failing(false);
        }
        if needs_new {
            self.crash()?;
            self.start_process()?;
        }
        for slot in 0..self.slots.len() {
            if self.slots[slot].opened_ever {
                self.open(slot)?;
            }
        }
        self.after_step("reopening for the final drain")?;
        self.drain()?;
        self.shutdown()?;
        // Nothing may be reported by a process that shut down, or by one that is gone.
        self.in_process(|s| {
            s.server.disconnect();
            s.server.reconnect();
        })?;
        if let Some(p) = self.proc.take() {
            let id = p.id;
            drop(p);
            self.shared.push(Entry::Dead { proc: id });
        }
        Ok(())
    }

    /// Takes from every open subscription until each has accounted for every matching message
    /// of the stream (delivered, or reported lost).
    pub(super) fn drain(&mut self) -> Result<(), Abort> {
        let Some(p) = self.proc.as_ref() else {
            return Ok(());
        };
        if p.coord.is_none() {
            self.violation(Kind::Unexpected, "no coordinator for the final drain");
            return Ok(());
        }
        // Acknowledge what is held first, in order.
        for slot in 0..self.slots.len() {
            let n = self
                .proc
                .as_ref()
                .and_then(|p| p.subs[slot].as_ref())
                .map_or(0, |o| o.pending.len() as u32);
            if n > 0 {
                self.ack(slot, n)?;
            }
        }
        for round in 0..2 {
            self.drain_round(round)?;
        }
        Ok(())
    }

    /// One round of the drain: every open subscription in a task of its own; in the first
    /// round the final messages are published meanwhile.
    pub(super) fn drain_round(&mut self, round: u32) -> Result<(), Abort> {
        let cfg = &self.schedule.config;
        let Some(p) = self.proc.as_mut() else {
            return Ok(());
        };
        let Some(coord) = p.coord.clone() else {
            return Ok(());
        };
        let id = p.id;
        let mut tasks = Vec::new();
        for slot in 0..p.subs.len() {
            if let Some(open) = p.subs[slot].take() {
                let sub_cfg = &cfg.subs[slot];
                let task = drain_one(open, self.shared.clone(), id, slot, sub_cfg.filter);
                tasks.push((slot, p.rt.spawn(task)));
            }
        }
        let publishing = if round == 0 {
            cfg.final_publishes.0.clone()
        } else {
            Vec::new()
        };
        let joined = block(&p.rt, DRAIN_DEADLINE, async move {
            for key in publishing {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let _ = coord.publish(&key.subject(), key.payload()).await;
            }
            let mut out = Vec::new();
            for (slot, task) in tasks {
                out.push((slot, task.await));
            }
            out
        });
        let results = match joined {
            Ok(results) => results,
            Err(e) => {
                let detail = self.stall_evidence(round, &e);
                self.violation(Kind::Stall, detail);
                return Err(Abort);
            }
        };
        let mut ended = Vec::new();
        for (slot, result) in results {
            match result {
                Ok((open, outcome)) => {
                    p.subs[slot] = Some(open);
                    if let Err(error) = outcome {
                        ended.push((slot, error));
                    }
                }
                Err(join) => {
                    let panics = take_panics().join(" | ");
                    self.violation(
                        Kind::Panic,
                        format!("draining subscription {slot}: {join} {panics}"),
                    );
                    return Err(Abort);
                }
            }
        }
        for (slot, error) in ended {
            self.ended(slot, error);
        }
        Ok(())
    }

    /// What a stalled drain was waiting for.
    pub(super) fn stall_evidence(&self, round: u32, error: &str) -> String {
        let live = self.shared.live.lock().clone();
        let model = self.shared.model.lock();
        let wanted: Vec<String> = self
            .schedule
            .config
            .subs
            .iter()
            .map(|s| {
                format!(
                    "{}: last matching {} of epoch {}",
                    s.durable,
                    model.last_matching(model.epoch, s.filter),
                    model.epoch
                )
            })
            .collect();
        format!(
            "the final drain (round {round}) {error}: subscriptions accounted {live:?}; the stream wants {wanted:?}; consumers on the server {:?}",
            self.server.consumer_names(PREFIX)
        )
    }
}

/// Takes (and acknowledges) from one subscription until it has accounted for every matching
/// message of the current stream. Polled by hand so that only the subscription's own wake-ups
/// move it: a lost wake-up shows as a stall.
async fn drain_one(
    mut open: Open,
    shared: Arc<Shared>,
    proc: u32,
    slot: usize,
    filter: crate::schedule::Filter,
) -> (Open, Result<(), String>) {
    let consumer = open.sub.consumer_name().to_string();
    let complete = |shared: &Shared| {
        let live = shared.live.lock().get(&consumer).copied();
        let model = shared.model.lock();
        live.is_some_and(|l| {
            l.epoch == model.epoch && l.accounted >= model.last_matching(model.epoch, filter)
        })
    };
    let result = std::future::poll_fn(|cx| loop {
        if complete(&shared) {
            return Poll::Ready(Ok(()));
        }
        match open.sub.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(m))) => {
                record_taken(&shared, proc, slot, open.inc, &consumer, &m);
                m.ack();
                shared.push(Entry::Acked {
                    proc,
                    slot,
                    inc: open.inc,
                    seq: m.seq,
                });
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e.to_string())),
            Poll::Ready(None) => return Poll::Ready(Err("the subscription ended (None)".into())),
            Poll::Pending => {
                return if complete(&shared) {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                }
            }
        }
    })
    .await;
    (open, result)
}
