//! The embedded backend: every port on one machine, with the semantics of the AWS service
//! it stands for (DESIGN.md §4).
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

mod blobs;
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
}

impl EmbeddedBackend {
    /// Opens (creating as needed) the backend in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<EmbeddedBackend, PortError> {
        std::fs::create_dir_all(data_dir).map_err(|e| PortError::Permanent {
            op: "open embedded backend",
            message: format!("{}: {e}", data_dir.display()),
        })?;
        let db = Arc::new(db::Db::open(&data_dir.join(DATABASE_FILE))?);
        Ok(EmbeddedBackend {
            data_dir: data_dir.to_path_buf(),
            queues: Arc::new(SqliteQueues::new(Arc::clone(&db))),
            topics: Arc::new(SqliteTopics::new(Arc::clone(&db))),
            store: Arc::new(SqliteStore::new(Arc::clone(&db))),
            blobs: Arc::new(DirBlobStore::new(
                data_dir.join(BLOBS_DIR),
                data_dir.join("tmp"),
            )?),
            keys: Arc::new(LocalKeyring::new(data_dir.join(KEYRING_FILE), db)?),
            iam: Arc::new(FixtureIamSource::new()),
        })
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
            clock: crate::clock::Clock::system(),
        }
    }
}
