//! How a channel row's channel is emptied: by a reader thread polling while the sender sends
//! (`_drained`), or by the sender itself between chunks (`_uncontended`).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::call_site::Case;
use crate::CHUNK;

/// What a non-blocking receive found.
pub(crate) enum Polled<T> {
    Item(T),
    Empty,
    Ended,
}

/// What a `try_recv` returned, whatever the channel: `is_empty` tells its "empty" error from
/// its "disconnected" one.
pub(crate) fn polled<T, E>(received: Result<T, E>, is_empty: impl FnOnce(&E) -> bool) -> Polled<T> {
    match received {
        Ok(item) => Polled::Item(item),
        Err(error) if is_empty(&error) => Polled::Empty,
        Err(_) => Polled::Ended,
    }
}

/// Lets a reader thread spin only while its case runs: spinning readers of the other cases
/// would take the CPU from the one being measured.
#[derive(Clone, Default)]
pub(crate) struct Gate(Arc<AtomicBool>);

impl Gate {
    /// Spins while the gate is open; otherwise sleeps until it opens (or briefly, to notice
    /// the end of the channel).
    pub(crate) fn idle(&self) {
        if self.0.load(Ordering::Acquire) {
            std::hint::spin_loop();
        } else {
            std::thread::park_timeout(Duration::from_millis(5));
        }
    }

    pub(crate) fn set(&self, open: bool, reader: &std::thread::Thread) {
        self.0.store(open, Ordering::Release);
        if open {
            reader.unpark();
        }
    }
}

/// A reader thread that polls without ever blocking (while its case runs) until the channel
/// ends, counting what it received.
struct Drainer {
    received: Arc<AtomicU64>,
    gate: Gate,
    handle: JoinHandle<()>,
}

impl Drainer {
    fn start<T: Send + 'static>(mut try_recv: impl FnMut() -> Polled<T> + Send + 'static) -> Self {
        let received = Arc::new(AtomicU64::new(0));
        let gate = Gate::default();
        let (count, idle) = (received.clone(), gate.clone());
        let handle = std::thread::spawn(move || loop {
            match try_recv() {
                Polled::Item(item) => {
                    drop(black_box(item));
                    count.fetch_add(1, Ordering::Release);
                }
                Polled::Empty => idle.idle(),
                Polled::Ended => return,
            }
        });
        Self {
            received,
            gate,
            handle,
        }
    }

    /// Opens or closes the gate: the thread spins on the channel only while it is open.
    fn active(&self, on: bool) {
        self.gate.set(on, self.handle.thread());
    }

    /// Waits (untimed) until the thread has received `sent` items.
    fn wait_for(&self, sent: u64) {
        while self.received.load(Ordering::Acquire) < sent {
            std::thread::yield_now();
        }
    }

    /// Waits for the thread to finish; the channel must have ended.
    fn join(self) {
        self.handle.join().expect("drainer");
    }
}

/// Who empties a channel between two chunks of sends.
enum Reader {
    /// A thread polling all the time, also while the sender sends.
    Thread(Drainer),
    /// The sending thread itself, between chunks (untimed): no other thread touches the
    /// channel while the sender sends.
    Inline(Box<dyn FnMut()>),
}

/// Sends `send(seq)` in chunks, letting the reader catch up between chunks (untimed).
pub(crate) struct Drained<S> {
    send: S,
    reader: Option<Reader>,
    sent: u64,
}

/// A channel case: `send` sends one event; `try_recv` receives without blocking, from a thread
/// of its own (`threaded`) or inline.
pub(crate) fn drained<T: Send + 'static, S: FnMut(u64)>(
    send: S,
    mut try_recv: impl FnMut() -> Polled<T> + Send + 'static,
    threaded: bool,
) -> Drained<S> {
    let reader = if threaded {
        Reader::Thread(Drainer::start(try_recv))
    } else {
        Reader::Inline(Box::new(move || {
            while let Polled::Item(item) = try_recv() {
                drop(black_box(item));
            }
        }))
    };
    Drained {
        send,
        reader: Some(reader),
        sent: 0,
    }
}

impl<S: FnMut(u64)> Case for Drained<S> {
    fn run(&mut self, iters: u64) -> Duration {
        if let Some(Reader::Thread(drainer)) = &self.reader {
            drainer.active(true);
        }
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let chunk = (iters - done).min(CHUNK);
            let start = Instant::now();
            for i in 0..chunk {
                (self.send)(self.sent + i);
            }
            total += start.elapsed();
            done += chunk;
            self.sent += chunk;
            match self.reader.as_mut().expect("running") {
                Reader::Thread(drainer) => drainer.wait_for(self.sent),
                Reader::Inline(drain) => drain(),
            }
        }
        if let Some(Reader::Thread(drainer)) = &self.reader {
            drainer.active(false);
        }
        total
    }
}

impl<S> Drained<S> {
    /// Ends the channel (by dropping the sender inside `send`) and waits for the reader.
    pub(crate) fn finish(mut self) {
        let reader = self.reader.take();
        drop(self);
        if let Some(Reader::Thread(drainer)) = reader {
            drainer.join();
        }
    }
}
