//! `coordinator dlq list|replay`: what was dead-lettered, and sending it back.
//!
//! Replay sends each message back to the queue it came from (with a fresh deduplication id
//! and the replay attribute, so a step that failed may be tried again) and deletes it from
//! the DLQ only after the send succeeded: a crash in between duplicates, never loses. For
//! every account whose items were replayed, a new-generation `FinalizeAccount` follows them
//! in the group, so the account's reports are rebuilt once the items are done.

use std::collections::BTreeSet;
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

/// (customer, account, queue, dlq) of every registered account the filter selects.
async fn selected(
    ports: &Ports,
    names: &Names,
    filter: &DlqFilter,
) -> anyhow::Result<Vec<(String, String, String, String)>> {
    let ledger = Ledger::new(ports.store.clone());
    let mut out = Vec::new();
    for tenant in ledger.tenants().await? {
        let (c, a) = (tenant.locator.customer, tenant.locator.account);
        if filter.customer.as_ref().is_some_and(|x| x != &c)
            || filter.account.as_ref().is_some_and(|x| x != &a)
        {
            continue;
        }
        let queue = names.account_queue(&c, &a);
        let dlq = names.account_dlq(&c, &a);
        out.push((c, a, queue, dlq));
    }
    Ok(out)
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

/// Prints the depth of every selected DLQ, and with `show` the messages themselves.
pub async fn list(
    ports: &Ports,
    names: &Names,
    filter: &DlqFilter,
    show: bool,
) -> anyhow::Result<()> {
    let mut total = 0;
    for (customer, account, _, dlq) in selected(ports, names, filter).await? {
        let depth = ports
            .queues
            .depth(&dlq)
            .await
            .with_context(|| format!("reading {dlq}"))?;
        if depth.total() == 0 {
            continue;
        }
        total += depth.total();
        println!("{customer} {account} {dlq}: {} message(s)", depth.total());
        if show {
            // Peek: receive, print, and release at once.
            let mut seen = Vec::new();
            loop {
                let batch = ports
                    .queues
                    .receive(&dlq, 10, Some(Duration::from_secs(30)), Duration::ZERO)
                    .await?;
                if batch.is_empty() {
                    break;
                }
                seen.extend(batch);
            }
            for message in &seen {
                println!("{}", describe(message));
                ports
                    .queues
                    .change_visibility(&dlq, &message.receipt_handle, Duration::ZERO)
                    .await?;
            }
        }
    }
    println!("{total} dead-lettered message(s)");
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
    let ledger = Ledger::new(ports.store.clone());
    let pause = Duration::from_secs_f64(1.0 / args.rate);
    let mut replayed = 0usize;
    // (run, customer, account) whose items were replayed: they get a new finalize.
    let mut rebuild: BTreeSet<(String, String, String)> = BTreeSet::new();
    'queues: for (customer, account, queue, dlq) in selected(ports, names, &args.filter).await? {
        let mut held = Vec::new();
        // Only what is there now: a replayed message that fails again lands back in the
        // DLQ and must not be replayed in a loop.
        let mut budget = ports.queues.depth(&dlq).await?.total();
        while budget > 0 {
            let batch = ports
                .queues
                .receive(&dlq, 10, Some(Duration::from_secs(60)), Duration::ZERO)
                .await?;
            if batch.is_empty() {
                break;
            }
            for message in batch {
                budget = budget.saturating_sub(1);
                if args.limit.is_some_and(|l| replayed >= l) || args.dry_run {
                    if args.limit.is_none_or(|l| replayed < l) {
                        println!("would replay{}", describe(&message));
                        replayed += 1;
                    }
                    held.push(message);
                    continue;
                }
                println!("replaying{}", describe(&message));
                let mut copy = OutgoingMessage::new(
                    message.group_id.clone(),
                    format!("replay.{}.{}", message.message_id, ports.clock.now_ms()),
                    message.body.clone(),
                );
                copy.attributes = message.attributes.clone();
                copy.attributes
                    .retain(|k, _| !k.starts_with(ATTRIBUTE_PREFIX));
                copy.attributes.insert(REPLAY_ATTRIBUTE.into(), "1".into());
                ports
                    .queues
                    .send_batch(&queue, &[copy])
                    .await
                    .with_context(|| format!("sending back to {queue}"))?;
                ports
                    .queues
                    .delete_batch(&dlq, std::slice::from_ref(&message.receipt_handle))
                    .await?;
                if let Ok(WorkMessage::AnalyzePrincipal { work, .. }) =
                    WorkMessage::decode(&message.body)
                {
                    rebuild.insert((work.run_id, customer.clone(), account.clone()));
                }
                replayed += 1;
                tokio::time::sleep(pause).await;
            }
        }
        // Messages looked at but not replayed go back at once.
        for message in held {
            ports
                .queues
                .change_visibility(&dlq, &message.receipt_handle, Duration::ZERO)
                .await?;
        }
        if args.limit.is_some_and(|l| replayed >= l) {
            break 'queues;
        }
    }
    for (run_id, customer, account) in &rebuild {
        let Some((state, _)) = ledger.account_state(run_id, customer, account).await? else {
            continue;
        };
        let (Some(snapshot), Some(items)) = (state.progress.snapshot, state.progress.items) else {
            continue;
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
        println!("reports of {customer} {account} (run {run_id}) will be rebuilt after the replayed items");
    }
    println!(
        "{} {replayed} message(s)",
        if args.dry_run {
            "would replay"
        } else {
            "replayed"
        }
    );
    Ok(())
}
