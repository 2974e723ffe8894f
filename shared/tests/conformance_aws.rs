//! The conformance suite on the AWS backend, against a moto server that the harness
//! installs and starts itself (see `moto/mod.rs`). Every test gets a fresh backend whose
//! queues, topics, table, bucket and key aliases carry a name prefix of their own, so the
//! tests share one server without resets.

mod conformance;
use accessflow_testkit::moto;

use conformance::Fixture;

async fn setup() -> Fixture {
    let (backend, _prefix) = moto::backend("conf").await;
    Fixture {
        ports: backend.ports(),
        guard: Box::new(backend),
    }
}

conformance::conformance_suite!(setup);

// ---------------------------------------------------------------------------------------
// Multi-process: 2 child processes x 2 consumers + 2 consumers in this process, one SQS
// FIFO queue on the shared moto server. Smaller than the embedded run: moto handles a few
// hundred messages per second.

use std::time::Duration;

use accessflow_shared::aws::AwsBackend;
use conformance::mp;

const MP_PREFIX_ENV: &str = "ACCESSFLOW_MP_AWS_PREFIX";
const MP_DIR_ENV: &str = "ACCESSFLOW_MP_AWS_DIR";
const MP: mp::Run = mp::Run {
    queue: "mp-work",
    locks: "mp#locks",
    groups: 12,
    per_group: 10,
    children: 2,
    child_consumers: 2,
    parent_consumers: 2,
    behaviour: mp::Behaviour {
        release_one_in: 15,
        abandon_one_in: 40,
        abandon_visibility: Duration::from_secs(1),
    },
    visibility: Duration::from_secs(60),
    deadline: Duration::from_secs(120),
    child_test: "aws_mp_child",
};

/// The child half of `aws_multi_process_consumers_never_overlap_a_group`: does nothing
/// unless started by it (with the prefix and events directory in the environment).
#[test]
#[ignore = "child process of aws_multi_process_consumers_never_overlap_a_group"]
fn aws_mp_child() {
    let (Ok(prefix), Ok(dir)) = (std::env::var(MP_PREFIX_ENV), std::env::var(MP_DIR_ENV)) else {
        return;
    };
    mp::child_runtime().block_on(async {
        let backend = AwsBackend::connect(&moto::settings(&prefix))
            .await
            .expect("child: connect");
        MP.child(&backend.ports(), std::path::Path::new(&dir)).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_multi_process_consumers_never_overlap_a_group() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (backend, prefix) = moto::backend("mp").await;
    let env: [(&str, std::ffi::OsString); 3] = [
        (MP_PREFIX_ENV, prefix.into()),
        (MP_DIR_ENV, dir.clone().into()),
        ("ACCESSFLOW_MOTO_URL", moto::server().url.clone().into()),
    ];
    let summary = MP.parent(&backend.ports(), &dir, &env).await;
    assert!(summary.processes >= 2, "{summary:?}");
}
