//! Split finding: gradient statistics, the gain of XGBoost, and the exact and histogram
//! searches over the nodes of one level.

use super::bins::{midpoint, Bins};
use super::state::{BuildNode, Grower, Level, Reg, Split, Stats};

/// Below this much work (rows × features) a level is searched on one thread.
const PARALLEL_MIN_WORK: usize = 1 << 16;

/// Bins a feature can have at most: a row's bin is a `u8` ([`Bins::bins`]).
const BLOCK: usize = 1 << u8::BITS;

/// Where a node's histogram comes from in [`Grower::find_hist`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    /// Added up from the node's rows.
    Rows,
    /// The parent's histogram minus that of the sibling at this index of the level (the
    /// sibling with fewer rows is the one built from rows).
    ParentMinus(usize),
}

impl Grower<'_> {
    /// Splits `features` into at most `threads` contiguous chunks when the work is large.
    fn chunks<'f>(&self, features: &'f [usize], work: usize) -> Vec<&'f [usize]> {
        let t = if work >= PARALLEL_MIN_WORK {
            self.threads.min(features.len()).max(1)
        } else {
            1
        };
        let size = features.len().div_ceil(t);
        features.chunks(size.max(1)).collect()
    }

    /// Exact search for every node of the level (XGBoost `ColMaker::EnumerateSplit`, dense
    /// backward enumeration).
    pub(super) fn find_exact(&self, sorted: &[Vec<(f32, u32)>], level: &Level) -> Vec<Split> {
        let expand = level.expand;
        // Row → index in `expand`, or u32::MAX for rows of finished nodes or not sampled.
        let mut slot = vec![u32::MAX; self.n];
        let mut active = 0;
        for k in 0..expand.len() {
            for &r in level.rows(k) {
                slot[r as usize] = k as u32;
            }
            active += level.rows(k).len();
        }
        let search = |feats: &[usize]| -> Vec<Split> {
            let mut best = vec![Split::NONE; expand.len()];
            let mut acc = vec![(Stats::default(), 0f32); expand.len()];
            for &f in feats {
                acc.iter_mut().for_each(|a| *a = (Stats::default(), 0.0));
                for &(v, r) in sorted[f].iter().rev() {
                    let k = slot[r as usize];
                    if k == u32::MAX {
                        continue;
                    }
                    let k = k as usize;
                    let (right, last) = &mut acc[k];
                    if right.h != 0.0 && v != *last && right.h >= self.reg.min_child_weight {
                        let node = &level.nodes[expand[k]];
                        let left = node.stats.sub(*right);
                        if left.h >= self.reg.min_child_weight {
                            let gain = self.reg.score(left) + self.reg.score(*right);
                            best[k].update(Split {
                                loss_chg: gain - node.score,
                                feature: f as u32,
                                threshold: midpoint(v, *last),
                                bin: 0,
                                left: Stats::default(),
                            });
                        }
                    }
                    right.add(level.grad[r as usize]);
                    *last = v;
                }
            }
            best
        };
        let chunks = self.chunks(level.features, active * level.features.len());
        merge_bests(expand.len(), run_jobs(chunks, search))
    }

    /// Histogram search for every node of the level. `parent_hists[i]` is the histogram of
    /// the parent of the pair `expand[2i], expand[2i+1]` (none at the root). Returns the bests
    /// and the histograms of the level's nodes, for the next level to subtract from.
    pub(super) fn find_hist(
        &self,
        bins: &Bins,
        level: &Level,
        parent_hists: Vec<Vec<Stats>>,
    ) -> (Vec<Split>, Vec<Vec<Stats>>) {
        let (mut hists, sources, work) = plan_hists(bins.total_bins(), level, parent_hists);
        let chunks = self.chunks(level.features, work * level.features.len());
        // Each chunk owns the bins of a contiguous feature range in every histogram.
        let mut starts: Vec<usize> = chunks.iter().map(|c| bins.offsets[c[0]]).collect();
        starts[0] = 0;
        let mut parts: Vec<Vec<&mut [Stats]>> = (0..chunks.len()).map(|_| Vec::new()).collect();
        for h in hists.iter_mut() {
            let mut rest: &mut [Stats] = h;
            for (i, part) in parts.iter_mut().enumerate() {
                let len = starts.get(i + 1).map_or(rest.len(), |&end| end - starts[i]);
                let (mine, tail) = std::mem::take(&mut rest).split_at_mut(len);
                part.push(mine);
                rest = tail;
            }
        }
        let search = HistSearch {
            reg: self.reg,
            bins,
            level,
            sources: &sources,
        };
        let jobs: Vec<_> = chunks
            .iter()
            .zip(&starts)
            .zip(parts)
            .map(|((feats, &base), hs)| (*feats, base, hs))
            .collect();
        let found = run_jobs(jobs, |(feats, base, hs)| search.run(feats, base, hs));
        (merge_bests(level.expand.len(), found), hists)
    }
}

