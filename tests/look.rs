//! `describe`, `report` and `status` as processes: the pages' content checked against the data
//! they were drawn from, every page well-formed XML (a small checker below: no XML crate), and
//! `status`'s exit code for a running, a stopped and a stale stream. Also the shipped BTCUSDT
//! data and the 1-hour series end to end through `demo` (train, replay server, stream).

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use common::{klinecast_command, TempDir};
use klinecast::kline::CSV_HEADER;
use klinecast::live::predictions::{PredictionRow, HEADER as PRED_HEADER};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn run(args: &[&str]) -> Output {
    klinecast_command()
        .args(args)
        .output()
        .expect("run klinecast")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs klinecast and asserts that it succeeded; its stdout.
fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}\n{}\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// `report --html` on a run's directories; its stdout.
fn report_page(data: &Path, log: &Path, page: &Path) -> String {
    run_ok(&[
        "report",
        "--data-dir",
        arg(data),
        "--log-dir",
        arg(log),
        "--html",
        arg(page),
    ])
}

/// Reads a page and checks what every page keeps: well-formed XML, nothing fetched or run, and
/// laid out for 1280 px and 400 px ([`fits_desktop_and_phone`]). Returns the text and the
/// element names.
fn read_page(path: &Path) -> (String, Vec<String>) {
    let page = fs::read_to_string(path).expect("page");
    let names =
        well_formed(&page).unwrap_or_else(|e| panic!("{}: not well-formed: {e}", path.display()));
    for bad in ["<script", "src=\"", "href=\"", "@import", "@font-face"] {
        assert!(!page.contains(bad), "{}: {bad}", path.display());
    }
    // url() only for the charts' own clip paths.
    assert_eq!(page.matches("url(").count(), page.matches("url(#").count());
    fits_desktop_and_phone(&page);
    (page, names)
}

/// The number in `text` right after `key`, up to `px` or a non-digit.
fn number_after(text: &str, key: &str) -> f64 {
    let at = text.find(key).unwrap_or_else(|| panic!("{key} not found")) + key.len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits.parse().expect("a number")
}

/// The layout at 1280 px and at 400 px (a phone), worked out from the page's own CSS and SVG:
/// the viewport follows the device; the grid's column minimum lets two columns sit side by side
/// at 1280 px and one on a phone; every chart is a viewBox-scaled SVG (no fixed size) in a
/// sideways-scrolling box and every table in one; chart text stays at least 11 px in a desktop
/// column and 9 px at the phone's minimum chart width.
fn fits_desktop_and_phone(page: &str) {
    assert!(
        page.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>")
    );
    let css = &page[page.find("<style>").expect("style")..page.find("</style>").expect("/style")];
    let column = number_after(css, "minmax(min(100%,");
    let phone_chart = number_after(css, ".fig svg{min-width:");
    let (desktop_body, phone_body) = (1280.0 - 2.0 * 16.0, 400.0 - 2.0 * 8.0);
    assert!(
        2.0 * column + 22.0 <= desktop_body,
        "two columns at 1280 px"
    );
    assert!(column > phone_body && phone_chart > phone_body / 2.0);
    assert_eq!(
        page.matches("<svg").count(),
        page.matches("<div class=\"fig\"><svg").count(),
        "every chart scrolls in its box"
    );
    assert_eq!(
        page.matches("<table").count(),
        page.matches("<div class=\"tbl\"><table").count(),
        "every table scrolls in its box"
    );
    for svg in page.split("<svg").skip(1) {
        let tag = &svg[..svg.find('>').expect("tag end")];
        assert!(
            !tag.contains(" width=") && !tag.contains(" height="),
            "{tag}"
        );
        let view_width = number_after(tag, "viewBox=\"0 0 ");
        let font = number_after(tag, "font-size=\"");
        assert!(font * column / view_width >= 11.0, "{tag}");
        assert!(font * phone_chart / view_width >= 9.0, "{tag}");
    }
}

/// An attribute of the chart mark labelled `label` (`data-n`, `data-min`, `data-max`).
fn mark(chart: &str, label: &str, attr: &str) -> String {
    attr_of(chart, &format!("data-label=\"{label}\""), attr)
}

/// The number of points of a mark.
fn mark_n(chart: &str, label: &str) -> usize {
    mark(chart, label, "data-n").parse().expect("data-n")
}

/// The smallest and largest value of a mark.
fn mark_extremes(chart: &str, label: &str) -> (f64, f64) {
    let v = |a: &str| mark(chart, label, a).parse::<f64>().expect("a number");
    (v("data-min"), v("data-max"))
}

