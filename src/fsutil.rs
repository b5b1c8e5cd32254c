//! Crash-safe files: every file that is rewritten while the program may be killed goes through
//! [`write_atomic`] (temp file in the same directory, fsync, rename, fsync directory); every
//! line-oriented file that is appended to cuts a line torn by a kill with [`repair_torn_tail`] /
//! [`cut_torn_tail`] when it is opened, and reads its end with [`read_last_lines`] /
//! [`read_last_line`]. Generic: no file format is known here.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` so that a kill at any instant leaves either the old file or the new
/// one, never a torn mix. Creates the parent directory if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir)?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The last `lines` whole lines of the first `len` bytes of `file` (a file that ends with a
/// newline), read from the end in growing chunks so that a file of years of rows is not read
/// whole. Returns the byte offset where the returned text starts and the text; the text starts
/// at the file's start when the file has no more than `lines` lines (a header included).
pub(crate) fn read_last_lines(file: &File, len: u64, lines: usize) -> io::Result<(u64, Vec<u8>)> {
    let mut reader = file;
    let mut chunk: u64 = (lines as u64 + 2).saturating_mul(128);
    loop {
        let start = len.saturating_sub(chunk);
        reader.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        reader.take(len - start).read_to_end(&mut buf)?;
        if start == 0 {
            let newlines = buf.iter().filter(|&&b| b == b'\n').count();
            if newlines <= lines {
                return Ok((0, buf));
            }
        }
        // Keep whole lines only: the text after the (lines + 1)-th newline from the end.
        let mut seen = 0;
        let cut = buf.iter().enumerate().rev().find_map(|(i, &b)| {
            if b == b'\n' {
                seen += 1;
                (seen == lines + 1).then_some(i + 1)
            } else {
                None
            }
        });
        match cut {
            Some(i) => return Ok((start + i as u64, buf[i..].to_vec())),
            None if start == 0 => return Ok((0, buf)),
            None => chunk = chunk.saturating_mul(2),
        }
    }
}

/// The last line (without its newline) of the first `len` bytes of `file`; the whole text when
/// it has a single line, empty for an empty file.
#[cfg(test)]
pub(crate) fn read_last_line(file: &File, len: u64) -> io::Result<String> {
    let (_, text) = read_last_lines(file, len, 1)?;
    let body = text.strip_suffix(b"\n").unwrap_or(&text);
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    Ok(String::from_utf8_lossy(&body[start..]).into_owned())
}

/// Cuts an open file (opened for writing) back to just after its last `\n` when a kill left a
/// partial last line, and fsyncs it. Returns how many bytes were cut (0: the file is empty or
/// ends with a newline, and is left alone). A file without any newline is emptied.
pub(crate) fn cut_torn_tail(file: &File) -> io::Result<u64> {
    cut_torn_tail_text(file).map(|(cut, _)| cut)
}

/// The length of `file`'s complete lines: the offset just past its last newline (the whole
/// length when it ends with one, 0 when it has none). Reads backwards in blocks.
pub(crate) fn complete_len(file: &File) -> io::Result<u64> {
    let mut reader = file;
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = vec![0u8; 8192];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        reader.seek(SeekFrom::Start(start))?;
        reader.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// [`cut_torn_tail`], also returning the text it cut (lossy UTF-8).
pub(crate) fn cut_torn_tail_text(file: &File) -> io::Result<(u64, String)> {
    let mut reader = file;
    let len = file.metadata()?.len();
    let cut = complete_len(file)?;
    if cut == len {
        return Ok((0, String::new()));
    }
    // The torn text, at most its last 64 KiB (it is for a log line).
    let from = cut.max(len.saturating_sub(64 * 1024));
    reader.seek(SeekFrom::Start(from))?;
    let mut torn = Vec::with_capacity((len - from) as usize);
    reader.take(len - from).read_to_end(&mut torn)?;
    file.set_len(cut)?;
    file.sync_all()?;
    Ok((len - cut, String::from_utf8_lossy(&torn).into_owned()))
}

/// [`cut_torn_tail`] on the file at `path`; a missing or empty file is fine.
pub(crate) fn repair_torn_tail(path: &Path) -> io::Result<u64> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => cut_torn_tail(&file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Fsyncs a directory so that a rename or a new file inside it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn last_lines_from_the_end_with_their_offset() {
        let dir = TempDir::new("lastlines");
        let path = dir.join("lines.txt");
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        fs::write(&path, &text).expect("write");
        let file = File::open(&path).expect("open");
        let len = text.len() as u64;
        let (at, got) = read_last_lines(&file, len, 3).expect("tail");
        assert_eq!(got, b"line 997\nline 998\nline 999\n");
        assert_eq!(&text.as_bytes()[at as usize..], &got[..]);
        // More lines than the file has: the whole file from offset 0.
        assert_eq!(
            read_last_lines(&file, len, 5000).expect("all"),
            (0, text.clone().into_bytes())
        );
        // Exactly as many lines as the file has.
        assert_eq!(read_last_lines(&file, len, 1000).expect("exact").0, 0);
        // Only the first `len` bytes count.
        let first_two = "line 0\nline 1\n".len() as u64;
        assert_eq!(
            read_last_lines(&file, first_two, 1).expect("prefix"),
            (7, b"line 1\n".to_vec())
        );
        assert_eq!(
            read_last_lines(&file, len, 0).expect("none"),
            (len, Vec::new())
        );
        assert_eq!(read_last_line(&file, len).expect("last"), "line 999");
        assert_eq!(read_last_line(&file, first_two).expect("last"), "line 1");
        assert_eq!(read_last_line(&file, 7).expect("only"), "line 0");
        assert_eq!(read_last_line(&file, 0).expect("empty"), "");
    }

    #[test]
    fn torn_tail_is_cut_at_the_last_newline() {
        let dir = TempDir::new("torn");
        let path = dir.file("x", "a\nbb\npartial");
        assert_eq!(repair_torn_tail(&path).expect("repair"), 7);
        assert_eq!(fs::read(&path).expect("read"), b"a\nbb\n");
        assert_eq!(repair_torn_tail(&path).expect("again"), 0);
        assert_eq!(fs::read(&path).expect("read"), b"a\nbb\n");
        // A torn line longer than one scan block.
        let long = format!("head\n{}", "y".repeat(20_000));
        let path = dir.file("long", &long);
        assert_eq!(repair_torn_tail(&path).expect("long"), 20_000);
        assert_eq!(fs::read(&path).expect("read"), b"head\n");
    }

    #[test]
    fn repair_without_any_newline_empties_the_file() {
        let dir = TempDir::new("nonl");
        let path = dir.file("x", "partial");
        assert_eq!(repair_torn_tail(&path).expect("repair"), 7);
        assert_eq!(fs::read(&path).expect("read"), b"");
        assert_eq!(repair_torn_tail(&dir.join("missing")).expect("missing"), 0);
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = TempDir::new("fsutil");
        let path = dir.path().join("sub").join("a.bin");
        write_atomic(&path, b"one").expect("first write");
        write_atomic(&path, b"two").expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
