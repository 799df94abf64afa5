//! The log reporter's real formatted output, captured through a `MakeWriter`, for a scripted
//! run of the real coordinator (embedded backend with fault injection): levels, target,
//! message and structured fields; filtering before events are built; a panicking subscriber.
//!
//! Each test installs its subscriber for its own thread only and runs the coordinator on a
//! current-thread runtime, so tests do not see each other's output.

#[path = "support/script.rs"]
mod script;

use std::io;
use std::sync::{Arc, Mutex};

use herald::testing::{sample_events, RecordingReporter};
use herald::{EventKind, Reporter};
use herald_log::LogReporter;
use script::{script, CONSUMER, STREAM};
use serde_json::Value;
use tracing::subscriber::DefaultGuard;
use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("buffer").clone()).expect("utf-8")
    }

    fn json_lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }
}

impl io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

/// Installs, for this thread, a JSON subscriber at `level` that writes to the returned buffer,
/// until the guard is dropped.
fn capture_json(level: Level) -> (Buffer, DefaultGuard) {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_writer(buffer.clone())
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

fn field<'a>(line: &'a Value, name: &str) -> &'a Value {
    &line["fields"][name]
}

fn kind_of(line: &Value) -> &str {
    field(line, "kind").as_str().expect("every line has a kind")
}

fn level_name(kind: EventKind) -> &'static str {
    match herald_log::level(kind) {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        _ => "ERROR",
    }
}

#[tokio::test]
async fn json_lines_carry_target_level_sentence_and_fields() {
    let (buffer, _guard) = capture_json(Level::TRACE);

    // Every event: the reference the log lines are compared with.
    let recorder = RecordingReporter::everything();
    script((LogReporter::new(), recorder.clone())).await;

    // One line per event, in order, each with the right target, level, kind and sentence.
    let events = recorder.events();
    let lines = buffer.json_lines();
    assert_eq!(lines.len(), events.len(), "{}", buffer.text());
    for (line, event) in lines.iter().zip(&events) {
        assert_eq!(line["target"], "herald");
        assert_eq!(line["level"], level_name(event.kind()), "{line}");
        assert_eq!(kind_of(line), event.kind().name());
        assert_eq!(field(line, "message"), &Value::from(event.to_string()));
        assert!(field(line, "fields").is_null(), "fallback used: {line}");
    }

    let find =
        |kind: &str| -> Vec<&Value> { lines.iter().filter(|l| kind_of(l) == kind).collect() };
    let one = |kind: &str| -> &Value {
        let found = find(kind);
        assert_eq!(found.len(), 1, "{kind}: {found:?}");
        found[0]
    };

    let lost = one("events_lost");
    assert_eq!(lost["level"], "ERROR");
    assert_eq!(field(lost, "stream"), STREAM);
    assert_eq!(field(lost, "consumer"), CONSUMER);
    assert_eq!(field(lost, "first"), 5);
    assert_eq!(field(lost, "last"), 7);
    assert_eq!(field(lost, "count"), 3);

    let deleted = one("consumer_deleted");
    assert_eq!(deleted["level"], "ERROR");
    assert_eq!(field(deleted, "consumer"), CONSUMER);

    let resubscribing = one("resubscribing");
    assert_eq!(resubscribing["level"], "WARN");
    assert_eq!(field(resubscribing, "cause"), "consumer_deleted");
    assert_eq!(field(resubscribing, "detail"), "consumer deleted");
    assert_eq!(field(resubscribing, "attempt"), 1);
    assert!(field(resubscribing, "delay_ms").is_f64());

    assert_eq!(field(one("consumer_recreated"), "resume_from"), 4);

    let replays = find("replay_started");
    assert_eq!(replays.len(), 2);
    assert_eq!(
        (field(replays[0], "from"), field(replays[0], "to")),
        (&Value::from(4), &Value::from(4))
    );
    assert_eq!(
        (field(replays[1], "from"), field(replays[1], "to")),
        (&Value::from(8), &Value::from(9))
    );
    let completed = find("replay_completed");
    assert_eq!(field(completed[1], "events"), 2);
    assert!(field(completed[1], "elapsed_ms").as_f64().expect("ms") >= 0.0);

    let ready = one("stream_ready");
    assert_eq!(ready["level"], "INFO");
    assert_eq!(field(ready, "created"), true);
    assert_eq!(field(ready, "max_age_ms"), 3_600_000.0);
    assert!(
        field(ready, "max_msgs").is_null(),
        "unset limits are left out"
    );

    let subscribed = find("subscribed");
    assert_eq!(field(subscribed[0], "filter"), "SCRIPT.alerts.>");
    assert_eq!(field(subscribed[0], "start"), "the first stored message");
    assert_eq!(field(subscribed[1], "checkpoint"), 4);

    assert_eq!(one("disconnected")["level"], "WARN");
    let reconnected = one("reconnected");
    assert_eq!(field(reconnected, "server"), "memory://embedded");
    assert!(field(reconnected, "downtime_ms").as_f64().expect("ms") >= 15.0);

    let delivered: Vec<u64> = find("delivered")
        .iter()
        .map(|l| {
            assert_eq!(l["level"], "TRACE");
            field(l, "seq").as_u64().expect("seq is an integer")
        })
        .collect();
    assert_eq!(delivered, [1, 2, 3, 4, 8, 9]);
    let published = find("published");
    assert_eq!(published.len(), 9);
    assert_eq!(field(published[0], "subject"), "SCRIPT.alerts.1");
    assert_eq!(field(published[0], "duplicate"), false);

    assert_eq!(field(one("shutdown"), "subscriptions"), 0);
}

