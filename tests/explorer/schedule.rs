//! Schedules: a coordinator configuration and a list of steps, generated from a seed.
//!
//! Every type here prints (`{:?}`) as the Rust expression that builds it, so a failing schedule
//! can be pasted into a regression test as it is.

use std::fmt;

use crate::rng::Rng;

/// A subject key, published as `<prefix>.<key>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// `alerts.N`: matched by `>`, `alerts.>` and `alerts.*`.
    Alerts(u8),
    /// `alerts.N.x`: matched by `>` and `alerts.>`.
    AlertsDeep(u8),
    /// `other.N`: matched by `>` and `other.*`.
    Other(u8),
    /// `other.N.x`: matched by `>` only.
    OtherDeep(u8),
}

impl Key {
    pub(crate) fn subject(self) -> String {
        match self {
            Key::Alerts(n) => format!("alerts.{n}"),
            Key::AlertsDeep(n) => format!("alerts.{n}.x"),
            Key::Other(n) => format!("other.{n}"),
            Key::OtherDeep(n) => format!("other.{n}.x"),
        }
    }

    /// The payload published under this key: its length varies with the key, so `max_bytes`
    /// removes a varying number of messages.
    pub(crate) fn payload(self) -> String {
        let n = match self {
            Key::Alerts(n) | Key::AlertsDeep(n) | Key::Other(n) | Key::OtherDeep(n) => n,
        };
        format!("payload-{}", "x".repeat(usize::from(n % 5) * 3))
    }

    fn random(rng: &mut Rng) -> Self {
        let n = rng.range(0, 4) as u8;
        match rng.weighted(&[5, 2, 4, 1]) {
            0 => Key::Alerts(n),
            1 => Key::AlertsDeep(n),
            2 => Key::Other(n),
            _ => Key::OtherDeep(n),
        }
    }
}

// The enums print with their type's name (`Key::Alerts(1)`, `Filter::All`, `Start::All`), so a
// printed schedule is Rust that compiles with the types in scope.
impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Alerts(n) => write!(f, "Key::Alerts({n})"),
            Key::AlertsDeep(n) => write!(f, "Key::AlertsDeep({n})"),
            Key::Other(n) => write!(f, "Key::Other({n})"),
            Key::OtherDeep(n) => write!(f, "Key::OtherDeep({n})"),
        }
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Filter::All => "All",
            Filter::AlertsDeep => "AlertsDeep",
            Filter::AlertsStar => "AlertsStar",
            Filter::OtherStar => "OtherStar",
        };
        write!(f, "Filter::{name}")
    }
}

impl fmt::Debug for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Start::All => write!(f, "Start::All"),
            Start::New => write!(f, "Start::New"),
            Start::Sequence(n) => write!(f, "Start::Sequence({n})"),
            Start::LastProcessed => write!(f, "Start::LastProcessed"),
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Store::Memory => write!(f, "Store::Memory"),
            Store::Slow { delay_ms } => write!(f, "Store::Slow {{ delay_ms: {delay_ms} }}"),
            Store::Flaky => write!(f, "Store::Flaky"),
        }
    }
}

/// The keys of one `publish_batch`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Keys(pub(crate) Vec<Key>);

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keys(vec!{:?})", self.0)
    }
}

/// A subscription filter (relative to the prefix).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    All,
    AlertsDeep,
    AlertsStar,
    OtherStar,
}

impl Filter {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Filter::All => ">",
            Filter::AlertsDeep => "alerts.>",
            Filter::AlertsStar => "alerts.*",
            Filter::OtherStar => "other.*",
        }
    }

    /// Whether `subject` (relative to the prefix) matches, by NATS wildcard rules.
    pub(crate) fn matches(self, subject: &str) -> bool {
        let tokens: Vec<&str> = subject.split('.').collect();
        match self {
            Filter::All => true,
            Filter::AlertsDeep => tokens.len() >= 2 && tokens[0] == "alerts",
            Filter::AlertsStar => tokens.len() == 2 && tokens[0] == "alerts",
            Filter::OtherStar => tokens.len() == 2 && tokens[0] == "other",
        }
    }
}

/// Where a subscription starts the first time it is opened (afterwards: `LastProcessed`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    All,
    New,
    Sequence(u64),
    LastProcessed,
}

impl Start {
    pub(crate) fn position(self) -> herald::StartPosition {
        match self {
            Start::All => herald::StartPosition::All,
            Start::New => herald::StartPosition::New,
            Start::Sequence(n) => herald::StartPosition::Sequence(n),
            Start::LastProcessed => herald::StartPosition::LastProcessed,
        }
    }
}

