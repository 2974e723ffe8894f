//! The pipeline in-process, on the embedded backend: messages handed to `Pipeline::handle`
//! one by one (the consumer's job, done by hand here), and what they leave in the ledger,
//! the idempotency records and the blob store.
//!
//! The tenant registry and the run are set up as the coordinator does (`reconcile`, then
//! `start`), for one generated sample account. Time the pipeline reads comes from a manual
//! clock; a lease held by somebody else is written directly into the idempotency record
//! rather than waited for.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use accessflow_analysis::Engine;
use accessflow_samples::{generate_account, write_fixture_dir, SampleAccountSpec};
use accessflow_shared::clock::Clock;
use accessflow_shared::config::Settings;
use accessflow_shared::embedded::EmbeddedBackend;
use accessflow_shared::idempotency::{self, IdempotencyRecord, ItemStatus};
use accessflow_shared::ledger::{
    self, AccountState, AccountStatus, Ledger, RunHeader, TenantAccount, COUNTER_DONE,
};
use accessflow_shared::message::{AccountWork, WorkMessage};
use accessflow_shared::ports::{
    AccountLocator, AccountSnapshotRaw, Condition, IamSource, OutgoingMessage, PortError,
    PortResult, Ports, ReceivedMessage, WriteOp,
};
use accessflow_shared::step::Step;
use accessflow_worker::lease::Lease;
use accessflow_worker::pipeline::claim::{Claimed, Claims, StepError};
use accessflow_worker::pipeline::{report_prefix, Outcome, Pipeline};
use clap::Parser;

const CUSTOMER: &str = "acme";
const ACCOUNT: &str = "111122223333";
const RUN: &str = "n1";
const VISIBILITY_SECS: u64 = 30;
const MAX_RECEIVE_COUNT: u32 = 5;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

/// One account's deployment and opened run, with a pipeline over it.
struct Night {
    _dir: tempfile::TempDir,
    ports: Ports,
    settings: Settings,
    ledger: Ledger,
    pipeline: Pipeline,
    queue: String,
    principals: u32,
}

fn work() -> AccountWork {
    AccountWork {
        run_id: RUN.into(),
        customer: CUSTOMER.into(),
        account: ACCOUNT.into(),
    }
}

fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Night {
    /// A deployment in a fresh directory; `iam` replaces the fixture IAM source if given.
    async fn open(iam: Option<Arc<dyn IamSource>>) -> Night {
        Night::open_wrapping_iam(|fixtures| iam.unwrap_or(fixtures)).await
    }

    /// A deployment in a fresh directory whose IAM source is `wrap` of the fixture one.
    async fn open_wrapping_iam(
        wrap: impl FnOnce(Arc<dyn IamSource>) -> Arc<dyn IamSource>,
    ) -> Night {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let backend = EmbeddedBackend::open(&data).expect("embedded backend");
        let mut ports = backend.ports();
        // The time the pipeline reads; started at the wall clock, which the parts of the
        // backend not yet on `Clock` still read.
        ports.clock = Clock::manual(system_now_ms());
        ports.iam = wrap(ports.iam.clone());
        let settings = Cli::parse_from([
            "test".to_string(),
            "--data-dir".into(),
            data.display().to_string(),
            "--visibility-timeout-secs".into(),
            VISIBILITY_SECS.to_string(),
            "--max-receive-count".into(),
            MAX_RECEIVE_COUNT.to_string(),
        ])
        .settings;
        let names = settings.validate().expect("settings");

        let sample = generate_account(&SampleAccountSpec {
            account_id: ACCOUNT.into(),
            principals: 12,
            seed: 7,
            malformed_policy: false,
            resources: false,
        });
        let fixtures = dir.path().join("fixtures").join(ACCOUNT);
        write_fixture_dir(&sample, &fixtures).expect("fixtures");
        let principals = count_principals(&fixtures);

        // What `coordinator reconcile` and `coordinator start` do for one account.
        ports
            .keys
            .ensure_customer_key(CUSTOMER)
            .await
            .expect("customer key");
        ports
            .queues
            .ensure_queue(&settings.queue_spec(&names, CUSTOMER, ACCOUNT))
            .await
            .expect("queue");
        let ledger = Ledger::new(ports.store.clone());
        ledger
            .put_tenant(&TenantAccount {
                locator: AccountLocator {
                    customer: CUSTOMER.into(),
                    account: ACCOUNT.into(),
                    role_arn: None,
                    external_id: None,
                    fixture_dir: Some(fixtures.display().to_string()),
                    trusted_accounts: Vec::new(),
                    regions: Vec::new(),
                },
                size_hint: u64::from(principals),
                subscribed_at_ms: None,
            })
            .await
            .expect("tenant");
        ledger
            .open_run(&RunHeader {
                run_id: RUN.into(),
                as_of: "2026-11-25T02:00:00Z".into(),
                accounts: vec![(CUSTOMER.into(), ACCOUNT.into())],
                deadline: None,
                started_at: None,
            })
            .await
            .expect("run");

        let engine = Arc::new(Engine::new().expect("engine"));
        let queue = names.account_queue(CUSTOMER, ACCOUNT);
        let pipeline = Pipeline::new(ports.clone(), settings.clone(), names, engine);
        Night {
            _dir: dir,
            ports,
            settings,
            ledger,
            pipeline,
            queue,
            principals,
        }
    }

    async fn send(&self, message: OutgoingMessage) {
        self.ports
            .queues
            .send_batch(&self.queue, &[message])
            .await
            .expect("send");
    }

    async fn receive(&self) -> Vec<ReceivedMessage> {
        self.ports
            .queues
            .receive(&self.queue, 10, None, Duration::ZERO)
            .await
            .expect("receive")
    }

    fn lease(&self, receipts: Vec<String>) -> Lease {
        Lease::start(
            self.ports.queues.clone(),
            self.ports.store.clone(),
            &self.queue,
            receipts,
            self.settings.visibility_timeout(),
        )
    }

    /// Handles one message under its own lease, as the consumer would.
    async fn handle(&self, message: &ReceivedMessage) -> Outcome {
        let lease = self.lease(vec![message.receipt_handle.clone()]);
        self.pipeline.handle(&self.queue, message, &lease).await
    }

    /// Works the queue until it is empty, deleting what is done; every outcome must be
    /// `Delete`. Returns the messages handled, in order.
    async fn drain(&self) -> Vec<WorkMessage> {
        let mut handled = Vec::new();
        loop {
            let batch = self.receive().await;
            if batch.is_empty() {
                return handled;
            }
            for message in batch {
                let outcome = self.handle(&message).await;
                assert_eq!(outcome, Outcome::Delete, "message {}", message.body);
                self.ports
                    .queues
                    .delete_batch(&self.queue, std::slice::from_ref(&message.receipt_handle))
                    .await
                    .expect("delete");
                handled.push(WorkMessage::decode(&message.body).expect("a well-formed message"));
            }
        }
    }

    async fn state(&self) -> AccountState {
        self.ledger
            .account_state(RUN, CUSTOMER, ACCOUNT)
            .await
            .expect("ledger")
            .expect("account state")
            .0
    }

    async fn record(&self, step: Step) -> Option<IdempotencyRecord> {
        idempotency::record(self.ports.store.as_ref(), &record_key(step))
            .await
            .expect("record")
    }

    /// Writes `step`'s idempotency record as another worker holding it until `until_ms`.
    async fn hold_elsewhere(&self, step: Step, until_ms: i64) {
        let record = IdempotencyRecord {
            status: ItemStatus::InProgress,
            lease_until_ms: until_ms,
            owner: "other-worker:1:0000beef".into(),
            result_digest: None,
            reason: None,
        };
        self.ports
            .store
            .put(
                &record_key(step),
                serde_json::to_value(&record).expect("json"),
                None,
                Condition::None,
            )
            .await
            .expect("put record");
    }
}

