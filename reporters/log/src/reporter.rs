//! [`LogReporter`]: coordinator events as `tracing` events, filtered before they are built.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use herald::{CoordinatorEvent, EventKind, EventKindSet, Reporter, Severity};
use tracing::Level;

use crate::fields::{self, TARGET};

/// A [`Reporter`] that turns every coordinator event into a `tracing` event.
///
/// - **Target** `herald`, so `RUST_LOG=herald=warn` (or any `EnvFilter`) selects Herald's events.
/// - **Level** from the event's [`Severity`] (see [`level`]): connection and subscription churn
///   at `WARN`, loss, deletion and failures at `ERROR`, routine lifecycle at `INFO`, the
///   per-message kinds at `TRACE`.
/// - **Message**: the event's `Display` sentence. **Fields**: the event's own fields plus `kind`
///   (see the [crate docs](crate#fields)), so `tracing_subscriber::fmt().json()` output can be
///   queried by field.
///
/// # Filtering
///
/// [`min_level`](Self::min_level) and the kind filters ([`exclude`](Self::exclude),
/// [`only`](Self::only)) decide in [`Reporter::interest`], before the coordinator builds an
/// event: an event that is filtered out is never built. `interest` also asks the installed
/// subscriber whether it wants target `herald` at that level, so with an `INFO` subscriber the
/// per-message kinds cost the coordinator one cached check each, nothing more.
///
/// # Failures
///
/// A subscriber that panics does not stop the coordinator or the other reporters next to this
/// one in a tuple: the panic is caught here and counted in [`panics`](Self::panics).
///
/// Clones share the panic count.
///
/// ```
/// use herald::{Coordinator, EventKind};
/// use herald_log::LogReporter;
/// use tracing::Level;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> herald::Result<()> {
/// tracing_subscriber::fmt().with_max_level(Level::INFO).init();
/// let reporter = LogReporter::new()
///     .min_level(Level::INFO)
///     .exclude(EventKind::Shutdown);
/// let coordinator = Coordinator::builder().reporter(reporter).connect().await?;
/// // INFO herald: connected to memory://embedded kind="connected" server="memory://embedded"
/// // INFO herald: stream HERALD created (max age 60min, empty, next sequence 1) kind="stream_ready" ...
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LogReporter {
    min: Severity,
    kinds: EventKindSet,
    panics: Arc<AtomicU64>,
}

impl LogReporter {
    /// Every kind at every level; the installed subscriber's filter decides.
    ///
    /// ```
    /// use herald::{EventKind, Reporter};
    /// // No subscriber installed: nothing is wanted, nothing is built.
    /// assert!(!herald_log::LogReporter::new().interest(EventKind::EventsLost));
    /// ```
    pub fn new() -> Self {
        Self {
            min: Severity::Trace,
            kinds: EventKindSet::ALL,
            panics: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Leaves out kinds whose level is below `level` (more verbose), whatever the subscriber
    /// wants: `min_level(Level::INFO)` drops the per-message kinds.
    ///
    /// ```
    /// use herald::{EventKind, Reporter};
    /// use tracing::Level;
    /// let reporter = herald_log::LogReporter::new().min_level(Level::WARN);
    /// let subscriber = tracing_subscriber::fmt().with_max_level(Level::TRACE).finish();
    /// tracing::subscriber::with_default(subscriber, || {
    ///     assert!(reporter.interest(EventKind::EventsLost)); // error
    ///     assert!(reporter.interest(EventKind::Disconnected)); // warn
    ///     assert!(!reporter.interest(EventKind::Subscribed)); // info
    /// });
    /// ```
    pub fn min_level(mut self, level: Level) -> Self {
        self.min = severity(level);
        self
    }

    /// Leaves out events of `kind`.
    ///
    /// ```
    /// use herald::{EventKind, Reporter};
    /// let reporter = herald_log::LogReporter::new().exclude(EventKind::Delivered);
    /// let subscriber = tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).finish();
    /// tracing::subscriber::with_default(subscriber, || {
    ///     assert!(!reporter.interest(EventKind::Delivered));
    ///     assert!(reporter.interest(EventKind::Published));
    /// });
    /// ```
    pub fn exclude(mut self, kind: EventKind) -> Self {
        self.kinds.remove(kind);
        self
    }

    /// Logs only the given kinds (still subject to [`min_level`](Self::min_level) and the
    /// subscriber's filter).
    ///
    /// ```
    /// use herald::{EventKind, Reporter};
    /// let reporter = herald_log::LogReporter::new()
    ///     .only([EventKind::EventsLost, EventKind::ConsumerDeleted]);
    /// let subscriber = tracing_subscriber::fmt().finish(); // INFO and above
    /// tracing::subscriber::with_default(subscriber, || {
    ///     assert!(reporter.interest(EventKind::EventsLost));
    ///     assert!(!reporter.interest(EventKind::Connected));
    /// });
    /// ```
    pub fn only(mut self, kinds: impl IntoIterator<Item = EventKind>) -> Self {
        self.kinds = kinds.into_iter().collect();
        self
    }

    /// Adds `kind` back after [`only`](Self::only) or [`exclude`](Self::exclude).
    ///
    /// ```
    /// use herald::{EventKind, Reporter};
    /// let reporter = herald_log::LogReporter::new()
    ///     .only([EventKind::EventsLost])
    ///     .include(EventKind::Shutdown);
    /// let subscriber = tracing_subscriber::fmt().finish();
    /// tracing::subscriber::with_default(subscriber, || {
    ///     assert!(reporter.interest(EventKind::Shutdown));
    /// });
    /// ```
    pub fn include(mut self, kind: EventKind) -> Self {
        self.kinds.insert(kind);
        self
    }

    /// How many times the subscriber panicked while recording an event. Each panic was caught;
    /// the coordinator and the other reporters went on.
    ///
    /// ```
    /// assert_eq!(herald_log::LogReporter::new().panics(), 0);
    /// ```
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }
}

impl Default for LogReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for LogReporter {
    #[inline]
    fn interest(&self, kind: EventKind) -> bool {
        let severity = kind.severity();
        severity >= self.min && self.kinds.contains(kind) && subscriber_wants(severity)
    }

