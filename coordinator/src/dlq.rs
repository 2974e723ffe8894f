//! `coordinator dlq list|show|replay|purge`: what was dead-lettered, sending it back, or
//! dropping it on purpose.
//!
//! Every account DLQ of the deployment is reachable, a removed account's included (its
//! non-empty DLQ is kept by reconcile; a replay refuses it, a purge empties and deletes it).
//! `show` and `replay --dry-run` see every message, not only the first 10 of the group
//! (see [`cycle_all`]). DLQs keep their messages for SQS's longest retention, 14 days.
//!
//! Replay sends each message back to the queue it came from (with a fresh deduplication id
//! and the replay attribute, so a step that failed may be tried again) and deletes it from
//! the DLQ only after the send succeeded: a crash in between duplicates, never loses. For
//! every account whose items were replayed, a new-generation `FinalizeAccount` follows them
//! in the group, so the account's reports are rebuilt once the items are done — also when
//! another account's replay failed (the command then exits non-zero, naming it).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use accessflow_shared::ledger::Ledger;
use accessflow_shared::message::{
    AccountWork, WorkMessage, ATTRIBUTE_PREFIX, ERROR_ATTRIBUTE, REPLAY_ATTRIBUTE,
};
use accessflow_shared::naming::Names;
use accessflow_shared::ports::{OutgoingMessage, Ports, ReceivedMessage};
use anyhow::Context;

/// Which DLQs a command looks at.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DlqFilter {
    /// Only this customer's accounts.
    #[arg(long)]
    pub customer: Option<String>,
    /// Only this account.
    #[arg(long)]
    pub account: Option<String>,
}

/// One account's DLQ, as the commands see it.
struct Selected {
    customer: String,
    account: String,
    /// The account's work queue (where a replay sends its messages).
    queue: String,
    dlq: String,
    /// Whether the account is still in the tenant registry. A removed account's queue is
    /// gone, but its non-empty DLQ is kept (reconcile never deletes one) and stays
    /// reachable here: listed, shown, purged on purpose, never replayed into nowhere.
    registered: bool,
}

/// Every account DLQ the filter selects: those of registered accounts, and every other
/// account DLQ of this deployment that still exists (removed accounts).
async fn selected(
    ports: &Ports,
    names: &Names,
    filter: &DlqFilter,
) -> anyhow::Result<Vec<Selected>> {
    let ledger = Ledger::new(ports.store.clone());
    let mut accounts: BTreeMap<(String, String), bool> = BTreeMap::new();
    for tenant in ledger.tenants().await? {
        accounts.insert((tenant.locator.customer, tenant.locator.account), true);
    }
    for queue in ports.queues.list_queues(&names.queue_prefix()).await? {
        if !Names::is_dlq(&queue) {
            continue;
        }
        if let Some(key) = names.parse_account_queue(&queue) {
            accounts.entry(key).or_insert(false);
        }
    }
    Ok(accounts
        .into_iter()
        .filter(|((c, a), _)| {
            filter.customer.as_ref().is_none_or(|x| x == c)
                && filter.account.as_ref().is_none_or(|x| x == a)
        })
        .map(|((customer, account), registered)| Selected {
            queue: names.account_queue(&customer, &account),
            dlq: names.account_dlq(&customer, &account),
            customer,
            account,
            registered,
        })
        .collect())
}

/// Every message of a DLQ, in order. A FIFO queue shows at most 10 messages of a group at
/// a time and nothing more of it while they are held, and an account's DLQ is one group:
/// so each message is read, sent again to the back of the same DLQ (body, attributes and
/// reason unchanged, a fresh deduplication id) and only then deleted — after one full turn
/// the DLQ holds the same messages in the same order, and a crash midway duplicates one,
/// never loses one. (Their 14-day retention starts again, too.)
async fn cycle_all(ports: &Ports, dlq: &str) -> anyhow::Result<Vec<ReceivedMessage>> {
    let mut seen = Vec::new();
    let mut left = ports.queues.depth(dlq).await?.total();
    while left > 0 {
        let batch = ports
            .queues
            .receive(dlq, 10, Some(Duration::from_secs(60)), Duration::ZERO)
            .await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            if left == 0 {
                // More arrived meanwhile: leave them for the next look.
                ports
                    .queues
                    .change_visibility(dlq, &message.receipt_handle, Duration::ZERO)
                    .await?;
                continue;
            }
            let copy = resend_of(&message, "cycle", ports);
            ports
                .queues
                .send_batch(dlq, &[copy])
                .await
                .with_context(|| format!("re-queueing a message in {dlq}"))?;
            ports
                .queues
                .delete_batch(dlq, std::slice::from_ref(&message.receipt_handle))
                .await?;
            left -= 1;
            seen.push(message);
        }
    }
    Ok(seen)
}

