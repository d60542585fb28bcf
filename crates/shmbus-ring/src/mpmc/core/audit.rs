//! The audits of the MPMC ring (PROTOCOL §5.5, "contradictions"): what a consumer that found
//! the ring empty, or a producer that found it full, checks at a probe.

use super::Core;
use crate::conv::signed_diff;
use crate::endpoint::{Audit, Role};
use crate::error::Corruption;
use crate::mpmc::{split, MAX_POSITION};
use crate::sync::{Memory, Ordering};

/// Which side an audit walks for (`Core::audit_walk`).
#[derive(Clone, Copy)]
enum Walk {
    /// A consumer's walk, from the head hint.
    Read,
    /// A producer's walk, from the tail hint.
    Write,
}

/// A sequence word found where no honest endpoint could have put it.
fn misplaced(pos: u64, word: u64) -> Corruption {
    Corruption {
        what: "sequence word names a position that does not live in its slot",
        position: pos,
        value: word,
    }
}

impl<M: Memory> Core<M> {
    /// The walk both audits make, as `claim_read` (or `claim_write`) would from the head (or
    /// tail) hint, without claiming: past positions another endpoint has taken, to the first
    /// one a retry would take (`None`), or to the position where the slot still holds an
    /// earlier lap: `Some((position, word, seq, tag))`. A word of another slot is corrupt, and
    /// so is the latest commit the walk saw if the tail hint does not back it (`check_tail`).
    fn audit_walk(&self, walk: Walk) -> Result<Option<(u64, u64, u64, u64)>, Corruption> {
        let hint = match walk {
            Walk::Read => self.g.words.head,
            Walk::Write => self.g.words.tail,
        };
        let mut pos = self.hint(hint)?;
        let mut latest = None;
        let mut stopped = None;
        for _ in 0..self.g.walk_limit() {
            // M15: Acquire, as M8 (a consumer's walk) or M2 (a producer's): pairs with M5 (and
            // M11/M6/M13), and through M5 orders the committer's M4 before `check_tail`.
            // SAFETY: an in-bounds aligned slot word.
            let word = unsafe { self.mem.load(self.g.slot(pos), Ordering::Acquire) };
            let (seq, tag) = split(word);
            if !self.g.fits_slot(pos, seq) {
                return Err(misplaced(pos, word));
            }
            if self.g.names_commit(pos, seq) && latest.map_or(true, |(_, _, s)| seq > s) {
                latest = Some((pos, word, seq));
            }
            // How far the word is from what this side takes at `pos`: a commit of `pos`
            // (reading) or a free slot for `pos` (writing).
            let (dif, taken) = match walk {
                Walk::Read => {
                    let d = signed_diff(seq, pos + 1);
                    (d, d == 0)
                }
                Walk::Write => {
                    let d = signed_diff(seq, pos);
                    (d, d == 0 || d == 1)
                }
            };
            if dif == 0 && tag == 0 {
                // Committed (or free): the retry takes it.
                break;
            } else if taken {
                pos += 1;
            } else if dif < 0 {
                stopped = Some((pos, word, seq, tag));
                break;
            } else {
                pos = self.hint(hint)?.max(pos + 1);
            }
            if pos >= MAX_POSITION {
                // The claim reports it.
                break;
            }
        }
        if let Some((p, w, seq)) = latest {
            self.check_tail(p, w, seq)?;
        }
        Ok(stopped)
    }

