//! `FinalizeAccount`: the account's items aggregated into its reports.
//!
//! It runs after every item of its FIFO group has finished or been dead-lettered (the
//! items were sent ahead of it in the same group), so it sees every outcome there will be.
//! Items without an outcome and undecodable messages become failures in the report, which
//! is then marked partial. The report is diffed against the latest earlier run's, written
//! to the blob store, and the account is marked finalized (with a reference to the
//! report, and the digest of everything it was built from) in the transaction that
//! finishes the step. When that digest equals the previous report's (an unchanged
//! account), the previous report is carried forward instead: its files restamped with
//! this run (the same bytes a full build writes), its results not read back, nothing built. A later generation, sent by
//! `coordinator dlq replay` after replayed items, rebuilds the reports the same way.

use std::collections::BTreeMap;

use accessflow_analysis::review;
use accessflow_analysis::{AccountReport, PrincipalAnalysis, PrincipalFailure, ReportError};
use accessflow_shared::idempotency::{self, ItemStatus};
use accessflow_shared::ledger::{
    self, AccountStatus, ItemOutcome, Ledger, MessageError, ReportRef,
};
use accessflow_shared::message::AccountWork;
use accessflow_shared::ports::{Condition, WriteOp};
use accessflow_shared::step::Step;
use tracing::{info, warn, Instrument};

use super::claim::StepError;
use super::{process_cores, report_prefix, Attempt, Pipeline};

impl Pipeline {
    pub(super) async fn finalize(
        &self,
        work: &AccountWork,
        snapshot: &str,
        items: u32,
        generation: u32,
        attempt: &Attempt<'_>,
    ) -> Result<(), StepError> {
        let step = Step::Finalize { generation };
        if !self.claim(work, step, attempt).await? {
            return Ok(());
        }
        let result = if attempt.exhausted {
            Err(attempt.exhausted_error())
        } else {
            self.finalize_claimed(work, snapshot, items, step, attempt)
                .await
        };
        self.fail_account_if_final(work, attempt, "building the reports", result)
            .await
    }

