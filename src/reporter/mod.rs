//! Reporters: where a coordinator sends its [`CoordinatorEvent`](crate::CoordinatorEvent)s.
//!
//! A coordinator never builds an event nobody wants. Every call site reads
//!
//! ```text
//! if reporter.interest(kind) { reporter.report(&build()) }
//! ```
//!
//! so with [`NullReporter`] (the default) `interest` is a constant `false`, the branch and the
//! event construction are removed by the optimiser, and reporting costs nothing. A reporter that
//! filters at run time pays one call to `interest` per call site and builds only the kinds it
//! asked for.
//!
//! Implementations are provided for [`NullReporter`], `&'static R`, `Box<R>`, `Arc<R>` (with
//! `R: ?Sized`, so `Arc<dyn Reporter>` works), closures through [`from_fn`], and tuples of up to
//! eight reporters (fan-out: each member is only given the kinds it asked for).
//!
//! - `contract.rs`: the [`Reporter`] trait and the forwarding impls;
//! - `null.rs`: [`NullReporter`], the default;
//! - `adapters.rs`: tuples, [`from_fn`], [`ReporterExt::only`];
//! - `stats.rs`: [`StatsReporter`], which keeps a [`Stats`] snapshot.

mod adapters;
mod contract;
mod null;
mod stats;

pub use self::adapters::{from_fn, FnReporter, Only, ReporterExt};
pub use self::contract::Reporter;
pub use self::null::NullReporter;
pub use self::stats::{
    ConnectionState, OutboxStats, Stats, StatsReporter, SubscriptionState, SubscriptionStats,
};
