//! Runs one schedule against the embedded backend and records its history.
//!
//! Each *process* (a coordinator lifetime) gets its own current-thread tokio runtime with
//! paused time: timers (heartbeats, backoff, checkpoint intervals, the explorer's own waits)
//! cost nothing, and a crash is the runtime dropped with everything in it, so the checkpoint
//! tasks die as they would with the process. The `MemoryServer` and the checkpoint stores
//! outlive processes. Every step runs under a deadline; a panic or a missed deadline ends the
//! run with the seed.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Once};
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;
use herald::{
    Backoff, CheckpointKey, CheckpointPolicy, Coordinator, ErrorKind, MemoryServer, Message,
    StartPosition, Subscription,
};
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::check::{Kind, Violation};
use crate::log::{CrashInfo, Entry, How, LogReporter, Shared, TestStore};
use crate::model::{StreamModel, PREFIX};
use crate::rng::Rng;
use crate::schedule::{Key, Schedule, Step, Store};

/// The node id of every process: a restarted process replaces its own consumers.
pub(crate) const NODE: &str = "explorer";
const HEARTBEAT: Duration = Duration::from_millis(20);
const BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(1),
    max: Duration::from_millis(1),
};
const PUBLISH_DEADLINE: Duration = Duration::from_millis(100);
/// A `Take` stops when no message comes for this long.
const QUIET: Duration = Duration::from_millis(50);
/// Virtual time any one step may take before it counts as a hang.
const STEP_DEADLINE: Duration = Duration::from_secs(30);
/// Virtual time the final drain may take.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

type Sub = Subscription<LogReporter>;

/// What a run produced.
pub(crate) struct Outcome {
    pub(crate) log: Vec<Entry>,
    pub(crate) model: StreamModel,
    /// Found while running: panics, hangs, and what only the runner can see. After a panic
    /// or a hang the run stops early, and the history is incomplete.
    pub(crate) violations: Vec<Violation>,
}

/// Why a run stops early.
struct Abort;

struct Open {
    sub: Sub,
    inc: u32,
    /// Messages taken and not acknowledged yet, in delivery order.
    pending: VecDeque<Message>,
}

struct Process {
    id: u32,
    rt: Runtime,
    coord: Option<Coordinator<LogReporter>>,
    subs: Vec<Option<Open>>,
    shut: bool,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    opened_ever: bool,
    /// Its consumer may be left on the server (dropped without close, or crashed).
    leftover: bool,
    /// Reopen when a new process starts (it was open at a crash or shutdown).
    reopen: bool,
}

struct Runner<'s> {
    schedule: &'s Schedule,
    shared: Arc<Shared>,
    server: MemoryServer,
    stores: Vec<TestStore>,
    proc: Option<Process>,
    next_proc: u32,
    next_inc: u32,
    slots: Vec<Slot>,
    violations: Vec<Violation>,
    /// The virtual time the last process reached: the next one starts there.
    clock: Option<Instant>,
    /// (epoch, message id) → the sequence first stored with it.
    ids: std::collections::HashMap<(u32, u8), u64>,
    rng: Rng,
}

/// Runs `schedule`; `verbose` prints the history as it happens.
pub(crate) fn run(schedule: &Schedule, verbose: bool) -> Outcome {
    install_panic_hook();
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let cfg = &schedule.config;
    let shared = Arc::new(Shared::new(
        StreamModel::new(cfg.max_msgs, cfg.max_bytes),
        verbose,
    ));
    let stores = cfg
        .subs
        .iter()
        .enumerate()
        .map(|(slot, s)| {
            let delay = match s.store {
                Store::Slow { delay_ms } => Duration::from_millis(delay_ms),
                Store::Memory | Store::Flaky => Duration::ZERO,
            };
            TestStore::new(slot, delay, shared.clone())
        })
        .collect();
    let mut runner = Runner {
        schedule,
        shared: shared.clone(),
        server: MemoryServer::new(),
        stores,
        proc: None,
        next_proc: 0,
        next_inc: 0,
        slots: vec![Slot::default(); cfg.subs.len()],
        violations: Vec::new(),
        clock: None,
        ids: std::collections::HashMap::new(),
        rng: Rng::new(schedule.seed ^ 0x005E_ED0F_5EED),
    };
    // An early stop (a panic, a hang) is already among the violations.
    let _ = runner.run_all();
    // Everything is dropped before the log is read: a late event is part of the history.
    let violations = std::mem::take(&mut runner.violations);
    drop(runner);
    CAPTURED.with(|c| *c.borrow_mut() = None);
    let log = std::mem::take(&mut *shared.log.lock());
    let model = std::mem::replace(&mut *shared.model.lock(), StreamModel::new(None, None));
    Outcome {
        log,
        model,
        violations,
    }
}