/// The histogram buffer and [`Source`] of every node of the level, and the rows to add up.
fn plan_hists(
    total: usize,
    level: &Level,
    parent_hists: Vec<Vec<Stats>>,
) -> (Vec<Vec<Stats>>, Vec<Source>, usize) {
    let n = level.expand.len();
    let (mut hists, mut sources, mut work) = (Vec::with_capacity(n), Vec::with_capacity(n), 0);
    if parent_hists.is_empty() {
        for k in 0..n {
            hists.push(vec![Stats::default(); total]);
            sources.push(Source::Rows);
            work += level.rows(k).len();
        }
    }
    for (i, parent) in parent_hists.into_iter().enumerate() {
        let (l, r) = (2 * i, 2 * i + 1);
        let small_left = level.rows(l).len() <= level.rows(r).len();
        work += level.rows(l).len().min(level.rows(r).len());
        let fresh = vec![Stats::default(); total];
        if small_left {
            hists.extend([fresh, parent]);
            sources.extend([Source::Rows, Source::ParentMinus(l)]);
        } else {
            hists.extend([parent, fresh]);
            sources.extend([Source::ParentMinus(r), Source::Rows]);
        }
    }
    (hists, sources, work)
}

/// What one feature chunk of [`Grower::find_hist`] reads.
struct HistSearch<'a> {
    reg: Reg,
    bins: &'a Bins,
    level: &'a Level<'a>,
    sources: &'a [Source],
}

