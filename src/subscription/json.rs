//! Typed subscriptions: payloads decoded from JSON, with a policy for the ones that do not
//! decode.
//!
//! A payload that is not valid for the type is reported as
//! [`DecodeFailed`](crate::CoordinatorEvent::DecodeFailed) and never ends the subscription.
//! What happens to the checkpoint is the [`DecodePolicy`]'s choice: by default
//! ([`Hold`](DecodePolicy::Hold)) the checkpoint never moves past an undecoded message until the
//! application says so, so nothing is skipped silently across a restart.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};
use crate::reporter::{NullReporter, Reporter};
use crate::subscription::message::Message;
use crate::subscription::Subscription;

/// What a [`JsonSubscription`] does with a payload that does not decode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DecodePolicy {
    /// Yield an error of kind [`Decode`](ErrorKind::Decode) and keep the checkpoint below the
    /// message until [`JsonSubscription::skip`] is called for it. The default.
    #[default]
    Hold,
    /// Report `DecodeFailed`, treat the message as processed and go on.
    Skip,
}

/// A decoded message: the value and the message it came from (ack the message when done).
#[derive(Debug, Clone)]
pub struct Decoded<T> {
    /// The decoded payload.
    pub value: T,
    /// The message, for its sequence, subject and [`ack`](Message::ack).
    pub message: Message,
}

/// A [`Subscription`] whose payloads are decoded from JSON into `T`; made by
/// [`Subscription::json`].
///
/// ```
/// use herald::{Coordinator, DecodePolicy, ErrorKind, StartPosition};
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Alert { id: u32 }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> herald::Result<()> {
/// let coordinator = Coordinator::builder().connect().await?;
/// let mut alerts = coordinator
///     .subscribe("alerts.>")
///     .start(StartPosition::All)
///     .await?
///     .json::<Alert>();
/// coordinator.publish("alerts.1", "not json").await?;
/// coordinator.publish("alerts.2", r#"{"id":2}"#).await?;
/// let err = alerts.next().await.expect("open").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Decode);
/// alerts.skip(1); // handled: let the checkpoint move past it
/// let ok = alerts.next().await.expect("open")?;
/// assert_eq!(ok.value, Alert { id: 2 });
/// ok.message.ack();
/// # Ok(()) }
/// ```
pub struct JsonSubscription<T, R: Reporter = NullReporter> {
    inner: Subscription<R>,
    policy: DecodePolicy,
    _type: PhantomData<fn() -> T>,
}

impl<T, R: Reporter> fmt::Debug for JsonSubscription<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonSubscription")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish()
    }
}

impl<R: Reporter> Subscription<R> {
    /// Decodes every payload from JSON into `T`; see [`JsonSubscription`].
    pub fn json<T: DeserializeOwned>(self) -> JsonSubscription<T, R> {
        JsonSubscription {
            inner: self,
            policy: DecodePolicy::default(),
            _type: PhantomData,
        }
    }
}

impl<T: DeserializeOwned, R: Reporter> JsonSubscription<T, R> {
    /// Sets what happens to payloads that do not decode (default [`DecodePolicy::Hold`]).
    pub fn on_decode_error(mut self, policy: DecodePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The next decoded message, an error of kind [`Decode`](ErrorKind::Decode) for a payload
    /// that does not decode (under [`DecodePolicy::Hold`]; the subscription goes on), or `None`
    /// when the subscription has ended.
    pub async fn next(&mut self) -> Option<Result<Decoded<T>>> {
        loop {
            let message = match self.inner.next().await? {
                Ok(message) => message,
                Err(e) => return Some(Err(e)),
            };
            match serde_json::from_slice::<T>(&message.payload) {
                Ok(value) => return Some(Ok(Decoded { value, message })),
                Err(error) => {
                    let seq = message.seq;
                    self.inner.report_decode_failed(seq, &error);
                    match self.policy {
                        DecodePolicy::Skip => message.ack(),
                        DecodePolicy::Hold => {
                            self.inner.acks().hold(seq);
                            return Some(Err(Error::with_source(
                                ErrorKind::Decode,
                                format!(
                                    "the payload of sequence {seq} ({}) is not valid JSON for {}",
                                    message.subject,
                                    std::any::type_name::<T>()
                                ),
                                error,
                            )));
                        }
                    }
                }
            }
        }
    }

    /// Marks the undecodable message `seq` as handled: the checkpoint may move past it once
    /// later messages are acknowledged.
    pub fn skip(&self, seq: u64) {
        self.inner.acks().release(seq);
    }

    /// The sequences of undecodable messages the checkpoint is held below (under
    /// [`DecodePolicy::Hold`]), oldest first: what [`skip`](Self::skip) takes.
    ///
    /// ```
    /// # use herald::{Coordinator, StartPosition};
    /// # #[derive(serde::Deserialize)] struct Alert { id: u32 }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> herald::Result<()> {
    /// # let coordinator = Coordinator::builder().connect().await?;
    /// # let mut alerts = coordinator.subscribe(">").start(StartPosition::All).await?.json::<Alert>();
    /// coordinator.publish("alerts.1", "not json").await?;
    /// assert!(alerts.next().await.expect("open").is_err());
    /// assert_eq!(alerts.held(), vec![1]);
    /// for seq in alerts.held() {
    ///     alerts.skip(seq); // logged, dead-lettered, ...: let the checkpoint go on
    /// }
    /// assert!(alerts.held().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn held(&self) -> Vec<u64> {
        self.inner.acks().held()
    }

    /// The underlying subscription.
    pub fn get_ref(&self) -> &Subscription<R> {
        &self.inner
    }

    /// The underlying subscription, for closing it.
    pub fn into_inner(self) -> Subscription<R> {
        self.inner
    }
}
