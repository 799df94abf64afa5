//! The NATS JetStream backend, through async-nats.
//!
//! Streams use limits retention; consumers are pull consumers with idle heartbeats and
//! `AckPolicy::None`: Herald owns the position (the checkpoint), so the server needs no acks.
//! Everything here was checked against nats-server 2.9.10, the oldest server Herald supports:
//! no 2.10+ API is used.
//!
//! - `options.rs`: [`NatsOptions`] (servers, auth, TLS) and the connection events;
//! - `errors.rs`: async-nats errors as Herald error kinds;
//! - `consumer.rs`: a pull consumer's messages and faults;
//! - this file: [`NatsBackend`], stream administration and publishing.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, stream};

use crate::backend::seam::{
    ConnectionListener, ConsumerSpec, DeliverFrom, Outgoing, PublishAck, Storage, StreamBounds,
    StreamReadyInfo, StreamSpec,
};
use crate::error::{Error, ErrorKind, Result};
use crate::redact::{redact_addr, redact_url, split_server_list};

mod consumer;
mod errors;
mod options;

use self::consumer::instance_of;
pub(crate) use self::consumer::NatsConsumer;
use self::errors::{connect_error, request_error, JetStreamCode};
pub use self::options::NatsOptions;

/// A coordinator's connection to NATS JetStream.
#[derive(Clone)]
pub(crate) struct NatsBackend {
    client: async_nats::Client,
    js: jetstream::Context,
    spec: Arc<StreamSpec>,
    server: Arc<str>,
}

impl fmt::Debug for NatsBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBackend")
            .field("server", &self.server)
            .field("stream", &self.spec.name)
            .finish()
    }
}

