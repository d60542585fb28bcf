//! Errors of typed channels, in crossbeam-channel's vocabulary: a failed send gives the
//! message back; a failed receive says whether the channel was empty, timed out or is
//! disconnected. Beyond crossbeam: a message too large for the channel, a message that cannot
//! be encoded or decoded (that message only: the channel goes on), and corrupt shared memory.

use crate::codec::CodecError;
use crate::fingerprint::{describe_codec, TypeIdentity};
use shmbus_ring::{ChecksumMismatch, Corruption};
use std::fmt;

/// Why a channel could not be created or opened, or an endpoint attached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The segment or ring could not be created, opened or attached to (the ring's error
    /// names the call, the segment and the field).
    #[error(transparent)]
    Ring(#[from] shmbus_ring::Error),
    /// The channel carries another type or codec than this end expects.
    #[error(
        "{target}: the channel was created for type fingerprint {found_fingerprint:#018x} with \
         codec {}, but this end expects {expected}",
        describe_codec(*found_codec_id)
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
    },
    /// The builder's settings cannot make a channel.
    #[error("invalid channel configuration: {0}")]
    Config(String),
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
                /// What the codec reported.
                error: CodecError,
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
            pub(crate) fn new(failure: SendFailure, msg: T) -> Self {
                match failure {
                    $( SendFailure::$failure => $name::$variant(msg), )*
                    SendFailure::TooLarge { len, max } => $name::TooLarge { msg, len, max },
                    SendFailure::Encode(error) => $name::Encode { msg, error },
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
    SendError {}
}

send_error! {
    /// Why [`Sender::try_send`](crate::Sender::try_send) failed; the message comes back.
    TrySendError {
        /// The channel is full now.
        Full => Full, "sending on a full channel";
    }
}

send_error! {
    /// Why [`Sender::send_timeout`](crate::Sender::send_timeout) failed; the message comes
    /// back.
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
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vdoc])* $variant, )*
            /// The channel is empty and every sender is gone: no message will ever arrive.
            Disconnected,
            /// The next message could not be decoded. It was consumed; the channel goes on and
            /// the next call receives the message after it.
            Decode(CodecError),
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
            pub(crate) fn new(failure: RecvFailure) -> Self {
                match failure {
                    $( RecvFailure::$failure => $name::$variant, )*
                    RecvFailure::Decode(e) => $name::Decode(e),
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
    RecvError {}
}

recv_error! {
    /// Why [`Receiver::try_recv`](crate::Receiver::try_recv) failed.
    TryRecvError {
        /// No message is waiting now.
        Empty => Empty, "receiving on an empty channel";
    }
}

recv_error! {
    /// Why [`Receiver::recv_timeout`](crate::Receiver::recv_timeout) failed.
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
