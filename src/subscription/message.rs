//! [`Message`]: one stored event as the application receives it, and its acknowledgement.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::checkpoint::progress::Acks;
use crate::checkpoint::{Checkpoint, CheckpointKey};

/// A message delivered by a [`Subscription`](crate::Subscription).
///
/// [`ack`](Message::ack) marks it, and every message delivered before it on the same
/// subscription, as processed: the subscription's checkpoint advances to it.
#[derive(Clone)]
pub struct Message {
    /// The message's stream sequence: unique, increasing, never yielded twice by a subscription.
    pub seq: u64,
    /// The full subject (`<prefix>.<key>`).
    pub subject: Arc<str>,
    /// The payload.
    pub payload: Bytes,
    /// When the stream stored the message.
    pub published_at: SystemTime,
    /// True when the message was published before the subscription (re)started: part of a replay.
    pub replayed: bool,
    pub(crate) key_offset: usize,
    pub(crate) acks: Arc<Acks>,
    /// The acknowledgements' epoch when the message was handed out (see `Acks::reset`).
    pub(crate) epoch: u32,
    /// The identity of the stream the message was read from.
    pub(crate) stream_created: Option<SystemTime>,
}

impl Message {
    /// The key the message was published with: the subject without the stream's prefix.
    pub fn key(&self) -> &str {
        self.subject.get(self.key_offset..).unwrap_or(&self.subject)
    }

    /// The checkpoint this message's subscription keeps (stream, durable name, filter).
    pub fn checkpoint_key(&self) -> &CheckpointKey {
        &self.acks.key
    }

    /// The checkpoint that says this message, and every one before it, is processed: its
    /// sequence and its stream's identity. A store that commits it in the application's own
    /// transaction (with the message's effect) saves exactly this.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint::new(self.seq, self.stream_created)
    }

    /// Marks this message, **and every message delivered before it**, as processed. Cheap and
    /// non-blocking: the checkpoint is saved in batches (see
    /// [`CheckpointPolicy`](crate::CheckpointPolicy)).
    ///
    /// Acknowledgements are cumulative, like a stream offset: an application that processes
    /// messages concurrently must acknowledge a message only once every earlier one is done,
    /// or a crash skips the unfinished ones. Debug builds panic on an acknowledgement that
    /// arrives after a later message's.
    #[inline]
    pub fn ack(&self) {
        self.acks.ack(self.seq, self.epoch);
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("seq", &self.seq)
            .field("subject", &self.subject)
            .field("payload_len", &self.payload.len())
            .field("published_at", &self.published_at)
            .field("replayed", &self.replayed)
            .finish()
    }
}