thread_local! {
    /// Panic messages caught on this thread while a run is going on.
    static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Panics during a run (in a subscription's task, in the explorer's own code) are recorded as
/// findings instead of printed; outside a run they print as usual.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let captured = CAPTURED.with(|c| match c.try_borrow_mut() {
                Ok(mut c) => c.as_mut().map(|v| v.push(info.to_string())).is_some(),
                Err(_) => false,
            });
            if !captured {
                default(info);
            }
        }));
    });
}

fn take_panics() -> Vec<String> {
    CAPTURED.with(|c| {
        c.borrow_mut()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    })
}

fn consumer_name(durable: &str) -> String {
    format!("{NODE}-{durable}")
}

fn key_of(cfg: &crate::schedule::SubConfig) -> CheckpointKey {
    CheckpointKey {
        stream: PREFIX.into(),
        durable: cfg.durable.into(),
        filter: format!("{PREFIX}.{}", cfg.filter.as_str()).into(),
    }
}

/// Runs `fut` on `rt` within `limit` of virtual time, catching a panic.
fn block<F: Future>(rt: &Runtime, limit: Duration, fut: F) -> Result<F::Output, String> {
    match catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async { tokio::time::timeout(limit, fut).await })
    })) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(format!("did not finish within {limit:?} (virtual time)")),
        Err(panic) => Err(format!("panicked: {}", panic_text(&panic))),
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a non-string panic".into())
}

