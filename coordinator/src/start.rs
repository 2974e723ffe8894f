//! Opening a run: the ledger entries first, then one `CollectAccount` per account published
//! to its customer's topic, largest expected work first (last run's size when known, else
//! the tenants file's hint).

use std::collections::HashMap;
use std::time::Duration;

use accessflow_shared::ledger::{AccountStatus, Ledger, RunHeader};
use accessflow_shared::message::{AccountWork, WorkMessage};
use accessflow_shared::naming::{shard_accounts, Names};
use accessflow_shared::ports::{OutgoingMessage, Ports, SendOutcome, MAX_BATCH};
use accessflow_shared::tenants::TenantsFile;
use anyhow::Context;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::info;

/// Sorts `(customer, account, expected principals)` into the dispatch order: largest
/// expected work first, then by customer and account (the same order on every start).
fn sort_largest_first(accounts: &mut [(String, String, u64)]) {
    accounts.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
}

/// The identity of a run: its id and the time its reports carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIdentity {
    pub run_id: String,
    pub as_of: String,
    /// Whether `as_of` was given (else it is now, and a resumed run keeps its own).
    pub as_of_given: bool,
    /// RFC 3339 wall-clock time by which the run must be finished.
    pub deadline: String,
    /// Whether the id and the time both came from the clock (neither `--run-id` nor
    /// `--as-of`). Such an id that is already in the ledger belongs to another run started
    /// within the same second, not to one to resume: `start_run` moves to the next second.
    pub from_clock: bool,
    /// `--deadline-secs`, to recompute `deadline` for the next second.
    deadline_secs: u64,
}

impl RunIdentity {
    /// From the flags, defaulting to now. A given `as_of` must be RFC 3339.
    pub fn new(
        run_id: Option<String>,
        as_of: Option<String>,
        deadline_secs: u64,
    ) -> anyhow::Result<RunIdentity> {
        let as_of_given = as_of.is_some();
        let from_clock = run_id.is_none() && as_of.is_none();
        let deadline = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| OffsetDateTime::now_utc())
            + time::Duration::seconds(
                i64::try_from(deadline_secs)
                    .unwrap_or(i64::MAX / 2)
                    .min(366 * 24 * 3600),
            );
        let deadline = deadline
            .format(&Rfc3339)
            .context("formatting the run's deadline")?;
        let time = match &as_of {
            Some(text) => OffsetDateTime::parse(text, &Rfc3339).with_context(|| {
                format!("--as-of {text:?} is not an RFC 3339 time such as 2026-11-26T02:00:00Z")
            })?,
            None => OffsetDateTime::now_utc(),
        };
        let time = time
            .to_offset(time::UtcOffset::UTC)
            .replace_nanosecond(0)
            .unwrap_or(time);
        let as_of = time.format(&Rfc3339).context("formatting the run time")?;
        let run_id = match run_id {
            Some(id) => {
                let ok = !id.is_empty()
                    && id.len() <= 40
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                anyhow::ensure!(
                    ok,
                    "--run-id {id:?} is invalid: use 1 to 40 characters of A-Z, a-z, 0-9 and '-'"
                );
                id
            }
            None => format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                time.year(),
                u8::from(time.month()),
                time.day(),
                time.hour(),
                time.minute(),
                time.second()
            ),
        };
        Ok(RunIdentity {
            run_id,
            as_of,
            as_of_given,
            deadline,
            from_clock,
            deadline_secs,
        })
    }

    /// A clock-made identity later than this one: it waits until the wall clock has passed
    /// this identity's second (however the clock was stepped meanwhile), then takes the
    /// time again, so the new id also sorts after this one.
    async fn next_second(&self) -> anyhow::Result<RunIdentity> {
        let taken = OffsetDateTime::parse(&self.as_of, &Rfc3339)
            .with_context(|| format!("the run time {:?} is not RFC 3339", self.as_of))?;
        let next = taken + time::Duration::SECOND;
        loop {
            let now = OffsetDateTime::now_utc();
            if now >= next {
                break;
            }
            let wait = Duration::try_from(next - now).unwrap_or(Duration::from_millis(10));
            tokio::time::sleep(wait).await;
        }
        RunIdentity::new(None, None, self.deadline_secs)
    }
}

