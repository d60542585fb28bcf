//! The two ring flavors a channel can run on, as types: [`Spsc`] and [`Mpmc`].
//!
//! The flavor is a type parameter of [`Sender`](crate::Sender) and
//! [`Receiver`](crate::Receiver), so that MPMC handles are `Clone` (each clone a new endpoint
//! of the ring) and SPSC handles are not.

use shmbus_ring::{
    Error as RingError, Identity, MpmcConfig, MpmcConsumer, MpmcProducer, MpmcRing, OpenOptions,
    PopError, Producer, PushError, Segment, SegmentHeader, SpscConfig, SpscRing, WaitStrategy,
};
use std::time::{Duration, Instant};

/// One producer and one consumer, variable-size messages in a byte ring: the fast path.
/// Capacity is counted in bytes; a small message takes only its own length plus 8 bytes
/// (rounded up to 8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spsc;

/// Any number of senders and receivers in any processes; every message takes one fixed-size
/// slot of the channel's maximum message size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mpmc;

/// A ring flavor: [`Spsc`] or [`Mpmc`]. Sealed.
pub trait Flavor: sealed::Ops + Send + Sync + 'static {
    /// `"spsc"` or `"mpmc"`.
    const NAME: &'static str;
}

impl Flavor for Spsc {
    const NAME: &'static str = "spsc";
}

impl Flavor for Mpmc {
    const NAME: &'static str = "mpmc";
}

pub(crate) use sealed::Wait;

pub(crate) mod sealed {
    use super::*;

    /// How long an operation may wait.
    #[derive(Debug, Clone, Copy)]
    pub enum Wait {
        /// Not at all: `try_*`.
        Never,
        /// Until the instant (`None`: for ever).
        Until(Option<Instant>),
        /// For this long after the first attempt.
        For(Duration),
    }

    impl Wait {
        /// The deadline of a wait that found the ring full or empty at its first attempt.
        /// Computed only then, so a call that succeeds at once never reads the clock.
        pub(crate) fn deadline(self) -> Option<Instant> {
            match self {
                Wait::Never => Some(Instant::now()),
                Wait::Until(deadline) => deadline,
                Wait::For(timeout) => Instant::now().checked_add(timeout),
            }
        }
    }

    /// What a channel needs of a ring. Not nameable outside the crate.
    pub trait Ops {
        type Ring: Clone + Send + Sync + std::fmt::Debug;
        type Producer: Send;
        type Consumer: Send;

        /// The ring geometry for `capacity` messages of at most `max` bytes.
        fn segment_len(capacity: u64, max: u64) -> Result<u64, String>;
        fn create(
            seg: Segment,
            capacity: u64,
            max: u64,
            identity: Identity,
            notify: bool,
        ) -> Result<Self::Ring, RingError>;
        fn open(seg: Segment, opts: &OpenOptions) -> Result<Self::Ring, RingError>;
        fn header(ring: &Self::Ring) -> &SegmentHeader;
        fn segment(ring: &Self::Ring) -> &Segment;
        fn max_message(ring: &Self::Ring) -> usize;
        fn producer(ring: &Self::Ring, wait: WaitStrategy) -> Result<Self::Producer, RingError>;
        fn consumer(ring: &Self::Ring, wait: WaitStrategy) -> Result<Self::Consumer, RingError>;
        fn set_producer_wait(p: &mut Self::Producer, wait: WaitStrategy);
        fn set_consumer_wait(c: &mut Self::Consumer, wait: WaitStrategy);

        /// Reserves `len` bytes (waiting as `wait` says), hands them to `f` to fill, and
        /// publishes the `n` bytes `f` reports; if `f` fails, abandons the reservation.
        fn write<E>(
            p: &mut Self::Producer,
            len: usize,
            wait: Wait,
            f: impl FnOnce(&mut [u8]) -> Result<usize, E>,
        ) -> Result<Result<(), E>, PushError>;

        /// Takes the next message (waiting as `wait` says) and hands its bytes, in place, to
        /// `f`.
        fn read<R>(
            c: &mut Self::Consumer,
            wait: Wait,
            f: impl FnMut(&[u8]) -> R,
        ) -> Result<R, PopError>;
    }
}

/// The SPSC record for a payload of `len` bytes: an 8-byte header, the payload rounded up to 8.
fn spsc_record(len: u64) -> u64 {
    8 + len.div_ceil(8) * 8
}

impl sealed::Ops for Spsc {
    type Ring = SpscRing;
    type Producer = Producer;
    type Consumer = shmbus_ring::Consumer;

