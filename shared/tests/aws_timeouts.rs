//! Item 4 of "never lose a night": every AWS call has an attempt and an operation timeout.
//! An endpoint that accepts connections and never answers (a hung load balancer, a
//! half-open connection) fails the call after the timeout instead of holding the caller,
//! and with it a message and its lease, forever.

use std::time::{Duration, Instant};

use accessflow_shared::aws::{AwsBackend, AwsSettings};
use accessflow_shared::ports::StoreKey;

#[tokio::test]
async fn a_call_to_an_endpoint_that_never_answers_fails_after_its_timeout() {
    // Accepts every connection, reads nothing, answers nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut settings = AwsSettings::new("unused-bucket");
    settings.region = Some("us-east-1".into());
    settings.endpoint_url = Some(url);
    settings.static_credentials = Some(("testing".into(), "testing".into()));
    // The shortest allowed: an attempt must outlast SQS's 20 s long poll.
    settings.attempt_timeout = Duration::from_secs(21);
    settings.operation_timeout = Duration::from_secs(21);
    let backend = AwsBackend::connect(&settings).await.unwrap();

    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(90),
        backend.ports().store.get(&StoreKey::new("pk", "sk")),
    )
    .await
    .expect("the call must not hang past its operation timeout");
    let err = result.expect_err("nothing answered");
    assert!(err.is_transient(), "a timeout is worth retrying: {err:?}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(20) && elapsed < Duration::from_secs(60),
        "failed after {elapsed:?}"
    );
}
