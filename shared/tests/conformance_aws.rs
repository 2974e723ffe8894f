//! The conformance suite on the AWS backend, against a moto server that the harness
//! installs and starts itself (see `moto/mod.rs`). Every test gets a fresh backend whose
//! queues, topics, table, bucket and key aliases carry a name prefix of their own, so the
//! tests share one server without resets.

mod conformance;
mod moto;

use conformance::Fixture;

async fn setup() -> Fixture {
    let (backend, _prefix) = moto::backend("conf").await;
    Fixture {
        ports: backend.ports(),
        guard: Box::new(backend),
    }
}

conformance::conformance_suite!(setup);