/// How many clock-made run ids `start_run` tries, a second apart, before it gives up.
const CLOCK_ID_ATTEMPTS: u32 = 5;

/// Opens the run in the ledger (or resumes it: the same run id again, after a coordinator
/// that died mid-publish or a publish that failed) and publishes its work; accounts
/// already past `published` are not published again, and a republished CollectAccount
/// keeps its deduplication id (the queue and the collect's idempotency record drop any
/// duplicate). An account whose subscription is younger than `propagation` (its filter
/// policy may not apply yet) gets its work sent straight to its queue instead. Returns the
/// dispatch order.
///
/// Only a run id that was asked for is resumed. When the id came from the clock and a run
/// already has it (two runs started within one second), `identity` moves on to the next
/// second and the run opens under that id.
pub async fn start_run(
    ports: &Ports,
    names: &Names,
    tenants: &TenantsFile,
    identity: &mut RunIdentity,
    propagation: Duration,
) -> anyhow::Result<Vec<(String, String)>> {
    let ledger = Ledger::new(ports.store.clone());
    let mut order: Vec<(String, String, u64)> = Vec::new();
    for (locator, hint) in tenants.accounts() {
        let last = ledger
            .report_refs(&locator.customer, &locator.account)
            .await?;
        let expected = last.last().map(|r| r.principals).unwrap_or(hint);
        order.push((locator.customer, locator.account, expected));
    }
    sort_largest_first(&mut order);

    let accounts: Vec<(String, String)> = order
        .iter()
        .map(|(c, a, _)| (c.clone(), a.clone()))
        .collect();
    let mut attempts = 1;
    let (header, resumed) = loop {
        let header = RunHeader {
            run_id: identity.run_id.clone(),
            as_of: identity.as_of.clone(),
            deadline: Some(identity.deadline.clone()),
            started_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .ok(),
            accounts: accounts.clone(),
        };
        match ledger.open_run(&header).await {
            Ok(()) => break (header, false),
            Err(e) if e.is_condition_failed() => {
                // The header is this start's own when a retried write (the SDK retries a
                // request whose reply was lost) found what its first attempt wrote: the same
                // `started_at`, to the nanosecond. Then, or when the id was asked for, the
                // run is resumed; a clock-made id of another start moves on instead.
                let ours = ledger
                    .run(&header.run_id)
                    .await?
                    .is_some_and(|existing| existing.started_at == header.started_at);
                if ours || !identity.from_clock {
                    break (resume(&ledger, &header, identity).await?, true);
                }
                anyhow::ensure!(
                    attempts < CLOCK_ID_ATTEMPTS,
                    "run {} already exists, and so do the {} run ids taken from the clock \
                     before it: too many runs are starting at once; give each its own --run-id",
                    identity.run_id,
                    CLOCK_ID_ATTEMPTS - 1
                );
                info!(
                    run = identity.run_id,
                    "another run started within this second has this id; taking the next second"
                );
                *identity = identity.next_second().await?;
                attempts += 1;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context("cannot open the run in the ledger"))
            }
        }
    };
    // A resumed run keeps its own dispatch order.
    let order = header.accounts.clone();

    // Publish in dispatch order, batching consecutive messages for the same topic.
    // Each account's topic shard, computed once per customer (the same assignment reconcile
    // subscribed the queues with).
    let mut shards: HashMap<(&str, &str), usize> = HashMap::new();
    for customer in &tenants.customers {
        for (account, shard) in shard_accounts(customer.accounts.iter().map(|a| a.id.as_str())) {
            shards.insert((customer.id.as_str(), account), shard);
        }
    }
    let mut pending: Vec<(String, OutgoingMessage)> = Vec::new();
    let now_ms = ports.clock.now_ms();
    let propagation_ms = i64::try_from(propagation.as_millis()).unwrap_or(i64::MAX);
    let mut direct = 0usize;
    for (customer, account) in &order {
        // A fresh run's accounts were all just opened as published; a resumed run's may
        // have moved on, and those are not sent again.
        if resumed {
            let published_only = ledger
                .account_state(&header.run_id, customer, account)
                .await?
                .is_none_or(|(state, _)| state.progress.status == AccountStatus::Published);
            if !published_only {
                continue;
            }
        }
        let young = ledger
            .tenant(customer, account)
            .await?
            .and_then(|t| t.subscribed_at_ms)
            .is_some_and(|at| now_ms.saturating_sub(at) < propagation_ms);
        let shard = shards
            .get(&(customer.as_str(), account.as_str()))
            .copied()
            .unwrap_or(0);
        let topic = names.customer_topic(customer, shard);
        let message = WorkMessage::CollectAccount {
            work: AccountWork {
                run_id: identity.run_id.clone(),
                customer: customer.clone(),
                account: account.clone(),
            },
        };
        if young {
            // The subscription's filter policy may not apply yet: a publish could be lost.
            // Straight to the queue instead, with the same deduplication id.
            let queue = names.account_queue(customer, account);
            ports
                .queues
                .send_batch(&queue, &[message.to_outgoing()])
                .await
                .with_context(|| format!("sending to {queue}"))?;
            direct += 1;
            continue;
        }
        pending.push((topic, message.to_outgoing()));
    }
    let mut published = 0usize;
    let mut start = 0;
    while start < pending.len() {
        let topic = &pending[start].0;
        let mut end = start;
        while end < pending.len() && &pending[end].0 == topic && end - start < MAX_BATCH {
            end += 1;
        }
        let batch: Vec<OutgoingMessage> =
            pending[start..end].iter().map(|(_, m)| m.clone()).collect();
        let outcomes = ports
            .topics
            .publish_batch(topic, &batch)
            .await
            .with_context(|| format!("publishing to {topic}"))?;
        published += outcomes
            .iter()
            .filter(|o| matches!(o, SendOutcome::Sent { .. }))
            .count();
        start = end;
    }
    info!(
        run = identity.run_id,
        accounts = order.len(),
        published,
        sent_to_young_subscriptions = direct,
        "run opened and published"
    );
    Ok(header.accounts)
}

