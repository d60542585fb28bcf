//! Errors of typed channels, in crossbeam-channel's vocabulary: a failed send gives the
//! message back; a failed receive says whether the channel was empty, timed out or is
//! disconnected. Beyond crossbeam: a message too large for the channel, a message that cannot
//! be encoded or decoded (that message only: the channel goes on), and corrupt shared memory.
//!
//! As crossbeam-channel's, every error compares (`PartialEq`, `Eq`) and clones, so that
//! `assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)))` and
//! `assert_eq!(rx.try_recv(), Err(TryRecvError::Empty))` compile; receive errors are `Copy`,
//! and send errors are `Copy` when the message is. What a codec reported is kept as a
//! [`CodecFault`], a `Copy` form of [`CodecError`] (its text interned), so that no error
//! variant holds an allocation.

use crate::codec::CodecError;
use crate::fingerprint::{describe_codec, TypeIdentity};
use shmbus_ring::{ChecksumMismatch, Corruption};
use std::fmt;

/// What a codec reported about one message (a [`CodecError`]), in a small `Copy` form: the
/// codec, the direction, and the codec error's text, kept once per distinct text for the life
/// of the process (interned). It displays as the [`CodecError`] does.
///
/// It is what [`SendError::Encode`] and [`RecvError::Decode`] (and their `try`/`timeout`
/// forms) hold, so that those errors are `Copy` (receive errors always, send errors when the
/// message is) and cost nothing to copy or compare, as crossbeam-channel's. Two faults are
/// equal when codec, direction and text are.
///
/// The interning is bounded, since a peer that sends undecodable messages chooses the texts:
/// at most [`KEPT_MAX`](Self::KEPT_MAX) distinct texts of at most
/// [`TEXT_MAX`](Self::TEXT_MAX) bytes each (a longer text is cut at a character boundary and
/// ends with `…`). Past that, a fault keeps its codec and direction only, and says that its
/// reason was not kept.
///
/// ```
/// use shmbus::codec::{Bincode, Codec};
/// use shmbus::TryRecvError;
/// // A bincode message that claims a string of 2^40 bytes, pushed by a raw producer.
/// let hostile = [0xfd, 0, 0, 0, 0, 0, 1, 0, 0];
/// let ch = shmbus::channel::<String>().in_process()?;
/// let mut rx = ch.receiver()?;
/// ch.ring().producer()?.try_push(&hostile)?;
/// let Err(TryRecvError::Decode(fault)) = rx.try_recv() else { panic!("not a decode error") };
/// let copy = fault; // Copy: `fault` is still usable
/// assert_eq!(copy, fault);
/// assert_eq!(fault.codec(), "bincode");
/// assert!(fault.is_decode());
/// // The codec's own error, as `Codec::decode` returns it, reads the same.
/// let err = <Bincode as Codec<String>>::decode(&hostile).unwrap_err();
/// assert_eq!(fault.to_string(), err.to_string());
/// assert_eq!(fault.reason(), err.reason());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodecFault {
    codec: &'static str,
    decoding: bool,
    /// The codec error's `Display` text, interned; `None` once the table is full.
    text: Option<&'static str>,
    /// Where the codec's reason starts in `text`.
    reason_at: usize,
}

impl CodecFault {
    /// The most distinct codec error texts a process keeps (interns) for faults.
    pub const KEPT_MAX: usize = 1024;

    /// The longest codec error text a fault keeps, in bytes; a longer one is cut at a
    /// character boundary and ends with `…`.
    pub const TEXT_MAX: usize = 512;

    /// The codec's name (`"bincode"`, `"postcard"`, `"plain"`, `"raw"`, or a custom codec's).
    pub fn codec(&self) -> &'static str {
        self.codec
    }

    /// Whether decoding (rather than encoding) failed.
    pub fn is_decode(&self) -> bool {
        self.decoding
    }

    /// What the codec reported, as [`CodecError::reason`] returns it (cut as the text is, if
    /// that was cut); empty if the text was not kept ([`is_kept`](Self::is_kept)).
    pub fn reason(&self) -> &'static str {
        self.text
            .map_or("", |t| t.get(self.reason_at..).unwrap_or(t))
    }

    /// Whether the codec error's text was kept: `false` once [`KEPT_MAX`](Self::KEPT_MAX)
    /// distinct texts have been.
    pub fn is_kept(&self) -> bool {
        self.text.is_some()
    }
}

