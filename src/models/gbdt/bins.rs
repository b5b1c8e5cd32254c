//! Per-feature data for the split finders: sorted columns (`Exact`) and quantile cuts with each
//! row's bin (`Hist`).

/// Per-feature data for the split finder, built once per fit.
pub(super) enum Finder {
    /// Per feature, `(value, row)` sorted by value.
    Exact(Vec<Vec<(f32, u32)>>),
    Hist(Bins),
}

/// Quantile bins: `cuts[f]` ascending; a value's bin is the number of cuts `<= value`, so bins
/// `< b` are exactly the values `< cuts[f][b-1]`.
pub(super) struct Bins {
    pub(super) cuts: Vec<Vec<f32>>,
    /// Bin indices, row-major (`bins[row·d + f]`): building a histogram reads each row's
    /// gradient once and its bins from one cache line.
    pub(super) bins: Vec<u8>,
    pub(super) d: usize,
    /// Offset of feature f's bins in a node histogram.
    pub(super) offsets: Vec<usize>,
}

/// XGBoost's split value between adjacent values `a < b`: the f32 midpoint, or `b` if that
/// rounds to `a`.
pub(super) fn midpoint(a: f32, b: f32) -> f32 {
    let m = (a + b) * 0.5;
    if m == a {
        b
    } else {
        m
    }
}

impl Bins {
    pub(super) fn new(xf: &[f32], n: usize, d: usize, max_bin: usize) -> Bins {
        let mut cuts = Vec::with_capacity(d);
        let mut bins = vec![0u8; n * d];
        let mut offsets = Vec::with_capacity(d + 1);
        offsets.push(0);
        for f in 0..d {
            let col = &xf[f * n..(f + 1) * n];
            let mut sorted = col.to_vec();
            sorted.sort_unstable_by(f32::total_cmp);
            let mut distinct = sorted.clone();
            distinct.dedup();
            let c: Vec<f32> = if distinct.len() <= max_bin {
                distinct.windows(2).map(|w| midpoint(w[0], w[1])).collect()
            } else {
                // Cut below the value at each rank k·n/max_bin (weighted quantiles: every row
                // counts once), at the midpoint from the next smaller distinct value.
                let mut c: Vec<f32> = Vec::with_capacity(max_bin - 1);
                for k in 1..max_bin {
                    let v = sorted[k * n / max_bin];
                    let p = distinct.partition_point(|&u| u < v);
                    if p == 0 {
                        continue;
                    }
                    let cut = midpoint(distinct[p - 1], v);
                    if c.last().is_none_or(|&last| cut > last) {
                        c.push(cut);
                    }
                }
                c
            };
            for (i, &v) in col.iter().enumerate() {
                bins[i * d + f] = c.partition_point(|&cut| cut <= v) as u8;
            }
            offsets.push(offsets[f] + c.len() + 1);
            cuts.push(c);
        }
        Bins {
            cuts,
            bins,
            d,
            offsets,
        }
    }

    pub(super) fn total_bins(&self) -> usize {
        self.offsets[self.offsets.len() - 1]
    }
}