impl HistSearch<'_> {
    /// For the features `feats`, whose bins start at `base` in a histogram: builds the
    /// histograms of the nodes summed from rows, subtracts them from their siblings', and
    /// returns each node's best split among these features. `hs[k]` is node k's part.
    fn run(&self, feats: &[usize], base: usize, mut hs: Vec<&mut [Stats]>) -> Vec<Split> {
        let bins = self.bins;
        let offs: Vec<usize> = feats.iter().map(|&f| bins.offsets[f] - base).collect();
        // Rows are added into a gradient sum and a row count per bin (12 bytes a bin, not
        // `Stats`' 16: 14 features of 256 bins are 42 KB instead of 57, mostly in L1), then
        // stored as `Stats` with h = the count, which is what adding 1.0 per row gives
        // exactly; each bin's gradients are still added in ascending row order. Each feature
        // adds into a block of `BLOCK` bins indexed by the bin itself, a `u8`, so the adds
        // need no bounds check; when the features are contiguous (every feature, one
        // thread), a row's bins are read as one slice too.
        let (mut gs, mut ns) = (
            vec![[0f64; BLOCK]; feats.len()],
            vec![[0u32; BLOCK]; feats.len()],
        );
        let contiguous = feats.windows(2).all(|w| w[1] == w[0] + 1);
        let (first, d) = (feats.first().copied().unwrap_or(0), bins.d);
        for (k, h) in hs.iter_mut().enumerate() {
            if self.sources[k] != Source::Rows {
                continue;
            }
            gs.iter_mut().for_each(|g| g.fill(0.0));
            ns.iter_mut().for_each(|n| n.fill(0));
            for &r in self.level.rows(k) {
                let g = f64::from(self.level.grad[r as usize]);
                let row = &bins.bins[r as usize * d..(r as usize + 1) * d];
                let blocks = gs.iter_mut().zip(ns.iter_mut());
                if contiguous {
                    for (&b, (gb, nb)) in row[first..first + feats.len()].iter().zip(blocks) {
                        gb[usize::from(b)] += g;
                        nb[usize::from(b)] += 1;
                    }
                } else {
                    for (&f, (gb, nb)) in feats.iter().zip(blocks) {
                        gb[usize::from(row[f])] += g;
                        nb[usize::from(row[f])] += 1;
                    }
                }
            }
            for (j, &f) in feats.iter().enumerate() {
                let (lo, len) = (offs[j], bins.offsets[f + 1] - bins.offsets[f]);
                let sums = gs[j][..len].iter().zip(&ns[j][..len]);
                for (s, (&g, &n)) in h[lo..lo + len].iter_mut().zip(sums) {
                    *s = Stats { g, h: f64::from(n) };
                }
            }
        }
        for k in 0..hs.len() {
            let Source::ParentMinus(sibling) = self.sources[k] else {
                continue;
            };
            let (a, b) = if k < sibling {
                let (x, y) = hs.split_at_mut(sibling);
                (&mut x[k], &y[0])
            } else {
                let (x, y) = hs.split_at_mut(k);
                (&mut y[0], &x[sibling])
            };
            for &f in feats {
                let (lo, hi) = (bins.offsets[f] - base, bins.offsets[f + 1] - base);
                for (p, c) in a[lo..hi].iter_mut().zip(&b[lo..hi]) {
                    *p = p.sub(*c);
                }
            }
        }
        let mut best = vec![Split::NONE; hs.len()];
        for (k, h) in hs.iter().enumerate() {
            let node = &self.level.nodes[self.level.expand[k]];
            for &f in feats {
                let (lo, hi) = (bins.offsets[f] - base, bins.offsets[f + 1] - base);
                self.scan(node, f, &h[lo..hi], &mut best[k]);
            }
        }
        best
    }

    /// Upward, like XGBoost hist's forward enumeration: the split after the highest non-empty
    /// bin of the left side, at that bin's upper cut.
    fn scan(&self, node: &BuildNode, f: usize, h: &[Stats], best: &mut Split) {
        let reg = &self.reg;
        let mut left = Stats::default();
        for (b, s) in h[..h.len() - 1].iter().enumerate() {
            if s.h == 0.0 {
                continue;
            }
            left.g += s.g;
            left.h += s.h;
            if left.h >= reg.min_child_weight {
                let right = node.stats.sub(left);
                if right.h >= reg.min_child_weight {
                    let gain = reg.score(left) + reg.score(right);
                    best.update(Split {
                        loss_chg: gain - node.score,
                        feature: f as u32,
                        threshold: self.bins.cuts[f][b],
                        bin: b as u32 + 1,
                        left,
                    });
                }
            }
        }
    }
}

/// Runs `work` on every job, the first on the calling thread and the others on scoped
/// threads, and returns the answers in job order.
fn run_jobs<J: Send, F>(jobs: Vec<J>, work: F) -> Vec<Vec<Split>>
where
    F: Fn(J) -> Vec<Split> + Sync,
{
    let mut jobs = jobs.into_iter();
    let Some(first) = jobs.next() else {
        return Vec::new();
    };
    if jobs.len() == 0 {
        return vec![work(first)];
    }
    std::thread::scope(|s| {
        let work = &work;
        let handles: Vec<_> = jobs.map(|j| s.spawn(move || work(j))).collect();
        let mut parts = vec![work(first)];
        for h in handles {
            match h.join() {
                Ok(p) => parts.push(p),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        parts
    })
}

/// The best split of each of `n_nodes` nodes over the chunks' answers, merged in chunk
/// (feature) order with [`Split::update`].
fn merge_bests(n_nodes: usize, parts: Vec<Vec<Split>>) -> Vec<Split> {
    let mut best = vec![Split::NONE; n_nodes];
    for part in parts {
        for (b, c) in best.iter_mut().zip(part) {
            b.update(c);
        }
    }
    best
}
