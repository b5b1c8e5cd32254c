//! Ordinary least squares with intercept, like scikit-learn's `LinearRegression()`. Pure code: no
//! I/O, no clock, no randomness.
//!
//! Algorithm: centre every column of `x` and `y` on its mean (intercept = ȳ − coef·x̄), then solve
//! the centred least-squares problem without ever forming XᵀX. The centred n×(d+1) matrix
//! `[Xc | yc]` is reduced block by block (4,096 rows at a time) with Householder QR, stacking the
//! running R factor on top of the next block (a sequential TSQR): the final (d+1)×(d+1) factor
//! holds R (d×d) and z = Qᵀyc, and `min ‖Xc·b − yc‖` equals `min ‖R·b − z‖`. That small system
//! is solved through an SVD of R with singular values below `max(n, d)·ε·σmax` dropped, which
//! gives the minimum-norm solution on rank-deficient data exactly as `numpy/scipy lstsq` does.
//!
//! Cost: fit O(n·d²) time and O(4096·d) extra memory (nothing n×n, no copy of `x`); predict
//! O(d) per row.
//!
//! Defaults (scikit-learn): `fit_intercept = true`. With `fit_intercept = false` nothing is
//! centred and the intercept is 0.
//!
//! Reference: G. H. Golub and C. F. Van Loan, *Matrix Computations*, 4th ed., §5.2 (Householder
//! QR), §5.5 (rank-deficient least squares); J. Demmel et al., "Communication-optimal parallel
//! and sequential QR and LU factorizations" (TSQR), SIAM J. Sci. Comput. 34(1), 2012.

use nalgebra::{DMatrix, DVector, QR, SVD};
use serde::{Deserialize, Serialize};

use super::{check_xy, FitError, Regressor};

/// Hyperparameters (scikit-learn `LinearRegression()` defaults: fit_intercept = true).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearParams {
    pub(crate) fit_intercept: bool,
}

impl Default for LinearParams {
    fn default() -> Self {
        LinearParams {
            fit_intercept: true,
        }
    }
}

/// A fitted linear model: `y = coef · x + intercept`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Linear {
    pub coef: Vec<f64>,
    pub intercept: f64,
}

/// Rows per TSQR block: big enough to amortise the QR call, small enough to stay in cache.
const BLOCK_ROWS: usize = 4096;

impl LinearParams {
    pub fn fit(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> Result<Linear, FitError> {
        check_xy("linear", x, y, 1)?;
        let (n_rows, n_cols) = x.shape();
        let (x_mean, y_mean) = if self.fit_intercept {
            (
                (0..n_cols)
                    .map(|j| blocked_mean(x.column(j).as_slice()))
                    .collect(),
                blocked_mean(y.as_slice()),
            )
        } else {
            (vec![0.0; n_cols], 0.0)
        };

        // Sequential TSQR over row blocks of the centred [x | y].
        let width = n_cols + 1;
        let mut r_acc: Option<DMatrix<f64>> = None;
        let mut start = 0;
        while start < n_rows {
            let end = (start + BLOCK_ROWS).min(n_rows);
            let carried = r_acc.as_ref().map_or(0, |r| r.nrows());
            let mut block = DMatrix::<f64>::zeros(carried + end - start, width);
            if let Some(r) = &r_acc {
                block.view_mut((0, 0), (carried, width)).copy_from(r);
            }
            for j in 0..n_cols {
                let column = x.column(j);
                let column = column.as_slice();
                for i in start..end {
                    block[(carried + i - start, j)] = column[i] - x_mean[j];
                }
            }
            for i in start..end {
                block[(carried + i - start, n_cols)] = y[i] - y_mean;
            }
            r_acc = Some(QR::new(block).r());
            start = end;
        }
        let r_full = r_acc.unwrap_or_else(|| DMatrix::zeros(0, width));

        // Least squares on the small triangular system R·b = z (minimum norm if rank-deficient).
        let k = r_full.nrows().min(n_cols);
        let r = r_full.view((0, 0), (k, n_cols)).into_owned();
        let z = r_full.view((0, n_cols), (k, 1)).into_owned();
        let svd = SVD::new(r, true, true);
        let sigma_max = svd.singular_values.iter().cloned().fold(0.0_f64, f64::max);
        let rcond = n_rows.max(n_cols) as f64 * f64::EPSILON * sigma_max;
        let coef: Vec<f64> = match svd.solve(&z, rcond) {
            Ok(b) => b.iter().copied().collect(),
            // Unreachable: U and Vᵀ were requested above. Zero coefficients are the safe answer.
            Err(_) => vec![0.0; n_cols],
        };
        let intercept = if self.fit_intercept {
            y_mean - dot(&x_mean, &coef)
        } else {
            0.0
        };
        Ok(Linear { coef, intercept })
    }
}

impl Linear {
    /// Checks a deserialized model: one coefficient per feature.
    pub(crate) fn check(&self, n_features: usize) -> Result<(), String> {
        if self.coef.len() != n_features {
            return Err(format!(
                "{} coefficients, expected {n_features}",
                self.coef.len()
            ));
        }
        Ok(())
    }
}

impl Regressor for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    /// `coef · x + intercept`, in scikit-learn's order (`X @ coef_ + intercept_`).
    fn predict_row(&self, x: &[f64]) -> f64 {
        dot(&self.coef, x) + self.intercept
    }

