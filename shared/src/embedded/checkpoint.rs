//! WAL checkpoints off the writers' path.
//!
//! In WAL mode every commit appends pages to the write-ahead log, and a *checkpoint* copies
//! them back into the database file so that the log can start over. SQLite's default runs
//! that checkpoint inside the commit that takes the log past 1,000 pages (4 MB), so that
//! one commit also copies megabytes and waits for two `fsync`s. On the bundled sample's
//! largest account, alone, 8 of the 80 cache writes of its batches took 8–12 ms each that
//! way (the others 0.1–1.6 ms): about 80 ms of a 650 ms batch phase, on the account's
//! critical path.
//!
//! Here a commit that leaves the log past [`CHECKPOINT_PAGES`] only wakes this process's
//! checkpoint thread, which checkpoints on a connection of its own, `PASSIVE` (it never
//! waits for readers or writers, and never makes them wait). If the log still reaches
//! [`BACKSTOP_PAGES`] (a steady stream of commits, or a thread that could not start), the
//! commit checkpoints itself, as SQLite's default would have done earlier. Durability is
//! unchanged: a checkpoint moves pages that were already committed.

use std::os::raw::{c_char, c_int, c_void};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{ffi, Connection};

/// A log of this many pages (4 MB at the default page size, SQLite's own threshold) wakes
/// the checkpoint thread.
const CHECKPOINT_PAGES: c_int = 1_000;

/// A log of this many pages (16 MB) is checkpointed by the commit that reaches it. Under
/// a steady stream of commits the thread's checkpoints rarely find the whole log copied (a
/// commit lands while they run), and only then can the next writer start the log over: the
/// commit that reaches this length finishes the copy (most of it done already by the
/// thread) and lets the log restart, so it stays bounded.
const BACKSTOP_PAGES: c_int = 4_000;

/// The least time between two checkpoints of one thread: a checkpoint that cannot finish
/// (a reader still needs the log's pages) leaves the log long, and every commit asks again.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// This process's checkpoint thread for one database file; stopped when dropped.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Checkpoints the thread has run.
    done: AtomicU64,
}

#[derive(Default)]
struct State {
    requested: bool,
    stop: bool,
}

impl Shared {
    fn request(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.requested {
            state.requested = true;
            self.wake.notify_one();
        }
    }
}

impl Checkpointer {
    /// Starts the checkpoint thread of the database at `path`. If the thread cannot be
    /// started, connections keep SQLite's own checkpoints ([`Checkpointer::install`]
    /// does nothing).
    pub(crate) fn start(path: &Path) -> Checkpointer {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            done: AtomicU64::new(0),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            let path = path.to_path_buf();
            std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || run(&shared, &path))
        };
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(e) => {
                tracing::warn!(error = %e, "no checkpoint thread: commits checkpoint the database themselves");
                None
            }
        };
        Checkpointer { shared, thread }
    }

    /// Makes `conn`'s commits hand their checkpoints to this thread.
    ///
    /// `conn` must be closed before this `Checkpointer` is dropped: its commits call back
    /// into the state this `Checkpointer` owns. ([`super::db::Db`] keeps its connections
    /// in a field declared before its `Checkpointer`, so they are closed first.)
    pub(crate) fn install(&self, conn: &Connection) {
        if self.thread.is_none() {
            return;
        }
        let context = Arc::as_ptr(&self.shared) as *mut c_void;
        // SAFETY: `conn.handle()` is a live connection for the duration of the call;
        // `on_commit` only reads `context`, which points at the `Shared` this
        // `Checkpointer` keeps alive in its `Arc` for longer than `conn` lives (the
        // contract above). Setting a WAL hook replaces SQLite's automatic checkpoint,
        // which `on_commit` takes over.
        unsafe {
            ffi::sqlite3_wal_hook(conn.handle(), Some(on_commit), context);
        }
    }
}