    fn segment_len(capacity: u64, max: u64) -> Result<u64, String> {
        Ok(spsc_config(capacity, max, Identity::default(), true)?.segment_len())
    }

    fn create(
        seg: Segment,
        capacity: u64,
        max: u64,
        identity: Identity,
        notify: bool,
    ) -> Result<SpscRing, RingError> {
        let config =
            spsc_config(capacity, max, identity, notify).map_err(RingError::InvalidConfig)?;
        SpscRing::create_in(seg, &config)
    }

    fn open(seg: Segment, opts: &OpenOptions) -> Result<SpscRing, RingError> {
        SpscRing::open_in(seg, opts)
    }

    fn header(ring: &SpscRing) -> &SegmentHeader {
        ring.header()
    }

    fn segment(ring: &SpscRing) -> &Segment {
        ring.segment()
    }

    fn max_message(ring: &SpscRing) -> usize {
        ring.max_record()
    }

    fn producer(ring: &SpscRing, wait: WaitStrategy) -> Result<Producer, RingError> {
        let mut p = ring.producer()?;
        p.set_wait_strategy(wait);
        Ok(p)
    }

    fn consumer(ring: &SpscRing, wait: WaitStrategy) -> Result<Self::Consumer, RingError> {
        let mut c = ring.consumer()?;
        c.set_wait_strategy(wait);
        Ok(c)
    }

    fn set_producer_wait(p: &mut Producer, wait: WaitStrategy) {
        p.set_wait_strategy(wait);
    }

    fn set_consumer_wait(c: &mut Self::Consumer, wait: WaitStrategy) {
        c.set_wait_strategy(wait);
    }

    #[inline]
    fn write<E>(
        p: &mut Producer,
        len: usize,
        wait: Wait,
        f: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<Result<(), E>, PushError> {
        // Exactly `len` bytes: the codec measured the message first. Reserving the maximum
        // message size instead would make every send wait for room for the largest message
        // (the whole ring, when the maximum is close to the capacity).
        //
        // One attempt first: a blocking call that finds room at once does not read the clock.
        match p.reserve(len) {
            Ok(r) => return Ok(fill(r, len, f)),
            Err(PushError::Full) if !matches!(wait, Wait::Never) => {}
            Err(e) => return Err(e),
        }
        let r = p.reserve_deadline(len, wait.deadline())?;
        Ok(fill(r, len, f))
    }

    #[inline]
    fn read<R>(
        c: &mut Self::Consumer,
        wait: Wait,
        mut f: impl FnMut(&[u8]) -> R,
    ) -> Result<R, PopError> {
        // One attempt first: a blocking call that finds a message at once does not read the
        // clock.
        match c.try_pop_with(&mut f) {
            Err(PopError::Empty) if !matches!(wait, Wait::Never) => {}
            other => return other,
        }
        c.pop_with_deadline(wait.deadline(), f)
    }
}

/// Hands a reservation to `f` and publishes what it wrote; abandons it if `f` fails.
fn fill<E>(
    mut r: shmbus_ring::Reservation<'_>,
    len: usize,
    f: impl FnOnce(&mut [u8]) -> Result<usize, E>,
) -> Result<(), E> {
    match f(&mut r) {
        Ok(n) => {
            r.commit_len(n.min(len));
            Ok(())
        }
        // Dropping the reservation abandons it: nothing becomes visible.
        Err(e) => Err(e),
    }
}

/// Hands the first `len` bytes of a claimed slot to `f` and commits what it wrote; abandons
/// the claim if `f` fails.
fn fill_slot<E>(
    mut slot: shmbus_ring::WriteSlot<'_>,
    len: usize,
    f: impl FnOnce(&mut [u8]) -> Result<usize, E>,
) -> Result<(), E> {
    match f(&mut slot[..len]) {
        Ok(n) => {
            slot.commit(n.min(len));
            Ok(())
        }
        // Dropping the claim abandons the position: receivers skip it.
        Err(e) => Err(e),
    }
}

/// The SPSC ring for `capacity` messages of up to `max` bytes: room for `capacity + 1` records
/// of the largest size (one record's worth for the padding at the wrap and the zero-ahead
/// word), rounded up to a power of two.
fn spsc_config(
    capacity: u64,
    max: u64,
    identity: Identity,
    notify: bool,
) -> Result<SpscConfig, String> {
    let bytes = spsc_record(max)
        .checked_mul(capacity.saturating_add(1))
        .and_then(|b| b.checked_add(8))
        .and_then(u64::checked_next_power_of_two)
        .filter(|b| *b <= 1 << 40)
        .ok_or_else(|| {
            format!(
                "{capacity} messages of {max} bytes need more than the 1 TiB an SPSC ring can hold"
            )
        })?;
    Ok(SpscConfig::new(bytes.max(64))
        .max_record(max)
        .identity(identity)
        .notify(notify))
}

impl sealed::Ops for Mpmc {
    type Ring = MpmcRing;
    type Producer = MpmcProducer;
    type Consumer = MpmcConsumer;