    fn report(&self, event: &CoordinatorEvent) {
        if catch_unwind(AssertUnwindSafe(|| fields::emit(event))).is_err() {
            self.panics.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for LogReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = self.kinds.iter().map(EventKind::name).collect();
        f.debug_struct("LogReporter")
            .field("min_level", &level_of(self.min))
            .field("kinds", &kinds)
            .field("panics", &self.panics())
            .finish()
    }
}

/// The `tracing` level of events of `kind`: their [`Severity`], one to one.
///
/// | severity | level | kinds |
/// |---|---|---|
/// | `Trace` | `TRACE` | per message: published, delivered, checkpoint saved |
/// | `Info` | `INFO` | routine lifecycle: connected, stream ready, subscribed, replay, unsubscribed, shutdown |
/// | `Warn` | `WARN` | churn Herald recovers from: disconnects, reconnects, missed heartbeats, resubscribes, publish retries |
/// | `Error` | `ERROR` | loss, deletion and failures: events lost, consumer deleted, stream reset, checkpoint failed, server errors |
///
/// ```
/// use herald::EventKind;
/// use tracing::Level;
/// assert_eq!(herald_log::level(EventKind::EventsLost), Level::ERROR);
/// assert_eq!(herald_log::level(EventKind::HeartbeatMissed), Level::WARN);
/// assert_eq!(herald_log::level(EventKind::Subscribed), Level::INFO);
/// assert_eq!(herald_log::level(EventKind::Delivered), Level::TRACE);
/// ```
pub fn level(kind: EventKind) -> Level {
    level_of(kind.severity())
}

fn level_of(severity: Severity) -> Level {
    match severity {
        Severity::Trace => Level::TRACE,
        Severity::Debug => Level::DEBUG,
        Severity::Info => Level::INFO,
        Severity::Warn => Level::WARN,
        Severity::Error => Level::ERROR,
    }
}

fn severity(level: Level) -> Severity {
    match level {
        Level::TRACE => Severity::Trace,
        Level::DEBUG => Severity::Debug,
        Level::INFO => Severity::Info,
        Level::WARN => Severity::Warn,
        _ => Severity::Error,
    }
}

/// Whether the current subscriber wants target `herald` at `severity`: the static max level,
/// then the call site's cached interest, then the subscriber's `enabled`.
#[inline]
fn subscriber_wants(severity: Severity) -> bool {
    match severity {
        Severity::Trace => tracing::enabled!(target: TARGET, Level::TRACE),
        Severity::Debug => tracing::enabled!(target: TARGET, Level::DEBUG),
        Severity::Info => tracing::enabled!(target: TARGET, Level::INFO),
        Severity::Warn => tracing::enabled!(target: TARGET, Level::WARN),
        Severity::Error => tracing::enabled!(target: TARGET, Level::ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_filtered_on_its_own() {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for kind in EventKind::ALL {
                let only = LogReporter::new().only([*kind]);
                let excluded = LogReporter::new().exclude(*kind);
                for other in EventKind::ALL {
                    assert_eq!(only.interest(*other), other == kind, "only {kind}: {other}");
                    assert_eq!(
                        excluded.interest(*other),
                        other != kind,
                        "without {kind}: {other}"
                    );
                }
            }
        });
    }

    #[test]
    fn levels_and_severities_map_one_to_one() {
        for s in [
            Severity::Trace,
            Severity::Debug,
            Severity::Info,
            Severity::Warn,
            Severity::Error,
        ] {
            assert_eq!(severity(level_of(s)), s);
        }
    }
}