impl Runner<'_> {
    fn violation(&mut self, kind: Kind, detail: impl Into<String>) {
        self.violations.push(Violation {
            kind,
            detail: detail.into(),
        });
    }

    /// A hang or a panic: recorded, and the run stops.
    fn abort(&mut self, what: &str, error: String) -> Abort {
        let kind = if error.starts_with("panicked") {
            Kind::Panic
        } else {
            Kind::Hang
        };
        self.violation(kind, format!("{what}: {error}"));
        Abort
    }

    fn run_all(&mut self) -> Result<(), Abort> {
        self.start_process()?;
        for (index, step) in self.schedule.steps.iter().enumerate() {
            self.shared.push(Entry::Step {
                index,
                step: format!("{step:?}"),
            });
            self.step(step)?;
            self.after_step(&format!("step {index} ({step:?})"))?;
        }
        self.shared.push(Entry::Step {
            index: self.schedule.steps.len(),
            step: "final: heal, drain, shut down".into(),
        });
        self.finish()?;
        self.after_step("the final drain")?;
        Ok(())
    }

    /// Checks made after every step: panics, the model, the consumers on the server.
    fn after_step(&mut self, when: &str) -> Result<(), Abort> {
        let panics = take_panics();
        if !panics.is_empty() {
            self.violation(Kind::Panic, format!("{when}: {}", panics.join(" | ")));
            return Err(Abort);
        }
        let desync: Vec<String> = std::mem::take(&mut *self.shared.desync.lock());
        if !desync.is_empty() {
            self.violation(Kind::ModelDesync, format!("{when}: {}", desync.join("; ")));
            return Err(Abort);
        }
        self.check_consumers(when);
        Ok(())
    }

    /// At most one consumer per subscription, and only for open subscriptions (or ones a
    /// crash or a drop may have left behind).
    fn check_consumers(&mut self, when: &str) {
        let names = self.server.consumer_names(PREFIX);
        let cfg = &self.schedule.config;
        let mut allowed = Vec::new();
        let mut open = 0;
        for (slot, sub) in cfg.subs.iter().enumerate() {
            let is_open = self.proc.as_ref().is_some_and(|p| p.subs[slot].is_some());
            open += usize::from(is_open);
            if is_open || self.slots[slot].leftover {
                allowed.push(consumer_name(sub.durable));
            }
        }
        let mut sorted = names.clone();
        sorted.dedup();
        let stray: Vec<&String> = names.iter().filter(|n| !allowed.contains(n)).collect();
        if sorted.len() != names.len() || !stray.is_empty() || names.len() > allowed.len() {
            self.violation(
                Kind::Consumers,
                format!(
                    "after {when}: consumers on the server {names:?}, but {open} open subscription(s); allowed {allowed:?}"
                ),
            );
        }
    }

    fn step(&mut self, step: &Step) -> Result<(), Abort> {
        match step {
            Step::Publish { key } => self.publish(std::slice::from_ref(key), false),
            Step::PublishBatch { keys } => self.publish(&keys.0, true),
            Step::PublishIdempotent { key, id } => self.publish_idempotent(*key, *id),
            Step::PublishInBackground { key } => {
                self.ensure_coord()?;
                if let Some(p) = self.proc.as_ref() {
                    if let Some(c) = p.coord.clone() {
                        let key = *key;
                        p.rt.spawn(async move {
                            let _ = c.publish(&key.subject(), key.payload()).await;
                        });
                    }
                }
                Ok(())
            }
            Step::Subscribe { sub } => {
                if self.is_open(*sub) {
                    return Ok(());
                }
                self.ensure_coord()?;
                self.open(*sub)
            }
            Step::Take { sub, n, ack } => {
                self.take(*sub, *n)?;
                self.ack(*sub, *ack)
            }
            Step::Ack { sub, n } => self.ack(*sub, *n),
            Step::Resubscribe { sub } => {
                if !self.is_open(*sub) {
                    return Ok(());
                }
                self.close(*sub, How::Drop)?;
                self.open(*sub)
            }
            Step::Close { sub } => self.close(*sub, How::Close),
            Step::Drop { sub } => self.close(*sub, How::Drop),
            Step::DeleteConsumer { sub } => {
                let name = consumer_name(self.schedule.config.subs[*sub].durable);
                self.server.delete_consumer(PREFIX, &name);
                self.slots[*sub].leftover = false;
                Ok(())
            }
            Step::DeleteConsumers => {
                self.server.delete_consumers(PREFIX);
                for slot in &mut self.slots {
                    slot.leftover = false;
                }
                Ok(())
            }
            Step::Disconnect => self.in_process(|s| s.server.disconnect()),
            Step::Reconnect => self.in_process(|s| s.server.reconnect()),
            Step::StopHeartbeats { ms } => {
                self.in_process(|s| s.server.stop_heartbeats(PREFIX, Duration::from_millis(*ms)))
            }
            Step::DropDeliveries { n } => {
                self.server.drop_deliveries(PREFIX, *n);
                Ok(())
            }
            Step::ExpireThrough { back } => {
                let seq = self.shared.model.lock().last.saturating_sub(*back);
                let removed = self.server.expire_through(PREFIX, seq);
                let expected = self.shared.model.lock().expire_through(seq);
                self.compare("expire_through", removed, expected);
                Ok(())
            }
            Step::ExpireAll => {
                let age = Duration::from_millis(self.schedule.config.max_age_ms + 1000);
                let removed = self.server.expire_now(PREFIX, age);
                let expected = self.shared.model.lock().expire_all();
                self.compare("expire_now", removed, expected);
                Ok(())
            }
            Step::Purge => {
                let removed = self.server.purge(PREFIX);
                let expected = self.shared.model.lock().purge();
                self.compare("purge", removed, expected);
                Ok(())
            }
            Step::DeleteStream => {
                if self.server.delete_stream(PREFIX) {
                    self.shared.model.lock().delete();
                    for slot in &mut self.slots {
                        slot.leftover = false;
                    }
                }
                Ok(())
            }
            Step::StoreFail { sub } => {
                if self.schedule.config.subs[*sub].store == Store::Flaky {
                    self.stores[*sub].set_failing(true);
                }
                Ok(())
            }
            Step::StoreHeal { sub } => {
                self.stores[*sub].set_failing(false);
                Ok(())
            }
            Step::Crash => {
                self.crash()?;
                self.start_process()
            }
            Step::Sleep { ms } => {
                let ms = *ms;
                self.run_in_process("sleep", async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                })
            }
            Step::Shutdown => self.shutdown(),
        }
    }

    fn compare(&mut self, what: &str, server: usize, model: usize) {
        if server != model {
            self.shared.desync.lock().push(format!(
                "{what} removed {server} message(s) on the server, {model} in the model"
            ));
        }
    }

    fn is_open(&self, slot: usize) -> bool {
        self.proc.as_ref().is_some_and(|p| p.subs[slot].is_some())
    }

    /// Runs `f` with the current process's runtime entered (its clock is the one that counts).
    fn in_process(&mut self, f: impl FnOnce(&Self)) -> Result<(), Abort> {
        let rt = self.proc.as_ref().map(|p| p.rt.handle().clone());
        match rt {
            Some(handle) => {
                let _guard = handle.enter();
                f(self);
            }
            None => f(self),
        }
        Ok(())
    }

    fn run_in_process(&mut self, what: &str, fut: impl Future<Output = ()>) -> Result<(), Abort> {
        let Some(p) = self.proc.as_ref() else {
            return Ok(());
        };
        match block(&p.rt, STEP_DEADLINE, fut) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.abort(what, e)),
        }
    }

    fn new_runtime() -> Runtime {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("cannot build a tokio runtime: {e}"),
        }
    }

    /// Starts a process: a runtime whose clock continues where the last one stopped, and a
    /// coordinator (unless the server is disconnected: then it connects later).
    fn start_process(&mut self) -> Result<(), Abort> {
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
    fn ensure_coord(&mut self) -> Result<(), Abort> {
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
        let reporter = LogReporter {
            proc: p.id,
            shared: self.shared.clone(),
        };
        let connected = block(&p.rt, STEP_DEADLINE, builder.reporter(reporter).connect());
        match connected {
            Ok(Ok(c)) => p.coord = Some(c),
            Ok(Err(e)) if e.kind() == ErrorKind::Disconnected => {
                self.shared
                    .push(Entry::Note(format!("connect failed: {e}")));
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

    /// Opens `slot` (its configured start the first time, `LastProcessed` afterwards).
    fn open(&mut self, slot: usize) -> Result<(), Abort> {
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

    fn publish(&mut self, keys: &[Key], batch: bool) -> Result<(), Abort> {
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
    fn publish_idempotent(&mut self, key: Key, id: u8) -> Result<(), Abort> {
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
    fn take(&mut self, slot: usize, n: u32) -> Result<(), Abort> {
        let Some(p) = self.proc.as_mut() else {
            return Ok(());
        };
        let Some(open) = p.subs[slot].as_mut() else {
            return Ok(());
        };
        let shared = self.shared.clone();
        let (id, inc) = (p.id, open.inc);
        let consumer = consumer_name(self.schedule.config.subs[slot].durable);
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
    fn ended(&mut self, slot: usize, error: String) {
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
    fn ack(&mut self, slot: usize, n: u32) -> Result<(), Abort> {
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
    fn close(&mut self, slot: usize, how: How) -> Result<(), Abort> {
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

    /// Shuts the process's coordinator down; every acknowledgement must be saved when it
    /// returns, each subscription yields one `Shutdown` error and ends (or is dropped), and
    /// nothing is reported afterwards.
    fn shutdown(&mut self) -> Result<(), Abort> {
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
    fn crash(&mut self) -> Result<(), Abort> {
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
        self.shared.push(Entry::Crash { proc: p.id, subs });
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
    fn finish(&mut self) -> Result<(), Abort> {
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
    fn drain(&mut self) -> Result<(), Abort> {
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
    fn drain_round(&mut self, round: u32) -> Result<(), Abort> {
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
                let task = drain_one(
                    open,
                    self.shared.clone(),
                    id,
                    slot,
                    sub_cfg.durable,
                    sub_cfg.filter,
                );
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
    fn stall_evidence(&self, round: u32, error: &str) -> String {
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

/// Records that the application took `m` from subscription `slot`.
fn record_taken(shared: &Shared, proc: u32, slot: usize, inc: u32, consumer: &str, m: &Message) {
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

/// Takes (and acknowledges) from one subscription until it has accounted for every matching
/// message of the current stream. Polled by hand so that only the subscription's own wake-ups
/// move it: a lost wake-up shows as a stall.
async fn drain_one(
    mut open: Open,
    shared: Arc<Shared>,
    proc: u32,
    slot: usize,
    durable: &'static str,
    filter: crate::schedule::Filter,
) -> (Open, Result<(), String>) {
    let consumer = consumer_name(durable);
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
