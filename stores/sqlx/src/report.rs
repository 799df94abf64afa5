//! Where the stores' events go: the coordinator they were attached to, through its reporter.

use std::sync::Arc;

use herald::{Coordinator, CoordinatorEvent, EventKind, Reporter};

/// A coordinator of any reporter type, as the stores keep it.
pub(crate) trait Sink: Send + Sync + 'static {
    fn report(&self, kind: EventKind, build: &mut dyn FnMut() -> CoordinatorEvent);
}

impl<R: Reporter> Sink for Coordinator<R> {
    fn report(&self, kind: EventKind, build: &mut dyn FnMut() -> CoordinatorEvent) {
        Coordinator::report(self, kind, build);
    }
}

/// An optional sink: without one, nothing is built.
#[derive(Clone, Default)]
pub(crate) struct Events(Option<Arc<dyn Sink>>);

impl Events {
    pub(crate) fn to<R: Reporter>(coordinator: &Coordinator<R>) -> Self {
        Self(Some(Arc::new(coordinator.clone())))
    }

    #[inline]
    pub(crate) fn report(&self, kind: EventKind, mut build: impl FnMut() -> CoordinatorEvent) {
        if let Some(sink) = &self.0 {
            sink.report(kind, &mut build);
        }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Events(coordinator)"
        } else {
            "Events(none)"
        })
    }
}
