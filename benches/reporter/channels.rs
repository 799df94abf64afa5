//! The channel rows: the channel reporter, and the bare channels it is compared with.

use std::hint::black_box;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use herald::{CoordinatorEvent, EventKind};

use crate::call_site::{Case, Emitter, Names};
use crate::drain::{drained, polled, Drained, Gate};
use crate::CAPACITY;

/// The channel reporter (herald-channel) behind the coordinator's call site.
pub(crate) fn channel_reporter(threaded: bool) -> Drained<impl FnMut(u64)> {
    let (reporter, mut events) = herald_channel::channel(CAPACITY);
    let emitter = Emitter::new(reporter);
    let names = Names::new();
    drained(
        move |seq| emitter.emit(EventKind::Delivered, || names.delivered(seq)),
        move || {
            polled(events.try_recv(), |e| {
                matches!(e, herald_channel::TryRecvError::Empty)
            })
        },
        threaded,
    )
}

/// Whether std's `try_recv` found its channel empty (rather than ended).
fn std_empty(error: &std::sync::mpsc::TryRecvError) -> bool {
    matches!(error, std::sync::mpsc::TryRecvError::Empty)
}

/// std's bounded channel is crossbeam-channel's array flavour (ported into std in Rust 1.67).
pub(crate) fn crossbeam_array(threaded: bool) -> Drained<impl FnMut(u64)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<CoordinatorEvent>(CAPACITY);
    let names = Names::new();
    drained(
        move |seq| {
            let _ = black_box(tx.try_send(names.delivered(seq)));
        },
        move || polled(rx.try_recv(), std_empty),
        threaded,
    )
}

/// The bare crossbeam-channel `bounded` channel: what herald-channel is built on.
pub(crate) fn crossbeam_channel(threaded: bool) -> Drained<impl FnMut(u64)> {
    let (tx, rx) = crossbeam_channel::bounded::<CoordinatorEvent>(CAPACITY);
    let names = Names::new();
    drained(
        move |seq| {
            let _ = black_box(tx.try_send(names.delivered(seq)));
        },
        move || polled(rx.try_recv(), crossbeam_channel::TryRecvError::is_empty),
        threaded,
    )
}

/// The bare channel, sending a clone of the event as a reporter given `&CoordinatorEvent`
/// must (attribution row).
pub(crate) fn crossbeam_array_clone(threaded: bool) -> Drained<impl FnMut(u64)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<CoordinatorEvent>(CAPACITY);
    let names = Names::new();
    drained(
        move |seq| {
            let event = names.delivered(seq);
            let _ = black_box(tx.try_send(event.clone()));
            drop(black_box(event));
        },
        move || polled(rx.try_recv(), std_empty),
        threaded,
    )
}

/// As [`crossbeam_array_clone`], plus the sequentially consistent fence and flag check that
/// herald-channel's wake-up protocol adds after each send (attribution row).
pub(crate) fn crossbeam_array_clone_fence(threaded: bool) -> Drained<impl FnMut(u64)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<CoordinatorEvent>(CAPACITY);
    let names = Names::new();
    let parked = AtomicBool::new(false);
    drained(
        move |seq| {
            let event = names.delivered(seq);
            let _ = black_box(tx.try_send(event.clone()));
            fence(Ordering::SeqCst);
            black_box(parked.load(Ordering::Relaxed));
            drop(black_box(event));
        },
        move || polled(rx.try_recv(), std_empty),
        threaded,
    )
}

pub(crate) fn tokio_mpsc(threaded: bool) -> Drained<impl FnMut(u64)> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<CoordinatorEvent>(CAPACITY);
    let names = Names::new();
    drained(
        move |seq| {
            let _ = black_box(tx.try_send(names.delivered(seq)));
        },
        move || {
            polled(rx.try_recv(), |e| {
                matches!(e, tokio::sync::mpsc::error::TryRecvError::Empty)
            })
        },
        threaded,
    )
}

/// `watch::Sender::send` of the event, with a reader thread that reads every change it can
/// (`with_reader`) or with an idle receiver.
pub(crate) struct Watch {
    tx: Option<tokio::sync::watch::Sender<CoordinatorEvent>>,
    gate: Gate,
    idle_rx: Option<tokio::sync::watch::Receiver<CoordinatorEvent>>,
    reader: Option<JoinHandle<()>>,
    names: Names,
    seq: u64,
}

impl Watch {
    pub(crate) fn new(with_reader: bool) -> Self {
        let names = Names::new();
        let (tx, mut rx) = tokio::sync::watch::channel(names.delivered(0));
        let gate = Gate::default();
        let idle = gate.clone();
        let (idle_rx, reader) = if with_reader {
            let reader = std::thread::spawn(move || loop {
                match rx.has_changed() {
                    Ok(true) => drop(black_box(rx.borrow_and_update().clone())),
                    Ok(false) => idle.idle(),
                    Err(_) => return,
                }
            });
            (None, Some(reader))
        } else {
            (Some(rx), None)
        };
        Self {
            tx: Some(tx),
            gate,
            idle_rx,
            reader,
            names,
            seq: 0,
        }
    }

    pub(crate) fn finish(mut self) {
        self.tx = None;
        self.idle_rx = None;
        if let Some(reader) = self.reader.take() {
            reader.join().expect("watch reader");
        }
    }
}

impl Case for Watch {
    fn run(&mut self, iters: u64) -> Duration {
        let tx = self.tx.as_ref().expect("running");
        if let Some(reader) = &self.reader {
            self.gate.set(true, reader.thread());
        }
        let start = Instant::now();
        for _ in 0..iters {
            self.seq += 1;
            let _ = black_box(tx.send(self.names.delivered(self.seq)));
        }
        let took = start.elapsed();
        if let Some(reader) = &self.reader {
            self.gate.set(false, reader.thread());
        }
        took
    }
}
