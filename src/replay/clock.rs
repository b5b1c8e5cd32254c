//! The replay server's virtual clock: `now = origin + real elapsed × speed`, clamped at the end
//! of the data. [`virtual_now`] is the pure formula; [`VirtualClock`] reads
//! `std::time::Instant` (this is server I/O code, so reading a clock is allowed here).
//! A test can pause the clock (no candle closes while it is paused) so that a step whose real
//! duration depends on the machine, such as a restart under qemu, does not change what happens.

use std::sync::Mutex;
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
#[derive(Debug)]
pub(crate) struct VirtualClock {
    origin_ms: i64,
    end_ms: i64,
    speed: f64,
    started: Instant,
    pauses: Mutex<Pauses>,
}

/// The real time the clock has stood still.
#[derive(Debug, Default)]
struct Pauses {
    /// Paused time of the pauses that have ended.
    ended: Duration,
    /// When the pause in progress began.
    since: Option<Instant>,
}

impl Pauses {
    fn total(&self) -> Duration {
        self.ended + self.since.map_or(Duration::ZERO, |s| s.elapsed())
    }
}

impl VirtualClock {
    /// Starts a clock at `origin_ms` now; it stops at `end_ms`.
    pub(crate) fn start(origin_ms: i64, end_ms: i64, speed: f64) -> VirtualClock {
        VirtualClock {
            origin_ms,
            end_ms,
            speed,
            started: Instant::now(),
            pauses: Mutex::new(Pauses::default()),
        }
    }

    fn pauses(&self) -> std::sync::MutexGuard<'_, Pauses> {
        self.pauses.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current virtual time in ms: real time since the start, less the paused time, times
    /// the speed.
    pub(crate) fn now_ms(&self) -> i64 {
        let running = self.started.elapsed().saturating_sub(self.pauses().total());
        virtual_now(self.origin_ms, running, self.speed, self.end_ms)
    }

    /// Stops the clock (no effect when it is already stopped).
    pub(crate) fn pause(&self) {
        let mut p = self.pauses();
        if p.since.is_none() {
            p.since = Some(Instant::now());
        }
    }

    /// Starts a paused clock again where it stopped (no effect when it runs).
    pub(crate) fn resume(&self) {
        let mut p = self.pauses();
        if let Some(since) = p.since.take() {
            p.ended += since.elapsed();
        }
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
    fn a_paused_clock_stands_still_and_resumes_where_it_stopped() {
        let clock = VirtualClock::start(0, i64::MAX / 8, 1e6);
        clock.pause();
        let stopped = clock.now_ms();
        std::thread::sleep(Duration::from_millis(30));
        clock.pause();
        assert_eq!(clock.now_ms(), stopped);
        clock.resume();
        // 30 ms of real time at 1e6x would be 30,000,000 virtual ms: the paused time is skipped.
        let resumed = clock.now_ms();
        assert!(
            resumed >= stopped && resumed < stopped + 20_000_000,
            "{resumed}"
        );
        std::thread::sleep(Duration::from_millis(5));
        assert!(clock.now_ms() > resumed);
    }

    #[test]
    fn real_wait_scales_with_speed() {
        assert_eq!(real_until(0, 60_000, 60.0), Duration::from_secs(1));
        assert_eq!(real_until(10, 5, 60.0), Duration::ZERO);
        assert_eq!(real_until(0, 2_000, 1.0), Duration::from_secs(2));
    }
}