fn record_key(step: Step) -> accessflow_shared::ports::StoreKey {
    idempotency::record_key(RUN, CUSTOMER, ACCOUNT, &step.to_string())
}

/// Users + roles in the generated authorization details: the items collect plans.
fn count_principals(fixtures: &Path) -> u32 {
    let text = std::fs::read(fixtures.join("authorization-details.json")).expect("fixture");
    let json: serde_json::Value = serde_json::from_slice(&text).expect("fixture json");
    let count = |key: &str| json[key].as_array().map_or(0, Vec::len);
    u32::try_from(count("UserDetailList") + count("RoleDetailList")).expect("count")
}

fn collect_message() -> OutgoingMessage {
    WorkMessage::CollectAccount { work: work() }.to_outgoing()
}

#[tokio::test]
async fn a_night_collects_analyzes_and_finalizes_into_the_reports() {
    let night = Night::open(None).await;
    night.send(collect_message()).await;
    let handled = night.drain().await;

    let items = night.principals;
    assert!(items > 0);
    // collect, then batches of consecutive principals covering every item once, then
    // finalize.
    assert!(matches!(
        handled.first(),
        Some(WorkMessage::CollectAccount { .. })
    ));
    assert!(matches!(
        handled.last(),
        Some(WorkMessage::FinalizeAccount { .. })
    ));
    let mut batches = Vec::new();
    for message in &handled[1..handled.len() - 1] {
        match message {
            WorkMessage::AnalyzePrincipals {
                first_item,
                principals,
                ..
            } => batches.push(Step::Items {
                first: *first_item,
                count: u32::try_from(principals.len()).expect("batch size"),
            }),
            other => panic!("expected a batch of principals, got {other:?}"),
        }
    }
    let mut next = 0;
    for batch in &batches {
        let Step::Items { first, count } = *batch else {
            unreachable!()
        };
        assert_eq!(first, next, "batches are consecutive: {batches:?}");
        next = first + count;
    }
    assert_eq!(next, items, "the batches cover every item: {batches:?}");
    let state = night.state().await;
    assert_eq!(state.progress.status, AccountStatus::Finalized);
    assert_eq!(state.progress.items, Some(items));
    assert!(!state.progress.partial, "{:?}", state.progress.reason);
    assert_eq!(state.done, u64::from(items));
    assert_eq!(state.failed, 0);
    let outcomes = night
        .ledger
        .item_outcomes(RUN, CUSTOMER, ACCOUNT)
        .await
        .expect("items");
    assert_eq!(outcomes.len(), items as usize);
    assert!(outcomes.values().all(|o| o.result_key.is_some()));
    // The last-accessed cache keeps only what the analysis reads, not the fetched
    // document's job metadata or entity counts.
    let caches = accessflow_shared::cache::Caches::new(
        night.ports.blobs.clone(),
        night.ports.store.clone(),
        accessflow_shared::crypto::Sealer::new(night.ports.keys.clone()),
        Duration::from_secs(3600),
        night.ports.clock.clone(),
    );
    let arns: Vec<String> = outcomes.values().map(|o| o.principal_arn.clone()).collect();
    let cached = caches
        .get_last_accessed_many(CUSTOMER, ACCOUNT, &arns)
        .await
        .expect("last-accessed cache");
    let documents: Vec<String> = cached
        .into_iter()
        .flatten()
        .flatten()
        .map(|bytes| String::from_utf8(bytes).expect("utf-8"))
        .collect();
    assert!(!documents.is_empty(), "no last-accessed data was cached");
    for document in &documents {
        assert!(document.contains("\"ServicesLastAccessed\""), "{document}");
        for dropped in ["JobStatus", "TotalAuthenticatedEntities"] {
            assert!(!document.contains(dropped), "{dropped} kept: {document}");
        }
    }
    // Each item's result is its own principal's (a batch's evaluations are split over the
    // cores and put back by index; on a machine with one core there is one part).
    for outcome in outcomes.values() {
        let key = outcome.result_key.as_deref().expect("result key");
        let json = caches
            .get_result(CUSTOMER, ACCOUNT, key)
            .await
            .expect("the result reads back");
        let result: accessflow_analysis::PrincipalAnalysis =
            serde_json::from_slice(&json).expect("result json");
        assert_eq!(result.principal.arn, outcome.principal_arn, "{key}");
    }
    for step in [Step::Collect, Step::Finalize { generation: 0 }]
        .into_iter()
        .chain(batches)
    {
        let record = night.record(step).await.expect("idempotency record");
        assert_eq!(record.status, ItemStatus::Done, "{step}");
    }

    let prefix = report_prefix(CUSTOMER, RUN, ACCOUNT);
    let report = night
        .ports
        .blobs
        .get(&format!("{prefix}/report.json"))
        .await
        .expect("blobs")
        .expect("report.json written");
    let report: serde_json::Value = serde_json::from_slice(&report).expect("report json");
    assert!(report.is_object());
    let refs = night
        .ledger
        .report_refs(CUSTOMER, ACCOUNT)
        .await
        .expect("refs");
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].principals, u64::from(items));

    // A late duplicate of an item (past the queue's deduplication window) changes nothing.
    let duplicate = WorkMessage::AnalyzePrincipal {
        work: work(),
        snapshot: state.progress.snapshot.clone().unwrap_or_default(),
        item: 0,
        principal_arn: outcomes[&0].principal_arn.clone(),
    };
    let mut resend = duplicate.to_outgoing();
    resend.dedup_id = format!("{}.late", resend.dedup_id);
    night.send(resend).await;
    assert_eq!(night.drain().await.len(), 1);
    let after = night.state().await;
    assert_eq!(after.done, u64::from(items));
    assert_eq!(after.progress.status, AccountStatus::Finalized);
}