/// The smallest and largest of `values`.
fn extremes(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    values
        .into_iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

/// The plot frame of a chart, in viewBox units: left, top, width, height (the `<rect>` drawn
/// around the plot).
fn frame(chart: &str) -> (f64, f64, f64, f64) {
    let at = chart
        .find("fill=\"none\" stroke=\"#999\"")
        .expect("the plot frame");
    let rect = &chart[chart[..at].rfind("<rect").expect("frame rect")..at];
    let num = |key: &str| number_after(rect, &format!(" {key}=\""));
    (num("x"), num("y"), num("width"), num("height"))
}

/// The points of the polylines a line mark drew, in viewBox units, in order.
fn drawn_points(chart: &str, label: &str) -> Vec<(f64, f64)> {
    let at = chart
        .find(&format!("data-label=\"{label}\""))
        .unwrap_or_else(|| panic!("no mark {label}"));
    let group = &chart[at..at + chart[at..].find("</g>").expect("end of the mark")];
    group
        .split("points=\"")
        .skip(1)
        .flat_map(|p| p[..p.find('"').expect("end of points")].split(' '))
        .map(|xy| {
            let (x, y) = xy.split_once(',').expect("x,y");
            (x.parse().expect("x"), y.parse().expect("y"))
        })
        .collect()
}

/// Where a linear chart must plot `(x, y)`, computed from the plot frame and the axis ranges
/// the data call for (not from the chart's own attributes).
fn plotted_at(
    frame: (f64, f64, f64, f64),
    (x_min, x_max): (f64, f64),
    (y_min, y_max): (f64, f64),
    (x, y): (f64, f64),
) -> (f64, f64) {
    let (left, top, width, height) = frame;
    (
        left + (x - x_min) / (x_max - x_min) * width,
        top + height - (y - y_min) / (y_max - y_min) * height,
    )
}

/// Asserts that `got` is `want` as drawn: coordinates are written with one decimal.
fn assert_drawn_at(got: (f64, f64), want: (f64, f64)) {
    assert!(
        (got.0 - want.0).abs() <= 0.051 && (got.1 - want.1).abs() <= 0.051,
        "drawn at {got:?}, the data put it at {want:?}"
    );
}

/// Checks that `text` is well-formed XML: one root element, every tag closed in order,
/// attributes quoted and unique, only the five predefined or numeric entities, no raw `<` or
/// `&` in text. Returns the element names in document order.
fn well_formed(text: &str) -> Result<Vec<String>, String> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut stack: Vec<String> = Vec::new();
    let mut names = Vec::new();
    let mut roots = 0;
    let check_text = |t: &str, at: usize| -> Result<(), String> {
        let mut rest = t;
        while let Some(p) = rest.find('&') {
            let after = &rest[p + 1..];
            let end = after.find(';').ok_or(format!("bare & at {at}"))?;
            let ent = &after[..end];
            let ok = matches!(ent, "amp" | "lt" | "gt" | "quot" | "apos")
                || ent.strip_prefix('#').is_some_and(|n| {
                    n.parse::<u32>().is_ok()
                        || n.strip_prefix('x')
                            .is_some_and(|h| u32::from_str_radix(h, 16).is_ok())
                });
            if !ok {
                return Err(format!("bad entity &{ent}; at {at}"));
            }
            rest = &after[end + 1..];
        }
        Ok(())
    };
    while i < b.len() {
        if b[i] != b'<' {
            let end = text[i..].find('<').map_or(b.len(), |p| i + p);
            let t = &text[i..end];
            if stack.is_empty() && !t.trim().is_empty() {
                return Err(format!("text outside the root at {i}"));
            }
            if t.contains('>') {
                return Err(format!("raw > in text at {i}"));
            }
            check_text(t, i)?;
            i = end;
            continue;
        }
        let rest = &text[i..];
        if let Some(r) = rest.strip_prefix("<?") {
            i += 2 + r.find("?>").ok_or("unclosed <?")? + 2;
        } else if rest.starts_with("<!--") {
            i += rest.find("-->").ok_or("unclosed comment")? + 3;
        } else if rest.starts_with("<!DOCTYPE") {
            if roots > 0 || !stack.is_empty() {
                return Err("DOCTYPE inside the document".into());
            }
            i += rest.find('>').ok_or("unclosed DOCTYPE")? + 1;
        } else if let Some(r) = rest.strip_prefix("</") {
            let end = r.find('>').ok_or("unclosed end tag")?;
            let name = r[..end].trim();
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?} at {i}")),
            }
            i += 2 + end + 1;
        } else {
            // A start tag: name, attributes name="value", then > or />.
            let mut j = i + 1;
            let start = j;
            while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'>' && b[j] != b'/' {
                j += 1;
            }
            let name = text[start..j].to_string();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == ':' || c == '-')
            {
                return Err(format!("bad tag name {name:?} at {i}"));
            }
            let mut attrs: Vec<String> = Vec::new();
            loop {
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j >= b.len() {
                    return Err("unclosed start tag".into());
                }
                if b[j] == b'>' {
                    stack.push(name.clone());
                    if stack.len() == 1 {
                        roots += 1;
                    }
                    j += 1;
                    break;
                }
                if text[j..].starts_with("/>") {
                    if stack.is_empty() {
                        roots += 1;
                    }
                    j += 2;
                    break;
                }
                let a0 = j;
                while j < b.len() && b[j] != b'=' && !b[j].is_ascii_whitespace() && b[j] != b'>' {
                    j += 1;
                }
                let attr = text[a0..j].to_string();
                if attr.is_empty() || b.get(j) != Some(&b'=') {
                    return Err(format!(
                        "attribute {attr:?} without a value in <{name}> at {i}"
                    ));
                }
                if attrs.contains(&attr) {
                    return Err(format!("duplicate attribute {attr} in <{name}>"));
                }
                attrs.push(attr);
                j += 1;
                let q = *b.get(j).ok_or("eof")?;
                if q != b'"' && q != b'\'' {
                    return Err(format!("unquoted attribute in <{name}> at {j}"));
                }
                let close = text[j + 1..].find(q as char).ok_or("unclosed attribute")? + j + 1;
                let value = &text[j + 1..close];
                if value.contains('<') {
                    return Err(format!("< in an attribute of <{name}>"));
                }
                check_text(value, j)?;
                j = close + 1;
            }
            names.push(name);
            i = j;
            // Raw-text content of <style> is checked as text (no < or & in our CSS).
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed elements {stack:?}"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(names)
}