    async fn finalize_claimed(
        &self,
        work: &AccountWork,
        snapshot: &str,
        items: u32,
        step: Step,
        attempt: &Attempt<'_>,
    ) -> Result<(), StepError> {
        let started = std::time::Instant::now();
        let outcomes = self
            .ledger
            .item_outcomes(&work.run_id, &work.customer, &work.account)
            .await?;
        // The snapshot is parsed only when it is needed: for a full build, or to name the
        // principals of items without an outcome. A report carried forward needs neither.
        let mut loaded = None;
        if (0..items).any(|item| !outcomes.contains_key(&item)) {
            loaded = Some(self.load_snapshot(work, snapshot).await?);
        }
        let principals = loaded
            .as_ref()
            .map(|l| l.model.principals())
            .unwrap_or_default();

        let mut attributed = std::collections::BTreeSet::new();
        let mut errors: BTreeMap<String, MessageError> = self
            .ledger
            .message_errors(&work.run_id, &work.customer, &work.account)
            .await?
            .into_iter()
            .map(|e| (e.step.clone(), e))
            .collect();
        // Each item's result key, or why it has none.
        let mut with_results: Vec<(u32, String)> = Vec::with_capacity(items as usize);
        let mut failures: Vec<PrincipalFailure> = Vec::new();
        for item in 0..items {
            let planned = principals
                .get(item as usize)
                .map(|p| p.arn.clone())
                .unwrap_or_default();
            match outcomes.get(&item) {
                Some(ItemOutcome { result_key: Some(key), .. }) => with_results.push((item, key.clone())),
                Some(ItemOutcome { principal_arn, error, .. }) => failures.push(PrincipalFailure {
                    principal_arn: principal_arn.clone(),
                    reason: error.clone().unwrap_or_else(|| "failed without a recorded reason".into()),
                }),
                None => failures.push(PrincipalFailure {
                    principal_arn: planned,
                    reason: match errors
                        .iter()
                        .find(|(step, _)| Step::parse(step).is_some_and(|s| s.covers_item(item)))
                    {
                        Some((step, error)) => {
                            attributed.insert(step.clone());
                            format!("dead-lettered: {}", error.reason)
                        }
                        None => format!(
                            "no result: item {item} was dead-lettered after too many attempts (it is in the account's DLQ)"
                        ),
                    },
                }),
            }
        }
        // An item step's error is told once per item it covers; any other (a collect that
        // failed after sending, an undecodable message) once on its own.
        errors.retain(|step, _| !attributed.contains(step));
        for error in errors.into_values() {
            failures.push(PrincipalFailure {
                principal_arn: format!("message {}", error.message_id),
                reason: format!(
                    "message on {} could not be processed: {}",
                    error.queue, error.reason
                ),
            });
        }
        let header = self.ledger.run(&work.run_id).await?.ok_or_else(|| {
            StepError::Permanent(format!("run {} has no header in the ledger", work.run_id))
        })?;
        // The customer's partner accounts, from the tenant registry. An account removed
        // from the tenants file mid-run still gets its report, without partners marked.
        let trusted_accounts = match self.locator(work).await {
            Ok(locator) => locator.trusted_accounts,
            Err(e) => {
                tracing::warn!(error = %e, "no tenant entry: no account is marked trusted in the report");
                Vec::new()
            }
        };
        let inputs = report_inputs(work, snapshot, &with_results, &failures, &trusted_accounts);
        let previous = self.previous_report_ref(work, &header.as_of).await?;
        let prefix = report_prefix(&work.customer, &work.run_id, &work.account);
        // What was read so far (and, on a full build, the results and the previous report
        // below), logged as `read_ms`.
        let mut loaded_ms = started.elapsed().as_millis() as u64;

        // An account whose report would be built from exactly what the previous one was
        // built from gets that report carried forward (its files restamped with this run),
        // without reading its results back or building it again.
        let mut carried_from = None;
        if let Some(previous) = previous
            .as_ref()
            .filter(|p| p.inputs.as_deref() == Some(inputs.as_str()))
        {
            match self
                .carry_forward(work, previous, &header.as_of, &prefix)
                .await
            {
                Ok(()) => carried_from = Some(previous.run_id.clone()),
                Err(e) => warn!(
                    previous = %previous.prefix,
                    error = %e,
                    "the previous report cannot be carried forward; building the report"
                ),
            }
        }
        if carried_from.is_none() {
            // The previous report (parsed on a blocking thread), the stored results and the
            // snapshot at once: they are independent, and all on the account's critical path.
            let (previous_report, stored, loaded) = tokio::join!(
                self.previous_report(previous.as_ref()),
                self.stored_results(work, &with_results),
                async {
                    match loaded {
                        Some(loaded) => Ok(loaded),
                        None => self.load_snapshot(work, snapshot).await,
                    }
                }
            );
            let (previous_report, mut stored, loaded) = (previous_report?, stored?, loaded?);
            let mut results: Vec<PrincipalAnalysis> = Vec::with_capacity(with_results.len());
            for (item, key) in &with_results {
                match stored.remove(item) {
                    Some(result) => results.push(result),
                    None => {
                        return Err(StepError::Permanent(format!(
                            "stored result {key} was not read"
                        )))
                    }
                }
            }
            loaded_ms = started.elapsed().as_millis() as u64;
            let engine = self.engine.clone();
            let (customer, account, run_id) = (
                work.customer.clone(),
                work.account.clone(),
                work.run_id.clone(),
            );
            let as_of = header.as_of.clone();
            let report_failures = failures.clone();
            self.render_and_store(&prefix, move |store| {
                let ctx = accessflow_analysis::ReportContext {
                    customer: &customer,
                    account: &account,
                    run_id: &run_id,
                    analysis_time: &as_of,
                    credential_report: Some(&loaded.credential_report),
                    resources: loaded.resources.as_ref(),
                    trusted_accounts: &trusted_accounts,
                };
                let report = accessflow_analysis::build_report(
                    &engine,
                    &loaded.model,
                    &results,
                    &report_failures,
                    &ctx,
                    previous_report.as_ref(),
                );
                drop(previous_report);
                report.write_files(&mut *store)?;
                // The small summary the customer's index and trends read (issue 13).
                store(
                    review::SUMMARY_FILE,
                    review::AccountSummary::of(&report).to_json(),
                )
            })
            .await?;
        }

        let reported_ms = started.elapsed().as_millis() as u64 - loaded_ms;
        let partial = !failures.is_empty();
        let (mut progress, version) = self.progress(work).await?;
        progress.status = AccountStatus::Finalized;
        progress.partial = partial;
        progress.report_location = Some(self.ports.blobs.locate(&prefix));
        progress.reason =
            partial.then(|| format!("{} item(s) failed or were dead-lettered", failures.len()));
        let reference = ReportRef {
            run_id: work.run_id.clone(),
            as_of: header.as_of.clone(),
            prefix,
            principals: items as u64,
            partial,
            inputs: Some(inputs),
        };
        self.claims
            .commit(attempt.lease, |token| {
                vec![
                    idempotency::finish_op(token, ItemStatus::Done, None, None),
                    self.ledger.progress_op(&work.run_id, &progress, version),
                    Ledger::clear_error_op(
                        &work.run_id,
                        &work.customer,
                        &work.account,
                        &step.to_string(),
                    ),
                    WriteOp::Put {
                        key: ledger::report_ref_key(&work.customer, &work.account, &work.run_id),
                        value: serde_json::to_value(&reference).unwrap_or_default(),
                        expires_at: self.ledger.expiry(),
                        condition: Condition::None,
                    },
                ]
            })
            .await?;
        info!(
            items,
            failures = failures.len(),
            partial,
            carried_from = carried_from.as_deref().unwrap_or(""),
            read_ms = loaded_ms,
            report_ms = reported_ms,
            "account finalized"
        );
        Ok(())
    }

