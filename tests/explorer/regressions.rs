//! One test per bug the explorer found, on its minimised schedule (printed by
//! `HERALD_EXPLORE_SEED=<seed>`). An open bug has no test here (a test that does not run
//! proves nothing): it is an entry in `KNOWN` (`main.rs`) with the seed that reproduces it,
//! and gets its regression test with its fix.
//!
//! Every schedule ends the same way (see `runner.rs`): heal every fault, reopen every
//! subscription ever opened (`LastProcessed`), drain them while `final_publishes` are
//! published, shut down, then disconnect and reconnect the server once more.

use crate::check::Kind;
use crate::schedule::Step::*;
use crate::schedule::{Config, Filter, Key, Keys, Schedule, Start, Store, SubConfig};
use crate::{assert_free_of, assert_free_of_matching};

/// One subscription slot `d0` with `filter` and `start`, a memory store, saving every
/// `every` acknowledgements.
fn one(filter: Filter, start: Start, every: u64, final_publishes: Vec<Key>) -> Config {
    Config {
        max_msgs: None,
        max_bytes: None,
        max_age_ms: 3_600_000,
        subs: vec![SubConfig {
            durable: "d0",
            filter,
            start,
            store: Store::Memory,
            every,
            interval_ms: 20,
        }],
        final_publishes: Keys(final_publishes),
    }
}

/// The final `shutdown()` reports `Shutdown`, then each subscription, polled (one `Shutdown`
/// error) or dropped, reports `Unsubscribed` (and `ReplayCompleted`) after it: nothing may
/// follow `Shutdown`. `Subscription::poll_next`'s error path and `Drop` call
/// `report_unsubscribed` (src/subscription/mod.rs) after `Coordinator::shutdown` emitted
/// `Shutdown` (src/coordinator/mod.rs).
#[test]
fn nothing_is_reported_after_shutdown() {
    assert_free_of(
        Kind::AfterShutdown,
        Schedule {
            seed: 34,
            config: one(Filter::All, Start::All, 1, vec![]),
            steps: vec![Subscribe { sub: 0 }],
        },
    );
}

/// A coordinator dropped without `shutdown` (the crash) stays registered as a connection
/// listener of the `MemoryServer`: the final disconnect and reconnect are reported by the dead
/// process's reporter (`Disconnected`, `Reconnected`), and its subscriptions are signalled.
/// The listener is added in `Builder::connect` (src/coordinator/builder.rs) and removed only
/// by `shutdown` (`Backend::close` → `MemoryBackend::remove_listener`).
#[test]
fn a_dropped_coordinator_reports_nothing() {
    assert_free_of(
        Kind::AfterDrop,
        Schedule {
            seed: 322,
            config: one(Filter::All, Start::All, 1, vec![]),
            steps: vec![Crash],
        },
    );
}

/// `alerts.>` with 1..=5 published (only 2 matches), 1 expired, then the consumer deleted: the
/// resubscribe reports `EventsLost 1..=1`, which held `other.2.x`. On resume the lost range is
/// `cursor + 1 ..= first - 1` whatever the filter (`lost_range` in `Resume::on_resumed`,
/// src/subscription/resume.rs), although the embedded stream knows which removed messages
/// matched (`StreamState::removed_matching`, used on the consumer path).
#[test]
fn a_filtered_resume_reports_only_matching_loss() {
    assert_free_of(
        Kind::LossWithoutMatch,
        Schedule {
            seed: 322,
            config: one(Filter::AlertsDeep, Start::All, 1, vec![]),
            steps: vec![
                Subscribe { sub: 0 },
                PublishBatch {
                    keys: Keys(vec![
                        Key::OtherDeep(2),
                        Key::Alerts(3),
                        Key::OtherDeep(4),
                        Key::OtherDeep(3),
                    ]),
                },
                Publish { key: Key::Other(4) },
                ExpireThrough { back: 4 },
                DeleteConsumer { sub: 0 },
            ],
        },
    );
}

