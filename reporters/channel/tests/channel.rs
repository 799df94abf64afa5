//! The channel reporter against the real coordinator (embedded backend) and under contention:
//! order is preserved, a receiver that stops reading never holds the coordinator up, and every
//! dropped event is counted exactly once, where it was dropped.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use futures::StreamExt;
use herald::testing::RecordingReporter;
use herald::{Coordinator, CoordinatorEvent, EventKind, Reporter, StartPosition};
use herald_channel::{channel, Received, RecvTimeoutError, TryRecvError};

/// Connect, subscribe, publish and consume `messages`, lose the consumer, publish one more,
/// consume it from the recreated consumer, close and shut down.
async fn scenario<R: Reporter>(reporter: R, messages: u64) {
    let coordinator = Coordinator::builder()
        .stream("CHANNEL")
        .reporter(reporter)
        .connect()
        .await
        .expect("connect");
    let mut sub = coordinator
        .subscribe("alerts.>")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    for i in 0..messages {
        coordinator
            .publish(&format!("alerts.{}", i % 7), "changed")
            .await
            .expect("publish");
    }
    for _ in 0..messages {
        sub.next().await.expect("open").expect("message").ack();
    }
    let server = coordinator.memory_server().expect("embedded backend");
    assert!(server.delete_consumer("CHANNEL", sub.consumer_name()));
    coordinator
        .publish("alerts.late", "while the consumer was gone")
        .await
        .expect("publish");
    let late = sub.next().await.expect("open").expect("message");
    assert_eq!(late.seq, messages + 1);
    late.ack();
    sub.close().await;
    coordinator.shutdown().await;
}

/// Everything the receiver yields until the channel ends.
async fn drain(events: &mut herald_channel::Receiver) -> Vec<Received> {
    let mut items = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv_async()).await {
            Ok(Some(item)) => items.push(item),
            Ok(None) => return items,
            Err(_) => panic!("the channel did not end after the coordinator was dropped"),
        }
    }
}

fn kinds(items: &[Received]) -> Vec<EventKind> {
    items
        .iter()
        .filter_map(|i| i.event().map(|e| e.kind()))
        .collect()
}