#[tokio::test]
async fn a_step_held_by_another_live_owner_is_retried_after_its_lease() {
    let night = Night::open(None).await;
    let until = night.ports.clock.now_ms() + 20_000;
    night.hold_elsewhere(Step::Collect, until).await;
    night.send(collect_message()).await;
    let batch = night.receive().await;
    assert_eq!(batch.len(), 1);

    let outcome = night.handle(&batch[0]).await;
    match outcome {
        Outcome::Retry { after, reason } => {
            // What is left of the other lease, plus a margin.
            assert_eq!(after, Duration::from_millis(20_100), "{reason}");
            assert!(reason.contains("other-worker"), "{reason}");
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    // Nothing happened: the account is untouched, nothing was planned, and the other
    // owner's claim is still there (ours was never taken, so nothing was released).
    let state = night.state().await;
    assert_eq!(state.progress.status, AccountStatus::Published);
    assert_eq!(state.progress.items, None);
    let record = night.record(Step::Collect).await.expect("record");
    assert_eq!(record.owner, "other-worker:1:0000beef");
    assert_eq!(record.lease_until_ms, until);
    // The collect message itself is still in flight (not visible), and nothing was sent.
    assert!(night.receive().await.is_empty());
}

#[tokio::test]
async fn an_expired_claim_is_taken_over() {
    let night = Night::open(None).await;
    // Its holder died an hour ago.
    let until = night.ports.clock.now_ms() - 3_600_000;
    night.hold_elsewhere(Step::Collect, until).await;
    night.send(collect_message()).await;
    night.drain().await;
    let state = night.state().await;
    assert_eq!(state.progress.status, AccountStatus::Finalized);
    assert_eq!(state.done, u64::from(night.principals));
}

/// Collects that fail transiently, always.
struct UnreachableIam;

#[async_trait::async_trait]
impl IamSource for UnreachableIam {
    async fn fetch_account(&self, _: &AccountLocator) -> PortResult<AccountSnapshotRaw> {
        Err(PortError::Transient {
            op: "fetch_account",
            message: "throttled by the customer's account".into(),
        })
    }

    async fn last_accessed(&self, _: &AccountLocator, _: &str) -> PortResult<Option<Vec<u8>>> {
        Ok(None)
    }
}

#[tokio::test]
async fn a_transient_collect_failure_on_the_workers_last_try_fails_the_account_and_dead_letters() {
    let night = Night::open(Some(Arc::new(UnreachableIam))).await;
    night.send(collect_message()).await;
    // The poison guard: the worker's last try is the receive before the queue's last.
    for receive in 1..MAX_RECEIVE_COUNT {
        let batch = night.receive().await;
        assert_eq!(batch.len(), 1, "receive {receive}");
        assert_eq!(batch[0].receive_count, receive);
        let outcome = night.handle(&batch[0]).await;
        if receive < MAX_RECEIVE_COUNT - 1 {
            assert!(
                matches!(&outcome, Outcome::Retry { reason, .. } if reason.contains("throttled")),
                "receive {receive}: {outcome:?}"
            );
            // Not failed yet, and the claim was given back for the next receive.
            assert_eq!(
                night.state().await.progress.status,
                AccountStatus::Published
            );
            let record = night.record(Step::Collect).await.expect("record");
            assert_eq!(
                (record.status, record.lease_until_ms),
                (ItemStatus::InProgress, 0),
                "released, its version kept"
            );
            night
                .ports
                .queues
                .change_visibility(&night.queue, &batch[0].receipt_handle, Duration::ZERO)
                .await
                .expect("visibility");
            continue;
        }
        let Outcome::DeadLetter { reason } = outcome else {
            panic!("expected a dead letter on the last receive, got {outcome:?}");
        };
        assert!(
            reason.contains("collecting the account failed on its last allowed attempt")
                && reason.contains("throttled"),
            "{reason}"
        );
        let state = night.state().await;
        assert_eq!(state.progress.status, AccountStatus::Failed);
        assert_eq!(state.progress.reason.as_deref(), Some(reason.as_str()));
        let record = night.record(Step::Collect).await.expect("record");
        assert_eq!(record.status, ItemStatus::Failed);
        assert_eq!(record.reason.as_deref(), Some(reason.as_str()));
        let errors = night
            .ledger
            .message_errors(RUN, CUSTOMER, ACCOUNT)
            .await
            .expect("errors");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].step, "collect");
        assert_eq!(errors[0].reason, reason);
    }
}

