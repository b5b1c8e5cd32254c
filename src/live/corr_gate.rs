//! The waiting rule of `stream --corr` (issue 23, part 3), pure: no clock is read here, every
//! instant comes in as an argument.
//!
//! A symbol's closed kline of minute m and its correlated symbols' ("neighbours'") closed
//! klines of minute m come over the one combined connection a moment apart, in any order. The
//! forecast after the symbol's kline waits for each neighbour's kline of minute m until
//! [`CORR_WAIT`] after the symbol's own kline arrived, then goes ahead with what it has: a
//! neighbour still missing gets the gap rule (its last close carried, `stale` 1) and the
//! forecast is marked late (its neighbours' indices in [`Released::late`]). A neighbour whose
//! newer kline has already come has a gap at minute m (a feed is in order): no wait. A
//! neighbour kline that comes after its minute was used is kept only for later minutes: it is
//! never applied to a row already made. The bound's reasons are in src/README.md ("Correlated
//! pairs").

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Longest a forecast waits for its neighbours' klines of its minute after its own kline
/// arrived. Binance pushes a 1m kline stream's updates every 2000 ms (the final one, `x:true`,
/// after the minute ends), so two symbols' finals of one minute are at most about one update
/// period apart; one more second covers the network and the streaming thread.
pub(crate) const CORR_WAIT: Duration = Duration::from_secs(3);

/// Closes kept per feed: enough for a symbol whose gap fill comes after its neighbours' (one
/// REST page is 1000 klines); older ones count as gaps.
const KEEP: usize = 10_000;

/// A neighbour's kline of one minute, as far as is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Neighbour {
    /// Its kline of the minute came: its close.
    Fresh(f64),
    /// It will not come: a newer kline came first, or the neighbour is not streamed.
    Gap,
    /// Not yet.
    Pending,
}

/// What the forecast of a kline does about its neighbours.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// Go ahead with these closes (`None`: the gap rule); `late`: the neighbours (indices) still
    /// missing when the bound passed.
    Go {
        corr: Vec<Option<f64>>,
        late: Vec<usize>,
    },
    /// Wait, at most until this instant.
    Wait(Instant),
}

/// The rule for one kline that arrived at `arrived`, its neighbours in `states`, at `now`.
pub(crate) fn decide(
    states: &[Neighbour],
    arrived: Instant,
    now: Instant,
    bound: Duration,
) -> Decision {
    let deadline = arrived.checked_add(bound).unwrap_or(arrived);
    let pending = states.contains(&Neighbour::Pending);
    if pending && now < deadline {
        return Decision::Wait(deadline);
    }
    Decision::Go {
        corr: states
            .iter()
            .map(|s| match s {
                Neighbour::Fresh(c) => Some(*c),
                _ => None,
            })
            .collect(),
        late: states
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == Neighbour::Pending)
            .map(|(i, _)| i)
            .collect(),
    }
}

/// One feed's newest closes, ascending by open time.
#[derive(Debug, Clone, Default)]
struct Seen {
    closes: VecDeque<(i64, f64)>,
}

impl Seen {
    fn record(&mut self, open_time: i64, close: f64) {
        if self.closes.back().is_some_and(|&(t, _)| open_time <= t) {
            return;
        }
        self.closes.push_back((open_time, close));
        if self.closes.len() > KEEP {
            self.closes.pop_front();
        }
    }

    fn at(&self, minute: i64) -> Neighbour {
        match self.closes.back() {
            None => Neighbour::Pending,
            Some(&(t, _)) if t < minute => Neighbour::Pending,
            _ => match self.closes.binary_search_by_key(&minute, |&(t, _)| t) {
                Ok(i) => Neighbour::Fresh(self.closes[i].1),
                Err(_) => Neighbour::Gap,
            },
        }
    }
}

