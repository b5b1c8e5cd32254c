//! The replay server's virtual clock: `now = origin + real elapsed × speed`, clamped at the end
//! of the data. [`virtual_now`] is the pure formula; [`VirtualClock`] reads
//! `std::time::Instant` (this is server I/O code, so reading a clock is allowed here).

use std::time::{Duration, Instant};

/// The pure clock formula: `origin_ms + elapsed × speed`, never past `end_ms`.
pub(crate) fn virtual_now(origin_ms: i64, elapsed: Duration, speed: f64, end_ms: i64) -> i64 {
    let advanced = elapsed.as_secs_f64() * 1000.0 * speed;
    let advanced = if advanced.is_finite() && advanced > 0.0 {
        advanced.min(i64::MAX as f64 / 4.0) as i64
    } else {
        0
    };
    origin_ms
        .saturating_add(advanced)
        .min(end_ms.max(origin_ms))
}

/// Real time to wait until the virtual clock reaches `target_ms` (zero when it already has).
pub(crate) fn real_until(now_ms: i64, target_ms: i64, speed: f64) -> Duration {
    if target_ms <= now_ms || speed.is_nan() || speed <= 0.0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(((target_ms - now_ms) as f64 / speed / 1000.0).min(3600.0))
}

/// A running virtual clock.
#[derive(Debug, Clone)]
pub(crate) struct VirtualClock {
    origin_ms: i64,
    end_ms: i64,
    speed: f64,
    started: Instant,
}

impl VirtualClock {
    /// Starts a clock at `origin_ms` now; it stops at `end_ms`.
    pub(crate) fn start(origin_ms: i64, end_ms: i64, speed: f64) -> VirtualClock {
        VirtualClock {
            origin_ms,
            end_ms,
            speed,
            started: Instant::now(),
        }
    }

    /// The current virtual time in ms.
    pub(crate) fn now_ms(&self) -> i64 {
        virtual_now(
            self.origin_ms,
            self.started.elapsed(),
            self.speed,
            self.end_ms,
        )
    }

    /// The speed factor.
    pub(crate) fn speed(&self) -> f64 {
        self.speed
    }

    /// Real time since the clock started.
    pub(crate) fn real_elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_by_speed_and_clamps_at_the_end() {
        let o = 1_782_864_000_000;
        // (real time elapsed, speed, virtual ms past the origin); the end is 600,000 ms on.
        let cases = [
            (Duration::ZERO, 60.0, 0),
            (Duration::from_millis(1500), 60.0, 90_000),
            (Duration::from_millis(250), 1.0, 250),
            (Duration::from_secs(100), 60.0, 600_000),
            (Duration::from_secs(1_000_000), 1e7, 600_000),
        ];
        for (elapsed, speed, past) in cases {
            assert_eq!(virtual_now(o, elapsed, speed, o + 600_000), o + past);
        }
    }

    #[test]
    fn real_wait_scales_with_speed() {
        assert_eq!(real_until(0, 60_000, 60.0), Duration::from_secs(1));
        assert_eq!(real_until(10, 5, 60.0), Duration::ZERO);
        assert_eq!(real_until(0, 2_000, 1.0), Duration::from_secs(2));
    }
}
