//! Herald reporter crate `herald-channel` (in progress).