/// A kline held back until its neighbours' klines of its minute have come (or the bound).
#[derive(Debug)]
struct Parked<T> {
    /// Arrival order over all symbols: what is let through together goes in this order.
    seq: u64,
    open_time: i64,
    arrived: Instant,
    item: T,
}

/// A kline let through: the forecast symbol, what was parked, its neighbours' closes of its
/// minute (`None`: the gap rule) and the neighbours that were late (indices into its list).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Released<T> {
    pub id: usize,
    pub item: T,
    pub corr: Vec<Option<f64>>,
    pub late: Vec<usize>,
}

/// The waiting rule over a stream's feeds: feeds `0..n` are the forecast symbols (each with its
/// neighbours' feeds, `None` for one that is not streamed), the others only neighbours. Each
/// forecast symbol's klines are let through in their order.
#[derive(Debug)]
pub(crate) struct CorrGate<T> {
    neighbours: Vec<Vec<Option<usize>>>,
    seen: Vec<Seen>,
    parked: Vec<VecDeque<Parked<T>>>,
    bound: Duration,
    arrivals: u64,
}

impl<T> CorrGate<T> {
    /// `neighbours[id]`: the feeds of forecast symbol `id`'s correlated symbols, in its order;
    /// `feeds`: how many feeds there are in all.
    pub(crate) fn new(neighbours: Vec<Vec<Option<usize>>>, feeds: usize, bound: Duration) -> Self {
        let n = neighbours.len();
        CorrGate {
            neighbours,
            seen: vec![Seen::default(); feeds.max(n)],
            parked: (0..n).map(|_| VecDeque::new()).collect(),
            bound,
            arrivals: 0,
        }
    }

    /// A closed kline of `feed` (minute `open_time`, its `close`) that arrived at `arrived`:
    /// kept as a neighbour's close, and parked when `feed` is a forecast symbol.
    pub(crate) fn arrive(
        &mut self,
        feed: usize,
        open_time: i64,
        close: f64,
        arrived: Instant,
        item: T,
    ) {
        if let Some(seen) = self.seen.get_mut(feed) {
            seen.record(open_time, close);
        }
        if let Some(queue) = self.parked.get_mut(feed) {
            self.arrivals += 1;
            queue.push_back(Parked {
                seq: self.arrivals,
                open_time,
                arrived,
                item,
            });
        }
    }

    fn states(&self, id: usize, minute: i64) -> Vec<Neighbour> {
        self.neighbours[id]
            .iter()
            .map(|feed| match feed.and_then(|f| self.seen.get(f)) {
                Some(seen) => seen.at(minute),
                None => Neighbour::Gap,
            })
            .collect()
    }

    /// Every parked kline whose rule says go at `now`, in the order they arrived.
    pub(crate) fn release(&mut self, now: Instant) -> Vec<Released<T>> {
        self.release_when(|_| now)
    }

    /// Every parked kline, as if its bound had passed (the stream has ended: nothing more
    /// comes).
    pub(crate) fn flush(&mut self) -> Vec<Released<T>> {
        let bound = self.bound;
        self.release_when(|arrived| arrived.checked_add(bound).unwrap_or(arrived))
    }

    fn release_when(&mut self, now: impl Fn(Instant) -> Instant) -> Vec<Released<T>> {
        let mut out = Vec::new();
        for id in 0..self.parked.len() {
            while let Some(head) = self.parked[id].front() {
                let states = self.states(id, head.open_time);
                let Decision::Go { corr, late } =
                    decide(&states, head.arrived, now(head.arrived), self.bound)
                else {
                    break;
                };
                let Some(parked) = self.parked[id].pop_front() else {
                    break;
                };
                out.push((
                    parked.seq,
                    Released {
                        id,
                        item: parked.item,
                        corr,
                        late,
                    },
                ));
            }
        }
        out.sort_by_key(|(seq, _)| *seq);
        out.into_iter().map(|(_, r)| r).collect()
    }

