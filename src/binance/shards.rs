//! Pure scheduling for streaming over several connections (issue 22: "a second connection only
//! past 1024 streams"). Nothing here does I/O or reads a clock: instants are arguments.
//!
//! The streaming thread (`live::stream_thread`) uses them: the partition of the stream list
//! over its connections (up to [`super::ws::MAX_STREAMS`] per connection, or fewer with
//! `KLINECAST_WS_MAX_STREAMS`), the round-robin order in which it polls them and the attempt
//! budget shared by all connections (Binance: 300 connection attempts per 5 minutes per IP,
//! `../shared/docs/binance-protocol.md` §3.6).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Connection attempts Binance allows per IP in [`ATTEMPT_WINDOW`].
pub const MAX_ATTEMPTS_PER_WINDOW: usize = 300;
/// The sliding window of [`MAX_ATTEMPTS_PER_WINDOW`].
pub const ATTEMPT_WINDOW: Duration = Duration::from_secs(300);

/// Splits `streams` over `ceil(n / max_per_connection)` connections, in order, each with at
/// most `max_per_connection` streams and the shares differing by at most one. With
/// `n <= max_per_connection` the answer is one share: the list itself. An empty list gives no
/// share; a limit of 0 is treated as 1.
pub fn partition<T: Clone>(streams: &[T], max_per_connection: usize) -> Vec<Vec<T>> {
    let max = max_per_connection.max(1);
    let n = streams.len();
    if n == 0 {
        return Vec::new();
    }
    let connections = n.div_ceil(max);
    let base = n / connections;
    let extra = n % connections;
    let mut shares = Vec::with_capacity(connections);
    let mut start = 0;
    for i in 0..connections {
        let len = base + usize::from(i < extra);
        shares.push(streams[start..start + len].to_vec());
        start += len;
    }
    shares
}

/// Round-robin order in which the streaming thread polls its connections: after connection
/// `last`, the next one of `count`, wrapping. `None` when there is no connection.
pub fn next_to_poll(last: Option<usize>, count: usize) -> Option<usize> {
    if count == 0 {
        return None;
    }
    Some(match last {
        Some(i) => (i + 1) % count,
        None => 0,
    })
}

/// The connection-attempt budget shared by every connection of one process: at most
/// `max` attempts in any sliding `window`.
#[derive(Debug)]
pub struct AttemptBudget {
    max: usize,
    window: Duration,
    recent: VecDeque<Instant>,
}

impl AttemptBudget {
    /// Binance's budget: [`MAX_ATTEMPTS_PER_WINDOW`] in [`ATTEMPT_WINDOW`].
    pub fn binance() -> Self {
        Self::new(MAX_ATTEMPTS_PER_WINDOW, ATTEMPT_WINDOW)
    }

    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            recent: VecDeque::new(),
        }
    }

    /// The attempts allowed in [`AttemptBudget::window`].
    pub fn max(&self) -> usize {
        self.max
    }

    /// The sliding window of [`AttemptBudget::max`].
    pub fn window(&self) -> Duration {
        self.window
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some(&t) = self.recent.front() {
            if now.saturating_duration_since(t) >= self.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
    }

    /// How long a connection must wait at `now` before it may attempt: zero when the budget
    /// has room.
    pub fn wait_before_attempt(&mut self, now: Instant) -> Duration {
        self.forget_old(now);
        if self.recent.len() < self.max {
            return Duration::ZERO;
        }
        match self.recent.front() {
            Some(&oldest) => (oldest + self.window).saturating_duration_since(now),
            None => Duration::ZERO,
        }
    }

    /// Records an attempt at `now`; `false` (and nothing recorded) when the budget is spent.
    pub fn try_attempt(&mut self, now: Instant) -> bool {
        if self.wait_before_attempt(now) > Duration::ZERO {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_or_below_the_limit_is_one_connection() {
        let s: Vec<u32> = (0..1024).collect();
        assert_eq!(partition(&s, 1024), vec![s.clone()]);
        assert_eq!(partition(&[1, 2, 3], 1024), vec![vec![1, 2, 3]]);
        assert_eq!(partition::<u32>(&[], 1024), Vec::<Vec<u32>>::new());
    }

    #[test]
    fn past_the_limit_splits_in_order_into_ceil_n_over_limit_shares() {
        assert_eq!(partition(&[1, 2, 3], 2), vec![vec![1, 2], vec![3]]);
        let s: Vec<u32> = (0..1025).collect();
        let shares = partition(&s, 1024);
        assert_eq!(shares.len(), 2);
        assert_eq!(shares[0].len(), 513);
        assert_eq!(shares[1].len(), 512);
        assert_eq!(shares.concat(), s);
        let s: Vec<u32> = (0..5000).collect();
        let shares = partition(&s, 1024);
        assert_eq!(shares.len(), 5);
        assert!(shares.iter().all(|x| x.len() <= 1024));
        assert_eq!(shares.concat(), s);
        assert_eq!(partition(&[1, 2], 0), vec![vec![1], vec![2]]);
    }

    #[test]
    fn polls_round_robin() {
        assert_eq!(next_to_poll(None, 0), None);
        assert_eq!(next_to_poll(None, 3), Some(0));
        assert_eq!(next_to_poll(Some(0), 3), Some(1));
        assert_eq!(next_to_poll(Some(2), 3), Some(0));
        assert_eq!(next_to_poll(Some(0), 1), Some(0));
    }

    #[test]
    fn attempt_budget_is_shared_and_slides() {
        let t0 = Instant::now();
        let mut b = AttemptBudget::new(3, Duration::from_secs(300));
        assert!(b.try_attempt(t0));
        assert!(b.try_attempt(t0 + Duration::from_secs(1)));
        assert!(b.try_attempt(t0 + Duration::from_secs(2)));
        let t = t0 + Duration::from_secs(10);
        assert!(!b.try_attempt(t));
        assert_eq!(b.wait_before_attempt(t), Duration::from_secs(290));
        let t = t0 + Duration::from_secs(300);
        assert!(b.try_attempt(t));
        assert!(!b.try_attempt(t));
        assert_eq!(AttemptBudget::binance().max, 300);
    }
}