/// The fixture IAM source, except that one last-accessed fetch (the `fail_at`-th, from 1)
/// fails transiently; every fetch is recorded.
struct OneFailingFetch {
    fixtures: Arc<dyn IamSource>,
    fail_at: usize,
    fetches: Arc<std::sync::Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl IamSource for OneFailingFetch {
    async fn fetch_account(&self, locator: &AccountLocator) -> PortResult<AccountSnapshotRaw> {
        self.fixtures.fetch_account(locator).await
    }

    async fn last_accessed(
        &self,
        locator: &AccountLocator,
        arn: &str,
    ) -> PortResult<Option<Vec<u8>>> {
        let call = {
            let mut fetches = self.fetches.lock().expect("fetches");
            fetches.push(arn.to_string());
            fetches.len()
        };
        if call == self.fail_at {
            return Err(PortError::Transient {
                op: "last_accessed",
                message: "throttled by the customer's account".into(),
            });
        }
        self.fixtures.last_accessed(locator, arn).await
    }
}

#[tokio::test]
async fn a_batch_retried_after_a_failed_fetch_does_not_fetch_again_what_it_had_fetched() {
    const FAIL_AT: usize = 5;
    let fetches = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = fetches.clone();
    let night = Night::open_wrapping_iam(move |fixtures| {
        Arc::new(OneFailingFetch {
            fixtures,
            fail_at: FAIL_AT,
            fetches: recorded,
        })
    })
    .await;
    assert!(
        night.principals as usize > FAIL_AT,
        "the failure is mid-batch"
    );
    night.send(collect_message()).await;
    let mut retried = 0;
    loop {
        let batch = night.receive().await;
        if batch.is_empty() {
            break;
        }
        for (index, message) in batch.iter().enumerate() {
            match night.handle(message).await {
                Outcome::Delete => night
                    .ports
                    .queues
                    .delete_batch(&night.queue, std::slice::from_ref(&message.receipt_handle))
                    .await
                    .expect("delete"),
                Outcome::Retry { reason, .. } => {
                    assert!(reason.contains("throttled"), "{reason}");
                    retried += 1;
                    // It and the rest of this receive come back, in order.
                    for held in &batch[index..] {
                        night
                            .ports
                            .queues
                            .change_visibility(&night.queue, &held.receipt_handle, Duration::ZERO)
                            .await
                            .expect("visibility");
                    }
                    break;
                }
                other => panic!("unexpected outcome {other:?}"),
            }
        }
    }
    assert_eq!(retried, 1, "one batch was retried");
    let state = night.state().await;
    assert_eq!(state.progress.status, AccountStatus::Finalized);
    assert_eq!(state.done, u64::from(night.principals));

    // Every principal fetched once, but the one whose fetch failed: twice. The four fetched
    // before the failure were stored with it, so the retry did not fetch them again.
    let fetches = fetches.lock().expect("fetches").clone();
    let failed = fetches[FAIL_AT - 1].clone();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for arn in &fetches {
        *counts.entry(arn.as_str()).or_default() += 1;
    }
    assert_eq!(counts.len(), night.principals as usize, "{fetches:?}");
    for (arn, count) in &counts {
        let expected = if *arn == failed { 2 } else { 1 };
        assert_eq!(*count, expected, "{arn} fetched {count} times: {fetches:?}");
    }
}

/// The claim protocol on its own: a holder whose claim moved (another holder took the step
/// over) cannot land its effect.
#[tokio::test]
async fn a_commit_after_the_claim_moved_lands_nothing() {
    let night = Night::open(None).await;
    let claims = Claims::new(
        night.ports.store.clone(),
        "me:1:00000001",
        night.settings.visibility_timeout(),
        night.ports.clock.clone(),
    );
    let add_done = |token: &idempotency::ClaimToken| {
        vec![
            idempotency::finish_op(token, ItemStatus::Done, None, None),
            WriteOp::Add {
                key: ledger::account_key(RUN, CUSTOMER, ACCOUNT),
                deltas: BTreeMap::from([(COUNTER_DONE.to_string(), 1)]),
                condition: Condition::Exists,
            },
        ]
    };

    // 1. Another holder took over and is still working: our commit is refused and retried.
    let lease = night.lease(Vec::new());
    let claimed = claims
        .claim(&work(), Step::Item(3), &lease, false)
        .await
        .expect("claim");
    assert_eq!(claimed, Claimed::Acquired);
    let until = night.ports.clock.now_ms() + 30_000;
    night.hold_elsewhere(Step::Item(3), until).await;
    let result = claims.commit(&lease, add_done).await;
    assert!(
        matches!(&result, Err(StepError::Transient(reason)) if reason.contains("committing")),
        "{result:?}"
    );
    assert_eq!(night.state().await.done, 0);
    let record = night.record(Step::Item(3)).await.expect("record");
    assert_eq!(record.status, ItemStatus::InProgress);
    assert_eq!(
        record.owner, "other-worker:1:0000beef",
        "not released by us"
    );

    // 2. Another holder took over and finished (its effect landed once): ours is dropped,
    // and the step counts as done.
    let lease = night.lease(Vec::new());
    assert_eq!(
        claims
            .claim(&work(), Step::Item(4), &lease, false)
            .await
            .expect("claim"),
        Claimed::Acquired
    );
    let other = Claims::new(
        night.ports.store.clone(),
        "other-worker:1:0000beef",
        night.settings.visibility_timeout(),
        night.ports.clock.clone(),
    );
    night
        .hold_elsewhere(Step::Item(4), night.ports.clock.now_ms() - 1)
        .await;
    let other_lease = night.lease(Vec::new());
    assert_eq!(
        other
            .claim(&work(), Step::Item(4), &other_lease, false)
            .await
            .expect("take over"),
        Claimed::Acquired
    );
    other
        .commit(&other_lease, add_done)
        .await
        .expect("other commit");
    assert_eq!(night.state().await.done, 1);
    claims
        .commit(&lease, add_done)
        .await
        .expect("dropped quietly");
    assert_eq!(night.state().await.done, 1, "nothing double-counted");
    assert_eq!(
        night.record(Step::Item(4)).await.expect("record").status,
        ItemStatus::Done
    );

    // And a claim on a finished step finds it finished.
    let lease = night.lease(Vec::new());
    assert_eq!(
        claims
            .claim(&work(), Step::Item(4), &lease, false)
            .await
            .expect("claim"),
        Claimed::Finished
    );
    assert!(!lease.holds_claim().await);
}

/// Handles every message in the queue; the bodies in `forged` must be dead-lettered (their
/// reasons are returned), every other message must be `Delete`.
async fn drain_with_forgeries(night: &Night, forged: &[String]) -> Vec<String> {
    let mut reasons = Vec::new();
    loop {
        let batch = night.receive().await;
        if batch.is_empty() {
            return reasons;
        }
        for message in batch {
            let outcome = night.handle(&message).await;
            if forged.contains(&message.body) {
                match outcome {
                    Outcome::DeadLetter { reason } => reasons.push(reason),
                    other => panic!("forged {} was not dead-lettered: {other:?}", message.body),
                }
            } else {
                assert_eq!(outcome, Outcome::Delete, "message {}", message.body);
            }
            night
                .ports
                .queues
                .delete_batch(&night.queue, std::slice::from_ref(&message.receipt_handle))
                .await
                .expect("delete");
        }
    }
}

/// Item 12 of "never lose a night": counts in a forged message are checked before use.
/// `items = u32::MAX` used to abort the worker in `Vec::with_capacity`; a finalize whose
/// count disagrees with collect's plan must neither build a report nor take the real
/// finalize's idempotency record.
#[tokio::test]
async fn forged_counts_are_dead_lettered_with_their_reason_and_the_night_completes() {
    let night = Night::open(None).await;
    let snapshot = "ab".repeat(32);
    let huge = WorkMessage::FinalizeAccount {
        work: work(),
        snapshot: snapshot.clone(),
        items: u32::MAX,
        generation: 0,
    }
    .encode();
    night
        .send(OutgoingMessage::new(ACCOUNT, "forged-huge", huge.clone()))
        .await;
    let reasons = drain_with_forgeries(&night, std::slice::from_ref(&huge)).await;
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("`items`"), "{}", reasons[0]);