/// Delivered and acknowledged 1; the stream is deleted and recreated, and gets a new message
/// 1 before the subscription resubscribes. `open_consumer` (src/subscription/resume.rs) detects
/// a reset only when `high_water > bounds.last`: the new stream has caught up, so it resumes at
/// 2 and the new stream's 1 is skipped without `StreamReset` or `EventsLost`.
#[test]
fn a_reset_stream_that_caught_up_is_noticed() {
    assert_free_of(
        Kind::UndetectedReset,
        Schedule {
            seed: 154,
            config: one(Filter::AlertsDeep, Start::All, 6, vec![Key::Alerts(3)]),
            steps: vec![
                Subscribe { sub: 0 },
                Publish {
                    key: Key::Alerts(4),
                },
                Take {
                    sub: 0,
                    n: 8,
                    ack: u32::MAX,
                },
                DeleteStream,
            ],
        },
    );
}

/// Delivered and acknowledged 1 (checkpoint 1); the stream is deleted; the subscription
/// reports `StreamReset` and `Acks::reset` zeroes the in-memory position
/// (src/checkpoint/progress.rs), but the store keeps checkpoint 1 of the old stream. The new
/// stream gets its message 1; the subscription closes (nothing new to save) and reopens with
/// `LastProcessed`: checkpoint 1 is within the new stream, so its message 1 is skipped.
#[test]
fn a_stream_reset_replaces_the_saved_checkpoint() {
    assert_free_of(
        Kind::StaleCheckpoint,
        Schedule {
            seed: 2931,
            config: one(Filter::All, Start::All, 4, vec![]),
            steps: vec![
                Subscribe { sub: 0 },
                Publish {
                    key: Key::Alerts(2),
                },
                Take {
                    sub: 0,
                    n: 1,
                    ack: u32::MAX,
                },
                DeleteStream,
                Take {
                    sub: 0,
                    n: 5,
                    ack: u32::MAX,
                },
                PublishIdempotent {
                    key: Key::Alerts(4),
                    id: 2,
                },
                Close { sub: 0 },
            ],
        },
    );
}

/// Took 1 and 2, acknowledged 1; the stream is deleted; after `StreamReset` the application
/// acknowledges 2 (in delivery order), then takes the new stream's 1 and acknowledges it: debug
/// builds panic ("message 1 acknowledged after 2"), and release builds save checkpoint 2 for
/// the new stream. Messages handed out before the reset share the subscription's `Acks`, which
/// `Acks::reset` zeroed (src/checkpoint/progress.rs): their late acknowledgements move the new
/// stream's position.
#[test]
fn acknowledging_a_message_from_before_a_reset_is_harmless() {
    let schedule = || Schedule {
        seed: 652,
        config: one(Filter::All, Start::All, 3, vec![Key::Alerts(3)]),
        steps: vec![
            Subscribe { sub: 0 },
            Publish { key: Key::Other(4) },
            Publish {
                key: Key::Alerts(0),
            },
            Take {
                sub: 0,
                n: 3,
                ack: 1,
            },
            DeleteStream,
            Take {
                sub: 0,
                n: 7,
                ack: u32::MAX,
            },
        ],
    };
    // Debug builds panic; release builds keep the old stream's position.
    assert_free_of(Kind::Panic, schedule());
    assert_free_of(Kind::AckedUnprocessed, schedule());
}

/// The store fails; 1 is delivered and acknowledged; the subscription is dropped and opened
/// again (`LastProcessed`) in the same process: its last save failed, so it loads no
/// checkpoint and delivers 1 again, although the coordinator holds the old subscription's
/// acknowledgements (`CoordinatorState::savers`, src/state.rs; `subscribe` loads only from
/// the store, src/subscription/builder.rs). Guarantee 3: never twice within a process.
#[test]
fn drop_and_resubscribe_never_redelivers_what_was_acknowledged() {
    let mut config = one(Filter::All, Start::All, 2, vec![]);
    config.subs[0].store = Store::Flaky;
    assert_free_of(
        Kind::AckedRedeliveredStoreFailed,
        Schedule {
            seed: 2207,
            config,
            steps: vec![
                StoreFail { sub: 0 },
                Subscribe { sub: 0 },
                Publish { key: Key::Other(2) },
                Take {
                    sub: 0,
                    n: 6,
                    ack: u32::MAX,
                },
                Resubscribe { sub: 0 },
            ],
        },
    );
}