#[tokio::test]
async fn text_output_is_one_readable_line_per_event() {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .without_time()
        .with_max_level(Level::INFO)
        .with_writer(buffer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    script(LogReporter::new()).await;
    let text = buffer.text();
    let lost = text
        .lines()
        .find(|l| l.contains("kind=\"events_lost\""))
        .expect("an events_lost line");
    assert_eq!(
        lost,
        format!(
            "ERROR herald: consumer {CONSUMER} on stream {STREAM} lost events 5..=7 (3 events) to retention before they were delivered kind=\"events_lost\" stream=\"{STREAM}\" consumer=\"{CONSUMER}\" first=5 last=7 count=3"
        )
    );
    assert!(text.lines().all(|l| l.contains(" herald: ")), "{text}");
    assert!(
        !text.contains("TRACE"),
        "per-message kinds stay out at INFO"
    );
}

/// Installs a JSON subscriber at `level` for this thread and runs the script with `reporter`.
/// Returns (events built by the coordinator, log lines).
async fn run_filtered(level: Level, reporter: LogReporter) -> (u64, Vec<Value>) {
    let (buffer, _guard) = capture_json(level);
    let before = herald::testing::events_built();
    script(reporter).await;
    (
        herald::testing::events_built() - before,
        buffer.json_lines(),
    )
}

#[tokio::test]
async fn the_subscribers_filter_decides_what_is_built() {
    let (built, lines) = run_filtered(Level::WARN, LogReporter::new()).await;
    let levels: Vec<&str> = lines
        .iter()
        .map(|l| l["level"].as_str().expect("level"))
        .collect();
    assert!(
        levels.iter().all(|l| *l == "WARN" || *l == "ERROR"),
        "{levels:?}"
    );
    assert!(levels.contains(&"ERROR") && levels.contains(&"WARN"));
    // Every event built was logged: nothing the subscriber declines is ever built.
    assert_eq!(built, lines.len() as u64);
}

#[tokio::test]
async fn min_level_and_kind_filters_decide_what_is_built() {
    let reporter = LogReporter::new()
        .min_level(Level::ERROR)
        .exclude(EventKind::EventsLost);
    let (built, lines) = run_filtered(Level::TRACE, reporter).await;
    let kinds: Vec<&str> = lines.iter().map(kind_of).collect();
    assert_eq!(kinds, ["consumer_deleted"]);
    assert_eq!(built, 1);

    let reporter = LogReporter::new()
        .only([EventKind::Subscribed, EventKind::EventsLost])
        .include(EventKind::Shutdown);
    let (built, lines) = run_filtered(Level::TRACE, reporter).await;
    let kinds: Vec<&str> = lines.iter().map(kind_of).collect();
    assert_eq!(
        kinds,
        ["subscribed", "subscribed", "events_lost", "shutdown"]
    );
    assert_eq!(built, 4);
}

/// A layer whose every event panics.
struct Panicking;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Panicking {
    fn on_event(
        &self,
        _event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        panic!("a subscriber bug");
    }
}

#[tokio::test]
async fn a_panicking_subscriber_is_counted_and_nothing_else_notices() {
    let subscriber = tracing_subscriber::registry().with(Panicking);
    let _guard = tracing::subscriber::set_default(subscriber);

    let log = LogReporter::new();
    let recorder = RecordingReporter::everything();
    // The whole script runs despite the subscriber.
    let c = script((log.clone(), recorder.clone())).await;

    let events = recorder.events();
    assert!(events.len() >= 6, "{events:?}");
    // Every event reached the subscriber and panicked there; every panic was counted here, and
    // the recorder next to the log reporter still saw every event.
    assert_eq!(log.panics(), events.len() as u64);
    assert_eq!(c.reporter_panics(), 0);
}

#[test]
fn every_kind_is_logged_with_its_own_fields() {
    // One event of every kind, in `EventKind::ALL` order: the order of `expected` below.
    let events = sample_events();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, EventKind::ALL);
    let (buffer, guard) = capture_json(Level::TRACE);
    let reporter = LogReporter::new();
    for event in &events {
        assert!(reporter.interest(event.kind()));
        reporter.report(event);
    }
    drop(guard);
    let lines = buffer.json_lines();
    assert_eq!(lines.len(), events.len());

    let keys = |line: &Value| -> Vec<String> {
        let mut keys: Vec<String> = line["fields"]
            .as_object()
            .expect("fields")
            .keys()
            .filter(|k| *k != "message" && *k != "kind")
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    let expected: &[(&str, &[&str])] = &[
        ("connected", &["server"]),
        ("disconnected", &["cause", "server"]),
        ("reconnecting", &["attempt", "delay_ms"]),
        ("reconnected", &["downtime_ms", "server"]),
        ("lame_duck", &["server"]),
        ("slow_consumer", &["sid"]),
        ("server_error", &["error"]),
        (
            "stream_ready",
            &[
                "created",
                "first_seq",
                "last_seq",
                "max_age_ms",
                "max_msgs",
                "stream",
            ],
        ),
        ("subscribed", &["consumer", "filter", "start", "stream"]),
        ("heartbeat_missed", &["consumer", "missed", "stream"]),
        ("consumer_deleted", &["consumer", "stream"]),
        (
            "resubscribing",
            &[
                "attempt", "cause", "consumer", "delay_ms", "detail", "stream",
            ],
        ),
        ("consumer_recreated", &["consumer", "resume_from", "stream"]),
        ("replay_started", &["consumer", "from", "stream", "to"]),
        (
            "replay_completed",
            &["consumer", "elapsed_ms", "events", "stream"],
        ),
        (
            "events_lost",
            &["consumer", "count", "first", "last", "stream"],
        ),
        (
            "stream_reset",
            &["consumer", "last_seq", "position", "stream"],
        ),
        ("checkpoint_saved", &["consumer", "seq", "stream"]),
        ("checkpoint_failed", &["consumer", "error", "seq", "stream"]),
        ("unsubscribed", &["consumer", "last_processed", "stream"]),
        ("published", &["duplicate", "seq", "stream", "subject"]),
        (
            "publish_failed",
            &["attempt", "error", "stream", "subject", "will_retry"],
        ),
        ("delivered", &["consumer", "seq", "stream"]),
        ("decode_failed", &["consumer", "error", "seq", "stream"]),
        ("shutdown", &["stream", "subscriptions"]),
        (
            "outbox_relayed",
            &["duplicate", "lag_ms", "outbox", "row", "seq"],
        ),
        ("outbox_backlog", &["oldest_age_ms", "outbox", "pending"]),
        (
            "outbox_relay_failed",
            &["attempt", "delay_ms", "error", "outbox"],
        ),
        ("checkpoint_committed", &["consumer", "seq", "stream"]),
        (
            "checkpoint_commit_failed",
            &["consumer", "error", "seq", "stream"],
        ),
    ];
    for ((line, event), (kind, fields)) in lines.iter().zip(&events).zip(expected) {
        assert_eq!(kind_of(line), *kind);
        assert_eq!(kind_of(line), event.kind().name());
        assert_eq!(keys(line), *fields, "{kind}");
        assert_eq!(line["level"], level_name(event.kind()), "{kind}");
    }

    let by_kind = |kind: &str| lines.iter().find(|l| kind_of(l) == kind).expect(kind);
    assert_eq!(field(by_kind("reconnecting"), "delay_ms"), 250.0);
    assert_eq!(field(by_kind("replay_completed"), "elapsed_ms"), 2.5);
    assert_eq!(field(by_kind("resubscribing"), "cause"), "sequence_gap");
    assert_eq!(
        field(by_kind("resubscribing"), "detail"),
        "consumer sequence gap (expected 4, received 9)"
    );
    assert_eq!(field(by_kind("stream_ready"), "max_msgs"), 1000);
    assert_eq!(field(by_kind("outbox_relayed"), "lag_ms"), 3.0);
    assert_eq!(field(by_kind("outbox_backlog"), "oldest_age_ms"), 1500.0);
    assert_eq!(field(by_kind("outbox_backlog"), "pending"), 120);
    assert_eq!(field(by_kind("subscribed"), "start"), "sequence 5");
    assert_eq!(
        field(by_kind("server_error"), "error"),
        "authorization violation"
    );
}

#[test]
fn the_documented_levels_hold() {
    // The table in the crate docs and the README.
    let documented: &[(Level, &[&str])] = &[
        (
            Level::ERROR,
            &[
                "events_lost",
                "consumer_deleted",
                "stream_reset",
                "checkpoint_failed",
                "checkpoint_commit_failed",
                "server_error",
            ],
        ),
        (
            Level::WARN,
            &[
                "disconnected",
                "reconnecting",
                "reconnected",
                "lame_duck",
                "slow_consumer",
                "heartbeat_missed",
                "resubscribing",
                "consumer_recreated",
                "publish_failed",
                "decode_failed",
                "outbox_relay_failed",
            ],
        ),
        (
            Level::INFO,
            &[
                "connected",
                "stream_ready",
                "subscribed",
                "replay_started",
                "replay_completed",
                "unsubscribed",
                "shutdown",
                "outbox_backlog",
            ],
        ),
        (
            Level::TRACE,
            &[
                "published",
                "delivered",
                "checkpoint_saved",
                "outbox_relayed",
                "checkpoint_committed",
            ],
        ),
    ];
    let mut listed = 0;
    for (level, kinds) in documented {
        for name in *kinds {
            let kind = EventKind::ALL
                .iter()
                .find(|k| k.name() == *name)
                .unwrap_or_else(|| panic!("no kind {name}"));
            assert_eq!(herald_log::level(*kind), *level, "{name}");
            listed += 1;
        }
    }
    assert_eq!(listed, EventKind::ALL.len(), "the table lists every kind");
}