/// A message to send `message` again: same group, body and attributes, and a fresh
/// deduplication id (`<why>.<message id>.<now>`) so the queue does not drop it.
fn resend_of(message: &ReceivedMessage, why: &str, ports: &Ports) -> OutgoingMessage {
    let mut copy = OutgoingMessage::new(
        message.group_id.clone(),
        format!("{why}.{}.{}", message.message_id, ports.clock.now_ms()),
        message.body.clone(),
    );
    copy.attributes = message.attributes.clone();
    copy
}

/// One line describing a dead-lettered message.
fn describe(message: &ReceivedMessage) -> String {
    let what = match WorkMessage::decode(&message.body) {
        Ok(WorkMessage::AnalyzePrincipal {
            work,
            item,
            principal_arn,
            ..
        }) => {
            format!(
                "analyze_principal run={} item={item} principal={principal_arn}",
                work.run_id
            )
        }
        Ok(WorkMessage::AnalyzePrincipals {
            work,
            first_item,
            principals,
            ..
        }) => {
            let last = u64::from(first_item) + principals.len() as u64 - 1;
            format!(
                "analyze_principals run={} items={first_item}-{last} ({} principals, first {})",
                work.run_id,
                principals.len(),
                principals.first().map_or("none", String::as_str),
            )
        }
        Ok(m) => format!("{} run={}", m.kind(), m.work().run_id),
        Err(_) => "undecodable".to_string(),
    };
    let reason = message
        .attributes
        .get(ERROR_ATTRIBUTE)
        .map(String::as_str)
        .unwrap_or("redriven after too many receives");
    format!("  {} {what}\n    reason: {reason}", message.message_id)
}

/// Prints the depth of every selected DLQ, and with `show` every message with its reason.
pub async fn list(
    ports: &Ports,
    names: &Names,
    filter: &DlqFilter,
    show: bool,
) -> anyhow::Result<()> {
    let mut total = 0;
    for sel in selected(ports, names, filter).await? {
        let depth = ports
            .queues
            .depth(&sel.dlq)
            .await
            .with_context(|| format!("reading {}", sel.dlq))?;
        if depth.total() == 0 {
            continue;
        }
        total += depth.total();
        let removed = if sel.registered {
            ""
        } else {
            " (account removed from the tenants file: purge it with `coordinator dlq purge`)"
        };
        say!(
            "{} {} {}: {} message(s){removed}",
            sel.customer,
            sel.account,
            sel.dlq,
            depth.total()
        );
        if show {
            for message in cycle_all(ports, &sel.dlq).await? {
                say!("{}", describe(&message));
            }
        }
    }
    say!("{total} dead-lettered message(s)");
    Ok(())
}

/// Options of `dlq purge`.
#[derive(Debug, Clone, clap::Args)]
pub struct PurgeArgs {
    /// The account whose DLQ is emptied (required: purging is never wholesale).
    #[arg(long)]
    pub account: String,
    /// Its customer (when the account id alone is ambiguous).
    #[arg(long)]
    pub customer: Option<String>,
    /// Really delete the messages (without it, nothing is changed).
    #[arg(long)]
    pub yes: bool,
}