/// The texts kept for faults: each distinct one once, for the life of the process.
type Kept = std::sync::Mutex<std::collections::BTreeSet<&'static str>>;

/// Keeps `text` for the life of the process, once per distinct text, up to
/// [`CodecFault::KEPT_MAX`] of them; `None` past that.
fn intern(text: &str) -> Option<&'static str> {
    static KEPT: Kept = Kept::new(std::collections::BTreeSet::new());
    intern_in(&KEPT, CodecFault::KEPT_MAX, text)
}

/// [`intern`] into the set `kept`, of at most `max` texts.
fn intern_in(kept: &Kept, max: usize, text: &str) -> Option<&'static str> {
    // A panic while holding the lock leaves the set consistent (an insert is one call).
    let mut kept = kept
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(&text) = kept.get(text) {
        return Some(text);
    }
    if kept.len() >= max {
        return None;
    }
    let text: &'static str = Box::leak(Box::from(text));
    kept.insert(text);
    Some(text)
}

impl From<&CodecError> for CodecFault {
    fn from(e: &CodecError) -> Self {
        let mut text = e.to_string();
        // The text is the codec's prefix, then the reason.
        let mut reason_at = text.strip_suffix(e.reason()).map_or(0, str::len);
        if text.len() > CodecFault::TEXT_MAX {
            let mut cut = CodecFault::TEXT_MAX - '…'.len_utf8();
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
            reason_at = reason_at.min(cut);
        }
        CodecFault {
            codec: e.codec(),
            decoding: e.is_decode(),
            text: intern(&text),
            reason_at,
        }
    }
}

impl From<CodecError> for CodecFault {
    fn from(e: CodecError) -> Self {
        CodecFault::from(&e)
    }
}

impl fmt::Debug for CodecFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecFault")
            .field("codec", &self.codec)
            .field("decoding", &self.decoding)
            .field("reason", &self.text.map(|_| self.reason()))
            .finish_non_exhaustive()
    }
}

impl fmt::Display for CodecFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text {
            Some(text) => f.write_str(text),
            None => write!(
                f,
                "{} could not {} the message (reason not kept: more than {} distinct codec \
                 errors in this process)",
                self.codec,
                if self.decoding { "decode" } else { "encode" },
                CodecFault::KEPT_MAX
            ),
        }
    }
}

impl std::error::Error for CodecFault {}

/// The channel's side of a type mismatch, in words where its creator wrote them.
fn describe_found(
    found: Option<&shmbus_ring::info::Info>,
    fingerprint: u64,
    codec_id: u32,
) -> String {
    let codec = describe_codec(codec_id);
    match found {
        Some(info) if !info.type_name.is_empty() => {
            let mut creator = String::new();
            if !info.creator_program.is_empty() {
                creator = format!(
                    ", created by {} (pid {})",
                    info.creator_program, info.creator_pid
                );
            }
            format!(
                "`{}` with codec {codec}, fingerprint {fingerprint:#018x}{creator}",
                info.type_name
            )
        }
        _ => format!(
            "type fingerprint {fingerprint:#018x} with codec {codec} (its creator recorded no \
             type name)"
        ),
    }
}