#[test]
fn the_checker_refuses_malformed_pages() {
    assert!(well_formed("<a><b x=\"1\"/>t &amp; u</a>").is_ok());
    for bad in [
        "<a><b></a></b>",
        "<a>x & y</a>",
        "<a x=1></a>",
        "<a>1 < 2</a>",
        "<a></a><b></b>",
        "<a x=\"1\" x=\"2\"></a>",
        "<a>&nbsp;</a>",
        "<a>",
    ] {
        assert!(well_formed(bad).is_err(), "{bad}");
    }
}

/// The `<g>`/`<svg>` start tag carrying `key="value"` (`data-label="close"`), and its attribute.
fn attr_of(page: &str, anchor: &str, attr: &str) -> String {
    let at = page
        .find(anchor)
        .unwrap_or_else(|| panic!("{anchor} not in page"));
    let tag_start = page[..at].rfind('<').expect("tag start");
    let tag = &page[tag_start..tag_start + page[tag_start..].find('>').expect("tag end")];
    let key = format!(" {attr}=\"");
    let v = &tag[tag
        .find(&key)
        .unwrap_or_else(|| panic!("{attr} not in {tag}"))
        + key.len()..];
    v[..v.find('"').expect("quote")].to_string()
}

/// The chart `<svg id=...>` element's text.
fn chart<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("chart {id}"));
    let start = page[..start].rfind("<svg").expect("svg");
    let end = start + page[start..].find("</svg>").expect("end");
    &page[start..end]
}

fn closes(path: &Path) -> Vec<(i64, f64)> {
    fs::read_to_string(path)
        .expect("read csv")
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().expect("time"), f[4].parse().expect("close"))
        })
        .collect()
}

#[test]
fn shipped_btcusdt_files_have_the_store_layout() {
    for (file, rows, step) in [
        ("data/BTCUSDT_1m.csv", 15_841, 60_000),
        ("data/BTCUSDT_1h.csv", 5_500, 3_600_000),
    ] {
        let text = fs::read_to_string(repo(file)).expect("shipped file");
        assert_eq!(text.lines().next(), Some(CSV_HEADER), "{file}");
        let c = closes(&repo(file));
        assert_eq!(c.len(), rows, "{file}");
        assert!(c
            .windows(2)
            .all(|w| (w[1].0 - w[0].0) % step == 0 && w[1].0 > w[0].0));
        klinecast::store::load_klines(&repo(file)).expect("loads as a store");
    }
}

#[test]
fn describe_prints_and_draws_the_1h_series() {
    let tmp = TempDir::new("describe-1h");
    let page_path = tmp.path().join("pages").join("d.html");
    let data = repo("data/BTCUSDT_1h.csv");
    let before = fs::read(&data).expect("data");
    let text = run_ok(&["describe", "--data", arg(&data), "--html", arg(&page_path)]);
    assert!(
        text.contains("BTCUSDT 1h, 5500 rows, 2020-04-12 23:00:00 .. 2020-11-28 07:00:00 UTC"),
        "{text}"
    );
    // Two real maintenance windows in this slice: 2020-04-25 (2 h) and 2020-06-28 (3 h).
    assert!(
        text.contains(
            "2 gaps, 5 klines missing; the biggest is 3 klines after 2020-06-28 02:00 UTC"
        ),
        "{text}"
    );
    assert_eq!(
        fs::read(&data).expect("data"),
        before,
        "describe never writes its data"
    );

    let (page, names) = read_page(&page_path);
    assert_eq!(names.iter().filter(|n| *n == "svg").count(), 5);
    // The price chart: 5500 klines in at most 564 columns whose extremes are the data's.
    let c = closes(&data);
    let price = chart(&page, "price");
    let close = "close (min..max per pixel)";
    let n = mark_n(price, close);
    assert!(n > 500 && n <= 564, "{n} columns");
    assert_eq!(mark_extremes(price, close), extremes(c.iter().map(|x| x.1)));
    assert_eq!(price.matches("<polygon").count(), 1);
    assert_eq!(
        price
            .split("<polygon")
            .nth(1)
            .expect("poly")
            .split(" points=\"")
            .nth(1)
            .expect("pts")
            .split('"')
            .next()
            .expect("p")
            .split(' ')
            .count(),
        2 * n
    );
    // The x axis spans the file's open times exactly.
    assert_eq!(
        attr_of(price, "id=\"price\"", "data-x-min"),
        c[0].0.to_string()
    );
    assert_eq!(
        attr_of(price, "id=\"price\"", "data-x-max"),
        c[c.len() - 1].0.to_string()
    );
    // Autocorrelations at 60 lags; 24 hours of volume.
    assert_eq!(mark_n(chart(&page, "acf"), "returns"), 60);
    assert_eq!(mark_n(chart(&page, "hour-volume"), "volume"), 24);
    // Returns across the gaps are skipped: 5499 pairs minus 2.
    assert!(text.contains("\n5497 "), "{text}");
}