impl NatsBackend {
    pub(crate) async fn connect(
        options: NatsOptions,
        spec: StreamSpec,
        listener: ConnectionListener,
    ) -> Result<Self> {
        // The same split as redaction: a comma in a password belongs to it.
        let addrs: Vec<async_nats::ServerAddr> = split_server_list(&options.urls)
            .into_iter()
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::InvalidConfig,
                    format!(
                        "the server address {} is invalid",
                        redact_url(&options.urls)
                    ),
                    e,
                )
            })?;
        let server: Arc<str> = addrs
            .iter()
            .map(redact_addr)
            .collect::<Vec<_>>()
            .join(",")
            .into();
        let client = options
            .connect_options(&addrs, server.clone(), listener)
            .await?
            .connect(addrs)
            .await
            .map_err(|e| connect_error(e, &server))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(options.request_timeout);
        let mut spec = spec;
        // The server's limit wins when it is lower than Herald's.
        let server_max = client.server_info().max_payload;
        if server_max > 0 {
            spec.max_payload = spec.max_payload.min(server_max);
        }
        Ok(Self {
            client,
            js,
            spec: Arc::new(spec),
            server,
        })
    }

    pub(crate) fn server_name(&self) -> Arc<str> {
        self.server.clone()
    }

    pub(crate) fn max_payload(&self) -> usize {
        self.spec.max_payload
    }

    /// Sends what is buffered, then closes the connection: no connection event follows.
    pub(crate) async fn close(&self) {
        let _ = self.client.flush().await;
        let _ = self.client.drain().await;
    }

    fn stream_config(&self) -> stream::Config {
        let spec = &*self.spec;
        stream::Config {
            name: spec.name.to_string(),
            subjects: vec![spec.subjects.to_string()],
            retention: stream::RetentionPolicy::Limits,
            max_age: spec.max_age,
            max_messages: spec
                .max_msgs
                .map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX)),
            max_bytes: spec
                .max_bytes
                .map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX)),
            storage: match spec.storage {
                Storage::File => stream::StorageType::File,
                Storage::Memory => stream::StorageType::Memory,
            },
            num_replicas: spec.replicas,
            duplicate_window: spec.duplicate_window,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        }
    }

    /// Whether `found` already has every setting Herald asks for.
    fn same_config(&self, found: &stream::Config) -> bool {
        let want = self.stream_config();
        found.subjects == want.subjects
            && found.max_age == want.max_age
            && found.max_messages == want.max_messages
            && found.max_bytes == want.max_bytes
            && found.storage == want.storage
            && found.num_replicas == want.num_replicas
            && found.duplicate_window == want.duplicate_window
            && found.discard == want.discard
    }

    pub(crate) async fn ensure_stream(&self) -> Result<StreamReadyInfo> {
        let name = &*self.spec.name;
        let created = match self.js.get_stream(name).await {
            Ok(mut existing) => {
                let info = existing
                    .info()
                    .await
                    .map_err(|e| request_error("could not read the stream's configuration", e))?;
                if info.config.retention != stream::RetentionPolicy::Limits {
                    return Err(Error::new(
                        ErrorKind::StreamMismatch,
                        format!(
                            "stream {name} exists with {:?} retention; Herald needs Limits retention and will not change someone else's stream: delete it or choose another stream name",
                            info.config.retention
                        ),
                    ));
                }
                // Unchanged: no update. nats-server before 2.10.x stores the time of an update
                // after a restart as the stream's creation time (nats-server#8470), which is
                // the stream's identity for Herald: an update on every connect would make the
                // next restart look like a new stream.
                if self.same_config(&info.config) {
                    return Ok(StreamReadyInfo {
                        created: false,
                        bounds: bounds_of(info),
                    });
                }
                false
            }
            Err(e) if e.code() == Some(jetstream::ErrorCode::STREAM_NOT_FOUND) => true,
            Err(e) => return Err(request_error("could not look up the stream", e)),
        };
        let info = self
            .js
            .create_or_update_stream(self.stream_config())
            .await
            .map_err(|e| {
                let kind = match e.code() {
                    Some(jetstream::ErrorCode::STREAM_SUBJECT_OVERLAP) => ErrorKind::StreamMismatch,
                    _ => ErrorKind::Server,
                };
                Error::with_source(kind, format!("could not create or update stream {name}"), e)
            })?;
        Ok(StreamReadyInfo {
            created,
            bounds: bounds_of(&info),
        })
    }

    pub(crate) async fn publish(&self, message: Outgoing<'_>) -> Result<PublishAck> {
        let sent = self.send(message).await;
        self.settle(sent).await
    }

    /// Sends one message with its id; the acknowledgement is awaited by [`settle`].
    async fn send(
        &self,
        message: Outgoing<'_>,
    ) -> std::result::Result<jetstream::context::PublishAckFuture, jetstream::context::PublishError>
    {
        self.js
            .send_publish(
                async_nats::Subject::from(&**message.subject),
                jetstream::message::PublishMessage::build()
                    .payload(message.payload.clone())
                    .message_id(message.msg_id),
            )
            .await
    }

    /// Pipelined publish: keeps up to `WINDOW` acknowledgements in flight and returns one result
    /// per message, in order. async-nats times each acknowledgement out only once it is
    /// awaited, so against a dead server they would time out one after another: every one
    /// still awaited at `deadline` fails at once instead.
    pub(crate) async fn publish_batch(
        &self,
        batch: &[Outgoing<'_>],
        deadline: tokio::time::Instant,
    ) -> Vec<Result<PublishAck>> {
        const WINDOW: usize = 512;
        let mut results = Vec::with_capacity(batch.len());
        let mut in_flight = std::collections::VecDeque::with_capacity(WINDOW);
        for message in batch {
            if in_flight.len() == WINDOW {
                if let Some(pending) = in_flight.pop_front() {
                    results.push(self.settle_by(pending, deadline).await);
                }
            }
            in_flight.push_back(self.send(*message).await);
        }
        for pending in in_flight {
            results.push(self.settle_by(pending, deadline).await);
        }
        results
    }

    /// [`settle`](Self::settle), or a timeout at `deadline`.
    async fn settle_by(
        &self,
        sent: std::result::Result<
            jetstream::context::PublishAckFuture,
            jetstream::context::PublishError,
        >,
        deadline: tokio::time::Instant,
    ) -> Result<PublishAck> {
        match tokio::time::timeout_at(deadline, self.settle(sent)).await {
            Ok(settled) => settled,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "publish to stream {} was not acknowledged before the deadline",
                    self.spec.name
                ),
            )),
        }
    }

    async fn settle(
        &self,
        sent: std::result::Result<
            jetstream::context::PublishAckFuture,
            jetstream::context::PublishError,
        >,
    ) -> Result<PublishAck> {
        let ack = match sent {
            Ok(future) => future.await,
            Err(e) => Err(e),
        };
        match ack {
            Ok(ack) => Ok(PublishAck {
                seq: ack.sequence,
                duplicate: ack.duplicate,
            }),
            Err(e) => Err(self.publish_error(e).await),
        }
    }

    async fn publish_error(&self, e: jetstream::context::PublishError) -> Error {
        use jetstream::context::PublishErrorKind as K;
        let kind = match e.kind() {
            K::MaxPayloadExceeded => ErrorKind::PayloadTooLarge,
            K::TimedOut => ErrorKind::Timeout,
            K::BrokenPipe => ErrorKind::Disconnected,
            // "No responders" also looks like this during a leader change: only a stream that
            // is confirmed missing is reported as such.
            K::StreamNotFound => match self.js.get_stream(&*self.spec.name).await {
                // Deleted underneath us: the coordinator decides what to do about it.
                Err(ge) if ge.code() == Some(jetstream::ErrorCode::STREAM_NOT_FOUND) => {
                    ErrorKind::StreamNotFound
                }
                _ => ErrorKind::Timeout,
            },
            _ => ErrorKind::Server,
        };
        Error::with_source(
            kind,
            format!("publish to stream {} failed", self.spec.name),
            e,
        )
    }

    /// The stream's bounds; `StreamNotFound` when it was deleted underneath Herald.
    pub(crate) async fn bounds(&self) -> Result<StreamBounds> {
        match self.js.get_stream(&*self.spec.name).await {
            Ok(stream) => Ok(bounds_of(stream.cached_info())),
            Err(e) => Err(request_error("could not read the stream's state", e)),
        }
    }

    pub(crate) async fn create_consumer(&self, spec: &ConsumerSpec) -> Result<NatsConsumer> {
        let deliver_policy = match spec.from {
            DeliverFrom::Sequence(seq) => jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: seq.max(1),
            },
            DeliverFrom::Time(t) => jetstream::consumer::DeliverPolicy::ByStartTime {
                start_time: t.into(),
            },
        };
        let config = jetstream::consumer::pull::Config {
            name: Some(spec.name.to_string()),
            filter_subject: spec.filter.to_string(),
            deliver_policy,
            ack_policy: jetstream::consumer::AckPolicy::None,
            // A consumer left behind by a crashed process disappears by itself.
            inactive_threshold: spec
                .heartbeat
                .saturating_mul(12)
                .max(Duration::from_secs(30)),
            // Herald owns the position, so the server keeps no consumer state on disk: creating
            // and deleting are cheaper, and a same-name consumer recreated while the old one's
            // files are being removed cannot trip over them (nats-server 2.9 error 10051).
            memory_storage: true,
            ..Default::default()
        };
        let consumer = self
            .js
            .create_consumer_on_stream(config, &*self.spec.name)
            .await
            .map_err(|e| request_error(&format!("could not create consumer {}", spec.name), e))?;
        let messages = consumer
            .stream()
            .heartbeat(spec.heartbeat)
            .expires(
                spec.heartbeat
                    .saturating_mul(6)
                    .max(Duration::from_secs(30)),
            )
            .max_messages_per_batch(500)
            .messages()
            .await;
        let messages = match messages {
            Ok(messages) => messages,
            Err(e) => {
                // Not left behind for the next attempt to mistake for another owner's.
                let _ = self.delete_consumer(&spec.name).await;
                return Err(Error::with_source(
                    ErrorKind::Disconnected,
                    format!("could not start consuming {}", spec.name),
                    e,
                ));
            }
        };
        let start = match spec.from {
            DeliverFrom::Sequence(seq) => seq.max(1),
            DeliverFrom::Time(_) => 1,
        };
        let instance = instance_of(consumer.cached_info());
        Ok(NatsConsumer::new(
            messages,
            consumer,
            start,
            spec.heartbeat,
            instance,
        ))
    }

    /// The instance of the consumer `name` on the server (its creation time, in nanoseconds),
    /// or `None` when there is none.
    pub(crate) async fn consumer_instance(&self, name: &str) -> Result<Option<u128>> {
        use jetstream::context::ConsumerInfoErrorKind as K;
        let stream = self.js.get_stream_no_info(&*self.spec.name).await;
        let stream = stream.map_err(|e| request_error("could not look up the stream", e))?;
        match stream.consumer_info(name).await {
            Ok(info) => Ok(Some(instance_of(&info))),
            Err(e) if matches!(e.kind(), K::NotFound | K::StreamNotFound) => Ok(None),
            Err(e) if e.kind() == K::TimedOut => Err(Error::with_source(
                ErrorKind::Timeout,
                format!("could not look up consumer {name}"),
                e,
            )),
            Err(e) => Err(Error::with_source(
                ErrorKind::Disconnected,
                format!("could not look up consumer {name}"),
                e,
            )),
        }
    }

    /// Deletes a consumer; one that does not exist (or whose stream does not) is not an error.
    pub(crate) async fn delete_consumer(&self, name: &str) -> Result<()> {
        match self
            .js
            .delete_consumer_from_stream(name, &*self.spec.name)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match request_error(&format!("could not delete consumer {name}"), e) {
                gone if matches!(
                    gone.kind(),
                    ErrorKind::ConsumerNotFound | ErrorKind::StreamNotFound
                ) =>
                {
                    Ok(())
                }
                error => Err(error),
            },
        }
    }
}

fn bounds_of(info: &stream::Info) -> StreamBounds {
    let state = &info.state;
    StreamBounds {
        first: if state.messages == 0 {
            state.last_sequence + 1
        } else {
            state.first_sequence
        },
        last: state.last_sequence,
        created: SystemTime::from(info.created),
    }
}