impl Checkpointer {
    /// Checkpoints run by the thread so far.
    #[cfg(test)]
    pub(crate) fn done(&self) -> u64 {
        self.shared.done.load(Ordering::Relaxed)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            state.stop = true;
        }
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// SQLite's WAL hook: called after each commit with the log's length in pages.
unsafe extern "C" fn on_commit(
    context: *mut c_void,
    db: *mut ffi::sqlite3,
    name: *const c_char,
    pages: c_int,
) -> c_int {
    if pages >= BACKSTOP_PAGES {
        // SAFETY: `db` and `name` are what SQLite passed to this hook; checkpointing from
        // the hook is what SQLite's own automatic checkpoint does.
        unsafe {
            ffi::sqlite3_wal_checkpoint_v2(
                db,
                name,
                ffi::SQLITE_CHECKPOINT_PASSIVE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    } else if pages >= CHECKPOINT_PAGES {
        // SAFETY: `context` is the `Shared` that `Checkpointer::install` registered, alive
        // for as long as the connection (its contract).
        let shared = unsafe { &*(context as *const Shared) };
        shared.request();
    }
    ffi::SQLITE_OK
}

/// The checkpoint thread: waits for a request, checkpoints, until stopped.
fn run(shared: &Shared, path: &Path) {
    let mut conn: Option<Connection> = None;
    loop {
        {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            while !state.requested && !state.stop {
                state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.stop {
                return;
            }
            state.requested = false;
        }
        if conn.is_none() {
            match super::db::open_connection(path) {
                Ok(opened) => conn = Some(opened),
                Err(e) => tracing::warn!(error = %e, "checkpoint thread cannot open the database"),
            }
        }
        if let Some(c) = &conn {
            match c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                Ok(()) => {
                    shared.done.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "checkpoint failed; the next commit asks again");
                    conn = None;
                }
            }
        }
        std::thread::sleep(MIN_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::super::db::Db;
    use crate::clock::Clock;
    use crate::ports::PortError;

    fn file_len(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    /// Writes `n` transactions of 400 KB each to the `items` table.
    async fn write_megabytes(db: &Arc<Db>, n: usize, tag: &str) {
        for i in 0..n {
            let sk = format!("{tag}{i}");
            db.write("test write", move |tx| {
                tx.execute(
                    "INSERT INTO items (pk, sk, value, counters, version) VALUES ('t', ?1, ?2, '{}', 1)",
                    rusqlite::params![sk, "x".repeat(400_000)],
                )
                .map_err(|e| PortError::Permanent {
                    op: "test write",
                    message: e.to_string(),
                })?;
                Ok(())
            })
            .await
            .expect("write");
        }
    }

    /// Past 1,000 pages of log, a commit wakes the checkpoint thread, which moves the pages
    /// into the database file.
    #[tokio::test]
    async fn a_long_log_is_checkpointed_in_the_background() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("test.db");
        let db = Arc::new(Db::open(&path, Clock::system()).expect("open"));
        let empty = file_len(&path);
        // 12 MB: about 3,000 pages, past CHECKPOINT_PAGES and short of BACKSTOP_PAGES.
        write_megabytes(&db, 30, "a").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while file_len(&path) < empty + 8_000_000 {
            assert!(
                Instant::now() < deadline,
                "the database file is still {} bytes (the log {} bytes): nothing was checkpointed",
                file_len(&path),
                file_len(&path.with_extension("db-wal"))
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            db.checkpointer().done() >= 1,
            "no checkpoint ran on the thread"
        );
        // A steady stream of commits (96 MB, without a pause) does not make the log grow
        // without bound: past the backstop a commit finishes the copy and the log starts
        // over (a commit's checkpoint gives way while the thread's runs, so the log can
        // overshoot the backstop by a few commits).
        write_megabytes(&db, 240, "b").await;
        let bound = 2 * super::BACKSTOP_PAGES as u64 * 4096;
        let log = file_len(&path.with_extension("db-wal"));
        assert!(log < bound, "the log is {log} bytes (bound {bound})");
        drop(db);
    }
}