/// Why a channel could not be created or opened, or an endpoint attached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The segment or ring could not be created, opened or attached to (the ring's error
    /// names the call, the segment and the field).
    #[error(transparent)]
    Ring(#[from] shmbus_ring::Error),
    /// The channel carries another type or codec than this end expects. The message names
    /// both types in words when the segment's creator wrote its info region (layout 1.2).
    #[error(
        "{target}: the channel carries {}, but this end expects {expected}",
        describe_found(found.as_deref(), *found_fingerprint, *found_codec_id)
    )]
    TypeMismatch {
        /// The segment.
        target: String,
        /// What this end sends or receives.
        expected: Box<TypeIdentity>,
        /// The fingerprint in the segment header.
        found_fingerprint: u64,
        /// The codec id in the segment header.
        found_codec_id: u32,
        /// What the segment says it carries, in words (its info region: type name, codec,
        /// name, creator); `None` for a segment its creator wrote none into (layout before
        /// 1.2, or a raw ring).
        found: Option<Box<shmbus_ring::info::Info>>,
    },
    /// The builder's settings cannot make a channel.
    #[error("invalid channel configuration: {0}")]
    Config(String),
    /// A topic's publisher is alive (in this process or another): a topic has one publisher
    /// at a time. A publisher whose process died is taken over instead.
    #[error("topic {topic:?} ({target}) already has a live publisher (pid {pid})")]
    PublisherAlive {
        /// The topic.
        topic: String,
        /// Its segment.
        target: String,
        /// The pid the publisher recorded.
        pid: u32,
    },
    /// The topic does not exist (no publisher ever created it, or it was removed), or did
    /// not appear before the deadline of [`wait_for`](crate::topic::SubscriberBuilder::wait_for).
    #[error("topic {topic:?} ({target}) does not exist (waited {waited:?})")]
    NoTopic {
        /// The topic.
        topic: String,
        /// The segment it would live in.
        target: String,
        /// How long it was waited for (zero for [`open`](crate::topic::SubscriberBuilder::open)).
        waited: std::time::Duration,
    },
    /// The name cannot name a topic.
    #[error("invalid topic name {topic:?}: {reason}")]
    InvalidTopic {
        /// The name given (its first 80 characters).
        topic: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The segment a long topic name hashes to holds another topic (a hash collision of the
    /// naming rule, DECISIONS D43), or a segment that is not a topic.
    #[error("{target} holds topic {found:?}, not {topic:?}")]
    TopicCollision {
        /// The topic asked for.
        topic: String,
        /// The segment.
        target: String,
        /// The topic name in the segment's info region.
        found: String,
    },
    /// An asynchronous endpoint's doorbell (a Unix datagram socket in the bell directory,
    /// `/dev/shm` or `$SHMBUS_DIR`) could not be made or registered with the runtime.
    #[cfg(feature = "tokio")]
    #[error("cannot make the doorbell of an asynchronous endpoint: {0}")]
    Bell(#[source] std::io::Error),
}

/// The part of a send failure that is not the message.
#[derive(Debug)]
pub(crate) enum SendFailure {
    Full,
    Timeout,
    Disconnected,
    TooLarge { len: usize, max: usize },
    Encode(CodecError),
    Corrupt(Corruption),
}

/// The part of a receive failure shared by all receive calls.
#[derive(Debug)]
pub(crate) enum RecvFailure {
    Empty,
    Timeout,
    Disconnected,
    Decode(CodecError),
    Corrupt(Corruption),
    Checksum(ChecksumMismatch),
}

macro_rules! send_error {
    (
        $(#[$doc:meta])*
        $name:ident { $( $(#[$vdoc:meta])* $variant:ident => $failure:ident, $msg:literal; )* }
    ) => {
        $(#[$doc])*
        ///
        /// `Clone`, `PartialEq` and `Eq` when the message is, `Copy` when it is `Copy`, so that
        /// crossbeam-style assertions compile:
        /// `assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)))`.
        #[derive(Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum $name<T> {
            $( $(#[$vdoc])* $variant(T), )*
            /// Every receiver is gone: nothing would ever read the message.
            Disconnected(T),
            /// The encoded message is larger than the channel's maximum message size (checked
            /// before anything is written or waited for).
            TooLarge {
                /// The message.
                msg: T,
                /// Its encoded length in bytes.
                len: usize,
                /// The channel's maximum message size.
                max: usize,
            },
            /// The codec could not encode the message (nothing was sent).
            Encode {
                /// The message.
                msg: T,
                /// What the codec reported, in its `Copy` form.
                error: CodecFault,
            },
            /// The ring's state in shared memory is inconsistent.
            Corrupt {
                /// The message.
                msg: T,
                /// What was found, and where.
                error: Corruption,
            },
        }

        impl<T> $name<T> {
            /// The message that was not sent.
            pub fn into_inner(self) -> T {
                match self {
                    $( $name::$variant(msg) => msg, )*
                    $name::Disconnected(msg)
                    | $name::TooLarge { msg, .. }
                    | $name::Encode { msg, .. }
                    | $name::Corrupt { msg, .. } => msg,
                }
            }

            /// Whether every receiver is gone.
            pub fn is_disconnected(&self) -> bool {
                matches!(self, $name::Disconnected(_))
            }

            #[allow(unreachable_patterns)]
            #[inline]
            pub(crate) fn new(failure: SendFailure, msg: T) -> Self {
                match failure {
                    $( SendFailure::$failure => $name::$variant(msg), )*
                    SendFailure::TooLarge { len, max } => $name::TooLarge { msg, len, max },
                    SendFailure::Encode(error) => $name::Encode {
                        msg,
                        error: CodecFault::from(error),
                    },
                    SendFailure::Corrupt(error) => $name::Corrupt { msg, error },
                    // A blocking send without a deadline neither times out nor finds the ring
                    // full; the callers retry those, so this arm is never taken.
                    _ => $name::Disconnected(msg),
                }
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$variant(_) => f.write_str(concat!(stringify!($variant), "(..)")), )*
                    $name::Disconnected(_) => f.write_str("Disconnected(..)"),
                    $name::TooLarge { len, max, .. } => f
                        .debug_struct("TooLarge")
                        .field("len", len)
                        .field("max", max)
                        .finish_non_exhaustive(),
                    $name::Encode { error, .. } => {
                        f.debug_struct("Encode").field("error", error).finish_non_exhaustive()
                    }
                    $name::Corrupt { error, .. } => {
                        f.debug_struct("Corrupt").field("error", error).finish_non_exhaustive()
                    }
                }
            }
        }

        impl<T> fmt::Display for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$variant(_) => f.write_str($msg), )*
                    $name::Disconnected(_) => {
                        f.write_str("sending on a disconnected channel: every receiver is gone")
                    }
                    $name::TooLarge { len, max, .. } => write!(
                        f,
                        "message of {len} bytes encoded exceeds the channel's maximum of {max} bytes"
                    ),
                    $name::Encode { error, .. } => write!(f, "message not sent: {error}"),
                    $name::Corrupt { error, .. } => {
                        write!(f, "message not sent: shared memory is corrupt: {error}")
                    }
                }
            }
        }

        impl<T: Send> std::error::Error for $name<T> {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $name::Encode { error, .. } => Some(error),
                    $name::Corrupt { error, .. } => Some(error),
                    _ => None,
                }
            }
        }
    };
}