/// `every: 1`, an application that acknowledges each message before asking for the next:
/// it acknowledges 1 and crashes before the save, and 1 is delivered again. `Acks::poll_room`
/// bounds the window when a message is handed out (`acked - saved < every`), so it reaches
/// `every` once that message is acknowledged: within `CheckpointPolicy`'s "at most `every`
/// acknowledged messages" (this branch's src/checkpoint/mod.rs still says "fewer than `every`";
/// main says "at most" since 740ba70).
#[test]
fn the_crash_window_is_at_most_every_acknowledged_messages() {
    let schedule = || Schedule {
        seed: 3577,
        config: one(Filter::All, Start::All, 1, vec![]),
        steps: vec![
            Subscribe { sub: 0 },
            Publish {
                key: Key::Alerts(1),
            },
            Take {
                sub: 0,
                n: 1,
                ack: u32::MAX,
            },
            Crash,
        ],
    };
    assert_free_of(Kind::CrashWindowDoc, schedule());
    assert_free_of(Kind::CrashWindow, schedule());
}

/// `every: 1`, an application that takes three messages, then acknowledges them together,
/// and crashes before the save: three acknowledged messages come again, and the documented
/// bound ("at most `every` acknowledged messages, plus the messages it was given but had not
/// acknowledged") allows one. The back-pressure (`Acks::poll_room`, src/checkpoint/progress.rs)
/// is applied when a message is handed out, not when it is acknowledged, so the window is
/// `every - 1` plus the messages taken before acknowledging: either the documentation says so,
/// or `ack` must wait for room.
#[test]
fn the_crash_window_holds_for_batched_acknowledgements() {
    assert_free_of(
        Kind::CrashWindowDoc,
        Schedule {
            seed: 0,
            config: one(Filter::All, Start::All, 1, vec![]),
            steps: vec![
                Subscribe { sub: 0 },
                PublishBatch {
                    keys: Keys(vec![Key::Alerts(1), Key::Alerts(2), Key::Alerts(3)]),
                },
                Take {
                    sub: 0,
                    n: 3,
                    ack: u32::MAX,
                },
                Crash,
            ],
        },
    );
}

/// A replay 2..=6 runs (after a deleted consumer); the stream is deleted and recreated: after
/// `StreamReset` the new stream's message 1 is flagged `replayed` as part of the old stream's
/// replay 2..=6, and `ReplayCompleted` counts it. `Replays::resumed`
/// (src/subscription/replay.rs) extends a running replay on every resubscribe; `on_resumed`
/// (src/subscription/resume.rs) does not end it on a reset.
#[test]
fn a_replay_ends_at_a_stream_reset() {
    assert_free_of(
        Kind::ReplayOrder,
        Schedule {
            seed: 533,
            config: one(Filter::All, Start::All, 2, vec![Key::Alerts(4)]),
            steps: vec![
                Subscribe { sub: 0 },
                Publish {
                    key: Key::Alerts(0),
                },
                Take {
                    sub: 0,
                    n: 8,
                    ack: u32::MAX,
                },
                DeleteConsumer { sub: 0 },
                PublishBatch {
                    keys: Keys(vec![
                        Key::Alerts(0),
                        Key::Alerts(2),
                        Key::OtherDeep(2),
                        Key::OtherDeep(3),
                        Key::Alerts(2),
                    ]),
                },
                Take {
                    sub: 0,
                    n: 4,
                    ack: u32::MAX,
                },
                DeleteStream,
            ],
        },
    );
}

/// Delivered and acknowledged 1..=3 with a slow store: the save of 3 is in flight when the
/// stream is deleted. The subscription reports `StreamReset` (`Acks::reset`: acknowledged and
/// saved positions 0), takes the new stream's 1 and acknowledges it; then the save of 3
/// completes and `Saver::run` raises `saved` to 3 (`fetch_max`, src/checkpoint/progress.rs).
/// Dropped, the subscription's last save sees nothing above 3 to save: the store keeps 3 of
/// the old stream, the next subscription resets again and delivers the acknowledged 1 again.
#[test]
fn a_save_in_flight_at_a_stream_reset_is_not_the_new_position() {
    let mut config = one(Filter::All, Start::All, 6, vec![]);
    config.subs[0].store = Store::Slow { delay_ms: 12 };
    config.subs[0].interval_ms = 10;
    assert_free_of(
        Kind::UnsavedOnClose,
        Schedule {
            seed: 1382652,
            config,
            steps: vec![
                Subscribe { sub: 0 },
                PublishBatch {
                    keys: Keys(vec![
                        Key::AlertsDeep(2),
                        Key::Other(0),
                        Key::Alerts(3),
                        Key::AlertsDeep(4),
                    ]),
                },
                Take {
                    sub: 0,
                    n: 3,
                    ack: u32::MAX,
                },
                DeleteStream,
                Publish {
                    key: Key::OtherDeep(4),
                },
                Take {
                    sub: 0,
                    n: 8,
                    ack: u32::MAX,
                },
                Resubscribe { sub: 0 },
            ],
        },
    );
}