/// The run `wanted` already exists: resume it when it is the same run (same accounts, and
/// the same as-of time if one was given), filling in any account record a dead coordinator
/// did not get to write.
async fn resume(
    ledger: &Ledger,
    wanted: &RunHeader,
    identity: &RunIdentity,
) -> anyhow::Result<RunHeader> {
    let existing = ledger
        .run(&wanted.run_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("run {} vanished while opening it", wanted.run_id))?;
    let same_accounts = {
        // (the deadline is the existing run's own: a resume does not extend it)
        let mut a = existing.accounts.clone();
        let mut b = wanted.accounts.clone();
        a.sort();
        b.sort();
        a == b
    };
    anyhow::ensure!(
        same_accounts,
        "run {} already exists with other accounts: pick another --run-id (or none, to use the time)",
        wanted.run_id
    );
    anyhow::ensure!(
        !identity.as_of_given || existing.as_of == wanted.as_of,
        "run {} already exists with --as-of {}: resume it with that time (or without --as-of)",
        wanted.run_id,
        existing.as_of
    );
    ledger.open_missing_accounts(&existing).await?;
    info!(run = existing.run_id, "resuming an existing run");
    Ok(existing)
}

#[cfg(test)]
mod tests {
    use super::sort_largest_first;

    #[test]
    fn the_largest_expected_work_is_dispatched_first_ties_by_name() {
        let account = |c: &str, a: &str, n: u64| (c.to_string(), a.to_string(), n);
        let mut accounts = vec![
            account("acme", "111", 10),
            account("globex", "333", 300),
            account("initech", "444", 50),
            account("acme", "222", 300),
        ];
        sort_largest_first(&mut accounts);
        let order: Vec<&str> = accounts.iter().map(|(_, a, _)| a.as_str()).collect();
        assert_eq!(order, ["222", "333", "444", "111"]);
    }
}
