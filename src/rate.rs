//! A token bucket: `rate` tokens a second, holding at most `burst`. Unlike a counter per clock
//! second, a burst that straddles a second boundary gets no second allowance. Pure: the caller
//! passes the time (and the limits, which a reload may change).

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A bucket holding `burst` tokens at `now`.
    pub fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            refilled: now,
        }
    }

    /// Adds what `rate` gave since the last refill, up to `burst`.
    pub fn refill(&mut self, rate: u32, burst: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(f64::from(burst));
        self.refilled = now;
    }

    /// Whole seconds until a token is there at `rate` (0: one is there now).
    pub fn wait_secs(&self, rate: u32) -> u64 {
        match self.tokens >= 1.0 {
            true => 0,
            false => ((1.0 - self.tokens) / f64::from(rate.max(1)))
                .ceil()
                .max(1.0) as u64,
        }
    }

    /// Takes a token (the caller checked [`TokenBucket::wait_secs`]).
    pub fn take(&mut self) {
        self.tokens -= 1.0;
    }

    /// Refills, then takes a token if one is there: `false` when none is.
    pub fn try_take(&mut self, rate: u32, burst: u32, now: Instant) -> bool {
        self.refill(rate, burst, now);
        let there = self.tokens >= 1.0;
        if there {
            self.take();
        }
        there
    }

    /// When the bucket was last refilled.
    pub fn refilled(&self) -> Instant {
        self.refilled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_across_a_second_boundary_gets_no_second_allowance() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(10, start);
        // 10 at 0.9 s: all taken; 10 more at 1.1 s: only the 2 refilled in 0.2 s.
        let at = start + Duration::from_millis(900);
        assert!((0..10).all(|_| bucket.try_take(10, 10, at)));
        let at = start + Duration::from_millis(1100);
        let taken = (0..10).filter(|_| bucket.try_take(10, 10, at)).count();
        assert_eq!(taken, 2);
        assert_eq!(bucket.wait_secs(10), 1);
        // A full second later the bucket holds its burst again, never more.
        let at = start + Duration::from_secs(5);
        let taken = (0..20).filter(|_| bucket.try_take(10, 10, at)).count();
        assert_eq!(taken, 10);
    }
}
