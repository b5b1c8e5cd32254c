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
    let out = run(&[
        "describe",
        "--data",
        data.to_str().expect("utf8"),
        "--html",
        page_path.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
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

    let page = fs::read_to_string(&page_path).expect("page");
    let names = well_formed(&page).unwrap_or_else(|e| panic!("not well-formed: {e}"));
    assert_eq!(names.iter().filter(|n| *n == "svg").count(), 5);
    assert!(!page.contains("<script") && !page.contains("src=\"http"));
    // The price chart: 5500 klines in at most 564 columns whose extremes are the data's.
    let c = closes(&data);
    let lo = c.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
    let hi = c.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
    let price = chart(&page, "price");
    let n: usize = attr_of(price, "data-label=\"close", "data-n")
        .parse()
        .expect("n");
    assert!(n > 500 && n <= 564, "{n} columns");
    assert_eq!(
        attr_of(price, "data-label=\"close", "data-min")
            .parse::<f64>()
            .ok(),
        Some(lo)
    );
    assert_eq!(
        attr_of(price, "data-label=\"close", "data-max")
            .parse::<f64>()
            .ok(),
        Some(hi)
    );
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
    let acf = chart(&page, "acf");
    assert_eq!(attr_of(acf, "data-label=\"returns\"", "data-n"), "60");
    assert_eq!(
        attr_of(
            chart(&page, "hour-volume"),
            "data-label=\"volume\"",
            "data-n"
        ),
        "24"
    );
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
    let out = run(&[
        "describe",
        "--data",
        weird.to_str().expect("utf8"),
        "--html",
        page_path.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("? 1m, 3000 rows"));
    let page = fs::read_to_string(&page_path).expect("page");
    well_formed(&page).unwrap_or_else(|e| panic!("not well-formed: {e}"));
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

fn status(data: &Path, log: &Path) -> (Option<i32>, serde_json::Value) {
    let out = run(&[
        "status",
        "--data-dir",
        data.to_str().expect("utf8"),
        "--log-dir",
        log.to_str().expect("utf8"),
        "--json",
    ]);
    let json = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("json: {e}: {}", stdout(&out)));
    (out.status.code(), json)
}

#[test]
fn status_running_stopped_and_stale() {
    let tmp = TempDir::new("status");
    let data = tmp.path().join("data");
    let log = tmp.path().join("log");
    fs::create_dir_all(&data).expect("dir");
    fs::create_dir_all(&log).expect("dir");
    let text = fs::read_to_string(repo("data/BTCUSDT_1m.csv")).expect("data");
    let head: Vec<&str> = text.lines().take(11).collect();
    let store = data.join("BTCUSDT_1m.csv");
    fs::write(&store, head.join("\n") + "\n").expect("store");
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
    let out = run(&[
        "status",
        "--data-dir",
        data.to_str().expect("utf8"),
        "--log-dir",
        log.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("NOT OK"));

    // Stopped: the holder is gone (its lock released), its words remain.
    drop(lock);
    let (code, s) = status(&data, &log);
    assert_eq!(code, Some(1));
    assert_eq!(s["running"], false);
    assert!(s["holder"].as_str().expect("holder").starts_with("pid "));
}

/// The demo on the 1-hour series: the real train + replay server + stream code with an `1h`
/// interval, then `report` and `status` on its files.
#[test]
fn demo_on_the_1h_series_then_report_and_status() {
    let tmp = TempDir::new("demo-1h");
    let work = tmp.path().join("work");
    let out = run(&[
        "demo",
        "--data",
        repo("data/BTCUSDT_1h.csv").to_str().expect("utf8"),
        "--klines",
        "60",
        "--speed",
        "360000",
        "--work-dir",
        work.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("streamed 60 klines"),
        "{}",
        stdout(&out)
    );
    let data = work.join("data");
    let log = work.join("log");
    let store = data.join("BTCUSDT_1h.csv");
    let c = closes(&store);
    assert!(c.windows(2).all(|w| (w[1].0 - w[0].0) % 3_600_000 == 0));

    let page_path = tmp.path().join("report.html");
    let before = fs::read(&store).expect("store");
    let out = run(&[
        "report",
        "--data-dir",
        data.to_str().expect("utf8"),
        "--log-dir",
        log.to_str().expect("utf8"),
        "--html",
        page_path.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read(&store).expect("store"),
        before,
        "report never writes its data"
    );
    let text = stdout(&out);
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

    let page = fs::read_to_string(&page_path).expect("page");
    well_formed(&page).unwrap_or_else(|e| panic!("not well-formed: {e}"));
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
    assert_eq!(attr_of(fc, "data-label=\"forecast\"", "data-n"), "24");
    let lo = recent.iter().map(|p| p[1]).fold(f64::INFINITY, f64::min);
    let hi = recent
        .iter()
        .map(|p| p[1])
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(
        attr_of(fc, "data-label=\"forecast\"", "data-min")
            .parse::<f64>()
            .ok(),
        Some(lo)
    );
    assert_eq!(
        attr_of(fc, "data-label=\"forecast\"", "data-max")
            .parse::<f64>()
            .ok(),
        Some(hi)
    );
    // Closes stored in the same 24 hours: the last forecast's kline has not closed yet.
    let stored = c
        .iter()
        .filter(|k| k.0 as f64 > last - 86_400_000.0 && k.0 as f64 <= last)
        .count();
    assert_eq!(stored, 23);
    assert_eq!(
        attr_of(fc, "data-label=\"close\"", "data-n"),
        stored.to_string()
    );
    // One cumulative ratio point per window for the ensemble; weights stacked per window.
    assert_eq!(
        attr_of(chart(&page, "ratio"), "data-label=\"ensemble\"", "data-n"),
        "4"
    );
    assert_eq!(
        attr_of(chart(&page, "weights"), "data-label=\"naive\"", "data-n"),
        "4"
    );

    // The demo has stopped: status says so and exits 1.
    let (code, s) = status(&data, &log);
    assert_eq!(code, Some(1));
    assert_eq!(s["running"], false);
    assert_eq!(s["interval"], "1h");
}

/// Coverage figures come from ensemble.jsonl when the ensemble logs them.
#[test]
fn report_draws_logged_coverage() {
    let tmp = TempDir::new("report-coverage");
    let data = tmp.path().join("data");
    let log = tmp.path().join("log");
    fs::create_dir_all(&data).expect("dir");
    fs::create_dir_all(&log).expect("dir");
    let text = fs::read_to_string(repo("data/BTCUSDT_1m.csv")).expect("data");
    let head: Vec<&str> = text.lines().take(31).collect();
    fs::write(data.join("BTCUSDT_1m.csv"), head.join("\n") + "\n").expect("store");
    let t0 = 1_577_836_800_000i64;
    let mut preds = String::from("target_open_time,forecast,lower,upper,naive\n");
    for k in 1..30 {
        let t = t0 + k * 60_000;
        preds.push_str(&format!("{t},7200.5,7190,7210,7200\n"));
    }
    fs::write(data.join("predictions.csv"), preds).expect("preds");
    let mut jsonl = String::new();
    for (w, cov) in [(0i64, 0.8), (1, 0.875)] {
        jsonl.push_str(&format!(
            "{{\"window\":{w},\"first_open_time\":{},\"last_open_time\":{},\"forecasters\":[{{\"label\":\"ensemble\",\"n\":15,\"rmse\":2.0,\"mae\":1.0,\"directional\":0.5}},{{\"label\":\"naive\",\"n\":15,\"rmse\":2.5,\"mae\":1.0,\"directional\":0.0}}],\"weights\":[{{\"label\":\"naive\",\"weight\":1.0}}],\"coverage\":{cov},\"logged_at\":\"2026-01-01 00:0{w}:00.000Z\"}}\n",
            t0 + (1 + 15 * w) * 60_000,
            t0 + (15 + 15 * w) * 60_000
        ));
    }
    fs::write(log.join("ensemble.jsonl"), jsonl).expect("jsonl");
    let page_path = tmp.path().join("r.html");
    let out = run(&[
        "report",
        "--data-dir",
        data.to_str().expect("utf8"),
        "--log-dir",
        log.to_str().expect("utf8"),
        "--html",
        page_path.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("0.80000"), "{}", stdout(&out));
    let page = fs::read_to_string(&page_path).expect("page");
    well_formed(&page).unwrap_or_else(|e| panic!("not well-formed: {e}"));
    let cov = chart(&page, "coverage");
    assert_eq!(
        attr_of(cov, "data-label=\"realised coverage\"", "data-n"),
        "2"
    );
    assert_eq!(
        attr_of(cov, "data-label=\"realised coverage\"", "data-min"),
        "0.8"
    );
    assert_eq!(
        attr_of(cov, "data-label=\"realised coverage\"", "data-max"),
        "0.875"
    );
    // The interval band is drawn from predictions.csv's lower/upper columns.
    let fc = chart(&page, "forecast");
    assert_eq!(attr_of(fc, "data-label=\"interval\"", "data-min"), "7190");
    assert_eq!(attr_of(fc, "data-label=\"interval\"", "data-max"), "7210");
}

/// `train` and `backtest` on the 1-hour series (gaps included), as commands.
#[test]
fn train_and_backtest_the_1h_series() {
    let tmp = TempDir::new("train-1h");
    let data = repo("data/BTCUSDT_1h.csv");
    let data = data.to_str().expect("utf8");
    let models = tmp.path().join("models");
    let out = run(&[
        "train",
        "--data",
        data,
        "--max-rows",
        "1200",
        "--svr-rows",
        "200",
        "--models-dir",
        models.to_str().expect("utf8"),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    assert_eq!(j["rows"], 1200);
    assert_eq!(
        j["models"].as_array().expect("models").len(),
        9,
        "eight models and naive"
    );
    assert!(models.join("Trained").join("linear.bin").exists());
    let out = run(&[
        "backtest",
        "--data",
        data,
        "--max-rows",
        "600",
        "--svr-rows",
        "100",
        // The row models: the recurrent ones are covered elsewhere and are slow under qemu.
        "--models",
        "linear,svr,knn,cart,forest,gbdt",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    assert_eq!(j["interval_ms"], 3_600_000);
    assert_eq!(j["replay_rows"], 300);
    assert_eq!(j["windows"], 20);
}
