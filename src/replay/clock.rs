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
    /// The paused time up to `at`.
    fn total_at(&self, at: Instant) -> Duration {
        self.ended
            + self
                .since
                .map_or(Duration::ZERO, |s| at.saturating_duration_since(s))
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
        self.now_ms_at(Instant::now())
    }

    /// Stops the clock (no effect when it is already stopped).
    pub(crate) fn pause(&self) {
        self.pause_at(Instant::now());
    }

    /// Starts a paused clock again where it stopped (no effect when it runs).
    pub(crate) fn resume(&self) {
        self.resume_at(Instant::now());
    }

    /// [`VirtualClock::now_ms`] at the real instant `at`.
    fn now_ms_at(&self, at: Instant) -> i64 {
        let running = at
            .saturating_duration_since(self.started)
            .saturating_sub(self.pauses().total_at(at));
        virtual_now(self.origin_ms, running, self.speed, self.end_ms)
    }

    fn pause_at(&self, at: Instant) {
        let mut p = self.pauses();
        if p.since.is_none() {
            p.since = Some(at);
        }
    }

    fn resume_at(&self, at: Instant) {
        let mut p = self.pauses();
        if let Some(since) = p.since.take() {
            p.ended += at.saturating_duration_since(since);
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
        let clock = VirtualClock::start(1_000, i64::MAX / 8, 60.0);
        let t = |ms: u64| clock.started + Duration::from_millis(ms);
        assert_eq!(clock.now_ms_at(t(100)), 1_000 + 6_000);
        clock.pause_at(t(100));
        assert_eq!(clock.now_ms_at(t(100)), 7_000);
        assert_eq!(clock.now_ms_at(t(350)), 7_000, "stands still");
        clock.pause_at(t(200)); // a second pause changes nothing
        clock.resume_at(t(400));
        clock.resume_at(t(450)); // nor does a second resume
        assert_eq!(clock.now_ms_at(t(400)), 7_000, "resumes where it stopped");
        assert_eq!(clock.now_ms_at(t(500)), 7_000 + 6_000);
        clock.pause_at(t(600));
        clock.resume_at(t(700));
        // 1,000 ms since the start, 400 of them paused.
        assert_eq!(clock.now_ms_at(t(1_000)), 1_000 + 36_000);
    }

    #[test]
    fn real_wait_scales_with_speed() {
        assert_eq!(real_until(0, 60_000, 60.0), Duration::from_secs(1));
        assert_eq!(real_until(10, 5, 60.0), Duration::ZERO);
        assert_eq!(real_until(0, 2_000, 1.0), Duration::from_secs(2));
    }
}
