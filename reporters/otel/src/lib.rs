//! Herald reporter crate `herald-otel` (in progress).