    // Collect, then a finalize that claims one item more than collect planned, queued
    // behind the real finalize in the account's group.
    night.send(collect_message()).await;
    let batch = night.receive().await;
    assert_eq!(batch.len(), 1);
    assert_eq!(night.handle(&batch[0]).await, Outcome::Delete);
    night
        .ports
        .queues
        .delete_batch(&night.queue, std::slice::from_ref(&batch[0].receipt_handle))
        .await
        .expect("delete");
    let planned = night.state().await.progress;
    let real_snapshot = planned.snapshot.clone().expect("snapshot planned");
    let wrong = WorkMessage::FinalizeAccount {
        work: work(),
        snapshot: real_snapshot,
        items: night.principals + 1,
        generation: 0,
    }
    .encode();
    night
        .send(OutgoingMessage::new(ACCOUNT, "forged-wrong", wrong.clone()))
        .await;
    let reasons = drain_with_forgeries(&night, std::slice::from_ref(&wrong)).await;
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].contains("collect planned"),
        "the reason says what disagrees: {}",
        reasons[0]
    );

    let state = night.state().await;
    assert_eq!(state.progress.status, AccountStatus::Finalized);
    assert_eq!(state.done, u64::from(night.principals));
    let record = night
        .record(Step::Finalize { generation: 0 })
        .await
        .expect("finalize record");
    assert_eq!(record.status, ItemStatus::Done);
}