    /// The audit of a consumer that found the ring empty (PROTOCOL §5.5, "contradictions"):
    /// walks from the head hint as `claim_read` does, without claiming, to the position `p`
    /// where it stops, and checks the word there. Every position below the head hint was
    /// claimed for reading (or consumed, or abandoned), and so was any position the walk
    /// passed; position `p − cap`, the slot's previous lap, is one or the other, so the word
    /// at `p` is `(p, 0)` (free), `(p, k)` (being written) or `(p − cap + 1, k ≠ 0)` (the
    /// previous lap still being read). Anything older is a suspect (the head hint is
    /// Relaxed: two probes); a word of another slot, or a commit beyond the tail hint, is
    /// corrupt.
    pub(crate) fn audit_read(&self) -> Audit {
        let stopped = match self.audit_walk(Walk::Read) {
            Ok(stopped) => stopped,
            Err(c) => return Audit::Corrupt(c),
        };
        match stopped {
            Some((p, word, seq, tag)) => {
                let cap = self.g.slots;
                let found = |what| Corruption {
                    what,
                    position: p,
                    value: word,
                };
                if seq == p && tag == 0 {
                    Audit::Fine
                } else if seq == p {
                    // Being written: by a registered producer, or no one will commit it.
                    Audit::Claimed {
                        tag,
                        role: Role::Producer,
                        found: found("the consumers' position is claimed for writing by no registered producer"),
                    }
                } else if p >= cap && seq == p - cap + 1 && tag != 0 {
                    // The previous lap still being read: by a registered consumer, or no one
                    // will release it (and producers wait on it).
                    Audit::Claimed {
                        tag,
                        role: Role::Consumer,
                        found: found("the previous lap of the consumers' position is claimed for reading by no registered consumer"),
                    }
                } else {
                    Audit::Suspect(Corruption {
                        what: "sequence word at the consumers' position holds an earlier lap than the head hint allows",
                        position: p,
                        value: word,
                    })
                }
            }
            None => Audit::Fine,
        }
    }

    /// The audit of a producer that found the ring full (PROTOCOL §5.5, "contradictions"):
    /// walks from the tail hint as `claim_write` does, without claiming, to the position `q`
    /// where it stops (a slot of an earlier lap), and checks the word there. Position
    /// `q − cap` was claimed for writing (it is below the tail hint, or the walk passed it),
    /// so the word is `(q − cap, k ≠ 0)` (still being written) or `(q − cap + 1, ·)`
    /// (committed, or being read); and if the head hint is past `q − cap`, consumers claimed
    /// that position, so only `(q − cap + 1, k ≠ 0)` remains. Anything else is a suspect (the
    /// hints are Relaxed: two probes); a word of another slot, or a commit beyond the tail
    /// hint, is corrupt.
    pub(crate) fn audit_write(&self) -> Audit {
        let stopped = match self.audit_walk(Walk::Write) {
            Ok(stopped) => stopped,
            Err(c) => return Audit::Corrupt(c),
        };
        let Some((q, word, seq, tag)) = stopped else {
            return Audit::Fine;
        };
        let cap = self.g.slots;
        let suspect = |what| {
            Audit::Suspect(Corruption {
                what,
                position: q,
                value: word,
            })
        };
        if q < cap || seq < q - cap || (seq == q - cap && tag == 0) {
            return suspect(
                "sequence word at the producers' position holds an earlier lap than the tail hint allows",
            );
        }
        // M16: Relaxed (M7 itself is Acquire since D58, for the blind claims; the audit only
        // reads a hint): the two-probe rule covers a stale value.
        // SAFETY: in-bounds aligned hint word (constructor contract).
        let head = unsafe { self.mem.load(self.g.words.head, Ordering::Relaxed) };
        let read_claimed = head > q - cap;
        if read_claimed && !(seq == q - cap + 1 && tag != 0) {
            return suspect(
                "the head hint is past the previous lap of the producers' position, but its slot was never read",
            );
        }
        if tag == 0 {
            // Committed, unread: consumers are behind.
            return Audit::Fine;
        }
        let found = |what| Corruption {
            what,
            position: q,
            value: word,
        };
        if seq == q - cap {
            Audit::Claimed {
                tag,
                role: Role::Producer,
                found: found("the previous lap of the producers' position is claimed for writing by no registered producer"),
            }
        } else {
            Audit::Claimed {
                tag,
                role: Role::Consumer,
                found: found("the previous lap of the producers' position is claimed for reading by no registered consumer"),
            }
        }
    }
}
