//! What the application does: subscribe, publish, take messages and acknowledge them in
//! delivery order, close or drop subscriptions.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use herald::{CheckpointPolicy, ErrorKind, Message, StartPosition};

use super::{block, panic_text, take_panics, Abort, Open, Runner, QUIET, STEP_DEADLINE};
use crate::check::Kind;
use crate::log::{Entry, How, Shared};
use crate::schedule::Key;

impl Runner<'_> {
    /// Opens `slot` (its configured start the first time, `LastProcessed` afterwards).
    pub(super) fn open(&mut self, slot: usize) -> Result<(), Abort> {
        let Some(p) = self.proc.as_mut() else {
            return Ok(());
        };
        let Some(coord) = p.coord.clone() else {
            return Ok(());
        };
        if p.subs[slot].is_some() {
            return Ok(());
        }
        let cfg = &self.schedule.config.subs[slot];
        let start = if self.slots[slot].opened_ever {
            StartPosition::LastProcessed
        } else {
            cfg.start.position()
        };
        let inc = self.next_inc;
        self.next_inc += 1;
        self.shared.push(Entry::Opening {
            proc: p.id,
            slot,
            inc,
            start,
        });
        let policy = CheckpointPolicy {
            every: cfg.every,
            interval: Duration::from_millis(cfg.interval_ms),
        };
        let store = self.stores[slot].clone();
        let subscribing = coord
            .subscribe(cfg.filter.as_str())
            .durable(cfg.durable)
            .start(start)
            .checkpoint_store(store)
            .checkpoint_policy(policy);
        let opened = block(
            &p.rt,
            STEP_DEADLINE,
            std::future::IntoFuture::into_future(subscribing),
        );
        let shut = p.shut;
        let id = p.id;
        match opened {
            Ok(Ok(sub)) => {
                self.names[slot] = Some(sub.consumer_name().to_string());
                p.subs[slot] = Some(Open {
                    sub,
                    inc,
                    pending: VecDeque::new(),
                });
                self.shared.push(Entry::Opened {
                    proc: id,
                    slot,
                    inc,
                });
                let s = &mut self.slots[slot];
                s.opened_ever = true;
                s.leftover = false;
                s.reopen = false;
            }
            Ok(Err(e)) => {
                self.shared.push(Entry::OpenFailed {
                    proc: id,
                    slot,
                    inc,
                    error: e.to_string(),
                });
                // Past the shutdown check, subscribing deletes the old consumer first.
                if e.kind() != ErrorKind::Shutdown {
                    self.slots[slot].leftover = false;
                }
                let expected = matches!(e.kind(), ErrorKind::Disconnected | ErrorKind::Timeout)
                    || (shut && e.kind() == ErrorKind::Shutdown);
                if !expected {
                    self.violation(
                        Kind::Unexpected,
                        format!("subscribing {} failed: {e}", cfg.durable),
                    );
                }
            }
            Err(e) => return Err(self.abort("subscribe", e)),
        }
        Ok(())
    }

    pub(super) fn publish(&mut self, keys: &[Key], batch: bool) -> Result<(), Abort> {
        self.ensure_coord()?;
        let Some(p) = self.proc.as_ref() else {
            return Ok(());
        };
        let Some(coord) = p.coord.clone() else {
            return Ok(());
        };
        let shut = p.shut;
        let items: Vec<(String, String)> =
            keys.iter().map(|k| (k.subject(), k.payload())).collect();
        let result = block(&p.rt, STEP_DEADLINE, async move {
            if batch {
                coord.publish_batch(items).await
            } else {
                let (subject, payload) = &items[0];
                coord
                    .publish(subject, payload.clone())
                    .await
                    .map(|s| vec![s])
            }
        });
        match result {
            Ok(Ok(seqs)) => {
                if shut {
                    self.violation(
                        Kind::Unexpected,
                        format!("a publish after shutdown succeeded: {seqs:?}"),
                    );
                }
                let model = self.shared.model.lock();
                for (seq, key) in seqs.iter().zip(keys) {
                    if model.key(model.epoch, *seq) != Some(key.subject().as_str()) {
                        self.shared.desync.lock().push(format!(
                            "publish of {} returned {seq}, which the model does not hold",
                            key.subject()
                        ));
                    }
                }
            }
            Ok(Err(e)) => {
                let expected = match e.kind() {
                    ErrorKind::Shutdown => shut,
                    ErrorKind::DeadlineExceeded | ErrorKind::Disconnected => true,
                    _ => false,
                };
                if !expected {
                    self.violation(Kind::Unexpected, format!("publish failed: {e}"));
                }
            }
            Err(e) => return Err(self.abort("publish", e)),
        }
        Ok(())
    }

    /// Publishes with message id `id-N`: stored once per stream (guarantee 8).
    pub(super) fn publish_idempotent(&mut self, key: Key, id: u8) -> Result<(), Abort> {
        self.ensure_coord()?;
        let Some(p) = self.proc.as_ref() else {
            return Ok(());
        };
        let Some(coord) = p.coord.clone() else {
            return Ok(());
        };
        let shut = p.shut;
        let result = block(&p.rt, STEP_DEADLINE, async move {
            coord
                .publish_idempotent(&key.subject(), key.payload(), &format!("id-{id}"))
                .await
        });
        match result {
            Ok(Ok(ack)) => {
                let epoch = self.shared.model.lock().epoch;
                let earlier = self.ids.get(&(epoch, id)).copied();
                let fine = match earlier {
                    Some(first) => ack.duplicate && ack.seq == first,
                    None => !ack.duplicate,
                };
                let first = *self.ids.entry((epoch, id)).or_insert(ack.seq);
                if shut || !fine {
                    self.violation(
                        Kind::Unexpected,
                        format!(
                            "publish_idempotent of id-{id} returned {ack:?}; the stream (epoch {epoch}) first stored it at {first}{}",
                            if shut { " (after shutdown)" } else { "" }
                        ),
                    );
                }
            }
            Ok(Err(e)) => {
                let expected = match e.kind() {
                    ErrorKind::Shutdown => shut,
                    ErrorKind::DeadlineExceeded | ErrorKind::Disconnected => true,
                    _ => false,
                };
                if !expected {
                    self.violation(Kind::Unexpected, format!("publish_idempotent failed: {e}"));
                }
            }
            Err(e) => return Err(self.abort("publish_idempotent", e)),
        }
        Ok(())
    }

    /// Takes up to `n` messages from `slot`, each as the application would: recorded right
    /// after `next()` returns it, held until acknowledged.
    pub(super) fn take(&mut self, slot: usize, n: u32) -> Result<(), Abort> {
        let Some(p) = self.proc.as_mut() else {
            return Ok(());
        };
        let Some(open) = p.subs[slot].as_mut() else {
            return Ok(());
        };
        let shared = self.shared.clone();
        let (id, inc) = (p.id, open.inc);
        let consumer = open.sub.consumer_name().to_string();
        let sub = &mut open.sub;
        let pending = &mut open.pending;
        let result = block(&p.rt, STEP_DEADLINE, async {
            for _ in 0..n {
                match tokio::time::timeout(QUIET, sub.next()).await {
                    Err(_) => return None,
                    Ok(Some(Ok(m))) => {
                        record_taken(&shared, id, slot, inc, &consumer, &m);
                        pending.push_back(m);
                    }
                    Ok(Some(Err(e))) => return Some(e.to_string()),
                    Ok(None) => return Some("the subscription ended (None)".into()),
                }
            }
            None
        });
        match result {
            Ok(None) => Ok(()),
            Ok(Some(error)) => {
                self.ended(slot, error);
                Ok(())
            }
            Err(e) => Err(self.abort("take", e)),
        }
    }

    /// The subscription in `slot` ended on its own: a fault ended it (guarantee 5).
    pub(super) fn ended(&mut self, slot: usize, error: String) {
        let Some(p) = self.proc.as_mut() else {
            return;
        };
        let Some(open) = p.subs[slot].take() else {
            return;
        };
        let proc = p.id;
        self.shared.push(Entry::Ended {
            proc,
            slot,
            inc: open.inc,
            error: error.clone(),
        });
        {
            let _guard = p.rt.enter();
            drop(open);
        }
        self.slots[slot].leftover = true;
        self.violation(
            Kind::Ended,
            format!("subscription {slot} ended in process {proc}: {error}"),
        );
    }

    /// Acknowledges up to `n` held messages of `slot`, oldest first.
    pub(super) fn ack(&mut self, slot: usize, n: u32) -> Result<(), Abort> {
        let Some(p) = self.proc.as_mut() else {
            return Ok(());
        };
        let Some(open) = p.subs[slot].as_mut() else {
            return Ok(());
        };
        let mut acked = Vec::new();
        for _ in 0..n {
            let Some(m) = open.pending.pop_front() else {
                break;
            };
            let acking = catch_unwind(AssertUnwindSafe(|| m.ack()));
            self.shared.push(Entry::Acked {
                proc: p.id,
                slot,
                inc: open.inc,
                seq: m.seq,
            });
            acked.push(m.seq);
            if let Err(panic) = acking {
                let text = panic_text(&panic);
                let _ = take_panics();
                self.violation(
                    Kind::Panic,
                    format!(
                        "acknowledging, in delivery order, message {} of subscription {slot} (acked so far in this step: {acked:?}): {text}",
                        m.seq
                    ),
                );
                return Err(Abort);
            }
        }
        Ok(())
    }

    /// Ends the subscription in `slot`: dropped without closing, or closed.
    pub(super) fn close(&mut self, slot: usize, how: How) -> Result<(), Abort> {
        let Some(p) = self.proc.as_mut() else {
            return Ok(());
        };
        let Some(open) = p.subs[slot].take() else {
            return Ok(());
        };
        self.shared.push(Entry::Closed {
            tag: self.shared.tag(p.id),
            slot,
            inc: open.inc,
            how,
            last_acked: open.sub.last_acked(),
            store_failed: self.stores[slot].failed_since_success(),
        });
        match how {
            How::Drop => {
                let _guard = p.rt.enter();
                drop(open);
                self.slots[slot].leftover = true;
            }
            How::Close | How::Shutdown => {
                let Open { sub, pending, .. } = open;
                drop(pending);
                if let Err(e) = block(&p.rt, STEP_DEADLINE, sub.close()) {
                    return Err(self.abort("close", e));
                }
                self.slots[slot].leftover = false;
            }
        }
        Ok(())
    }
}

/// Records that the application took `m` from subscription `slot`.
pub(super) fn record_taken(
    shared: &Shared,
    proc: u32,
    slot: usize,
    inc: u32,
    consumer: &str,
    m: &Message,
) {
    let tag = shared.tag(proc);
    shared.advance(consumer, tag.epoch, m.seq);
    shared.push(Entry::Taken {
        tag,
        slot,
        inc,
        seq: m.seq,
        replayed: m.replayed,
    });
}