    fn segment_len(capacity: u64, max: u64) -> Result<u64, String> {
        Ok(mpmc_config(capacity, max, Identity::default(), true)?.segment_len())
    }

    fn create(
        seg: Segment,
        capacity: u64,
        max: u64,
        identity: Identity,
        notify: bool,
    ) -> Result<MpmcRing, RingError> {
        let config =
            mpmc_config(capacity, max, identity, notify).map_err(RingError::InvalidConfig)?;
        MpmcRing::create_in(seg, &config)
    }

    fn open(seg: Segment, opts: &OpenOptions) -> Result<MpmcRing, RingError> {
        MpmcRing::open_in(seg, opts)
    }

    fn header(ring: &MpmcRing) -> &SegmentHeader {
        ring.header()
    }

    fn segment(ring: &MpmcRing) -> &Segment {
        ring.segment()
    }

    fn max_message(ring: &MpmcRing) -> usize {
        ring.slot_size()
    }

    fn producer(ring: &MpmcRing, wait: WaitStrategy) -> Result<MpmcProducer, RingError> {
        let mut p = ring.producer()?;
        p.set_wait_strategy(wait);
        Ok(p)
    }

    fn consumer(ring: &MpmcRing, wait: WaitStrategy) -> Result<MpmcConsumer, RingError> {
        let mut c = ring.consumer()?;
        c.set_wait_strategy(wait);
        Ok(c)
    }

    fn set_producer_wait(p: &mut MpmcProducer, wait: WaitStrategy) {
        p.set_wait_strategy(wait);
    }

    fn set_consumer_wait(c: &mut MpmcConsumer, wait: WaitStrategy) {
        c.set_wait_strategy(wait);
    }

    #[inline]
    fn write<E>(
        p: &mut MpmcProducer,
        len: usize,
        wait: Wait,
        f: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<Result<(), E>, PushError> {
        if len > p.slot_size() {
            return Err(PushError::TooLarge {
                len,
                max: p.slot_size(),
            });
        }
        // One attempt first: a blocking call that finds a free slot does not read the clock.
        match p.claim() {
            Ok(slot) => return Ok(fill_slot(slot, len, f)),
            Err(PushError::Full) if !matches!(wait, Wait::Never) => {}
            Err(e) => return Err(e),
        }
        let slot = p.claim_deadline(wait.deadline())?;
        Ok(fill_slot(slot, len, f))
    }

    #[inline]
    fn read<R>(
        c: &mut MpmcConsumer,
        wait: Wait,
        mut f: impl FnMut(&[u8]) -> R,
    ) -> Result<R, PopError> {
        // One attempt first, as for SPSC.
        match c.try_pop_with(&mut f) {
            Err(PopError::Empty) if !matches!(wait, Wait::Never) => {}
            other => return other,
        }
        c.pop_with_deadline(wait.deadline(), f)
    }
}

/// The MPMC ring for `capacity` messages of up to `max` bytes: `capacity` slots rounded up to a
/// power of two (at least 2).
fn mpmc_config(
    capacity: u64,
    max: u64,
    identity: Identity,
    notify: bool,
) -> Result<MpmcConfig, String> {
    use shmbus_ring::mpmc::{MAX_SLOTS, MAX_SLOT_SIZE};
    // Checked here, before a segment is allocated for a ring that could not be built in it.
    if max > MAX_SLOT_SIZE {
        return Err(format!(
            "an MPMC message (slot) is at most {MAX_SLOT_SIZE} bytes, not {max}"
        ));
    }
    let slots = capacity
        .max(2)
        .checked_next_power_of_two()
        .filter(|s| *s <= MAX_SLOTS)
        .ok_or_else(|| format!("an MPMC channel has at most {MAX_SLOTS} slots, not {capacity}"))?;
    Ok(MpmcConfig::new(slots, max)
        .identity(identity)
        .notify(notify))
}
