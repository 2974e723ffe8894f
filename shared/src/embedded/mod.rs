//! The embedded backend: every port on one machine, with the semantics of the AWS service
//! it stands for.
//!
//! Layout of a data directory:
//!
//! | path | what |
//! |---|---|
//! | `accessflow.db` | SQLite (WAL): queues, messages, topics, subscriptions, key-value items, deduplication records |
//! | `blobs/` | one file per blob key |
//! | `tmp/` | blobs being written (renamed into `blobs/` when complete) |
//! | `keyring.json` | one master key per customer (mode 0600) |
//!
//! Several processes may open the same data directory at once (a coordinator and worker
//! processes): every read-modify-write is one short `BEGIN IMMEDIATE` transaction.
//!
//! Time (visibility timeouts, receive timing, deduplication windows, delivery delays, TTLs)
//! is read from one [`Clock`] given at opening, per process; tests open the backend with a
//! manual clock and advance it instead of sleeping.

mod blobs;
mod checkpoint;
mod db;
mod iam_source;
mod keys;
mod queues;
mod store;
mod topics;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use blobs::DirBlobStore;
pub use iam_source::{
    FixtureIamSource, AUTHORIZATION_DETAILS_FILE, CREDENTIAL_REPORT_FILE, LAST_ACCESSED_FILE,
};
pub use keys::LocalKeyring;
pub use queues::SqliteQueues;
pub use store::{SqliteStore, CONDITIONAL_CHECK_FAILED};
pub use topics::SqliteTopics;

use crate::clock::Clock;
use crate::ports::{PortError, Ports};

/// File name of the SQLite database inside the data directory.
pub const DATABASE_FILE: &str = "accessflow.db";
/// File name of the keyring inside the data directory.
pub const KEYRING_FILE: &str = "keyring.json";
/// Directory of the blobs inside the data directory.
pub const BLOBS_DIR: &str = "blobs";

/// All six ports on one data directory.
pub struct EmbeddedBackend {
    data_dir: PathBuf,
    queues: Arc<SqliteQueues>,
    topics: Arc<SqliteTopics>,
    store: Arc<SqliteStore>,
    blobs: Arc<DirBlobStore>,
    keys: Arc<LocalKeyring>,
    iam: Arc<FixtureIamSource>,
    clock: Clock,
}

impl EmbeddedBackend {
    /// Opens (creating as needed) the backend in `data_dir`, on the system clock.
    pub fn open(data_dir: &Path) -> Result<EmbeddedBackend, PortError> {
        EmbeddedBackend::open_with_clock(data_dir, Clock::system())
    }

    /// Opens (creating as needed) the backend in `data_dir`; every port reads the time from
    /// `clock`, and [`EmbeddedBackend::ports`] hands the same clock on.
    pub fn open_with_clock(data_dir: &Path, clock: Clock) -> Result<EmbeddedBackend, PortError> {
        EmbeddedBackend::open_with(data_dir, clock, std::time::Duration::ZERO)
    }

    /// Like [`EmbeddedBackend::open_with_clock`]; a new or changed subscription's filter
    /// policy applies only `filter_propagation` after it was set (as SNS's can take up to
    /// 15 minutes): until then, publishes do not reach that subscription's queue.
    pub fn open_with(
        data_dir: &Path,
        clock: Clock,
        filter_propagation: std::time::Duration,
    ) -> Result<EmbeddedBackend, PortError> {
        std::fs::create_dir_all(data_dir).map_err(|e| PortError::Permanent {
            op: "open embedded backend",
            message: format!("{}: {e}", data_dir.display()),
        })?;
        let db = Arc::new(db::Db::open(&data_dir.join(DATABASE_FILE), clock.clone())?);
        Ok(EmbeddedBackend {
            data_dir: data_dir.to_path_buf(),
            queues: Arc::new(SqliteQueues::new(Arc::clone(&db))),
            topics: Arc::new(SqliteTopics::new(Arc::clone(&db), filter_propagation)),
            store: Arc::new(SqliteStore::new(Arc::clone(&db))),
            blobs: Arc::new(DirBlobStore::new(
                data_dir.join(BLOBS_DIR),
                data_dir.join("tmp"),
            )?),
            keys: Arc::new(LocalKeyring::new(data_dir.join(KEYRING_FILE), db)?),
            iam: Arc::new(FixtureIamSource::new()),
            clock,
        })
    }