/// The checkpoint store of a subscription.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    /// Saves at once.
    Memory,
    /// Each save takes `delay_ms`.
    Slow { delay_ms: u64 },
    /// Saves fail while a `StoreFail` step is in effect (until `StoreHeal`).
    Flaky,
}

/// One subscription slot: a durable name with its filter, store and checkpoint policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SubConfig {
    pub(crate) durable: &'static str,
    pub(crate) filter: Filter,
    pub(crate) start: Start,
    pub(crate) store: Store,
    pub(crate) every: u64,
    pub(crate) interval_ms: u64,
}

/// The coordinator's settings and the subscription slots of a schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) max_msgs: Option<u64>,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) max_age_ms: u64,
    pub(crate) subs: Vec<SubConfig>,
    /// Messages published while the final drain is running (wake-ups of waiting subscribers).
    pub(crate) final_publishes: Keys,
}

/// One step of a schedule. Every step is valid in every state: a step that does not apply
/// (taking from a closed subscription, reconnecting while connected) does nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Publish {
        key: Key,
    },
    PublishBatch {
        keys: Keys,
    },
    /// Publishes with an application message id (`id-N`): a repeat within the duplicate
    /// window stores nothing and returns the original sequence.
    PublishIdempotent {
        key: Key,
        id: u8,
    },
    /// Publishes from a task of its own: it may wait through a disconnect and land later.
    PublishInBackground {
        key: Key,
    },
    /// Opens the subscription if it is closed (its configured start the first time, then
    /// `LastProcessed`).
    Subscribe {
        sub: usize,
    },
    /// Takes up to `n` messages (stopping when none comes for a while), then acknowledges up to
    /// `ack` of the held ones, oldest first.
    Take {
        sub: usize,
        n: u32,
        ack: u32,
    },
    /// Acknowledges up to `n` of the held messages, oldest first.
    Ack {
        sub: usize,
        n: u32,
    },
    /// Drops the subscription without closing it and subscribes again (`LastProcessed`).
    Resubscribe {
        sub: usize,
    },
    /// Closes the subscription (`close().await`).
    Close {
        sub: usize,
    },
    /// Drops the subscription without closing it.
    Drop {
        sub: usize,
    },
    DeleteConsumer {
        sub: usize,
    },
    DeleteConsumers,
    Disconnect,
    Reconnect,
    StopHeartbeats {
        ms: u64,
    },
    DropDeliveries {
        n: u32,
    },
    /// `expire_through(last - back)`.
    ExpireThrough {
        back: u64,
    },
    /// `expire_now` past `max_age`: every message goes.
    ExpireAll,
    Purge,
    DeleteStream,
    StoreFail {
        sub: usize,
    },
    StoreHeal {
        sub: usize,
    },
    /// Drops the coordinator and its subscriptions without closing them, killing their tasks,
    /// and starts a new coordinator (same server, node id and stores) that reopens them with
    /// `LastProcessed`.
    Crash,
    /// Lets time pass: checkpoint intervals, backoffs, heartbeats.
    Sleep {
        ms: u64,
    },
    /// Shuts the coordinator down; nothing may be reported after it.
    Shutdown,
}

/// A generated (or minimised) schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Schedule {
    pub(crate) seed: u64,
    pub(crate) config: Config,
    pub(crate) steps: Vec<Step>,
}

impl Schedule {
    /// The schedule for `seed`.
    pub(crate) fn generate(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let config = Config::random(&mut rng);
        let subs = config.subs.len();
        let mut steps = Vec::new();
        // Some subscriptions open before anything happens, others later.
        for sub in 0..subs {
            if rng.chance(70) {
                steps.push(Step::Subscribe { sub });
            }
        }
        let len = rng.range(15, 70) as usize;
        while steps.len() < len {
            steps.push(Step::random(&mut rng, subs));
        }
        Self {
            seed,
            config,
            steps,
        }
    }

    /// The schedule as Rust code, for a regression test.
    pub(crate) fn to_rust(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Schedule {{\n    seed: {},\n    config: {},\n    steps: vec![\n",
            self.seed,
            format!("{:?}", self.config).replace("subs: [", "subs: vec![")
        ));
        for step in &self.steps {
            out.push_str(&format!("        {step:?},\n"));
        }
        out.push_str("    ],\n}");
        out
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed {} ({} steps)", self.seed, self.steps.len())?;
        writeln!(f, "config: {:?}", self.config)?;
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "  {i:3}: {step:?}")?;
        }
        Ok(())
    }
}

