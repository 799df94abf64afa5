//! Herald reporter crate `herald-log` (in progress).