    /// The clock every port of this backend reads the time from.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The data directory this backend lives in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Every port, ready to be cloned into tasks.
    pub fn ports(&self) -> Ports {
        Ports {
            queues: self.queues.clone(),
            topics: self.topics.clone(),
            store: self.store.clone(),
            blobs: self.blobs.clone(),
            keys: self.keys.clone(),
            iam: self.iam.clone(),
            clock: self.clock.clone(),
        }
    }
}

/// The embedded backend's time-dependent behaviour, on a manual clock: each test would fail
/// if a port read the system clock instead of the one it was opened with.
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::ports::{Condition, OutgoingMessage, QueueSpec, SendOutcome, StoreKey};

    const START_MS: i64 = 1_800_000_000_000;
    const MS: Duration = Duration::from_millis(1);

    fn open() -> (tempfile::TempDir, EmbeddedBackend, Ports) {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = EmbeddedBackend::open_with_clock(dir.path(), Clock::manual(START_MS))
            .expect("open embedded backend");
        let ports = backend.ports();
        (dir, backend, ports)
    }

    async fn make_queue(ports: &Ports, name: &str, visibility: Duration) {
        ports
            .queues
            .ensure_queue(&QueueSpec {
                name: name.to_string(),
                dlq_name: format!("{name}-dlq"),
                visibility_timeout: visibility,
                max_receive_count: 5,
                retention: Duration::from_secs(3600),
                tags: BTreeMap::new(),
            })
            .await
            .expect("ensure_queue");
    }

    async fn receive_now(ports: &Ports, queue: &str) -> Vec<String> {
        ports
            .queues
            .receive(queue, 10, None, Duration::ZERO)
            .await
            .expect("receive")
            .into_iter()
            .map(|m| m.body)
            .collect()
    }

    #[tokio::test]
    async fn ports_carry_the_clock_the_backend_was_opened_with() {
        let (_dir, backend, ports) = open();
        assert!(ports.clock.is_manual());
        assert!(backend.clock().advance(Duration::from_secs(7)));
        assert_eq!(ports.clock.now_ms(), START_MS + 7_000);
    }

    #[tokio::test]
    async fn a_received_message_comes_back_when_the_clock_passes_its_visibility_timeout() {
        let (_dir, _backend, ports) = open();
        make_queue(&ports, "q", Duration::from_secs(30)).await;
        ports
            .queues
            .send_batch("q", &[OutgoingMessage::new("g", "d1", "hello")])
            .await
            .unwrap();
        assert_eq!(receive_now(&ports, "q").await, vec!["hello"]);
        assert!(ports.clock.advance(Duration::from_secs(30) - MS));
        assert!(receive_now(&ports, "q").await.is_empty(), "still in flight");
        let depth = ports.queues.depth("q").await.unwrap();
        assert_eq!((depth.visible, depth.in_flight), (0, 1));
        assert!(ports.clock.advance(MS));
        let again = ports
            .queues
            .receive("q", 10, None, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].receive_count, 2);

        // A heartbeat counts from the clock's now.
        ports
            .queues
            .change_visibility("q", &again[0].receipt_handle, Duration::from_secs(600))
            .await
            .unwrap();
        assert!(ports.clock.advance(Duration::from_secs(600) - MS));
        assert!(receive_now(&ports, "q").await.is_empty());
        assert!(ports.clock.advance(MS));
        assert_eq!(receive_now(&ports, "q").await, vec!["hello"]);
    }

    #[tokio::test]
    async fn a_deduplication_id_is_dropped_for_five_minutes_of_clock_time() {
        let (_dir, _backend, ports) = open();
        make_queue(&ports, "q", Duration::from_secs(30)).await;
        ports.topics.ensure_topic("t").await.unwrap();
        let send = |body: &'static str| {
            let ports = ports.clone();
            async move {
                ports
                    .queues
                    .send_batch("q", &[OutgoingMessage::new("g", "same", body)])
                    .await
                    .unwrap()
                    .remove(0)
            }
        };
        let publish = |body: &'static str| {
            let ports = ports.clone();
            async move {
                ports
                    .topics
                    .publish_batch("t", &[OutgoingMessage::new("g", "same", body)])
                    .await
                    .unwrap()
                    .remove(0)
            }
        };
        assert!(matches!(send("one").await, SendOutcome::Sent { .. }));
        assert!(matches!(publish("one").await, SendOutcome::Sent { .. }));
        assert!(ports.clock.advance(Duration::from_secs(300) - MS));
        assert!(matches!(send("two").await, SendOutcome::Duplicate { .. }));
        assert!(matches!(
            publish("two").await,
            SendOutcome::Duplicate { .. }
        ));
        assert!(ports.clock.advance(MS));
        assert!(matches!(send("three").await, SendOutcome::Sent { .. }));
        assert!(matches!(publish("three").await, SendOutcome::Sent { .. }));
    }

    #[tokio::test]
    async fn a_delayed_message_is_delivered_when_the_clock_reaches_its_delay() {
        let (_dir, _backend, ports) = open();
        make_queue(&ports, "q", Duration::from_secs(30)).await;
        let mut later = OutgoingMessage::new("g", "d1", "later");
        later.delay = Duration::from_secs(10);
        ports.queues.send_batch("q", &[later]).await.unwrap();
        assert_eq!(ports.queues.depth("q").await.unwrap().delayed, 1);
        assert!(ports.clock.advance(Duration::from_secs(10) - MS));
        assert!(receive_now(&ports, "q").await.is_empty());
        assert!(ports.clock.advance(MS));
        assert_eq!(receive_now(&ports, "q").await, vec!["later"]);
    }

    #[tokio::test]
    async fn a_long_poll_sees_what_the_clock_makes_visible() {
        let (_dir, _backend, ports) = open();
        make_queue(&ports, "q", Duration::from_secs(30)).await;
        let mut later = OutgoingMessage::new("g", "d1", "later");
        later.delay = Duration::from_secs(60);
        ports.queues.send_batch("q", &[later]).await.unwrap();
        // The wait is real (tokio) time, but a minute of delay is clock time.
        let poll = {
            let ports = ports.clone();
            tokio::spawn(async move {
                ports
                    .queues
                    .receive("q", 10, None, Duration::from_secs(10))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(ports.clock.advance(Duration::from_secs(60)));
        let got = poll.await.unwrap().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body, "later");
    }

    #[tokio::test]
    async fn an_item_expires_when_the_clock_reaches_its_ttl() {
        let (_dir, _backend, ports) = open();
        let s = ports.store.as_ref();
        let key = StoreKey::new("p", "a");
        let expires = ports.clock.now_secs() + 10;
        s.put(&key, serde_json::json!(1), Some(expires), Condition::None)
            .await
            .unwrap();
        s.add(&key, &[("n".to_string(), 2)].into()).await.unwrap();
        assert!(ports.clock.advance(Duration::from_secs(10) - MS));
        assert!(s.get(&key).await.unwrap().is_some());
        assert_eq!(s.query("p", "").await.unwrap().len(), 1);
        assert!(ports.clock.advance(MS));
        assert!(s.get(&key).await.unwrap().is_none());
        assert!(s.query("p", "").await.unwrap().is_empty());
        // Gone for conditions too, and a new item starts afresh.
        s.put(&key, serde_json::json!(2), None, Condition::NotExists)
            .await
            .unwrap();
        let record = s.get(&key).await.unwrap().unwrap();
        assert_eq!(record.version, 1);
        assert!(record.counters.is_empty());
    }

    #[tokio::test]
    async fn expired_rows_are_purged_once_a_minute_of_clock_time() {
        let (dir, _backend, ports) = open();
        let s = ports.store.as_ref();
        let expires = Some(ports.clock.now_secs() + 1);
        // The first write purges (nothing yet) and starts the minute.
        s.put(
            &StoreKey::new("p", "a"),
            serde_json::json!(1),
            expires,
            Condition::None,
        )
        .await
        .unwrap();
        let rows = || {
            let raw = rusqlite::Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
            raw.query_row("SELECT COUNT(*) FROM items", [], |r| r.get::<_, i64>(0))
                .unwrap()
        };
        assert!(ports.clock.advance(Duration::from_secs(59)));
        s.put(
            &StoreKey::new("p", "b"),
            serde_json::json!(2),
            None,
            Condition::None,
        )
        .await
        .unwrap();
        assert_eq!(rows(), 2, "expired but not purged within the minute");
        assert!(ports.clock.advance(Duration::from_secs(1)));
        s.put(
            &StoreKey::new("p", "c"),
            serde_json::json!(3),
            None,
            Condition::None,
        )
        .await
        .unwrap();
        assert_eq!(rows(), 2, "the expired row was purged");
    }
}