/// Deletes every message of one account's DLQ, on purpose; a removed account's empty DLQ
/// is then deleted too.
pub async fn purge(ports: &Ports, names: &Names, args: &PurgeArgs) -> anyhow::Result<()> {
    let filter = DlqFilter {
        customer: args.customer.clone(),
        account: Some(args.account.clone()),
    };
    let found = selected(ports, names, &filter).await?;
    anyhow::ensure!(
        !found.is_empty(),
        "no DLQ of account {} (see `coordinator dlq list`)",
        args.account
    );
    anyhow::ensure!(
        found.len() == 1,
        "account {} has DLQs under several customers: add --customer",
        args.account
    );
    let sel = &found[0];
    let depth = ports.queues.depth(&sel.dlq).await?.total();
    if !args.yes {
        say!(
            "would purge {depth} message(s) from {} (nothing changed; add --yes)",
            sel.dlq
        );
        return Ok(());
    }
    let mut purged = 0u64;
    loop {
        let batch = ports
            .queues
            .receive(&sel.dlq, 10, Some(Duration::from_secs(60)), Duration::ZERO)
            .await?;
        if batch.is_empty() {
            break;
        }
        for message in &batch {
            say!("purging{}", describe(message));
        }
        let receipts: Vec<String> = batch.iter().map(|m| m.receipt_handle.clone()).collect();
        ports.queues.delete_batch(&sel.dlq, &receipts).await?;
        purged += batch.len() as u64;
    }
    if !sel.registered && ports.queues.depth(&sel.dlq).await?.total() == 0 {
        ports.queues.delete_queue(&sel.dlq).await?;
        say!("deleted {} (its account was removed)", sel.dlq);
    }
    say!("purged {purged} message(s) from {}", sel.dlq);
    Ok(())
}

/// Options of `dlq replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub filter: DlqFilter,
    /// Show what would be replayed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replay at most this many messages.
    #[arg(long)]
    pub limit: Option<usize>,
    /// At most this many messages per second (protects the customer's API limits).
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
}

pub async fn replay(ports: &Ports, names: &Names, args: &ReplayArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let pause = Duration::from_secs_f64(1.0 / args.rate);
    let mut replayed = 0usize;
    // (run, customer, account) whose items were replayed: they get a new finalize.
    let mut rebuild: BTreeSet<(String, String, String)> = BTreeSet::new();
    // Accounts that could not be (completely) replayed, with why. One account's error
    // stops that account only: the others are replayed and rebuilt all the same.
    let mut errors: Vec<String> = Vec::new();
    for sel in selected(ports, names, &args.filter).await? {
        if args.limit.is_some_and(|l| replayed >= l) {
            break;
        }
        if ports.queues.depth(&sel.dlq).await?.total() == 0 {
            continue;
        }
        if !sel.registered {
            let refusal = format!(
                "{} {}: the account was removed from the tenants file and its queue is gone; \
                 add it back and reconcile to replay, or `coordinator dlq purge --account {} --yes`",
                sel.customer, sel.account, sel.account
            );
            if args.dry_run {
                say!("would not replay {refusal}");
            } else {
                errors.push(refusal);
            }
            continue;
        }
        if args.dry_run {
            for message in cycle_all(ports, &sel.dlq).await? {
                if args.limit.is_some_and(|l| replayed >= l) {
                    break;
                }
                say!("would replay{}", describe(&message));
                replayed += 1;
            }
            continue;
        }
        if let Err(e) = replay_account(ports, &sel, args, pause, &mut replayed, &mut rebuild).await
        {
            errors.push(format!("{} {}: {e:#}", sel.customer, sel.account));
        }
    }
    rebuild_reports(ports, names, &rebuild, &mut errors).await;
    say!(
        "{} {replayed} message(s)",
        if args.dry_run {
            "would replay"
        } else {
            "replayed"
        }
    );
    if errors.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} account(s) could not be replayed completely:\n  {}",
            errors.len(),
            errors.join("\n  ")
        )
    }
}

