//! The SQLite database shared by the queue, topic and key-value ports, and by every process
//! that opens the same data directory.
//!
//! Concurrency model:
//! - WAL journal, `synchronous = NORMAL` (durable against a process crash, which is what a
//!   killed worker is), a busy timeout so that writers wait for each other instead of failing;
//! - every read-modify-write runs in one short `BEGIN IMMEDIATE` transaction, so two
//!   processes can never both see a message as receivable and both take it;
//! - a `rusqlite::Connection` is not `Sync`: connections live in a small pool, and every
//!   call runs on `tokio::task::spawn_blocking` so the async runtime is never blocked;
//! - `SQLITE_BUSY` that survives the busy timeout becomes [`PortError::Transient`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rand::RngCore;
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};

use super::checkpoint::Checkpointer;
use crate::clock::Clock;
use crate::ports::{PortError, PortResult};

/// How long a writer waits for the database lock before the call fails as transient.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per process (per backend instance).
const POOL_SIZE: usize = 4;

/// How often a process purges expired rows.
const PURGE_INTERVAL_MS: i64 = 60_000;

/// Schema version stored in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 2;

/// What turns a version-1 database into the current schema.
const MIGRATE_FROM_1: &str =
    "ALTER TABLE subscriptions ADD COLUMN filter_since_ms INTEGER NOT NULL DEFAULT 0;";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS queues (
    name              TEXT PRIMARY KEY,
    dlq_name          TEXT,
    visibility_ms     INTEGER NOT NULL,
    max_receive_count INTEGER NOT NULL,
    retention_ms      INTEGER NOT NULL,
    tags              TEXT NOT NULL,
    created_at_ms     INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS messages (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue          TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    group_id       TEXT NOT NULL,
    dedup_id       TEXT NOT NULL,
    body           TEXT NOT NULL,
    attributes     TEXT NOT NULL,
    sent_at_ms     INTEGER NOT NULL,
    visible_at_ms  INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    receive_count  INTEGER NOT NULL DEFAULT 0,
    receipt        TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_group ON messages (queue, group_id, seq);
CREATE INDEX IF NOT EXISTS messages_by_expiry ON messages (queue, expires_at_ms);
CREATE INDEX IF NOT EXISTS messages_received ON messages (queue, group_id, visible_at_ms)
    WHERE receipt IS NOT NULL;

-- One row per non-empty message group: when the group may deliver next. Maintained by
-- `queues::refresh_group` after every change to the group's messages.
CREATE TABLE IF NOT EXISTS message_groups (
    queue           TEXT NOT NULL,
    group_id        TEXT NOT NULL,
    head_seq        INTEGER NOT NULL,
    available_at_ms INTEGER NOT NULL,
    PRIMARY KEY (queue, group_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS message_groups_ready ON message_groups (queue, available_at_ms, head_seq);

CREATE TABLE IF NOT EXISTS dedup (
    scope         TEXT NOT NULL,
    dedup_id      TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, dedup_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_by_expiry ON dedup (expires_at_ms);

CREATE TABLE IF NOT EXISTS topics (
    name          TEXT PRIMARY KEY,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS subscriptions (
    id              TEXT PRIMARY KEY,
    topic           TEXT NOT NULL,
    queue           TEXT NOT NULL,
    filter          TEXT NOT NULL,
    -- When the filter policy was set: it applies only after the propagation delay.
    filter_since_ms INTEGER NOT NULL DEFAULT 0,
    UNIQUE (topic, queue)
);

CREATE TABLE IF NOT EXISTS items (
    pk         TEXT NOT NULL,
    sk         TEXT NOT NULL,
    value      TEXT NOT NULL,
    counters   TEXT NOT NULL,
    version    INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_by_expiry ON items (expires_at) WHERE expires_at IS NOT NULL;
"#;

/// `n` random bytes, hex-encoded.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A random id shaped like a UUID (what SQS and SNS hand out as message ids).
pub(crate) fn random_id() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Maps a SQLite error to the port error classification.
pub(crate) fn sql_error(op: &'static str, e: rusqlite::Error) -> PortError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => PortError::Transient {
            op,
            message: format!("database busy: {e}"),
        },
        _ => PortError::Permanent {
            op,
            message: format!("database error: {e}"),
        },
    }
}

/// Extension to turn `rusqlite::Result` into `PortResult` with an operation name.
pub(crate) trait SqlResultExt<T> {
    fn op(self, op: &'static str) -> PortResult<T>;
}

impl<T> SqlResultExt<T> for rusqlite::Result<T> {
    fn op(self, op: &'static str) -> PortResult<T> {
        self.map_err(|e| sql_error(op, e))
    }
}

/// Names in `table`'s `name` column that start with `prefix`, sorted (queues, topics).
pub(crate) fn names_with_prefix(
    tx: &Transaction<'_>,
    op: &'static str,
    table: &'static str,
    prefix: &str,
) -> PortResult<Vec<String>> {
    let names: Vec<String> = tx
        .prepare_cached(&format!(
            "SELECT name FROM {table} WHERE name >= ?1 ORDER BY name"
        ))
        .op(op)?
        .query_map([prefix], |r| r.get(0))
        .op(op)?
        .collect::<Result<_, _>>()
        .op(op)?;
    Ok(names
        .into_iter()
        .take_while(|n| n.starts_with(prefix))
        .collect())
}

/// A small pool of connections to one database file.
pub(crate) struct Db {
    path: PathBuf,
    idle: Mutex<Pool>,
    returned: Condvar,
    /// When this process last deleted expired items and deduplication records.
    last_purge_ms: AtomicI64,
    /// This process's time: what is visible, expired or due is decided by it alone.
    clock: Clock,
    /// Checkpoints the WAL for the pool's connections. Declared after `idle`: the
    /// connections, which call into it, are closed before it is dropped.
    checkpointer: Checkpointer,
}

struct Pool {
    idle: Vec<Connection>,
    open: usize,
}

impl Db {
    /// Opens (creating if needed) the database and brings its schema up to date; `clock`
    /// decides visibility, deduplication windows, delays and expiry for this process.
    pub(crate) fn open(path: &Path, clock: Clock) -> PortResult<Db> {
        let conn = open_connection(path)?;
        init_schema(&conn)?;
        let checkpointer = Checkpointer::start(path);
        checkpointer.install(&conn);
        Ok(Db {
            path: path.to_path_buf(),
            idle: Mutex::new(Pool {
                idle: vec![conn],
                open: 1,
            }),
            returned: Condvar::new(),
            last_purge_ms: AtomicI64::new(0),
            clock,
            checkpointer,
        })
    }

    /// This database's checkpoint thread.
    #[cfg(test)]
    pub(crate) fn checkpointer(&self) -> &Checkpointer {
        &self.checkpointer
    }

    /// The clock this process reads the time from (cheap to clone into a transaction).
    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    fn checkout(&self) -> PortResult<Pooled<'_>> {
        let mut pool = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(Pooled {
                    db: self,
                    conn: Some(conn),
                });
            }
            if pool.open < POOL_SIZE {
                pool.open += 1;
                drop(pool);
                return match open_connection(&self.path) {
                    Ok(conn) => {
                        self.checkpointer.install(&conn);
                        Ok(Pooled {
                            db: self,
                            conn: Some(conn),
                        })
                    }
                    Err(e) => {
                        self.forget_one();
                        Err(e)
                    }
                };
            }
            pool = self.returned.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A connection was closed instead of returned: make room for a new one.
    fn forget_one(&self) {
        let mut pool = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        pool.open -= 1;
        drop(pool);
        self.returned.notify_one();
    }

    /// Runs `f` with a connection, on the blocking thread pool.
    pub(crate) async fn with_conn<T, F>(self: &Arc<Self>, op: &'static str, f: F) -> PortResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> PortResult<T> + Send + 'static,
    {
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut conn = db.checkout()?;
            f(conn.get())
        })
        .await
        .map_err(|e| PortError::Permanent {
            op,
            message: format!("database task failed: {e}"),
        })?
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction: committed when `f` returns `Ok`,
    /// rolled back when it returns `Err`.
    pub(crate) async fn write<T, F>(self: &Arc<Self>, op: &'static str, f: F) -> PortResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> PortResult<T> + Send + 'static,
    {
        self.with_conn(op, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .op(op)?;
            let value = f(&tx)?;
            tx.commit().op(op)?;
            Ok(value)
        })
        .await
    }

    /// Runs `f` in a read transaction (a consistent snapshot, no write lock).
    pub(crate) async fn read<T, F>(self: &Arc<Self>, op: &'static str, f: F) -> PortResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> PortResult<T> + Send + 'static,
    {
        self.with_conn(op, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Deferred)
                .op(op)?;
            let value = f(&tx)?;
            tx.commit().op(op)?;
            Ok(value)
        })
        .await
    }

    /// Deletes expired key-value items and deduplication records, at most once a minute per
    /// process (expired rows are already invisible; this only reclaims space).
    pub(crate) async fn purge_if_due(self: &Arc<Self>) -> PortResult<()> {
        const OP: &str = "purge expired rows";
        let now = self.clock.now_ms();
        let last = self.last_purge_ms.load(Ordering::Relaxed);
        if now - last < PURGE_INTERVAL_MS
            || self
                .last_purge_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        self.write(OP, move |tx| {
            tx.execute(
                "DELETE FROM items WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                [now.div_euclid(1000)],
            )
            .op(OP)?;
            tx.execute("DELETE FROM dedup WHERE expires_at_ms <= ?1", [now])
                .op(OP)?;
            Ok(())
        })
        .await
    }

    /// Holds the database write lock while `f` runs: a cross-process mutex (used to guard
    /// the keyring file).
    pub(crate) fn blocking_exclusive<T>(
        &self,
        op: &'static str,
        f: impl FnOnce() -> PortResult<T>,
    ) -> PortResult<T> {
        let mut conn = self.checkout()?;
        let tx = conn
            .get()
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .op(op)?;
        let value = f()?;
        tx.commit().op(op)?;
        Ok(value)
    }
}

/// A connection checked out of the pool. Dropped, it goes back to the pool, unless it was
/// left inside a transaction (after a panic): then it is closed and the pool may open another.
struct Pooled<'a> {
    db: &'a Db,
    conn: Option<Connection>,
}

impl Pooled<'_> {
    fn get(&mut self) -> &mut Connection {
        self.conn
            .as_mut()
            .expect("pooled connection present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if conn.is_autocommit() && !std::thread::panicking() {
            let mut pool = self.db.idle.lock().unwrap_or_else(|p| p.into_inner());
            pool.idle.push(conn);
            drop(pool);
            self.db.returned.notify_one();
        } else {
            drop(conn);
            self.db.forget_one();
        }
    }
}

pub(super) fn open_connection(path: &Path) -> PortResult<Connection> {
    const OP: &str = "open database";
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .op(OP)?;
    conn.busy_timeout(BUSY_TIMEOUT).op(OP)?;
    conn.set_prepared_statement_cache_capacity(64);
    // Switching to WAL needs a lock; another process may be doing the same right now.
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => break,
            Ok(mode) => {
                return Err(PortError::Permanent {
                    op: OP,
                    message: format!("could not enable WAL (journal mode is {mode})"),
                })
            }
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(sql_error(OP, e)),
        }
    }
    // Memory-mapped reads: every process's page cache is dropped whenever another process
    // writes, and without the map each re-read page is a pread (287,000 of them in the
    // bundled sample's first night, 49,000 with it).
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; PRAGMA mmap_size = 1073741824;",
    )
    .op(OP)?;
    Ok(conn)
}

fn init_schema(conn: &Connection) -> PortResult<()> {
    const OP: &str = "initialise database";
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .op(OP)?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    if version > SCHEMA_VERSION {
        return Err(PortError::Permanent {
            op: OP,
            message: format!(
                "database schema version {version} is newer than this build ({SCHEMA_VERSION})"
            ),
        });
    }
    // A version-1 database gets the new column; a new one the whole schema.
    let migrate = if version == 1 { MIGRATE_FROM_1 } else { SCHEMA };
    match conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {migrate} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    )) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            // Another process may have migrated it first, while this one waited.
            let now: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .op(OP)?;
            if now == SCHEMA_VERSION {
                Ok(())
            } else {
                Err(sql_error(OP, e))
            }
        }
    }
}