send_error! {
    /// Why [`Sender::send`](crate::Sender::send) failed; the message comes back.
    ///
    /// ```
    /// let ch = shmbus::channel::<String>().max_message(8).in_process()?;
    /// let mut tx = ch.sender()?;
    /// let err = tx.send("far too long for eight bytes".to_string()).unwrap_err();
    /// assert!(matches!(err, shmbus::SendError::TooLarge { max: 8, .. }));
    /// println!("{err}"); // message of 29 bytes encoded exceeds the channel's maximum of 8 bytes
    /// assert_eq!(err.into_inner(), "far too long for eight bytes");
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    ///
    /// Errors compare, as crossbeam-channel's:
    ///
    /// ```
    /// use shmbus::SendError;
    /// let ch = shmbus::channel::<u32>().in_process()?;
    /// let (mut tx, rx) = (ch.sender()?, ch.receiver()?);
    /// assert_eq!(tx.send(1), Ok(()));
    /// drop(rx);
    /// assert_eq!(tx.send(2), Err(SendError::Disconnected(2)));
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    SendError {}
}

send_error! {
    /// Why [`Sender::try_send`](crate::Sender::try_send) failed; the message comes back.
    ///
    /// ```
    /// use shmbus::TrySendError;
    /// let ch = shmbus::channel::<u32>().mpmc().capacity(2).in_process()?;
    /// let (mut tx, rx) = (ch.sender()?, ch.receiver()?);
    /// let mut n = 0;
    /// while tx.try_send(n).is_ok() {
    ///     n += 1; // fill the channel
    /// }
    /// assert_eq!(tx.try_send(n), Err(TrySendError::Full(n)));
    /// let err = tx.try_send(n).unwrap_err();
    /// let copy = err; // Copy, since the message is
    /// assert_eq!(err.clone(), copy);
    /// drop(rx);
    /// assert_eq!(tx.try_send(7), Err(TrySendError::Disconnected(7)));
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    TrySendError {
        /// The channel is full now.
        Full => Full, "sending on a full channel";
    }
}

