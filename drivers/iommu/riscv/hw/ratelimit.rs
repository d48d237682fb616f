// SPDX-License-Identifier: GPL-2.0

//! A log rate limit in the manner of the kernel's `ratelimit_state`: at most
//! `burst` lines an interval; the lines held back are counted and reported
//! once the next interval opens. Time comes in as milliseconds from any
//! fixed origin, so the arithmetic is host-tested.

/// The state of one rate limit.
///
/// # Invariants
///
/// `printed <= burst`; `missed` counts lines refused since `start`.
pub(crate) struct RateLimit {
    interval_ms: u64,
    burst: u32,
    /// When the current interval opened, `None` before the first line.
    start: Option<u64>,
    printed: u32,
    missed: u64,
}

impl RateLimit {
    /// At most `burst` lines every `interval_ms` milliseconds.
    pub(crate) const fn new(interval_ms: u64, burst: u32) -> Self {
        Self {
            interval_ms,
            burst,
            start: None,
            printed: 0,
            missed: 0,
        }
    }

    /// Whether one more line may be logged at `now_ms`, and how many lines
    /// the interval that just closed held back (to be reported first; 0
    /// while the interval is still open).
    pub(crate) fn allow(&mut self, now_ms: u64) -> (bool, u64) {
        let mut closed = 0;
        match self.start {
            Some(s) if now_ms.saturating_sub(s) < self.interval_ms => {}
            _ => {
                closed = core::mem::take(&mut self.missed);
                self.start = Some(now_ms);
                self.printed = 0;
            }
        }
        if self.printed < self.burst {
            self.printed += 1;
            (true, closed)
        } else {
            self.missed += 1;
            (false, closed)
        }
    }
}