impl Config {
    fn random(rng: &mut Rng) -> Self {
        const DURABLES: [&str; 4] = ["d0", "d1", "d2", "d3"];
        let n = rng.range(1, 4) as usize;
        let subs = (0..n)
            .map(|i| SubConfig {
                durable: DURABLES[i],
                filter: match rng.weighted(&[4, 3, 1, 2]) {
                    0 => Filter::All,
                    1 => Filter::AlertsDeep,
                    2 => Filter::AlertsStar,
                    _ => Filter::OtherStar,
                },
                start: match rng.weighted(&[3, 2, 2, 3]) {
                    0 => Start::All,
                    1 => Start::New,
                    2 => Start::Sequence(rng.range(1, 6)),
                    _ => Start::LastProcessed,
                },
                store: match rng.weighted(&[5, 2, 3]) {
                    0 => Store::Memory,
                    1 => Store::Slow {
                        delay_ms: rng.range(1, 15),
                    },
                    _ => Store::Flaky,
                },
                every: rng.range(1, 6),
                interval_ms: rng.range(1, 30),
            })
            .collect();
        let max_msgs = rng.chance(40).then(|| rng.range(2, 25));
        let max_bytes = rng.chance(25).then(|| rng.range(60, 500));
        let finals = rng.range(0, 4) as usize;
        Config {
            max_msgs,
            max_bytes,
            max_age_ms: rng.range(60, 3600) * 1000,
            subs,
            final_publishes: Keys((0..finals).map(|_| Key::random(rng)).collect()),
        }
    }
}

impl Step {
    fn random(rng: &mut Rng, subs: usize) -> Self {
        let sub = rng.below(subs);
        const WEIGHTS: [u32; 25] = [
            20, // Publish
            6,  // PublishBatch
            3,  // PublishInBackground
            4,  // Subscribe
            24, // Take
            4,  // Ack
            4,  // Resubscribe
            2,  // Close
            2,  // Drop
            3,  // DeleteConsumer
            1,  // DeleteConsumers
            2,  // Disconnect
            3,  // Reconnect
            2,  // StopHeartbeats
            2,  // DropDeliveries
            2,  // ExpireThrough
            1,  // ExpireAll
            1,  // Purge
            1,  // DeleteStream
            2,  // StoreFail
            2,  // StoreHeal
            2,  // Crash
            4,  // Sleep
            1,  // Shutdown (rare: most schedules shut down only at the end)
            3,  // PublishIdempotent
        ];
        match rng.weighted(&WEIGHTS) {
            0 => Step::Publish {
                key: Key::random(rng),
            },
            1 => Step::PublishBatch {
                keys: Keys((0..rng.range(2, 6)).map(|_| Key::random(rng)).collect()),
            },
            2 => Step::PublishInBackground {
                key: Key::random(rng),
            },
            3 => Step::Subscribe { sub },
            4 => {
                let n = rng.range(1, 8) as u32;
                let ack = if rng.chance(75) {
                    u32::MAX
                } else {
                    rng.range(0, u64::from(n)) as u32
                };
                Step::Take { sub, n, ack }
            }
            5 => Step::Ack {
                sub,
                n: rng.range(1, 4) as u32,
            },
            6 => Step::Resubscribe { sub },
            7 => Step::Close { sub },
            8 => Step::Drop { sub },
            9 => Step::DeleteConsumer { sub },
            10 => Step::DeleteConsumers,
            11 => Step::Disconnect,
            12 => Step::Reconnect,
            13 => Step::StopHeartbeats {
                ms: rng.range(20, 300),
            },
            14 => Step::DropDeliveries {
                n: rng.range(1, 3) as u32,
            },
            15 => Step::ExpireThrough {
                back: rng.range(0, 6),
            },
            16 => Step::ExpireAll,
            17 => Step::Purge,
            18 => Step::DeleteStream,
            19 => Step::StoreFail { sub },
            20 => Step::StoreHeal { sub },
            21 => Step::Crash,
            22 => Step::Sleep {
                ms: rng.range(1, 100),
            },
            23 => Step::Shutdown,
            _ => Step::PublishIdempotent {
                key: Key::random(rng),
                id: rng.range(0, 3) as u8,
            },
        }
    }
}
