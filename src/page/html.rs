//! The page skeleton: one self-contained XHTML file (inline CSS and SVG, no script, no web
//! fonts, nothing fetched), laid out in one column on a phone and two on a wide screen. Pure:
//! builds a string; the caller writes it with `fsutil::write_atomic`. Every text from data goes
//! through [`escape`].

use std::fmt::Write as _;

pub(crate) use super::svg::escape;

const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;\
margin:0 auto;padding:12px 16px 32px;max-width:1320px;color:#222;background:#fff;line-height:1.35}\
h1{font-size:1.45em;margin:.4em 0 .2em}h2{font-size:1.15em;margin:1.2em 0 .3em;\
border-bottom:1px solid #ddd;padding-bottom:.15em}h3{font-size:1em;margin:.3em 0}\
p.sub{color:#555;margin:.1em 0 .8em}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,560px),1fr));gap:14px 22px}\
figure{margin:0;min-width:0}figcaption{color:#555;font-size:.88em;margin-top:.2em}\
.fig{overflow-x:auto}svg{width:100%;height:auto;display:block}\
.tbl{overflow-x:auto}table{border-collapse:collapse;font-size:.9em;margin:.3em 0 .8em}\
th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}\
th:first-child,td:first-child{text-align:left}th{background:#f6f6f6}\
.ok{color:#1a7f37;font-weight:bold}.bad{color:#c62828;font-weight:bold}\
@media (max-width:640px){body{padding:8px}.fig svg{min-width:460px}table{font-size:.8em}}";

/// A page under construction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Page {
    title: String,
    subtitle: String,
    body: String,
    in_grid: bool,
}

impl Page {
    pub(crate) fn new(title: &str, subtitle: &str) -> Page {
        Page {
            title: title.to_string(),
            subtitle: subtitle.to_string(),
            ..Page::default()
        }
    }

    fn close_grid(&mut self) {
        if self.in_grid {
            self.body.push_str("</div>");
            self.in_grid = false;
        }
    }

    fn open_grid(&mut self) {
        if !self.in_grid {
            self.body.push_str("<div class=\"grid\">");
            self.in_grid = true;
        }
    }

    /// A section heading.
    pub(crate) fn heading(&mut self, text: &str) -> &mut Page {
        self.close_grid();
        let _ = write!(self.body, "<h2>{}</h2>", escape(text));
        self
    }

    /// Opens a table: its grid cell, the `<table>` with `id`, the `header` row, and `<tbody>`.
    fn table_head(&mut self, id: &str, header: &[&str]) {
        self.open_grid();
        let _ = write!(
            self.body,
            "<div class=\"tbl\"><table id=\"{}\"><thead><tr>",
            escape(id)
        );
        for h in header {
            let _ = write!(self.body, "<th>{}</th>", escape(h));
        }
        self.body.push_str("</tr></thead><tbody>");
    }

    /// A table; the first row of `rows` is not special: `header` is.
    pub(crate) fn table(&mut self, id: &str, header: &[&str], rows: &[Vec<String>]) -> &mut Page {
        self.table_head(id, header);
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                let _ = write!(self.body, "<td>{}</td>", escape(cell));
            }
            self.body.push_str("</tr>");
        }
        self.body.push_str("</tbody></table></div>");
        self
    }

    /// A table whose rows each start with a cell linking to `href` (`None`: plain text).
    pub(crate) fn linked_table(
        &mut self,
        id: &str,
        header: &[&str],
        rows: &[(Option<String>, Vec<String>)],
    ) -> &mut Page {
        self.table_head(id, header);
        for (href, cells) in rows {
            self.body.push_str("<tr>");
            for (i, cell) in cells.iter().enumerate() {
                match href.as_deref().filter(|_| i == 0) {
                    Some(h) => {
                        let _ = write!(
                            self.body,
                            "<td><a href=\"{}\">{}</a></td>",
                            escape(h),
                            escape(cell)
                        );
                    }
                    None => {
                        let _ = write!(self.body, "<td>{}</td>", escape(cell));
                    }
                }
            }
            self.body.push_str("</tr>");
        }
        self.body.push_str("</tbody></table></div>");
        self
    }

    /// A chart with a title and a caption; `svg` must come from [`super::svg::Chart::render`].
    pub(crate) fn figure(&mut self, title: &str, svg: &str, caption: &str) -> &mut Page {
        self.open_grid();
        let _ = write!(
            self.body,
            "<figure><h3>{}</h3><div class=\"fig\">{svg}</div>",
            escape(title)
        );
        if !caption.is_empty() {
            let _ = write!(self.body, "<figcaption>{}</figcaption>", escape(caption));
        }
        self.body.push_str("</figure>");
        self
    }

    /// The finished XHTML document.
    pub(crate) fn finish(mut self) -> String {
        self.close_grid();
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!DOCTYPE html>\n\
             <html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head>\
             <meta charset=\"utf-8\"/>\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\
             <title>{}</title><style>{CSS}</style></head><body><h1>{}</h1>\
             <p class=\"sub\">{}</p>{}</body></html>\n",
            escape(&self.title),
            escape(&self.title),
            escape(&self.subtitle),
            self.body
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_escapes_and_closes_everything() {
        let mut p = Page::new("A<B", "from x&y.csv");
        p.heading("h")
            .table("t", &["a", "b"], &[vec!["<1>".into(), "2".into()]])
            .figure(
                "f",
                "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>",
                "c\"",
            );
        let html = p.finish();
        assert!(html.contains("<title>A&lt;B</title>"));
        assert!(html.contains("<td>&lt;1&gt;</td>"));
        assert!(html.contains("<figcaption>c&quot;</figcaption>"));
        assert_eq!(html.matches("<div").count(), html.matches("</div>").count());
        assert!(!CSS.contains('<') && !CSS.contains('&'));
    }
}