send_error! {
    /// Why [`Sender::send_timeout`](crate::Sender::send_timeout) failed; the message comes
    /// back.
    ///
    /// ```
    /// use shmbus::SendTimeoutError;
    /// use std::time::Duration;
    /// let ch = shmbus::channel::<String>().mpmc().capacity(2).in_process()?;
    /// let (mut tx, _rx) = (ch.sender()?, ch.receiver()?);
    /// while tx.try_send("fill".to_string()).is_ok() {}
    /// let err = tx.send_timeout("late".to_string(), Duration::from_millis(1));
    /// assert_eq!(err, Err(SendTimeoutError::Timeout("late".to_string())));
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    SendTimeoutError {
        /// The channel stayed full until the deadline.
        Timeout => Timeout, "timed out waiting for room in the channel";
    }
}

impl<T> TrySendError<T> {
    /// Whether the channel was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Disconnected(msg) => TrySendError::Disconnected(msg),
            SendError::TooLarge { msg, len, max } => TrySendError::TooLarge { msg, len, max },
            SendError::Encode { msg, error } => TrySendError::Encode { msg, error },
            SendError::Corrupt { msg, error } => TrySendError::Corrupt { msg, error },
        }
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Disconnected(msg) => SendTimeoutError::Disconnected(msg),
            SendError::TooLarge { msg, len, max } => SendTimeoutError::TooLarge { msg, len, max },
            SendError::Encode { msg, error } => SendTimeoutError::Encode { msg, error },
            SendError::Corrupt { msg, error } => SendTimeoutError::Corrupt { msg, error },
        }
    }
}

