//! The single-instance lock of `klinecast stream`: an exclusive `flock`-style lock
//! (`File::try_lock`) on `<data-dir>/.klinecast.lock`, held for the life of the process and
//! released by the OS even after kill -9. The holder writes its pid and start time into the
//! file so that a second instance can say which one is running. Nothing else here.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The lock file name inside the data directory.
pub(crate) const LOCK_FILE: &str = ".klinecast.lock";

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct InstanceLock {
    _file: File,
}

/// The result of trying to take the lock.
#[derive(Debug)]
pub(crate) enum LockOutcome {
    Acquired(InstanceLock),
    /// Another process holds it; `holder` is what it wrote (pid and start time), trimmed.
    Busy {
        holder: String,
    },
}

/// Tries to take the lock of `data_dir` (created if missing) without waiting. `whoami` is
/// written into the lock file once it is held, such as `pid 123 started 2026-07-21 10:00:00Z`.
pub(crate) fn acquire(data_dir: &Path, whoami: &str) -> io::Result<LockOutcome> {
    fs::create_dir_all(data_dir)?;
    let path = data_dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(format!("{whoami}\n").as_bytes())?;
            file.sync_data()?;
            Ok(LockOutcome::Acquired(InstanceLock { _file: file }))
        }
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            // The holder may be between set_len and write: an empty answer is possible.
            let _ = file.read_to_string(&mut text);
            let holder = text.trim().to_string();
            Ok(LockOutcome::Busy {
                holder: if holder.is_empty() {
                    "another klinecast process (starting up)".to_string()
                } else {
                    holder
                },
            })
        }
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// What the holder writes into the lock file: `pid <pid> started <stamp>`.
pub(crate) fn whoami(pid: u32, started: &str) -> String {
    format!("pid {pid} started {started}")
}

/// The pid and start time in a holder's [`whoami`] text, where present.
pub(crate) fn parse_whoami(text: &str) -> (Option<u32>, Option<String>) {
    let pid = text
        .strip_prefix("pid ")
        .and_then(|h| h.split_whitespace().next())
        .and_then(|p| p.parse().ok());
    let started = text.split_once(" started ").map(|(_, t)| t.to_string());
    (pid, started)
}

/// Whether a process holds the lock of `data_dir`, and what it wrote; only reads (a missing
/// file is "not held" and is not created; a free lock is released at once).
pub(crate) fn probe(data_dir: &Path) -> io::Result<(bool, Option<String>)> {
    let path = data_dir.join(LOCK_FILE);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((false, None)),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let holder = Some(text.trim().to_string()).filter(|t| !t.is_empty());
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            Ok((false, holder))
        }
        Err(TryLockError::WouldBlock) => Ok((true, holder)),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn second_lock_is_busy_and_names_the_holder_until_released() {
        let temp = TempDir::new("lock");
        let dir = temp.join("run");
        let first = match acquire(&dir, "pid 1 started now").expect("lock") {
            LockOutcome::Acquired(l) => l,
            LockOutcome::Busy { holder } => panic!("busy: {holder}"),
        };
        assert!(dir.join(LOCK_FILE).is_file());
        assert_eq!(
            probe(&dir).expect("probe"),
            (true, Some("pid 1 started now".to_string()))
        );
        match acquire(&dir, "pid 2").expect("second") {
            LockOutcome::Busy { holder } => assert_eq!(holder, "pid 1 started now"),
            LockOutcome::Acquired(_) => panic!("second instance got the lock"),
        }
        drop(first);
        match acquire(&dir, "pid 3").expect("third") {
            LockOutcome::Acquired(_) => {}
            LockOutcome::Busy { holder } => panic!("still busy: {holder}"),
        }
        assert_eq!(
            fs::read_to_string(dir.join(LOCK_FILE)).expect("read"),
            "pid 3\n"
        );
    }

    #[test]
    fn whoami_reads_back() {
        let text = whoami(4321, "2026-07-21 10:00:00.000Z");
        assert_eq!(
            parse_whoami(&text),
            (Some(4321), Some("2026-07-21 10:00:00.000Z".to_string()))
        );
        assert_eq!(parse_whoami("someone"), (None, None));
        let temp = TempDir::new("probe");
        assert_eq!(probe(temp.path()).expect("probe"), (false, None));
        assert!(
            !temp.path().join(LOCK_FILE).exists(),
            "probe creates nothing"
        );
    }
}