#[test]
fn describe_the_default_file_and_escape_names() {
    let tmp = TempDir::new("describe-escape");
    // A file name that is not <SYMBOL>_<interval>.csv, with markup in it.
    let weird = tmp.path().join("a&b<c>'.csv");
    let text = fs::read_to_string(repo("data/BTCUSDT_1m.csv")).expect("data");
    let head: Vec<&str> = text.lines().take(3001).collect();
    fs::write(&weird, head.join("\n") + "\n").expect("write");
    let page_path = tmp.path().join("w.html");
    let text = run_ok(&["describe", "--data", arg(&weird), "--html", arg(&page_path)]);
    assert!(text.contains("? 1m, 3000 rows"));
    let (page, _) = read_page(&page_path);
    assert!(page.contains("a&amp;b&lt;c&gt;&#39;.csv"));
    assert!(!page.contains("a&b<c>"));

    // The default data is the shipped BTCUSDT 1m file.
    let out = klinecast_command()
        .current_dir(repo(""))
        .args(["describe"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let t = stdout(&out);
    assert!(t.starts_with("data/BTCUSDT_1m.csv: BTCUSDT 1m, 15841 rows, 2020-01-01 00:00:00 .. 2020-01-12 00:00:00 UTC\ngaps: none"), "{t}");
    assert!(t.contains("close              6877.00   8449.83"), "{t}");
}

fn hold_lock(data_dir: &Path, whoami: &str) -> File {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(data_dir.join(".klinecast.lock"))
        .expect("lock file");
    f.try_lock().expect("take the lock");
    writeln!(f, "{whoami}").expect("write");
    f
}

/// `status` on a run's directories, with `extra` flags.
fn status_output(data: &Path, log: &Path, extra: &[&str]) -> Output {
    let args = [
        &["status", "--data-dir", arg(data), "--log-dir", arg(log)],
        extra,
    ]
    .concat();
    run(&args)
}

fn status(data: &Path, log: &Path) -> (Option<i32>, serde_json::Value) {
    let out = status_output(data, log, &["--json"]);
    let json = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("json: {e}: {}", stdout(&out)));
    (out.status.code(), json)
}

/// A stream's `data` and `log` directories under `tmp`, the store holding the first `klines`
/// rows of the shipped 1-minute file.
fn run_dirs(tmp: &TempDir, klines: usize) -> (PathBuf, PathBuf) {
    let data = tmp.path().join("data");
    let log = tmp.path().join("log");
    fs::create_dir_all(&data).expect("dir");
    fs::create_dir_all(&log).expect("dir");
    let text = fs::read_to_string(repo("data/BTCUSDT_1m.csv")).expect("data");
    let head: Vec<&str> = text.lines().take(klines + 1).collect();
    fs::write(data.join("BTCUSDT_1m.csv"), head.join("\n") + "\n").expect("store");
    (data, log)
}

#[test]
fn status_running_stopped_and_stale() {
    let tmp = TempDir::new("status");
    let (data, log) = run_dirs(&tmp, 10);
    let store = data.join("BTCUSDT_1m.csv");
    let now = klinecast::log::stamp(klinecast::log::wall_clock_ms());
    fs::write(
        log.join("stream.log"),
        format!(
            "2020-01-01 00:00:00.000Z connected (1 connects so far)\n\
             {now} connected (1 connects so far)\n{now} connect failed: refused\n\
             {now} connected (2 connects so far)\n{now} gap fill over rest failed: 503; local clock x\n"
        ),
    )
    .expect("log");

    // Never started: no lock file.
    let (code, s) = status(&data, &log);
    assert_eq!(code, Some(1));
    assert_eq!(s["running"], false);
    assert!(s["verdict"]
        .as_str()
        .expect("verdict")
        .starts_with("stopped"));
    assert!(
        !data.join(".klinecast.lock").exists(),
        "status never creates the lock"
    );

    // Running (this test holds the lock), the store just written: healthy.
    let lock = hold_lock(
        &data,
        &format!(
            "pid {} started 2026-07-21 10:00:00.000Z",
            std::process::id()
        ),
    );
    let (code, s) = status(&data, &log);
    assert_eq!(code, Some(0), "{s}");
    assert_eq!(s["running"], true);
    assert_eq!(s["pid"], std::process::id());
    assert_eq!(s["started"], "2026-07-21 10:00:00.000Z");
    assert_eq!(s["last_kline_open_time"], "2020-01-01 00:09:00");
    assert_eq!(
        (
            s["reconnects_last_hour"].as_u64(),
            s["errors_last_hour"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert!(
        s["peak_memory_kib"].as_u64().is_some_and(|k| k > 0),
        "the holder's VmHWM"
    );
    assert!(s["kline_age_s"].as_f64().is_some_and(|a| a < 60.0));

    // Running, but the store has not grown for 4 minutes (> 3 intervals of 1m): stale.
    let old = SystemTime::now() - Duration::from_secs(240);
    File::options()
        .write(true)
        .open(&store)
        .expect("store")
        .set_modified(old)
        .expect("mtime");
    let (code, s) = status(&data, &log);
    assert_eq!(code, Some(1));
    assert_eq!(s["running"], true);
    assert!(
        s["verdict"]
            .as_str()
            .expect("v")
            .starts_with("stale: running, but no kline stored for 4 min"),
        "{s}"
    );
    // The text screen says the same.
    let out = status_output(&data, &log, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("NOT OK"));

    // Stopped: the holder is gone (its lock released), its words remain.
    drop(lock);
    let (code, s) = status(&data, &log);
    assert_eq!(code, Some(1));
    assert_eq!(s["running"], false);
    assert!(s["holder"].as_str().expect("holder").starts_with("pid "));
}

/// Backs README claim [C22]: status gives one line (or JSON object) per symbol and exits 1 when any symbol is stale; report writes an overview linking each symbol's page.
///
/// Two symbols in the many-symbols layout under one running stream: ETHUSDT's store not
/// written for 4 minutes (stale), BTCUSDT's fresh with its forecasts and windows in its own
/// folders. `status` (every store found, or `--symbols`) says so per symbol; `report --symbols
/// … --html` writes the overview and each symbol's page beside it.
#[test]
fn status_and_report_per_symbol() {
    let tmp = TempDir::new("status-symbols");
    let (data, log) = run_dirs(&tmp, 30);
    fs::copy(data.join("BTCUSDT_1m.csv"), data.join("ETHUSDT_1m.csv")).expect("copy");
    File::options()
        .write(true)
        .open(data.join("ETHUSDT_1m.csv"))
        .expect("store")
        .set_modified(SystemTime::now() - Duration::from_secs(240))
        .expect("mtime");
    let t0 = 1_577_836_800_000i64;
    let preds = predictions_text(t0, 29);
    fs::create_dir_all(data.join("BTCUSDT_1m")).expect("dir");
    fs::write(data.join("BTCUSDT_1m/predictions.csv"), preds).expect("predictions");
    let _lock = hold_lock(
        &data,
        &format!(
            "pid {} started 2026-07-21 10:00:00.000Z",
            std::process::id()
        ),
    );

    let out = status_output(&data, &log, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (&lines[0]["symbol"], &lines[0]["healthy"]),
        (&"BTCUSDT".into(), &true.into())
    );
    assert!(
        lines[0]["forecast_age_s"]
            .as_f64()
            .is_some_and(|a| a < 60.0),
        "{}",
        lines[0]
    );
    assert_eq!(
        (&lines[1]["symbol"], &lines[1]["healthy"]),
        (&"ETHUSDT".into(), &false.into())
    );
    assert!(lines[1]["forecast_age_s"].is_null(), "{}", lines[1]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains(
            "1 of 2 symbols not healthy: ETHUSDT (stale: running, but no kline stored for 4 min"
        ),
        "{err}"
    );
    let out = status_output(&data, &log, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let row = |symbol: &str| {
        text.lines()
            .find(|l| l.starts_with(symbol))
            .unwrap_or_else(|| panic!("no {symbol} line in {text}"))
            .to_string()
    };
    assert!(row("BTCUSDT").ends_with(" healthy"), "{text}");
    assert!(row("ETHUSDT").contains(" stale: "), "{text}");
    let out = status_output(&data, &log, &["--symbols", "BTCUSDT"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = status_output(&data, &log, &["--symbols", "ETHUSDT,BTCUSDT", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("{\"data_dir\""),
        "{}",
        stdout(&out)
    );

    let page = tmp.path().join("pages/r.html");
    let printed = run_ok(&[
        "report",
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--data-dir",
        arg(&data),
        "--log-dir",
        arg(&log),
        "--html",
        arg(&page),
    ]);
    assert!(printed.contains("== BTCUSDT 1m ==") && printed.contains("== ETHUSDT 1m =="));
    // The overview links only to the pages beside it; otherwise the same checks as every page.
    let overview = fs::read_to_string(&page).expect("overview");
    well_formed(&overview).unwrap_or_else(|e| panic!("overview not well-formed: {e}"));
    fits_desktop_and_phone(&overview);
    assert_eq!(overview.matches("href=\"").count(), 2, "{overview}");
    for bad in ["<script", "src=\"", "@import", "@font-face", "url("] {
        assert!(!overview.contains(bad), "{bad}");
    }
    assert!(overview.contains("<a href=\"r-BTCUSDT_1m.html\">BTCUSDT 1m</a>"));
    assert!(overview.contains("<a href=\"r-ETHUSDT_1m.html\">ETHUSDT 1m</a>"));
    // BTCUSDT's 29 forecasts: 7190 .. 7210 around closes near 7200.
    assert!(overview.contains("7190.00 .. 7210.00"), "{overview}");
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        let (own, _) = read_page(&tmp.path().join(format!("pages/r-{symbol}_1m.html")));
        assert!(own.contains(&format!("<h1>{symbol}: forecasts and health</h1>")));
    }
}

/// The demo on the 1-hour series: the real train + replay server + stream code with an `1h`
/// interval, then `report` and `status` on its files.
#[test]
fn demo_on_the_1h_series_then_report_and_status() {
    let tmp = TempDir::new("demo-1h");
    let work = tmp.path().join("work");
    let text = run_ok(&[
        "demo",
        "--data",
        arg(&repo("data/BTCUSDT_1h.csv")),
        "--klines",
        "60",
        "--speed",
        "360000",
        "--work-dir",
        arg(&work),
    ]);
    assert!(text.contains("streamed 60 klines"), "{text}");
    let data = work.join("data");
    let log = work.join("log");
    let store = data.join("BTCUSDT_1h.csv");
    let c = closes(&store);
    assert!(c.windows(2).all(|w| (w[1].0 - w[0].0) % 3_600_000 == 0));

    let page_path = tmp.path().join("report.html");
    let before = fs::read(&store).expect("store");
    let text = report_page(&data, &log, &page_path);
    assert_eq!(
        fs::read(&store).expect("store"),
        before,
        "report never writes its data"
    );
    // The scoreboard pools the windows of ensemble.jsonl: n is the sum of the ensemble's n.
    let jsonl = fs::read_to_string(log.join("ensemble.jsonl")).expect("jsonl");
    let windows: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(windows.len(), 4);
    let n_ens: u64 = windows
        .iter()
        .map(|w| {
            w["forecasters"]
                .as_array()
                .expect("f")
                .iter()
                .find(|f| f["label"] == "ensemble")
                .expect("ens")["n"]
                .as_u64()
                .expect("n")
        })
        .sum();
    let ens_line = text
        .lines()
        .find(|l| l.starts_with("ensemble "))
        .expect("ensemble row");
    assert_eq!(
        ens_line.split_whitespace().nth(1),
        Some(n_ens.to_string().as_str()),
        "{text}"
    );
    assert!(windows
        .iter()
        .all(|w| w["peak_rss_kib"].as_u64().is_some_and(|k| k > 0)));

    let (page, _) = read_page(&page_path);
    // The last 24 hours: 24 forecasts, 24 closes, the forecasts as predictions.csv has them.
    let preds: Vec<Vec<f64>> = fs::read_to_string(data.join("predictions.csv"))
        .expect("predictions")
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().expect("num")).collect())
        .collect();
    let last = preds.last().expect("a prediction")[0];
    let recent: Vec<&Vec<f64>> = preds
        .iter()
        .filter(|p| p[0] > last - 86_400_000.0)
        .collect();
    assert_eq!(recent.len(), 24);
    let fc = chart(&page, "forecast");
    assert_eq!(mark_n(fc, "forecast"), 24);
    assert_eq!(
        mark_extremes(fc, "forecast"),
        extremes(recent.iter().map(|p| p[1]))
    );
    // Closes stored in the same 24 hours: the last forecast's kline has not closed yet.
    let stored = c
        .iter()
        .filter(|k| k.0 as f64 > last - 86_400_000.0 && k.0 as f64 <= last)
        .count();
    assert_eq!(stored, 23);
    assert_eq!(mark_n(fc, "close"), stored);
    // Where the data must be plotted, worked out from predictions.csv and the store: the axes
    // span the 24 hours' forecasts and closes (prices with a 4 % margin), and the last close
    // and the first forecast sit where those ranges put them.
    let window: Vec<(i64, f64)> = c
        .iter()
        .copied()
        .filter(|k| k.0 as f64 > last - 86_400_000.0 && k.0 as f64 <= last)
        .collect();
    let x_range = extremes(
        recent
            .iter()
            .map(|p| p[0])
            .chain(window.iter().map(|k| k.0 as f64)),
    );
    let (lo, hi) = extremes(
        window
            .iter()
            .map(|k| k.1)
            .chain(recent.iter().flat_map(|p| [p[1], p[5], p[6]])),
    );
    let y_range = (lo - (hi - lo) * 0.04, hi + (hi - lo) * 0.04);
    let plot = frame(fc);
    let closes_drawn = drawn_points(fc, "close");
    assert_eq!(closes_drawn.len(), window.len());
    let (t, close) = *window.last().expect("a close");
    assert_drawn_at(
        *closes_drawn.last().expect("a point"),
        plotted_at(plot, x_range, y_range, (t as f64, close)),
    );
    let first = recent.first().expect("a forecast");
    assert_drawn_at(
        drawn_points(fc, "forecast")[0],
        plotted_at(plot, x_range, y_range, (first[0], first[1])),
    );
    // One cumulative ratio point per window for the ensemble; on the weights chart naive is
    // awake in every window: one step (two points) per window.
    assert_eq!(mark_n(chart(&page, "ratio"), "ensemble"), 4);
    assert_eq!(mark_n(chart(&page, "weights"), "naive"), 8);
    // Every window of the demo logged its peak memory: the memory chart has a point each.
    assert_eq!(mark_n(chart(&page, "memory"), "peak resident memory"), 4);

    // The demo has stopped: status says so and exits 1.
    let (code, s) = status(&data, &log);
    assert_eq!(code, Some(1));
    assert_eq!(s["running"], false);
    assert_eq!(s["interval"], "1h");
}

/// Coverage figures come from ensemble.jsonl when the ensemble logs them. The files are written
/// in the format `stream` writes (predictions.csv with its header; one window report per line,
/// with its interval figures and log time), and read back through the same definitions.
#[test]
fn report_draws_logged_coverage() {
    let tmp = TempDir::new("report-coverage");
    let (data, log) = run_dirs(&tmp, 30);
    let t0 = 1_577_836_800_000i64;
    let preds = predictions_text(t0, 29);
    fs::write(data.join("predictions.csv"), preds).expect("preds");
    let mut jsonl = String::new();
    for (w, cov) in [(0i64, 0.8), (1, 0.875)] {
        jsonl.push_str(&format!(
            "{{\"coverage\":{{\"interval_score\":null,\"mean_width\":20.0,\"n\":15,\"nominal\":0.9,\"realised\":{cov},\"static_interval_score\":null,\"static_mean_width\":null,\"static_realised\":null}},\"experts\":[],\"first_open_time\":{},\"forecasters\":[{{\"directional\":0.5,\"label\":\"ensemble\",\"mae\":1.0,\"n\":15,\"rmse\":2.0}},{{\"directional\":0.0,\"label\":\"naive\",\"mae\":1.0,\"n\":15,\"rmse\":2.5}}],\"generations\":0,\"last_open_time\":{},\"logged_at\":\"2026-01-01 00:0{w}:00.000Z\",\"pool_size\":1,\"refit\":{{\"failed\":{{\"error\":\"x\"}}}},\"refit_save_seconds\":0.5,\"trained\":0,\"version\":{w},\"weights\":[{{\"label\":\"naive\",\"n_scored\":15,\"skill\":null,\"weight\":1.0}}],\"window\":{w}}}\n",
            t0 + (1 + 15 * w) * 60_000,
            t0 + (15 + 15 * w) * 60_000
        ));
    }
    fs::write(log.join("ensemble.jsonl"), jsonl).expect("jsonl");
    let page_path = tmp.path().join("r.html");
    let text = report_page(&data, &log, &page_path);
    assert!(text.contains("0.80000"), "{text}");
    let (page, _) = read_page(&page_path);
    // Logged with the same n, the two windows weigh the same: the rolling and whole-run lines
    // are 0.8 and then their mean. The logged nominal level is drawn as a rule.
    let cov = chart(&page, "coverage");
    for label in ["last 20 windows", "whole run"] {
        assert_eq!(mark_n(cov, label), 2);
        assert_eq!(mark_extremes(cov, label), (0.8, 0.8375));
    }
    assert!(cov.contains("nominal"));
    // The interval band is drawn from predictions.csv's lower/upper columns.
    assert_eq!(
        mark_extremes(chart(&page, "forecast"), "interval"),
        (7190.0, 7210.0)
    );
}

/// `train` and `backtest` on the 1-hour series (gaps included), as commands.
#[test]
fn train_and_backtest_the_1h_series() {
    let tmp = TempDir::new("train-1h");
    let data = repo("data/BTCUSDT_1h.csv");
    let models = tmp.path().join("models");
    let text = run_ok(&[
        "train",
        "--data",
        arg(&data),
        "--max-rows",
        "1200",
        "--svr-rows",
        "200",
        "--models-dir",
        arg(&models),
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
    assert_eq!(j["rows"], 1200);
    assert_eq!(
        j["models"].as_array().expect("models").len(),
        9,
        "eight models and naive"
    );
    assert!(models.join("Trained").join("linear.bin").exists());
    let text = run_ok(&[
        "backtest",
        "--data",
        arg(&data),
        "--max-rows",
        "600",
        "--svr-rows",
        "100",
        // The row models: the recurrent ones are covered elsewhere and are slow under qemu.
        "--models",
        "linear,svr,knn,cart,forest,gbdt",
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
    assert_eq!(j["interval_ms"], 3_600_000);
    assert_eq!(j["replay_rows"], 300);
    assert_eq!(j["windows"], 20);
}

/// `backtest --html` on the last 900 klines of the shipped 1-minute file (small settings so it
/// takes a second, under qemu too): the page's charts are the replay's, its interval figures
/// are the `--json` output's for the same run, and the data file is left as it was.
#[test]
fn backtest_page_shows_the_replay() {
    let tmp = TempDir::new("backtest-page");
    let data = repo("data/BTCUSDT_1m.csv");
    let before = fs::read(&data).expect("data");
    let page_path = tmp.path().join("pages").join("backtest.html");
    let args = [
        "backtest",
        "--data",
        arg(&data),
        "--max-rows",
        "900",
        "--models",
        "linear",
        "--refit-rows",
        "200",
        "--generations",
        "2",
        "--window",
        "30",
        "--hours",
        "4",
        "--json",
    ];
    let j: serde_json::Value = serde_json::from_str(run_ok(&args).trim()).expect("json");
    let with_page = [&args[..], &["--html", arg(&page_path)]].concat();
    let j2: serde_json::Value = serde_json::from_str(run_ok(&with_page).trim()).expect("json");
    assert_eq!(j, j2, "--html changes nothing in the result");
    assert_eq!(
        fs::read(&data).expect("data"),
        before,
        "the data is only read"
    );
    assert_eq!(
        (j["replay_rows"].as_u64(), j["windows"].as_u64()),
        (Some(450), Some(15))
    );

    let (page, names) = read_page(&page_path);
    assert_eq!(names.iter().filter(|n| *n == "svg").count(), 4);
    assert!(page.contains("<title>BTCUSDT: backtest</title>"));
    // The last 4 hours of the replay: 240 one-minute klines, each forecast and scored. The
    // closes are the file's last 240; the naive forecast of each is the close before it.
    let c = closes(&data);
    let last = &c[c.len() - 240..];
    let fc = chart(&page, "forecast");
    for label in ["forecast", "close", "naive", "interval"] {
        assert_eq!(mark_n(fc, label), 240, "{label}");
    }
    assert_eq!(
        mark_extremes(fc, "close"),
        extremes(last.iter().map(|k| k.1))
    );
    assert_eq!(
        mark_extremes(fc, "naive"),
        extremes(c[c.len() - 241..c.len() - 1].iter().map(|k| k.1))
    );
    assert_eq!(
        attr_of(fc, "id=\"forecast\"", "data-x-min"),
        last[0].0.to_string()
    );
    assert_eq!(
        attr_of(fc, "id=\"forecast\"", "data-x-max"),
        last[239].0.to_string()
    );
    let (flo, fhi) = mark_extremes(fc, "forecast");
    let (ilo, ihi) = mark_extremes(fc, "interval");
    assert!(ilo < flo && fhi < ihi, "the interval holds the forecasts");
    // Every close is drawn at its time: the x axis spans the 240 klines, so close i of the
    // last 240 sits at i/239 of the plot's width; and the heights are one affine map of the
    // prices (a higher close is drawn higher, in proportion).
    let plot = frame(fc);
    let drawn = drawn_points(fc, "close");
    assert_eq!(drawn.len(), 240);
    let span = (last[239].0 - last[0].0) as f64;
    let (i_lo, i_hi) = (
        (0..240)
            .min_by(|&a, &b| last[a].1.total_cmp(&last[b].1))
            .expect("a close"),
        (0..240)
            .max_by(|&a, &b| last[a].1.total_cmp(&last[b].1))
            .expect("a close"),
    );
    let per_price = (drawn[i_lo].1 - drawn[i_hi].1) / (last[i_hi].1 - last[i_lo].1);
    assert!(per_price > 0.0);
    for (k, p) in last.iter().zip(&drawn) {
        let x = plot.0 + (k.0 - last[0].0) as f64 / span * plot.2;
        let y = drawn[i_lo].1 - (k.1 - last[i_lo].1) * per_price;
        assert!((p.0 - x).abs() <= 0.051, "{p:?} at x {x}");
        assert!((p.1 - y).abs() <= 0.11, "{p:?} at y {y}");
    }
    // One point per window on the ratio and coverage charts; naive is awake in every window
    // of the weights chart (one step each); 8 series at most on every chart.
    let windows = 15;
    assert_eq!(mark_n(chart(&page, "ratio"), "ensemble"), windows);
    assert_eq!(mark_n(chart(&page, "weights"), "naive"), 2 * windows);
    let cov = chart(&page, "coverage");
    assert_eq!(mark_n(cov, "whole run"), windows);
    assert_eq!(mark_n(cov, "last 20 windows"), windows);
    assert_eq!(mark_n(cov, "nominal 90 %"), 1);
    // The whole-run line ends at the replay's coverage.
    let total = j["intervals"]["coverage"].as_f64().expect("coverage");
    let whole = drawn_points(cov, "whole run");
    let (_, top, _, height) = frame(cov);
    let (y_min, y_max) = (
        attr_of(cov, "id=\"coverage\"", "data-y-min")
            .parse::<f64>()
            .expect("y min"),
        attr_of(cov, "id=\"coverage\"", "data-y-max")
            .parse::<f64>()
            .expect("y max"),
    );
    let end = whole.last().expect("a point").1;
    let drawn_total = y_min + (top + height - end) / height * (y_max - y_min);
    assert!(
        (drawn_total - total).abs() <= 0.06 / height * (y_max - y_min),
        "{drawn_total} {total}"
    );
    for id in ["forecast", "ratio", "weights", "coverage"] {
        let ch = chart(&page, id);
        let colours: Vec<&str> = ch
            .split("class=\"legend\"")
            .nth(1)
            .expect("a legend")
            .split("fill=\"")
            .skip(1)
            .map(|f| &f[..f.find('"').expect("end")])
            .filter(|f| f.starts_with('#'))
            .collect();
        let mut unique = colours.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), colours.len(), "{id}: {colours:?}");
        assert!(colours.len() <= 8, "{id}: {colours:?}");
    }
    // The interval table holds the --json figures.
    let table = &page[page.find("id=\"intervals\"").expect("intervals table")..];
    let table = &table[..table.find("</table>").expect("end")];
    let pct = |v: &serde_json::Value| format!("<td>{:.2} %</td>", 100.0 * v.as_f64().expect("num"));
    let thirds = |v: &serde_json::Value| {
        let parts: Vec<String> = v
            .as_array()
            .expect("thirds")
            .iter()
            .map(|c| format!("{:.1}", 100.0 * c.as_f64().expect("num")))
            .collect();
        format!("<td>{}</td>", parts.join(" / "))
    };
    let iv = &j["intervals"];
    let ens_row = format!(
        "<td>ensemble (n {})</td>{}{}",
        iv["n"],
        pct(&iv["coverage"]),
        thirds(&iv["coverage_by_third"])
    );
    assert!(table.contains(&ens_row), "{ens_row} not in {table}");
    let static_row = format!(
        "<td>static baseline</td>{}{}",
        pct(&iv["static_coverage"]),
        thirds(&iv["static_coverage_by_third"])
    );
    assert!(table.contains(&static_row), "{static_row} not in {table}");
    // The scoreboard's ensemble row: n as in --json.
    let n_ens = &j["scoreboard"][0]["n"];
    assert_eq!(j["scoreboard"][0]["label"], "ensemble");
    assert!(page.contains(&format!("<td>ensemble</td><td>{n_ens}</td>")));
}

/// A predictions.csv of `n` rows targeting the klines after `t0`, one a minute: forecast 7200.5
/// against naive 7200, interval 7190..7210.
fn predictions_text(t0: i64, n: i64) -> String {
    let mut preds = format!("{PRED_HEADER}\n");
    for k in 1..=n {
        let t = t0 + k * 60_000;
        let row = PredictionRow {
            target_open_time: t,
            forecast: 7200.5,
            naive: 7200.0,
            ensemble_version: 1,
            made_after_open_time: t - 60_000,
            lower: 7190.0,
            upper: 7210.0,
        };
        preds.push_str(&format!("{}\n", row.to_csv_line()));
    }
    preds
}