    /// Renders report files off the async threads (CPU work, and a panic in it must not take
    /// the consumer down) and stores each under `prefix` while the next is rendered: `render`
    /// hands each file to its `store` argument, so at most a few files are in memory at once.
    async fn render_and_store(
        &self,
        prefix: &str,
        render: impl FnOnce(
                &mut dyn FnMut(&str, Vec<u8>) -> Result<(), ReportError>,
            ) -> Result<(), ReportError>
            + Send
            + 'static,
    ) -> Result<(), StepError> {
        let (files, mut rendered) = tokio::sync::mpsc::channel::<(String, Vec<u8>)>(1);
        let rendering = tokio::task::spawn_blocking(move || {
            let mut store = |name: &str, bytes: Vec<u8>| {
                files
                    .blocking_send((name.to_string(), bytes))
                    .map_err(|_| ReportError::store(name, "storing the report stopped"))
            };
            render(&mut store)
        });
        let mut stored = Ok(());
        while let Some((name, bytes)) = rendered.recv().await {
            stored = self
                .ports
                .blobs
                .put(&format!("{prefix}/{name}"), bytes)
                .await;
            if stored.is_err() {
                // Dropping the receiver stops the renderer at its next file.
                break;
            }
        }
        drop(rendered);
        let rendering = rendering
            .await
            .map_err(|e| StepError::Permanent(format!("building the report panicked: {e}")))?;
        stored?;
        rendering.map_err(|e| StepError::Permanent(format!("the report cannot be rendered: {e}")))
    }

    /// Stores `previous`'s report as this run's (`prefix`), carried forward by
    /// [`accessflow_analysis::carry_forward_files`] (its files restamped with this run: the
    /// same bytes a full build writes) and its `summary.json` likewise. An error leaves the
    /// caller to build the report in full, which overwrites whatever was stored here.
    async fn carry_forward(
        &self,
        work: &AccountWork,
        previous: &ReportRef,
        as_of: &str,
        prefix: &str,
    ) -> Result<(), StepError> {
        let mut files = BTreeMap::new();
        for name in accessflow_analysis::REPORT_FILES
            .into_iter()
            .chain([review::SUMMARY_FILE])
        {
            let key = format!("{}/{name}", previous.prefix);
            let bytes = self
                .ports
                .blobs
                .get(&key)
                .await?
                .ok_or_else(|| StepError::Permanent(format!("{key} is missing")))?;
            files.insert(name.to_string(), bytes);
        }
        let summary = files.remove(review::SUMMARY_FILE).unwrap_or_default();
        let summary_key = format!("{}/{}", previous.prefix, review::SUMMARY_FILE);
        let from = (previous.run_id.clone(), previous.as_of.clone());
        let to = (work.run_id.clone(), as_of.to_string());
        self.render_and_store(prefix, move |store| {
            let summary = review::AccountSummary::from_json(&summary, &summary_key)
                .map_err(|e| ReportError::render(review::SUMMARY_FILE, e))?
                .carried_to(&to.0, &to.1);
            accessflow_analysis::carry_forward_files(
                (&from.0, &from.1),
                (&to.0, &to.1),
                files,
                &mut *store,
            )?;
            store(review::SUMMARY_FILE, summary.to_json())
        })
        .await
    }

    /// The reference of the latest report of an earlier run (by as-of time): the diff's
    /// base, and the report carried forward when nothing changed.
    async fn previous_report_ref(
        &self,
        work: &AccountWork,
        as_of: &str,
    ) -> Result<Option<ReportRef>, StepError> {
        let refs = self
            .ledger
            .report_refs(&work.customer, &work.account)
            .await?;
        Ok(refs.into_iter().rev().find(|r| {
            r.run_id != work.run_id
                && (r.as_of.as_str(), r.run_id.as_str()) < (as_of, work.run_id.as_str())
        }))
    }

