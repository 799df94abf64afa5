//! Runs one schedule against the embedded backend and records its history.
//!
//! Each *process* (a coordinator lifetime) gets its own current-thread tokio runtime with
//! paused time: timers (heartbeats, backoff, checkpoint intervals, the explorer's own waits)
//! cost nothing, and a crash is the runtime dropped with everything in it, so the checkpoint
//! tasks die as they would with the process. The `MemoryServer` and the checkpoint stores
//! outlive processes. Every step runs under a deadline; a panic or a missed deadline ends the
//! run with the seed.
//!
//! - this file: the run, its steps, the checks made after each step (panics, the model, the
//!   consumers on the server);
//! - `app.rs`: what the application does (subscribe, publish, take, acknowledge, close);
//! - `lifecycle.rs`: processes (start, crash, shut down) and the final drain.

mod app;
mod lifecycle;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Once};
use std::time::Duration;

use herald::{Backoff, CheckpointKey, Coordinator, MemoryServer, Message, Subscription};
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::check::{Kind, Violation};
use crate::log::{Entry, How, LogReporter, Shared, TestStore};
use crate::model::{StreamModel, PREFIX};
use crate::rng::Rng;
use crate::schedule::{Schedule, Step, Store};

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
    next_coordinator: u32,
    slots: Vec<Slot>,
    violations: Vec<Violation>,
    /// The virtual time the last process reached: the next one starts there.
    clock: Option<Instant>,
    /// Per slot: its consumer's name, as its subscriptions report it.
    names: Vec<Option<String>>,
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
        next_coordinator: 0,
        slots: vec![Slot::default(); cfg.subs.len()],
        violations: Vec::new(),
        clock: None,
        ids: std::collections::HashMap::new(),
        names: vec![None; cfg.subs.len()],
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

/// The consumer name of `durable` before a subscription told it (`Subscription::consumer_name`).
fn guessed_consumer_name(durable: &str) -> String {
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
                allowed.push(self.consumer_name(slot, sub.durable));
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
                let name = self.consumer_name(*sub, self.schedule.config.subs[*sub].durable);
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

    fn consumer_name(&self, slot: usize, durable: &str) -> String {
        self.names[slot]
            .clone()
            .unwrap_or_else(|| guessed_consumer_name(durable))
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
}
