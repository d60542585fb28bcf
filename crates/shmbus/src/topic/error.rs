//! A topic's send and receive errors. Receives add [`Lagged`](RecvError::Lagged) (an
//! untethered subscriber was overtaken) and [`Ejected`](RecvError::Ejected) (a tethered one
//! was cut loose by its publisher) to a channel's; neither ends the subscription. A publish
//! takes its message by reference, so its errors hold no message.

use crate::codec::CodecError;
use crate::error::CodecFault;
use shmbus_ring::{ChecksumMismatch, Corruption, PopError, PushError};
use std::fmt;

/// What a subscriber's receive met, short of a message.
#[derive(Debug)]
pub(crate) enum Failure {
    Empty,
    Timeout,
    Lagged(u64),
    Ejected,
    Disconnected,
    Decode(CodecError),
    Corrupt(Corruption),
    Checksum(ChecksumMismatch),
}

impl From<PopError> for Failure {
    fn from(e: PopError) -> Self {
        match e {
            PopError::Empty => Failure::Empty,
            PopError::Timeout => Failure::Timeout,
            PopError::Lagged { missed } => Failure::Lagged(missed),
            PopError::Ejected => Failure::Ejected,
            PopError::Corrupt(c) => Failure::Corrupt(c),
            PopError::Checksum(m) => Failure::Checksum(m),
            // A subscriber's buffer holds the largest message, so `BufferTooSmall` does not
            // happen; what is left (and later variants) ends the subscription.
            _ => Failure::Disconnected,
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
        /// `Copy`, `Clone`, `PartialEq` and `Eq`, as the channel's receive errors.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vdoc])* $variant, )*
            /// This untethered subscriber was overtaken by the publisher and missed `missed`
            /// messages; it resumed at the latest message, which the next receive returns.
            /// Not an end: receive again.
            Lagged {
                /// How many messages it skipped.
                missed: u64,
            },
            /// This tethered subscriber was ejected by its publisher, whose
            /// [`SlowSubscribers::Untether`](crate::ring::broadcast::SlowSubscribers) policy
            /// does not wait for it. It reads on, untethered, from where it was (the next
            /// receive may report [`Lagged`](Self::Lagged));
            /// [`retether`](crate::topic::Subscriber::retether) makes it lossless again. Not
            /// an end: receive again.
            Ejected,
            /// The publisher is gone and everything it published has been received. A
            /// successor publisher ends this: receive again to see whether one came.
            Disconnected,
            /// The next message could not be decoded. It was consumed; the next call
            /// receives the message after it.
            Decode(CodecFault),
            /// The ring's state in shared memory is inconsistent.
            Corrupt(Corruption),
            /// On a checksum ring: the next message's bytes do not match their CRC32C. It was
            /// dropped; the next call receives the message after it.
            Checksum(ChecksumMismatch),
        }

        impl $name {
            /// Whether the publisher is gone and everything it published was received.
            pub fn is_disconnected(&self) -> bool {
                matches!(self, $name::Disconnected)
            }

            /// Whether messages were missed: the subscriber was lapped (`Some(missed)`).
            pub fn missed(&self) -> Option<u64> {
                match self {
                    $name::Lagged { missed } => Some(*missed),
                    _ => None,
                }
            }

            #[allow(unreachable_patterns)]
            pub(crate) fn new(failure: Failure) -> Self {
                match failure {
                    $( Failure::$failure => $name::$variant, )*
                    Failure::Lagged(missed) => $name::Lagged { missed },
                    Failure::Ejected => $name::Ejected,
                    Failure::Decode(e) => $name::Decode(CodecFault::from(e)),
                    Failure::Corrupt(c) => $name::Corrupt(c),
                    Failure::Checksum(m) => $name::Checksum(m),
                    // A receive without a deadline neither times out nor finds nothing: its
                    // callers retry those, so this arm is never taken.
                    _ => $name::Disconnected,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$variant => f.write_str($msg), )*
                    $name::Lagged { missed } => write!(
                        f,
                        "subscriber was overtaken by the publisher and missed {missed} messages"
                    ),
                    $name::Ejected => f.write_str(
                        "subscriber was ejected by the publisher for holding it up; it reads on \
                         untethered",
                    ),
                    $name::Disconnected => f.write_str(
                        "receiving on a topic whose publisher is gone, everything it published \
                         received",
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
    /// Why [`Subscriber::recv`](crate::topic::Subscriber::recv) returned no message.
    RecvError {}
}

recv_error! {
    /// Why [`Subscriber::try_recv`](crate::topic::Subscriber::try_recv) returned no message.
    TryRecvError {
        /// No message is waiting now.
        Empty => Empty, "receiving on an empty topic";
    }
}

recv_error! {
    /// Why [`Subscriber::recv_timeout`](crate::topic::Subscriber::recv_timeout) returned no
    /// message.
    RecvTimeoutError {
        /// No message arrived before the deadline.
        Timeout => Timeout, "timed out waiting for a message";
    }
}

impl TryRecvError {
    /// Whether nothing was waiting.
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

/// What a publish met.
#[derive(Debug)]
pub(crate) enum SendFailure {
    Full,
    Timeout,
    TooLarge { len: usize, max: usize },
    Encode(CodecError),
    Corrupt(Corruption),
}

impl SendFailure {
    pub(crate) fn from_push(e: PushError, max: usize) -> Self {
        match e {
            PushError::Full => SendFailure::Full,
            PushError::Timeout => SendFailure::Timeout,
            PushError::TooLarge { len, max } => SendFailure::TooLarge { len, max },
            PushError::Corrupt(c) => SendFailure::Corrupt(c),
            // A publisher is never disconnected (it has no subscribers to lose), and
            // `TooMany` is for batches: a single message can only be too large.
            _ => SendFailure::TooLarge { len: max + 1, max },
        }
    }
}

macro_rules! send_error {
    (
        $(#[$doc:meta])*
        $name:ident { $( $(#[$vdoc:meta])* $variant:ident => $failure:ident, $msg:literal; )* }
    ) => {
        $(#[$doc])*
        ///
        /// A publish takes the message by reference, so the error holds no message. A
        /// publisher is never disconnected: with no subscriber, its messages go to the history
        /// a later subscriber may ask for.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vdoc])* $variant, )*
            /// The encoded message is larger than the topic's maximum message size (checked
            /// before anything is written or waited for).
            TooLarge {
                /// Its encoded length in bytes.
                len: usize,
                /// The topic's maximum message size.
                max: usize,
            },
            /// The codec could not encode the message (nothing was published).
            Encode(CodecFault),
            /// The ring's state in shared memory is inconsistent.
            Corrupt(Corruption),
        }

        impl $name {
            #[allow(unreachable_patterns)]
            pub(crate) fn new(failure: SendFailure) -> Self {
                match failure {
                    $( SendFailure::$failure => $name::$variant, )*
                    SendFailure::TooLarge { len, max } => $name::TooLarge { len, max },
                    SendFailure::Encode(e) => $name::Encode(CodecFault::from(e)),
                    SendFailure::Corrupt(c) => $name::Corrupt(c),
                    // A publish without a deadline neither times out nor finds the ring full:
                    // its callers retry those, so this arm is never taken.
                    _ => $name::TooLarge { len: 0, max: 0 },
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$variant => f.write_str($msg), )*
                    $name::TooLarge { len, max } => write!(
                        f,
                        "message of {len} bytes encoded exceeds the topic's maximum of {max} bytes"
                    ),
                    $name::Encode(e) => write!(f, "message not published: {e}"),
                    $name::Corrupt(c) => {
                        write!(f, "message not published: shared memory is corrupt: {c}")
                    }
                }
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $name::Encode(e) => Some(e),
                    $name::Corrupt(c) => Some(c),
                    _ => None,
                }
            }
        }
    };
}

send_error! {
    /// Why [`Publisher::send`](crate::topic::Publisher::send) failed.
    SendError {}
}

send_error! {
    /// Why [`Publisher::try_send`](crate::topic::Publisher::try_send) failed.
    TrySendError {
        /// A tethered subscriber leaves no room now (under
        /// [`SlowSubscribers::Block`](crate::ring::broadcast::SlowSubscribers), or before the
        /// `Untether` policy's wait is over).
        Full => Full, "publishing on a topic a tethered subscriber holds full";
    }
}

send_error! {
    /// Why [`Publisher::send_timeout`](crate::topic::Publisher::send_timeout) failed.
    SendTimeoutError {
        /// A tethered subscriber left no room until the deadline.
        Timeout => Timeout, "timed out waiting for room on the topic";
    }
}

impl TrySendError {
    /// Whether a tethered subscriber held the ring full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full)
    }
}

impl SendTimeoutError {
    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout)
    }
}