/// The server is disconnected when a process restarts: `Builder::connect` fails
/// (`ensure_stream`), but the connection listener it registered on the `MemoryServer` first
/// stays (src/coordinator/builder.rs): the coordinator that never existed reports the next
/// `Disconnected` and `Reconnected`, after its process is gone (or after the process's next
/// coordinator shut down). Found on main too, where dropped coordinators no longer leak.
#[test]
fn a_failed_connect_leaves_nothing_behind() {
    assert_free_of_matching(
        Kind::AfterDrop,
        "connect failed",
        Schedule {
            seed: 7533,
            config: one(Filter::All, Start::All, 1, vec![]),
            steps: vec![Disconnect, Crash],
        },
    );
}

/// Delivered, acknowledged and saved 1; the process crashes; the stream is deleted and
/// recreated and gets a new message 1 before the next process resubscribes. The checkpoint was
/// a bare sequence: checkpoint 1 lies within the new stream, so the new message 1 was skipped
/// without `StreamReset`. The checkpoint now keeps the stream's identity (its creation time),
/// and a checkpoint of another stream starts the new one from its beginning.
#[test]
fn a_checkpoint_of_a_deleted_stream_is_not_resumed_in_the_new_one() {
    assert_free_of(
        Kind::UndetectedReset,
        Schedule {
            seed: 21,
            config: one(Filter::All, Start::All, 3, vec![]),
            steps: vec![
                Subscribe { sub: 0 },
                Publish {
                    key: Key::AlertsDeep(2),
                },
                Take {
                    sub: 0,
                    n: 7,
                    ack: u32::MAX,
                },
                Take {
                    sub: 0,
                    n: 3,
                    ack: u32::MAX,
                },
                StopHeartbeats { ms: 231 },
                Crash,
                DeleteStream,
                Publish {
                    key: Key::Alerts(0),
                },
            ],
        },
    );
}

/// Acknowledged 1 while the store failed; the stream is deleted and gets a new message 1; the
/// subscription is dropped and opened again (after a failed attempt). The position this
/// process acknowledged belongs to the old stream: it must start the new stream over with
/// `StreamReset`, not resume after the new stream's 1.
#[test]
fn an_acknowledged_position_of_a_deleted_stream_is_not_resumed() {
    let mut config = one(Filter::All, Start::All, 2, vec![]);
    config.subs[0].store = Store::Flaky;
    assert_free_of(
        Kind::UndetectedReset,
        Schedule {
            seed: 19929,
            config,
            steps: vec![
                Subscribe { sub: 0 },
                Publish { key: Key::Other(4) },
                StoreFail { sub: 0 },
                Take {
                    sub: 0,
                    n: 4,
                    ack: u32::MAX,
                },
                Drop { sub: 0 },
                DeleteStream,
                Publish { key: Key::Other(3) },
                Disconnect,
                Subscribe { sub: 0 },
            ],
        },
    );
}

/// Saved 1; the stream is reset and the subscription acknowledges the new stream's 1 while
/// the store fails. Reopened, it resumes after the new 1 (what this process acknowledged, of
/// this stream) and does not take the store's checkpoint of the old stream for a reset.
#[test]
fn a_position_acknowledged_after_a_reset_outranks_the_stores_old_one() {
    let mut config = one(Filter::All, Start::All, 1, vec![Key::AlertsDeep(4)]);
    config.subs[0].store = Store::Flaky;
    assert_free_of(
        Kind::FalseReset,
        Schedule {
            seed: 83915,
            config,
            steps: vec![
                Subscribe { sub: 0 },
                PublishIdempotent {
                    key: Key::Alerts(1),
                    id: 2,
                },
                Take {
                    sub: 0,
                    n: 7,
                    ack: u32::MAX,
                },
                Take {
                    sub: 0,
                    n: 6,
                    ack: u32::MAX,
                },
                StoreFail { sub: 0 },
                DeleteStream,
                Publish { key: Key::Other(1) },
                Take {
                    sub: 0,
                    n: 5,
                    ack: u32::MAX,
                },
                Disconnect,
                Resubscribe { sub: 0 },
            ],
        },
    );
}
