//! Charts and pages of our own: [`svg`] draws axes, ticks, lines, bands, bars and legends as
//! inline SVG; [`html`] wraps them in one self-contained XHTML page. Pure code (strings in,
//! strings out); the `describe`, `report` and `backtest --html` commands write the pages.

pub mod html;
pub mod svg;