macro_rules! recv_error {
    (
        $(#[$doc:meta])*
        $name:ident { $( $(#[$vdoc:meta])* $variant:ident => $failure:ident, $msg:literal; )* }
    ) => {
        $(#[$doc])*
        ///
        /// `Copy`, `Clone`, `PartialEq` and `Eq`, as crossbeam-channel's receive errors, so that
        /// `assert_eq!(rx.try_recv(), Err(TryRecvError::Empty))` compiles. A decode failure is
        /// kept as a [`CodecFault`] (the codec error's text, interned), which is what makes
        /// the type `Copy`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vdoc])* $variant, )*
            /// The channel is empty and every sender is gone: no message will ever arrive.
            Disconnected,
            /// The next message could not be decoded. It was consumed; the channel goes on and
            /// the next call receives the message after it. What the codec reported, in its
            /// `Copy` form.
            Decode(CodecFault),
            /// The ring's state in shared memory is inconsistent.
            Corrupt(Corruption),
            /// On a channel built with [`checksum`](crate::ChannelBuilder::checksum): the
            /// next message's bytes do not match the CRC32C its sender wrote (torn or
            /// overwritten in shared memory). It was dropped, not decoded; the next call
            /// receives the message after it.
            Checksum(ChecksumMismatch),
        }

        impl $name {
            /// Whether every sender is gone and the channel is drained.
            pub fn is_disconnected(&self) -> bool {
                matches!(self, $name::Disconnected)
            }

            #[allow(unreachable_patterns)]
            #[inline]
            pub(crate) fn new(failure: RecvFailure) -> Self {
                match failure {
                    $( RecvFailure::$failure => $name::$variant, )*
                    RecvFailure::Decode(e) => $name::Decode(CodecFault::from(e)),
                    RecvFailure::Corrupt(c) => $name::Corrupt(c),
                    RecvFailure::Checksum(m) => $name::Checksum(m),
                    // A blocking receive without a deadline neither times out nor returns
                    // "empty"; the callers retry those, so this arm is never taken.
                    _ => $name::Disconnected,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$variant => f.write_str($msg), )*
                    $name::Disconnected => f.write_str(
                        "receiving on an empty and disconnected channel: every sender is gone",
                    ),
                    $name::Decode(e) => write!(f, "message dropped: {e}"),
                    $name::Corrupt(c) => write!(f, "shared memory is corrupt: {c}"),
                    $name::Checksum(m) => write!(f, "message dropped: {m}"),
                }
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $name::Decode(e) => Some(e),
                    $name::Corrupt(c) => Some(c),
                    $name::Checksum(m) => Some(m),
                    _ => None,
                }
            }
        }
    };
}

recv_error! {
    /// Why [`Receiver::recv`](crate::Receiver::recv) failed.
    ///
    /// ```
    /// use shmbus::RecvError;
    /// let ch = shmbus::channel::<u32>().in_process()?;
    /// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// tx.send(1)?;
    /// drop(tx);
    /// assert_eq!(rx.recv(), Ok(1));
    /// assert_eq!(rx.recv(), Err(RecvError::Disconnected));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    RecvError {}
}

recv_error! {
    /// Why [`Receiver::try_recv`](crate::Receiver::try_recv) failed.
    ///
    /// ```
    /// use shmbus::TryRecvError;
    /// let ch = shmbus::channel::<u32>().in_process()?;
    /// let (tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// let err = rx.try_recv().unwrap_err();
    /// assert_eq!(err, TryRecvError::Empty);
    /// let copy = err; // Copy: `err` is still usable
    /// assert_eq!(err, copy);
    /// drop(tx);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    TryRecvError {
        /// No message is waiting now.
        Empty => Empty, "receiving on an empty channel";
    }
}

recv_error! {
    /// Why [`Receiver::recv_timeout`](crate::Receiver::recv_timeout) failed.
    ///
    /// ```
    /// use shmbus::RecvTimeoutError;
    /// use std::time::Duration;
    /// let ch = shmbus::channel::<u32>().in_process()?;
    /// let (_tx, mut rx) = (ch.sender()?, ch.receiver()?);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(RecvTimeoutError::Timeout));
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    RecvTimeoutError {
        /// No message arrived before the deadline.
        Timeout => Timeout, "timed out waiting for a message";
    }
}

impl TryRecvError {
    /// Whether the channel was empty.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
}

impl RecvTimeoutError {
    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => TryRecvError::Disconnected,
            RecvError::Decode(e) => TryRecvError::Decode(e),
            RecvError::Corrupt(c) => TryRecvError::Corrupt(c),
            RecvError::Checksum(m) => TryRecvError::Checksum(m),
        }
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => RecvTimeoutError::Disconnected,
            RecvError::Decode(e) => RecvTimeoutError::Decode(e),
            RecvError::Corrupt(c) => RecvTimeoutError::Corrupt(c),
            RecvError::Checksum(m) => RecvTimeoutError::Checksum(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_codec_error_text_is_cut_at_a_character_boundary_and_marked() {
        // 'é' is two bytes: a cut at an odd byte count would split one.
        let reason = "é".repeat(400);
        let err = CodecError::decode("custom", 3, &reason);
        let fault = CodecFault::from(&err);
        let shown = fault.to_string();
        assert!(shown.len() <= CodecFault::TEXT_MAX, "{}", shown.len());
        assert!(shown.ends_with('…'), "{shown}");
        assert!(
            err.to_string().starts_with(shown.trim_end_matches('…')),
            "{shown}"
        );
        assert!(fault
            .reason()
            .trim_end_matches('…')
            .chars()
            .all(|c| c == 'é'));
        assert!(fault.reason().len() > 400);
        assert_eq!((fault.codec(), fault.is_decode()), ("custom", true));
    }

    #[test]
    fn a_codec_error_is_kept_once_and_reads_as_the_codec_error() {
        let err = CodecError::encode("custom", "no room: 3 bytes");
        let fault = CodecFault::from(err.clone());
        assert!(fault.is_kept());
        assert!(!fault.is_decode());
        assert_eq!(fault.to_string(), err.to_string());
        assert_eq!(fault.reason(), "no room: 3 bytes");
        // The same text is kept once: both faults point at it.
        let again = CodecFault::from(&err);
        assert!(std::ptr::eq(fault.reason(), again.reason()));
        assert_eq!(fault, again);
        assert_ne!(
            fault,
            CodecFault::from(CodecError::encode("custom", "no rooms"))
        );
        assert_ne!(
            fault,
            CodecFault::from(CodecError::encode("other", "no room: 3 bytes"))
        );
        let err = CodecError::decode("custom", 123_456, "bad: tag 7");
        let fault = CodecFault::from(&err);
        assert_eq!(fault.reason(), "bad: tag 7");
        assert_eq!(fault.to_string(), err.to_string());
    }

    #[test]
    fn past_the_bound_no_text_is_kept_and_a_fault_says_so() {
        // A set of its own: the process's set is shared by the tests running alongside.
        let kept = Kept::new(std::collections::BTreeSet::new());
        let first = intern_in(&kept, 2, "one").unwrap();
        assert!(std::ptr::eq(first, intern_in(&kept, 2, "one").unwrap()));
        assert_eq!(intern_in(&kept, 2, "two"), Some("two"));
        assert_eq!(intern_in(&kept, 2, "three"), None);
        assert_eq!(
            intern_in(&kept, 2, "one"),
            Some("one"),
            "kept texts stay found"
        );
        let fault = CodecFault {
            codec: "custom",
            decoding: true,
            text: None,
            reason_at: 0,
        };
        assert!(!fault.is_kept());
        assert_eq!(fault.reason(), "");
        let shown = fault.to_string();
        assert!(
            shown.starts_with("custom could not decode the message (reason not kept"),
            "{shown}"
        );
    }

    #[test]
    fn errors_stay_small() {
        assert!(std::mem::size_of::<CodecFault>() <= 48);
        assert!(std::mem::size_of::<RecvError>() <= 48);
        assert!(std::mem::size_of::<SendError<u64>>() <= 56);
    }

    #[test]
    fn errors_compare_clone_and_copy_as_crossbeam_channels_do() {
        fn copy<T: Copy>(t: T) -> (T, T) {
            (t, t)
        }
        let (a, b) = copy(TryRecvError::Empty);
        assert_eq!(a, b);
        let (a, b) = copy(RecvTimeoutError::Timeout);
        assert_eq!(a, b);
        let (a, b) = copy(RecvError::Disconnected);
        assert_eq!(a, b);
        let (a, b) = copy(TrySendError::Full(1u8));
        assert_eq!(a, b);
        let (a, b) = copy(SendTimeoutError::Timeout(1u8));
        assert_eq!(a, b);
        let (a, b) = copy(SendError::Disconnected(1u8));
        assert_eq!(a, b);
        // Not Copy, but Clone and Eq, with a message that is only Clone and Eq.
        let full = TrySendError::Full(String::from("m"));
        assert_eq!(full.clone(), full);
        assert_ne!(full, TrySendError::Full(String::from("n")));
        assert_ne!(full, TrySendError::Disconnected(String::from("m")));
    }
}