/// Reads the fixture account, but while it does, another worker takes the collect step
/// over (this one stalled past its lease).
struct TakenOverWhileCollecting {
    store: std::sync::OnceLock<Arc<dyn accessflow_shared::ports::KeyValueStore>>,
    clock: std::sync::OnceLock<Clock>,
}

#[async_trait::async_trait]
impl IamSource for TakenOverWhileCollecting {
    async fn fetch_account(&self, locator: &AccountLocator) -> PortResult<AccountSnapshotRaw> {
        let (Some(store), Some(clock)) = (self.store.get(), self.clock.get()) else {
            panic!("the test wires the store and clock in first");
        };
        let record = IdempotencyRecord {
            status: ItemStatus::InProgress,
            lease_until_ms: clock.now_ms() + 60_000,
            owner: "other-worker:1:0000beef".into(),
            result_digest: None,
            reason: None,
        };
        let key = record_key(Step::Collect);
        let current = store.get(&key).await?.expect("our claim");
        store
            .put(
                &key,
                serde_json::to_value(&record).expect("json"),
                None,
                Condition::VersionIs(current.version),
            )
            .await?;
        let dir = Path::new(locator.fixture_dir.as_deref().expect("fixture dir"));
        Ok(AccountSnapshotRaw {
            authorization_details: std::fs::read(dir.join("authorization-details.json"))
                .expect("fixture"),
            credential_report: Vec::new(),
            resources: None,
        })
    }

    async fn last_accessed(&self, _: &AccountLocator, _: &str) -> PortResult<Option<Vec<u8>>> {
        Ok(None)
    }
}

/// Item 11 of "never lose a night": collect's sends are fenced. A collect whose claim was
/// taken over while it worked sends no item, and leaves the account to the new holder.
#[tokio::test]
async fn a_collect_that_lost_its_claim_sends_nothing() {
    let source = Arc::new(TakenOverWhileCollecting {
        store: Default::default(),
        clock: Default::default(),
    });
    let night = Night::open(Some(source.clone())).await;
    assert!(source.store.set(night.ports.store.clone()).is_ok());
    assert!(source.clock.set(night.ports.clock.clone()).is_ok());
    night.send(collect_message()).await;
    let batch = night.receive().await;
    assert_eq!(batch.len(), 1);
    let outcome = night.handle(&batch[0]).await;
    assert!(
        matches!(&outcome, Outcome::Retry { reason, .. } if reason.contains("another holder")),
        "{outcome:?}"
    );
    night
        .ports
        .queues
        .delete_batch(&night.queue, std::slice::from_ref(&batch[0].receipt_handle))
        .await
        .expect("delete");
    let depth = night.ports.queues.depth(&night.queue).await.expect("depth");
    assert_eq!(depth.total(), 0, "no item was sent: {depth:?}");
    let state = night.state().await;
    assert_eq!(state.progress.status, AccountStatus::Published);
    let record = night.record(Step::Collect).await.expect("record");
    assert_eq!(
        record.owner, "other-worker:1:0000beef",
        "the new holder's claim stands"
    );
}

