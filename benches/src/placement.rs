//! Holding a run to one placement of its two cores (`--hold-placement N`).
//!
//! Some VMs move their vCPUs between placements whose cache-line costs differ several times
//! over (on the 2-vCPU AMD EPYC VM of the README, a line bounces in 50–130 ns in one and
//! 340–420 ns in the other, sometimes changing within seconds), and every rate moves with
//! them. A run whose rows were measured in different placements compares nothing. Each
//! transport's measurement is bracketed by a floor ping-pong in the same process pair
//! ([`crate::measure`]); the first measurement whose two floors agree sets the run's
//! reference, and a later one whose floor before or after is more than [`TOLERANCE`] off it
//! is measured again (after a pause of 1 s, doubling to 8 s), up to N more times. What was
//! redone, and what was kept off the reference after every retry, goes into the report's
//! notes.

use std::time::Duration;

/// How far (as a ratio, either way) a bracketing floor may be from the run's reference and
/// still count as the same placement. The two placements above are 3–5x apart; the noise
/// within one is under 1.3x.
pub const TOLERANCE: f64 = 1.6;

/// How close a measurement's floors before and after must be to set the reference.
const STEADY: f64 = 1.25;

/// How long to wait before measuring again after the `attempt`-th measurement (0 for the
/// first) was off the reference: 1 s, doubling up to 8 s, since the slow placement can last
/// minutes.
pub fn pause(attempt: usize) -> Duration {
    Duration::from_secs(1 << attempt.min(3))
}

/// What to do with a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it.
    Keep,
    /// Measure it again.
    Redo,
}

/// The run's placement reference and what holding to it cost.
#[derive(Debug, Default)]
pub struct Hold {
    retries: usize,
    reference: Option<f64>,
    redone: usize,
    kept_off: Vec<String>,
}

/// `a / b` or `b / a`, whichever is at least 1 (infinite if either is not positive).
fn apart(a: f64, b: f64) -> f64 {
    if a <= 0.0 || b <= 0.0 {
        return f64::INFINITY;
    }
    a.max(b) / a.min(b)
}

impl Hold {
    /// A hold that allows `retries` more measurements of each transport (0: off, every
    /// measurement is kept).
    pub fn new(retries: usize) -> Self {
        Hold {
            retries,
            ..Hold::default()
        }
    }

    /// Judges the measurement `what` (its `attempt`, 0 for the first) by its bracketing
    /// floors `(before, after)`, ns.
    pub fn judge(&mut self, bracket: Option<(f64, f64)>, attempt: usize, what: &str) -> Verdict {
        let Some((before, after)) = bracket.filter(|_| self.retries > 0) else {
            return Verdict::Keep;
        };
        let within = match self.reference {
            None if apart(before, after) <= STEADY => {
                self.reference = Some((before + after) / 2.0);
                true
            }
            None => false,
            Some(r) => apart(before, r) <= TOLERANCE && apart(after, r) <= TOLERANCE,
        };
        if within {
            Verdict::Keep
        } else if attempt < self.retries {
            self.redone += 1;
            Verdict::Redo
        } else {
            self.kept_off
                .push(format!("{what} (floors {before:.0} / {after:.0} ns)"));
            Verdict::Keep
        }
    }

    /// The report's note, when the hold was on.
    pub fn note(&self) -> Option<String> {
        if self.retries == 0 {
            return None;
        }
        let reference = self
            .reference
            .map_or("never set (no steady floor)".to_string(), |r| {
                format!("{r:.0} ns")
            });
        let mut note = format!(
            "held to one placement (--hold-placement {}): reference floor {reference}, \
             bracketing floors within {TOLERANCE}x of it; {} measurement(s) redone",
            self.retries, self.redone
        );
        if !self.kept_off.is_empty() {
            note.push_str(&format!(
                "; kept off the reference after every retry: {}",
                self.kept_off.join(", ")
            ));
        }
        Some(note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_keeps_everything_and_says_nothing() {
        let mut h = Hold::new(0);
        assert_eq!(h.judge(Some((70.0, 400.0)), 0, "a"), Verdict::Keep);
        assert_eq!(h.reference, None);
        assert_eq!(h.note(), None);
    }

    #[test]
    fn the_first_steady_floor_sets_the_reference() {
        let mut h = Hold::new(2);
        // Floors that disagree cannot set it: measured again.
        assert_eq!(h.judge(Some((70.0, 380.0)), 0, "a"), Verdict::Redo);
        assert_eq!(h.reference, None);
        assert_eq!(h.judge(Some((72.0, 78.0)), 1, "a"), Verdict::Keep);
        assert_eq!(h.reference, Some(75.0));
    }

    #[test]
    fn a_measurement_off_the_reference_is_redone_then_kept_and_named() {
        let mut h = Hold::new(2);
        assert_eq!(h.judge(Some((75.0, 75.0)), 0, "floor"), Verdict::Keep);
        // Within the tolerance, either way.
        assert_eq!(
            h.judge(Some((75.0 * 1.55, 75.0 / 1.55)), 0, "b"),
            Verdict::Keep
        );
        // The slow placement, before or after: redone while retries last.
        assert_eq!(h.judge(Some((75.0, 360.0)), 0, "c"), Verdict::Redo);
        assert_eq!(h.judge(Some((360.0, 75.0)), 1, "c"), Verdict::Redo);
        assert_eq!(h.judge(Some((350.0, 370.0)), 2, "c 8 B"), Verdict::Keep);
        // A bracket with a zero floor is never within.
        assert_eq!(h.judge(Some((0.0, 75.0)), 0, "d"), Verdict::Redo);
        let note = h.note().unwrap();
        assert!(note.contains("reference floor 75 ns"), "{note}");
        assert!(note.contains("3 measurement(s) redone"), "{note}");
        assert!(note.contains("c 8 B (floors 350 / 370 ns)"), "{note}");
    }

    #[test]
    fn the_pause_doubles_to_eight_seconds() {
        let secs: Vec<u64> = (0..6).map(|a| pause(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 8, 8]);
    }

    #[test]
    fn no_bracket_is_kept() {
        let mut h = Hold::new(3);
        assert_eq!(h.judge(None, 0, "memcpy"), Verdict::Keep);
    }
}