/// Sends one account's dead-lettered messages back to its queue, each deleted from the DLQ
/// only after its send succeeded (a message whose send failed is made visible again).
async fn replay_account(
    ports: &Ports,
    sel: &Selected,
    args: &ReplayArgs,
    pause: Duration,
    replayed: &mut usize,
    rebuild: &mut BTreeSet<(String, String, String)>,
) -> anyhow::Result<()> {
    // Only what is there now: a replayed message that fails again lands back in the DLQ
    // and must not be replayed in a loop.
    let mut budget = ports.queues.depth(&sel.dlq).await?.total();
    // The account has work again: the workers poll its queue (marked before anything is
    // sent, so no worker retires it in between).
    let ledger = Ledger::new(ports.store.clone());
    if budget > 0 {
        let run = ledger
            .current_run(&sel.customer, &sel.account)
            .await?
            .unwrap_or_else(|| "replay".to_string());
        ledger
            .mark_active(&sel.customer, &sel.account, &run)
            .await
            .context("cannot mark the account as having work again")?;
    }
    while budget > 0 && args.limit.is_none_or(|l| *replayed < l) {
        let batch = ports
            .queues
            .receive(&sel.dlq, 10, Some(Duration::from_secs(60)), Duration::ZERO)
            .await?;
        if batch.is_empty() {
            break;
        }
        let mut rest = batch.into_iter();
        while let Some(message) = rest.next() {
            if budget == 0 || args.limit.is_some_and(|l| *replayed >= l) {
                release(ports, &sel.dlq, std::iter::once(message).chain(rest)).await;
                return Ok(());
            }
            budget -= 1;
            say!("replaying{}", describe(&message));
            let mut copy = resend_of(&message, "replay", ports);
            copy.attributes
                .retain(|k, _| !k.starts_with(ATTRIBUTE_PREFIX));
            copy.attributes.insert(REPLAY_ATTRIBUTE.into(), "1".into());
            if let Err(e) = ports.queues.send_batch(&sel.queue, &[copy]).await {
                release(ports, &sel.dlq, std::iter::once(message).chain(rest)).await;
                return Err(anyhow::Error::new(e).context(format!("sending back to {}", sel.queue)));
            }
            ports
                .queues
                .delete_batch(&sel.dlq, std::slice::from_ref(&message.receipt_handle))
                .await?;
            // For the exporter's replay count; the message is replayed whatever this says.
            if let Err(e) = ledger.count_replays(&sel.customer, 1).await {
                tracing::warn!(customer = %sel.customer, error = %e, "could not count the replay in the ledger");
            }
            if let Ok(
                WorkMessage::AnalyzePrincipal { work, .. }
                | WorkMessage::AnalyzePrincipals { work, .. },
            ) = WorkMessage::decode(&message.body)
            {
                rebuild.insert((work.run_id, sel.customer.clone(), sel.account.clone()));
            }
            *replayed += 1;
            tokio::time::sleep(pause).await;
        }
    }
    Ok(())
}

/// Makes messages looked at but not replayed visible again at once.
async fn release(ports: &Ports, dlq: &str, messages: impl Iterator<Item = ReceivedMessage>) {
    for message in messages {
        if let Err(e) = ports
            .queues
            .change_visibility(dlq, &message.receipt_handle, Duration::ZERO)
            .await
        {
            tracing::warn!(dlq, error = %e, "could not release a message; it comes back after its visibility timeout");
        }
    }
}

/// A new-generation FinalizeAccount behind the replayed items of each account, so its
/// reports are rebuilt once they are done. Runs whatever happened to other accounts.
async fn rebuild_reports(
    ports: &Ports,
    names: &Names,
    rebuild: &BTreeSet<(String, String, String)>,
    errors: &mut Vec<String>,
) {
    let ledger = Ledger::new(ports.store.clone());
    for (run_id, customer, account) in rebuild {
        let sent = async {
            let Some((state, _)) = ledger.account_state(run_id, customer, account).await? else {
                return anyhow::Ok(false);
            };
            let (Some(snapshot), Some(items)) = (state.progress.snapshot, state.progress.items)
            else {
                return Ok(false);
            };
            let generation = ports.clock.now_secs() as u32;
            let finalize = WorkMessage::FinalizeAccount {
                work: AccountWork {
                    run_id: run_id.clone(),
                    customer: customer.clone(),
                    account: account.clone(),
                },
                snapshot,
                items,
                generation,
            };
            ports
                .queues
                .send_batch(
                    &names.account_queue(customer, account),
                    &[finalize.to_outgoing()],
                )
                .await?;
            Ok(true)
        }
        .await;
        match sent {
            Ok(true) => say!(
                "reports of {customer} {account} (run {run_id}) will be rebuilt after the replayed items"
            ),
            Ok(false) => {}
            Err(e) => errors.push(format!(
                "{customer} {account}: the reports of run {run_id} could not be scheduled for a rebuild: {e:#}"
            )),
        }
    }
}