    /// The report `previous` refers to, read back for the diff (`None`: no earlier report,
    /// or one that cannot be read, which is logged).
    async fn previous_report(
        &self,
        previous: Option<&ReportRef>,
    ) -> Result<Option<AccountReport>, StepError> {
        let Some(previous) = previous else {
            return Ok(None);
        };
        let key = format!("{}/report.json", previous.prefix);
        let Some(bytes) = self.ports.blobs.get(&key).await? else {
            return Ok(None);
        };
        // Its access rows (format 3 keeps them in the CSV only; older formats ignore it).
        let csv_key = format!("{}/{}", previous.prefix, accessflow_analysis::ACCESS_FILE);
        let csv = self.ports.blobs.get(&csv_key).await?;
        // Tens of megabytes for a large account: parsed off the async threads.
        let parsed =
            tokio::task::spawn_blocking(move || AccountReport::from_files(&bytes, csv.as_deref()))
                .await
                .map_err(|e| StepError::Permanent(format!("reading {key} panicked: {e}")))?;
        match parsed {
            Ok(report) => Ok(Some(report)),
            Err(e) => {
                warn!(previous = %key, error = %e, "previous report unreadable; diffing against nothing");
                Ok(None)
            }
        }
    }

    /// The stored results of `items` (item, result key), read a hundred at a time (one
    /// store request each), as many hundreds at once as the process has cores: opening
    /// (decrypting, gunzipping) and parsing them is CPU work, and on the night's largest
    /// account the cores are otherwise idle by then.
    async fn stored_results(
        &self,
        work: &AccountWork,
        items: &[(u32, String)],
    ) -> Result<BTreeMap<u32, PrincipalAnalysis>, StepError> {
        let mut chunks = items.chunks(100);
        let mut reading = tokio::task::JoinSet::new();
        let mut stored = BTreeMap::new();
        loop {
            while reading.len() < process_cores() {
                let Some(chunk) = chunks.next() else {
                    break;
                };
                let caches = self.caches.clone();
                let (customer, account) = (work.customer.clone(), work.account.clone());
                let chunk = chunk.to_vec();
                reading.spawn(
                    async move {
                        let names: Vec<String> = chunk.iter().map(|(_, key)| key.clone()).collect();
                        let read = caches.get_results(&customer, &account, &names).await?;
                        let mut parsed = Vec::with_capacity(chunk.len());
                        for ((item, key), json) in chunk.into_iter().zip(read) {
                            let result: PrincipalAnalysis =
                                serde_json::from_slice(&json).map_err(|e| {
                                    StepError::Permanent(format!(
                                        "stored result {key} is unreadable: {e}"
                                    ))
                                })?;
                            parsed.push((item, result));
                        }
                        Ok::<_, StepError>(parsed)
                    }
                    .instrument(tracing::Span::current()),
                );
            }
            let Some(read) = reading.join_next().await else {
                break;
            };
            let read = read.map_err(|e| {
                StepError::Permanent(format!("reading the stored results panicked: {e}"))
            })?;
            stored.extend(read?);
        }
        Ok(stored)
    }
}

/// The digest of everything an account's report is built from: the code that builds it
/// (the analysis crate's sources, its engine and report format), the account, the snapshot
/// (the model, the credential report and the resource inventory), each item's result (its
/// key digests the principal's inputs), the failures and the trusted accounts. The run is
/// not in it: two runs with the same digest have the same report but for the run's id and
/// time and the diff.
fn report_inputs(
    work: &AccountWork,
    snapshot: &str,
    results: &[(u32, String)],
    failures: &[PrincipalFailure],
    trusted_accounts: &[String],
) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut part = |text: &str| {
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
    };
    part(accessflow_analysis::REPORT_CODE_DIGEST);
    part(accessflow_analysis::ENGINE_VERSION);
    part(accessflow_analysis::REPORT_FORMAT);
    part(&work.customer);
    part(&work.account);
    part(snapshot);
    part(&format!("results {}", results.len()));
    for (item, key) in results {
        part(&item.to_string());
        part(key);
    }
    part(&format!("failures {}", failures.len()));
    for failure in failures {
        part(&failure.principal_arn);
        part(&failure.reason);
    }
    let mut trusted: Vec<&String> = trusted_accounts.iter().collect();
    trusted.sort();
    part(&format!("trusted {}", trusted.len()));
    for account in trusted {
        part(account);
    }
    hex::encode(hasher.finalize())
}
