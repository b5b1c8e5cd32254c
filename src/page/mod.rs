//! The pages the commands write, as a library below them: [`svg`] draws axes, ticks, lines,
//! bands, bars and legends as inline SVG; [`html`] wraps them in one self-contained XHTML page;
//! [`describe`] is the page of a data description, [`run`] the page of a stream's (or a
//! backtest's) forecasts, scores and health, [`backtest`] the backtest's own tables around it, [`overview`] the
//! page of several symbols' runs linking to each one's page.
//! Pure code (strings in, strings out) except [`write`], which every command uses to write its
//! page.

use std::path::Path;

use crate::error::Error;
use crate::fsutil;

pub(crate) mod backtest;
pub(crate) mod describe;
pub(crate) mod html;
pub(crate) mod overview;
pub mod run;
pub(crate) mod svg;

/// A number with 6 significant digits, without exponent for everyday magnitudes.
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_string();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if (1e-4..1e12).contains(&a) {
        let decimals = (5 - a.log10().floor() as i32).clamp(0, 10) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.4e}")
    }
}

/// Writes a page atomically, creating its directory.
pub(crate) fn write(path: &Path, html: &str) -> Result<(), Error> {
    let dir = fsutil::parent_dir(path);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    fsutil::write_atomic(path, html.as_bytes())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}