    /// When the first parked kline's bound passes (`None`: nothing parked).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.parked
            .iter()
            .filter_map(|q| q.front())
            .map(|p| p.arrived.checked_add(self.bound).unwrap_or(p.arrived))
            .min()
    }

    /// Whether any kline is parked.
    pub(crate) fn has_parked(&self) -> bool {
        self.parked.iter().any(|q| !q.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;
    const BOUND: Duration = Duration::from_secs(3);

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// One forecast symbol (feed 0) with one neighbour (feed 1); items are open times.
    fn gate() -> CorrGate<i64> {
        CorrGate::new(vec![vec![Some(1)]], 2, BOUND)
    }

    /// Backs README claim [C25]: the rule on explicit instants: wait until the bound, then go with the gap rule, marked.
    #[test]
    fn the_rule_on_explicit_instants() {
        let t0 = Instant::now();
        let fresh = [Neighbour::Fresh(2.0)];
        let go = |corr: Vec<Option<f64>>, late: Vec<usize>| Decision::Go { corr, late };
        assert_eq!(decide(&fresh, t0, t0, BOUND), go(vec![Some(2.0)], vec![]));
        assert_eq!(decide(&[], t0, t0, BOUND), go(vec![], vec![]));
        let pending = [Neighbour::Fresh(2.0), Neighbour::Pending];
        assert_eq!(
            decide(&pending, t0, ms(t0, 2999), BOUND),
            Decision::Wait(ms(t0, 3000))
        );
        assert_eq!(
            decide(&pending, t0, ms(t0, 3000), BOUND),
            go(vec![Some(2.0), None], vec![1])
        );
        assert_eq!(
            decide(&[Neighbour::Gap], t0, t0, BOUND),
            go(vec![None], vec![])
        );
    }

    /// Backs README claim [C25]: all arrive: the kline goes with its neighbours' closes.
    #[test]
    fn all_arrive_the_kline_goes_with_its_neighbours_closes() {
        let t0 = Instant::now();
        let mut g = gate();
        g.arrive(0, 5 * M, 10.0, t0, 5 * M);
        assert!(g.release(ms(t0, 1)).is_empty(), "waits for the neighbour");
        assert_eq!(g.next_deadline(), Some(ms(t0, 3000)));
        g.arrive(1, 5 * M, 20.0, ms(t0, 40), 0);
        let out = g.release(ms(t0, 40));
        assert_eq!(
            out,
            vec![Released {
                id: 0,
                item: 5 * M,
                corr: vec![Some(20.0)],
                late: vec![]
            }]
        );
        assert!(!g.has_parked());
        assert_eq!(g.next_deadline(), None);
    }

    /// Backs README claim [C25]: a neighbour's kline first: the symbol's goes at once.
    #[test]
    fn a_neighbour_first_lets_the_kline_go_at_once() {
        let t0 = Instant::now();
        let mut g = gate();
        g.arrive(1, 5 * M, 20.0, t0, 0);
        assert!(
            g.release(t0).is_empty(),
            "a neighbour-only kline is not parked"
        );
        g.arrive(0, 5 * M, 10.0, ms(t0, 5), 5 * M);
        let out = g.release(ms(t0, 5));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].corr, vec![Some(20.0)]);
        assert!(out[0].late.is_empty());
    }

    /// Backs README claim [C25]: a neighbour late past the bound: the gap rule, marked late.
    #[test]
    fn a_neighbour_late_past_the_bound_goes_stale_and_marked() {
        let t0 = Instant::now();
        let mut g = gate();
        g.arrive(1, 4 * M, 19.0, t0, 0);
        g.arrive(0, 5 * M, 10.0, ms(t0, 100), 5 * M);
        assert!(g.release(ms(t0, 3099)).is_empty());
        let out = g.release(ms(t0, 3100));
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].corr.clone(), out[0].late.clone()),
            (vec![None], vec![0])
        );
    }

    /// Backs README claim [C25]: a neighbour gap (its newer kline came first): no wait, the gap rule.
    #[test]
    fn a_neighbour_gap_goes_at_once_unmarked() {
        let t0 = Instant::now();
        let mut g = gate();
        // The neighbour has no kline of minute 5: its kline of minute 6 came first.
        g.arrive(1, 4 * M, 19.0, t0, 0);
        g.arrive(1, 6 * M, 21.0, ms(t0, 1), 0);
        g.arrive(0, 5 * M, 10.0, ms(t0, 2), 5 * M);
        g.arrive(0, 6 * M, 11.0, ms(t0, 3), 6 * M);
        let out = g.release(ms(t0, 3));
        let got: Vec<_> = out
            .iter()
            .map(|r| (r.item, r.corr.clone(), r.late.len()))
            .collect();
        assert_eq!(
            got,
            vec![(5 * M, vec![None], 0), (6 * M, vec![Some(21.0)], 0)]
        );
        // A neighbour that is not streamed is a gap on every row.
        let mut g: CorrGate<i64> = CorrGate::new(vec![vec![None]], 1, BOUND);
        g.arrive(0, 5 * M, 10.0, t0, 5 * M);
        assert_eq!(g.release(t0)[0].corr, vec![None]);
    }

    /// Backs README claim [C25]: a neighbour's kline after its minute was used is never applied to that row.
    #[test]
    fn a_neighbour_arriving_after_the_deadline_is_not_applied_retroactively() {
        let t0 = Instant::now();
        let mut g = gate();
        g.arrive(0, 5 * M, 10.0, t0, 5 * M);
        let first = g.release(ms(t0, 3000));
        assert_eq!(first[0].late, vec![0]);
        // Minute 5 of the neighbour comes now: nothing is released again, and minute 6 reads
        // only minute 6's close.
        g.arrive(1, 5 * M, 20.0, ms(t0, 3500), 0);
        assert!(g.release(ms(t0, 3500)).is_empty());
        g.arrive(0, 6 * M, 11.0, ms(t0, 60_000), 6 * M);
        assert!(g.release(ms(t0, 60_000)).is_empty(), "waits for minute 6");
        g.arrive(1, 6 * M, 21.0, ms(t0, 60_010), 0);
        let out = g.release(ms(t0, 60_010));
        assert_eq!(
            (out[0].item, out[0].corr.clone()),
            (6 * M, vec![Some(21.0)])
        );
    }

    #[test]
    fn klines_of_one_symbol_stay_in_order_and_flush_lets_all_go() {
        let t0 = Instant::now();
        let mut g = gate();
        g.arrive(0, 5 * M, 10.0, t0, 5 * M);
        g.arrive(0, 6 * M, 11.0, ms(t0, 1), 6 * M);
        assert!(g.release(ms(t0, 1)).is_empty(), "6 stays behind 5");
        // The neighbour's minute 6 comes: its minute 5 is a gap, and both go, in order.
        g.arrive(1, 6 * M, 21.0, ms(t0, 2), 0);
        let items: Vec<i64> = g.release(ms(t0, 2)).iter().map(|r| r.item).collect();
        assert_eq!(items, vec![5 * M, 6 * M]);
        g.arrive(0, 7 * M, 12.0, ms(t0, 3), 7 * M);
        assert!(g.has_parked());
        let out = g.flush();
        assert_eq!((out[0].item, out[0].late.clone()), (7 * M, vec![0]));
        assert!(!g.has_parked());
    }

    #[test]
    fn a_symbol_without_neighbours_goes_at_once() {
        let t0 = Instant::now();
        let mut g: CorrGate<i64> = CorrGate::new(vec![vec![], vec![]], 2, BOUND);
        g.arrive(1, 5 * M, 1.0, t0, 1);
        g.arrive(0, 5 * M, 1.0, t0, 0);
        let ids: Vec<usize> = g.release(t0).iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![1, 0], "in the order they arrived");
    }
}