    /// [`Linear::predict_row`] of every row, bit for bit, but column by column: `x` is stored
    /// by column, so each coefficient is added to all the row sums in one contiguous pass (the
    /// same additions in the same order per row as [`dot`], which vectorize across rows).
    fn predict(&self, x: &DMatrix<f64>) -> DVector<f64> {
        // The start of `dot`'s sum (what `Sum` for f64 begins with), so even a sum of -0.0s
        // comes out as in `predict_row`.
        let start: f64 = std::iter::empty::<f64>().sum();
        let n = x.nrows();
        let mut sums = vec![start; n];
        // A DMatrix is one column-major slice: column j is `[j·n, (j+1)·n)`.
        for (c, column) in self.coef.iter().zip(x.as_slice().chunks_exact(n.max(1))) {
            for (sum, v) in sums.iter_mut().zip(column) {
                *sum += c * v;
            }
        }
        for sum in &mut sums {
            *sum += self.intercept;
        }
        DVector::from_vec(sums)
    }
}

/// Plain left-to-right dot product.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| p * q).sum()
}

/// Mean with per-block partial sums, so rounding error grows with the number of blocks rather
/// than the number of rows.
fn blocked_mean(values: &[f64]) -> f64 {
    let total: f64 = values
        .chunks(BLOCK_ROWS)
        .map(|chunk| chunk.iter().sum::<f64>())
        .sum();
    total / values.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::testutil::assert_postcard_round_trip;

    fn random_x(rng: &mut Rng, n: usize, d: usize) -> DMatrix<f64> {
        DMatrix::from_fn(n, d, |_, _| rng.next_f64() * 2.0 - 1.0)
    }

    fn assert_rel(a: f64, b: f64, tol: f64) {
        let scale = a.abs().max(b.abs()).max(1.0);
        assert!((a - b).abs() <= tol * scale, "{a} vs {b}");
    }

    /// The column-by-column batch predict is `predict_row` on every row, bit for bit, signed
    /// zeros included.
    #[test]
    fn batch_predict_equals_row_by_row() {
        let mut rng = Rng::new(8);
        let x = random_x(&mut rng, 300, 5);
        let y = DVector::from_fn(300, |i, _| x[(i, 0)] - 0.3 * x[(i, 4)] + rng.next_f64());
        let model = LinearParams::default().fit(&x, &y).expect("fit");
        let mut q = random_x(&mut rng, 257, 5);
        q.row_mut(0).fill(-0.0);
        let zero = Linear {
            coef: vec![1.0, -1.0, 0.5, 0.0, 2.0],
            intercept: -0.0,
        };
        for m in [&model, &zero] {
            let batch = m.predict(&q);
            for i in 0..q.nrows() {
                let row: Vec<f64> = q.row(i).iter().copied().collect();
                assert_eq!(batch[i].to_bits(), m.predict_row(&row).to_bits(), "row {i}");
            }
        }
    }

    #[test]
    fn recovers_exact_plane() {
        let mut rng = Rng::new(3);
        let x = random_x(&mut rng, 200, 2);
        let y = DVector::from_fn(200, |i, _| 2.0 * x[(i, 0)] - 3.0 * x[(i, 1)] + 5.0);
        let model = LinearParams::default().fit(&x, &y).expect("fit");
        assert_rel(model.coef[0], 2.0, 1e-12);
        assert_rel(model.coef[1], -3.0, 1e-12);
        assert_rel(model.intercept, 5.0, 1e-12);
        assert_rel(model.predict_row(&[1.0, 1.0]), 4.0, 1e-12);
    }

    #[test]
    fn many_blocks_match_normal_equations_on_noisy_data() {
        // 10,000 rows cross three TSQR blocks; compare with a careful small normal-equation
        // solve (well conditioned, so both agree far below the parity tolerance).
        let mut rng = Rng::new(11);
        let (n, d) = (10_000, 4);
        let x = random_x(&mut rng, n, d);
        let truth = [0.5, -1.25, 2.0, 0.0];
        let y = DVector::from_fn(n, |i, _| {
            1.5 + (0..d).map(|j| truth[j] * x[(i, j)]).sum::<f64>() + 0.1 * (rng.next_f64() - 0.5)
        });
        let model = LinearParams::default().fit(&x, &y).expect("fit");
        let mut design = DMatrix::from_element(n, d + 1, 1.0);
        design.view_mut((0, 1), (n, d)).copy_from(&x);
        let gram = design.transpose() * &design;
        let rhs = design.transpose() * &y;
        let beta = gram.cholesky().expect("spd").solve(&rhs);
        assert_rel(model.intercept, beta[0], 1e-10);
        for j in 0..d {
            assert_rel(model.coef[j], beta[j + 1], 1e-10);
        }
    }

    #[test]
    fn duplicate_column_gives_minimum_norm_solution() {
        let mut rng = Rng::new(5);
        let base = random_x(&mut rng, 50, 1);
        let x = DMatrix::from_fn(50, 2, |i, _| base[(i, 0)]);
        let y = DVector::from_fn(50, |i, _| 2.0 * base[(i, 0)] + 1.0);
        let model = LinearParams::default().fit(&x, &y).expect("fit");
        assert_rel(model.coef[0], 1.0, 1e-12);
        assert_rel(model.coef[1], 1.0, 1e-12);
        assert_rel(model.intercept, 1.0, 1e-12);
    }

    #[test]
    fn fewer_rows_than_columns_is_minimum_norm() {
        // One centred equation in two unknowns: the minimum-norm b is along the centred row.
        let x = DMatrix::from_row_slice(2, 2, &[0.0, 0.0, 1.0, 2.0]);
        let y = DVector::from_vec(vec![0.0, 5.0]);
        let model = LinearParams::default().fit(&x, &y).expect("fit");
        assert_rel(model.coef[0], 1.0, 1e-12);
        assert_rel(model.coef[1], 2.0, 1e-12);
        assert_rel(model.intercept, 0.0, 1e-12);
        assert_rel(model.predict_row(&[1.0, 2.0]), 5.0, 1e-12);
    }

    #[test]
    fn without_intercept_fits_through_origin() {
        let x = DMatrix::from_row_slice(3, 1, &[1.0, 2.0, 3.0]);
        let y = DVector::from_vec(vec![2.0, 4.0, 7.0]);
        let params = LinearParams {
            fit_intercept: false,
        };
        let model = params.fit(&x, &y).expect("fit");
        // b = Σxy / Σx² = (2 + 8 + 21) / 14.
        assert_rel(model.coef[0], 31.0 / 14.0, 1e-14);
        assert_eq!(model.intercept, 0.0);
    }

    #[test]
    fn bad_input_is_rejected() {
        let x = DMatrix::from_row_slice(2, 1, &[1.0, 2.0]);
        let y = DVector::from_vec(vec![1.0]);
        let err = LinearParams::default().fit(&x, &y).expect_err("shape");
        assert!(matches!(
            err,
            FitError::Shape {
                model: "linear",
                ..
            }
        ));
        let y = DVector::from_vec(vec![1.0, f64::NAN]);
        let err = LinearParams::default().fit(&x, &y).expect_err("nan");
        assert_eq!(err, FitError::NonFinite { model: "linear" });
    }

    #[test]
    fn postcard_round_trip_predicts_identically() {
        let mut rng = Rng::new(9);
        let x = random_x(&mut rng, 300, 3);
        let y = DVector::from_fn(300, |i, _| x[(i, 0)] - x[(i, 2)] + rng.next_f64());
        let model = LinearParams::default().fit(&x, &y).expect("fit");
        assert_postcard_round_trip(&model, &x);
    }
}