/// Item 3 of "never lose a night": the poison guard. Every earlier receive of a collect
/// died without a word (workers killed mid-step); on the queue's last receive, where one
/// more death would dead-letter the message unrecorded, the worker does not try again: it
/// marks the account failed with the reason and dead-letters the message itself, so the
/// run completes.
#[tokio::test]
async fn a_collect_whose_every_receive_died_is_failed_before_the_queue_drops_it() {
    let night = Night::open(None).await;
    night.send(collect_message()).await;
    for receive in 1..MAX_RECEIVE_COUNT {
        // A worker receives it and dies: the message comes back after its visibility.
        let batch = night.receive().await;
        assert_eq!(batch[0].receive_count, receive);
        night
            .ports
            .queues
            .change_visibility(&night.queue, &batch[0].receipt_handle, Duration::ZERO)
            .await
            .expect("visibility");
    }
    let batch = night.receive().await;
    assert_eq!(batch[0].receive_count, MAX_RECEIVE_COUNT);
    let Outcome::DeadLetter { reason } = night.handle(&batch[0]).await else {
        panic!("the queue's last receive must be settled by the worker");
    };
    assert!(
        reason.contains(&format!(
            "received {MAX_RECEIVE_COUNT} times without finishing"
        )),
        "{reason}"
    );
    let state = night.state().await;
    assert_eq!(state.progress.status, AccountStatus::Failed);
    assert_eq!(state.progress.items, None, "nothing was collected");
    let errors = night
        .ledger
        .message_errors(RUN, CUSTOMER, ACCOUNT)
        .await
        .expect("errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].step, "collect");
}

/// A customer account whose IAM calls never answer.
struct HangingIam;

#[async_trait::async_trait]
impl IamSource for HangingIam {
    async fn fetch_account(&self, _: &AccountLocator) -> PortResult<AccountSnapshotRaw> {
        std::future::pending().await
    }

    async fn last_accessed(&self, _: &AccountLocator, _: &str) -> PortResult<Option<Vec<u8>>> {
        std::future::pending().await
    }
}

/// Item 4 of "never lose a night": a message has a maximum hold time. A collect stuck in a
/// call that never returns is abandoned after it: the consumer records why against the
/// step, gives the claim back and releases the message, instead of extending its
/// visibility forever.
#[tokio::test]
async fn a_message_held_past_its_maximum_is_released_with_the_reason_recorded() {
    use accessflow_worker::consumer::{self, Consumer, ConsumerOptions};
    use accessflow_worker::shutdown::Shutdown;

    let night = Night::open(Some(Arc::new(HangingIam))).await;
    let names = night.settings.validate().expect("names");
    let engine = Arc::new(Engine::new().expect("engine"));
    let pipeline = Arc::new(Pipeline::new(
        night.ports.clone(),
        night.settings.clone(),
        names.clone(),
        engine,
    ));
    let consumer = Consumer::new(
        pipeline,
        night.ports.clone(),
        names,
        night.settings.visibility_timeout(),
    );
    night.send(collect_message()).await;
    let shutdown = Shutdown::new();
    let options = ConsumerOptions {
        concurrency: 1,
        idle_pause: Duration::from_millis(20),
        max_hold: Duration::from_millis(500),
        stop_timeout: Duration::from_secs(2),
        ..ConsumerOptions::default()
    };
    let running = tokio::spawn(consumer::run(consumer, options, shutdown.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let errors = loop {
        let errors = night
            .ledger
            .message_errors(RUN, CUSTOMER, ACCOUNT)
            .await
            .expect("errors");
        if !errors.is_empty() {
            break errors;
        }
        assert!(std::time::Instant::now() < deadline, "nothing was recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    shutdown.trigger();
    running.await.expect("consumer task").expect("consumer");
    assert_eq!(errors[0].step, "collect");
    assert!(
        errors[0].reason.contains("held for more than") && errors[0].reason.contains("released"),
        "{}",
        errors[0].reason
    );
    // Released, not held: the step's claim is not held by a live lease (a receive after
    // shutdown was triggered is abandoned the same way, within the stop timeout).
    let record = night.record(Step::Collect).await.expect("record");
    assert_eq!(record.status, ItemStatus::InProgress);
    assert!(
        record.lease_until_ms <= night.ports.clock.now_ms() + 1,
        "the claim was given back: {record:?}"
    );
}

/// The embedded queues, counting the receives on each queue: (all, empty).
struct CountingQueues {
    inner: Arc<dyn accessflow_shared::ports::WorkQueues>,
    counts: std::sync::Mutex<BTreeMap<String, (u64, u64)>>,
}

impl CountingQueues {
    fn new(inner: Arc<dyn accessflow_shared::ports::WorkQueues>) -> CountingQueues {
        CountingQueues {
            inner,
            counts: Default::default(),
        }
    }

    fn counts(&self, queue: &str) -> (u64, u64) {
        self.counts
            .lock()
            .expect("counts")
            .get(queue)
            .copied()
            .unwrap_or_default()
    }

    fn receives(&self, queue: &str) -> u64 {
        self.counts(queue).0
    }

    fn empty_receives(&self, queue: &str) -> u64 {
        self.counts(queue).1
    }
}

#[async_trait::async_trait]
impl accessflow_shared::ports::WorkQueues for CountingQueues {
    async fn ensure_queue(&self, spec: &accessflow_shared::ports::QueueSpec) -> PortResult<()> {
        self.inner.ensure_queue(spec).await
    }
    async fn delete_queue(&self, name: &str) -> PortResult<()> {
        self.inner.delete_queue(name).await
    }
    async fn list_queues(&self, prefix: &str) -> PortResult<Vec<String>> {
        self.inner.list_queues(prefix).await
    }
    async fn send_batch(
        &self,
        queue: &str,
        messages: &[OutgoingMessage],
    ) -> PortResult<Vec<accessflow_shared::ports::SendOutcome>> {
        self.inner.send_batch(queue, messages).await
    }
    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Option<Duration>,
        wait: Duration,
    ) -> PortResult<Vec<ReceivedMessage>> {
        let got = self.inner.receive(queue, max, visibility, wait).await;
        let mut counts = self.counts.lock().expect("counts");
        let (all, empty) = counts.entry(queue.to_string()).or_default();
        *all += 1;
        if got.as_ref().is_ok_and(|m| m.is_empty()) {
            *empty += 1;
        }
        got
    }
    async fn delete_batch(&self, queue: &str, receipt_handles: &[String]) -> PortResult<()> {
        self.inner.delete_batch(queue, receipt_handles).await
    }
    async fn change_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        timeout: Duration,
    ) -> PortResult<()> {
        self.inner
            .change_visibility(queue, receipt_handle, timeout)
            .await
    }
    async fn change_visibility_batch(
        &self,
        queue: &str,
        receipt_handles: &[String],
        timeout: Duration,
    ) -> PortResult<()> {
        self.inner
            .change_visibility_batch(queue, receipt_handles, timeout)
            .await
    }
    async fn depth(&self, queue: &str) -> PortResult<accessflow_shared::ports::QueueDepth> {
        self.inner.depth(queue).await
    }
    async fn dlq_of(&self, queue: &str) -> PortResult<String> {
        self.inner.dlq_of(queue).await
    }
}

/// Starts a consumer (`worker serve`'s loop, one slot) whose receives are counted: a 20 ms
/// idle pause, and a list of active accounts read again only after far longer than a test
/// takes, so only dropping a finished queue stops its polling.
fn start_counted_consumer(
    night: &Night,
    engine: &Arc<Engine>,
    shutdown: &accessflow_worker::shutdown::Shutdown,
) -> (
    Arc<CountingQueues>,
    tokio::task::JoinHandle<Result<(), accessflow_shared::ports::PortError>>,
) {
    use accessflow_worker::consumer::{self, Consumer, ConsumerOptions};

    let names = night.settings.validate().expect("names");
    let counting = Arc::new(CountingQueues::new(night.ports.queues.clone()));
    let mut ports = night.ports.clone();
    ports.queues = counting.clone();
    let pipeline = Arc::new(Pipeline::new(
        ports.clone(),
        night.settings.clone(),
        names.clone(),
        engine.clone(),
    ));
    let consumer = Consumer::new(pipeline, ports, names, night.settings.visibility_timeout());
    let options = ConsumerOptions {
        concurrency: 1,
        idle_pause: Duration::from_millis(20),
        refresh_every: Duration::from_secs(3600),
        stop_timeout: Duration::from_secs(5),
        ..ConsumerOptions::default()
    };
    let running = tokio::spawn(consumer::run(consumer, options, shutdown.clone()));
    (counting, running)
}

/// Waits (up to 60 s) until the night's account is finalized and has left the ledger's
/// active set.
async fn wait_until_finalized_and_retired(night: &Night) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let state = night.state().await;
        let active = night
            .ledger
            .active_accounts()
            .await
            .expect("active accounts");
        if state.progress.status == AccountStatus::Finalized && active.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the night did not finish: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two workers on one account: once the night is done, neither polls its queue any more,
/// long before they would read the active accounts again. Only one of them retires the
/// account from the ledger; the other finds it finished and empty and drops it too (it
/// used to keep polling it after every sweep until its next read of the list).
#[tokio::test]
async fn after_a_night_no_worker_polls_the_finished_account() {
    let night = Night::open(None).await;
    let engine = Arc::new(Engine::new().expect("engine"));
    let shutdown = accessflow_worker::shutdown::Shutdown::new();
    let (counters, running): (Vec<_>, Vec<_>) = (0..2)
        .map(|_| start_counted_consumer(&night, &engine, &shutdown))
        .unzip();
    night.send(collect_message()).await;

    // The night finishes and the account leaves the ledger's active set.
    wait_until_finalized_and_retired(&night).await;
    // Each worker's last sweeps (at most its idle pause, 20 ms doubling to 160 ms) end
    // with one empty receive that drops the queue; then nothing for well over a pause.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let settled: Vec<u64> = counters.iter().map(|c| c.receives(&night.queue)).collect();
    assert!(
        settled.iter().all(|n| *n > 0),
        "both workers polled: {settled:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later: Vec<u64> = counters.iter().map(|c| c.receives(&night.queue)).collect();
    assert_eq!(later, settled, "a worker kept polling the finished account");

    shutdown.trigger();
    for run in running {
        run.await.expect("consumer task").expect("consumer");
    }
}

/// One worker: the task that receives the collect keeps the account's group. It receives
/// the batches and the finalize itself and retires the account after the finalize, so
/// not one receive comes back empty, and none is made after the night.
#[tokio::test]
async fn a_task_keeps_its_account_from_collect_to_finalize_and_retires_it() {
    let night = Night::open(None).await;
    let engine = Arc::new(Engine::new().expect("engine"));
    let shutdown = accessflow_worker::shutdown::Shutdown::new();
    // Sent before the worker starts, so that its first receive finds it.
    night.send(collect_message()).await;
    let (counting, running) = start_counted_consumer(&night, &engine, &shutdown);

    wait_until_finalized_and_retired(&night).await;
    // At most one batch per principal, and a finalize.
    let messages = u64::from(night.principals) + 1;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let receives = counting.receives(&night.queue);
    assert_eq!(
        counting.empty_receives(&night.queue),
        0,
        "{receives} receives, some of them empty"
    );
    // The collect alone, then the batches and the finalize, up to 10 a receive.
    assert!(
        receives >= 2 && receives <= 1 + messages.div_ceil(10),
        "{receives} receives for at most {messages} messages after the collect"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        counting.receives(&night.queue),
        receives,
        "the worker polled the finished account"
    );

    shutdown.trigger();
    running.await.expect("consumer task").expect("consumer");
}