#[tokio::test]
async fn events_arrive_in_the_order_the_coordinator_reported_them() {
    let (reporter, mut events) = channel(4096);
    // Every event, recorded synchronously: the reference order.
    let recorder = RecordingReporter::everything();
    scenario((reporter, recorder.clone()), 50).await;

    let items = drain(&mut events).await;
    let expected: Vec<Received> = recorder.events().into_iter().map(Received::Event).collect();
    assert_eq!(items, expected);
    assert_eq!(events.dropped(), 0);

    // The story is all there, in order.
    let story: Vec<EventKind> = kinds(&items)
        .into_iter()
        .filter(|k| !k.is_per_message())
        .collect();
    assert_eq!(
        story,
        [
            EventKind::Connected,
            EventKind::StreamReady,
            EventKind::Subscribed,
            EventKind::ConsumerDeleted,
            EventKind::Resubscribing,
            EventKind::ConsumerRecreated,
            EventKind::ReplayStarted,
            EventKind::ReplayCompleted,
            EventKind::Unsubscribed,
            EventKind::Shutdown,
        ]
    );
    let delivered: Vec<u64> = items
        .iter()
        .filter_map(|i| match i.event() {
            Some(CoordinatorEvent::Delivered { seq, .. }) => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, (1..=51).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_receiver_that_never_reads_never_holds_the_coordinator_up() {
    let (reporter, mut events) = channel(8);
    let recorder = RecordingReporter::everything();
    let handle = reporter.clone();

    // Nobody reads while the coordinator runs 2 000 messages through.
    tokio::time::timeout(
        Duration::from_secs(60),
        scenario((reporter, recorder.clone()), 2000),
    )
    .await
    .expect("the coordinator finished without waiting for the receiver");

    let reported = recorder.events().len() as u64;
    assert!(reported > 4000, "{reported} events");
    assert_eq!(handle.dropped(), reported - 8);
    drop(handle);

    // The first eight events, then one marker for everything else.
    let items = drain(&mut events).await;
    assert_eq!(items.len(), 9);
    let first: Vec<Received> = recorder.events()[..8]
        .iter()
        .cloned()
        .map(Received::Event)
        .collect();
    assert_eq!(items[..8], first[..]);
    assert_eq!(
        items[8],
        Received::Dropped {
            count: reported - 8
        }
    );
    assert_eq!(events.dropped(), reported - 8);
    assert_eq!(events.dropped_of(EventKind::Shutdown), 1);
    assert_eq!(events.dropped_of(EventKind::Connected), 0);
}

#[test]
fn report_on_a_full_channel_returns_at_once() {
    let (reporter, _events) = channel(1);
    let event = CoordinatorEvent::Delivered {
        stream: "S".into(),
        consumer: "c".into(),
        seq: 1,
    };
    reporter.report(&event);
    let (done, finished) = std::sync::mpsc::channel();
    let worker = thread::spawn(move || {
        let start = Instant::now();
        for _ in 0..100_000 {
            reporter.report(&event);
        }
        let _ = done.send(start.elapsed());
        reporter.dropped()
    });
    let elapsed = finished
        .recv_timeout(Duration::from_secs(20))
        .expect("100 000 reports to a full channel never block");
    assert_eq!(worker.join().expect("no panic"), 100_000);
    // Unoptimised and on a busy machine this is still far below a microsecond per report.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

fn reconnecting(attempt: u32) -> CoordinatorEvent {
    CoordinatorEvent::Reconnecting {
        attempt,
        delay: Duration::from_millis(10),
    }
}

fn describe(items: impl IntoIterator<Item = Received>) -> Vec<String> {
    items
        .into_iter()
        .map(|item| match item {
            Received::Event(CoordinatorEvent::Reconnecting { attempt, .. }) => {
                format!("#{attempt}")
            }
            Received::Event(other) => other.to_string(),
            Received::Dropped { count } => format!("dropped {count}"),
        })
        .collect()
}

#[test]
fn the_drop_count_is_exact_and_each_marker_sits_where_its_events_were_dropped() {
    let (reporter, mut events) = channel(4);
    for attempt in 1..=10 {
        reporter.report(&reconnecting(attempt));
    }
    assert_eq!(reporter.dropped(), 6);
    assert_eq!(describe(events.try_iter().take(2)), ["#1", "#2"]);

    // Room for two: the marker for 5..=10 goes first, then #11.
    reporter.report(&reconnecting(11));
    // Full again: #12 is dropped, and so is #13 (its marker would not fit either).
    reporter.report(&reconnecting(12));
    reporter.report(&reconnecting(13));
    assert_eq!(reporter.dropped(), 8);
    assert_eq!(reporter.dropped_of(EventKind::Reconnecting), 8);

    // The receiver announces the last two itself once it has read everything before them.
    assert_eq!(
        describe(events.try_iter()),
        ["#3", "#4", "dropped 6", "#11", "dropped 2"]
    );
    assert_eq!(events.try_recv(), Err(TryRecvError::Empty));

    // After a drained gap, the next event is delivered normally.
    reporter.report(&reconnecting(14));
    drop(reporter);
    assert_eq!(describe(events.iter()), ["#14"]);
    assert_eq!(events.dropped(), 8);
}

#[test]
fn markers_account_for_exactly_the_missing_events_with_a_concurrent_reader() {
    const N: u32 = 200_000;
    let (reporter, mut events) = channel(64);
    let reader = thread::spawn(move || {
        let mut next = 1u64;
        let (mut received, mut markers) = (0u64, 0u64);
        let mut i = 0u64;
        while let Some(item) = events.recv() {
            match item {
                Received::Event(CoordinatorEvent::Reconnecting { attempt, .. }) => {
                    assert_eq!(u64::from(attempt), next, "an event out of place");
                    next += 1;
                    received += 1;
                }
                Received::Event(other) => panic!("unexpected {other}"),
                Received::Dropped { count } => {
                    assert!(count > 0);
                    next += count;
                    markers += count;
                }
            }
            i += 1;
            if i.is_multiple_of(1000) {
                // A slow reader, now and then.
                thread::sleep(Duration::from_micros(200));
            }
        }
        assert_eq!(next, u64::from(N) + 1, "every report accounted for");
        (received, markers, events.dropped())
    });
    for attempt in 1..=N {
        reporter.report(&reconnecting(attempt));
    }
    drop(reporter);
    let (received, markers, dropped) = reader.join().expect("the reader's assertions hold");
    assert_eq!(received + markers, u64::from(N));
    assert_eq!(markers, dropped);
    assert!(received >= 64, "{received} received");
}

#[test]
fn concurrent_reporters_keep_their_own_order_and_the_total_is_exact() {
    const THREADS: u64 = 4;
    const EACH: u64 = 50_000;
    let (reporter, mut events) = channel(128);
    let reader = thread::spawn(move || {
        let mut last = [0u64; THREADS as usize];
        let (mut received, mut markers) = (0u64, 0u64);
        while let Some(item) = events.recv() {
            match item {
                Received::Event(CoordinatorEvent::Delivered { consumer, seq, .. }) => {
                    let t: usize = consumer.parse().expect("thread index");
                    assert!(seq > last[t], "thread {t}: {seq} after {}", last[t]);
                    last[t] = seq;
                    received += 1;
                }
                Received::Event(other) => panic!("unexpected {other}"),
                Received::Dropped { count } => markers += count,
            }
        }
        (received, markers, events.dropped())
    });
    let producers: Vec<_> = (0..THREADS)
        .map(|t| {
            let reporter = reporter.clone();
            thread::spawn(move || {
                let consumer: Arc<str> = t.to_string().into();
                for seq in 1..=EACH {
                    reporter.report(&CoordinatorEvent::Delivered {
                        stream: "S".into(),
                        consumer: consumer.clone(),
                        seq,
                    });
                }
            })
        })
        .collect();
    drop(reporter);
    for p in producers {
        p.join().expect("producer");
    }
    let (received, markers, dropped) = reader.join().expect("reader");
    assert_eq!(received + markers, THREADS * EACH);
    assert_eq!(markers, dropped);
}

#[tokio::test]
async fn a_dropped_receiver_is_counted_and_the_coordinator_keeps_running() {
    let (reporter, events) = channel(16);
    let handle = reporter.clone();
    drop(events);
    assert!(handle.is_closed());
    let recorder = RecordingReporter::everything();
    scenario((reporter, recorder.clone()), 20).await;
    assert_eq!(handle.dropped(), recorder.events().len() as u64);
    assert_eq!(handle.len(), 0);
}

async fn next(events: &mut herald_channel::Receiver) -> Option<Received> {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("woken")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_receiver_wakes_for_events_for_drops_and_for_the_end() {
    let (reporter, mut events) = channel(2);
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let (done, reported) = std::sync::mpsc::channel::<()>();
    let producer = thread::spawn(move || {
        // Wake a parked task with an event.
        wait.recv().expect("go");
        reporter.report(&reconnecting(1));
        // Three while nobody reads: two fit, one is dropped.
        wait.recv().expect("go");
        for attempt in 2..=4 {
            reporter.report(&reconnecting(attempt));
        }
        done.send(()).expect("test alive");
        wait.recv().expect("go");
        // Dropping the last reporter ends the stream.
    });

    let waiting = tokio::spawn(async move {
        let first = next(&mut events).await;
        (events, first)
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    go.send(()).expect("producer alive");
    let (mut events, first) = waiting.await.expect("task");
    assert_eq!(describe(first), ["#1"]);

    go.send(()).expect("producer alive");
    reported.recv().expect("producer reported");
    assert_eq!(describe(next(&mut events).await), ["#2"]);
    assert_eq!(describe(next(&mut events).await), ["#3"]);
    assert_eq!(describe(next(&mut events).await), ["dropped 1"]);

    let ended = tokio::spawn(async move { next(&mut events).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    go.send(()).expect("producer alive");
    producer.join().expect("producer");
    assert_eq!(ended.await.expect("task"), None);
}

#[test]
fn a_blocking_receiver_times_out_then_sees_the_end() {
    let (reporter, mut events) = channel(8);
    assert_eq!(
        events.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    let producer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        reporter.report(&reconnecting(1));
        thread::sleep(Duration::from_millis(30));
    });
    assert_eq!(
        describe(events.recv_timeout(Duration::from_secs(10))),
        ["#1"]
    );
    assert_eq!(events.recv(), None);
    producer.join().expect("producer");
}
