//! `skewed_night`: a simulated night of 100 accounts with a 10x skew, run under the worker
//! service's autoscaling policy (`accessflow_worker::autoscaling`) and under message-count
//! scaling, side by side. Not a timed benchmark: a discrete-time model (1 s steps) of the
//! pieces that decide a night's length and cost.
//!
//! Run: `cargo bench --bench skewed_night` (options as `key=value` after `--`:
//! `max_tasks=19 concurrency=2 item_secs=1.0 ...`, see `Model`).
//!
//! What is modelled, explicitly:
//! - the accounts: the bundled sample's 12 account sizes (20 to 2,400 principals) spread
//!   over 100 accounts by quantile (log scale), then compressed to a 10x skew (240 to
//!   2,400), largest first (the consumer polls queues by size hint);
//! - an account's work: one CollectAccount (`collect_secs`), one message per principal
//!   (`item_secs` each), one FinalizeAccount (`finalize_secs`); its messages are one FIFO
//!   group, so one worker slot at a time works on it, and a slot keeps its account until it
//!   is finished (the consumer goes back to the largest queue first);
//! - tasks: `concurrency` slots each; a launched task runs after `task_start_secs`; billed
//!   from launch to stop;
//! - the metric: sampled every minute, seen by the alarm `metric_delay_secs` later; the
//!   policy is evaluated once a minute;
//! - (a) accounts with work: `desired = ceil(accounts with work / concurrency)` up at once,
//!   down after `scale_in_cooldown_secs` ([`next_capacity`]); a task holding a message is
//!   protected (and for `protection_grace_secs` after), so a lower desired count stops
//!   starting or idle tasks only, and a busy one once it goes idle;
//! - (b) message count: `desired = ceil(visible messages / messages_per_task)` (target
//!   tracking on the queue backlog: out after 1 minute, in after `scale_in_cooldown_secs`);
//!   a scale-in stops arbitrary tasks: the messages they hold are lost and come back after
//!   the visibility timeout, with their progress lost.
//!
//! The lower bound of a night's makespan: max(total work / (max_tasks · concurrency)
//! slots, the largest account's work). Busy hours: the time tasks hold at least one
//! message. Targets (issue 9, item 5): makespan ≤ 1.10x the bound, task-hours ≤ 1.25x the
//! busy hours.

use accessflow_worker::autoscaling::{desired_tasks, next_capacity, Policy};

/// The model's parameters (defaults in `Model::default`).
#[derive(Debug, Clone)]
struct Model {
    accounts: usize,
    skew: f64,
    largest: f64,
    max_tasks: u32,
    /// Other maximum task counts to simulate after `max_tasks` (`max_tasks=19,50`).
    more_max_tasks: Vec<u32>,
    concurrency: u32,
    item_secs: f64,
    collect_secs: u64,
    finalize_secs: u64,
    task_start_secs: u64,
    metric_delay_secs: u64,
    scale_in_cooldown_secs: u64,
    protection_grace_secs: u64,
    visibility_secs: u64,
    messages_per_task: u64,
    seed: u64,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            accounts: 100,
            skew: 10.0,
            largest: 2400.0,
            // Step scaling allows 20 step adjustments per policy by default: 0..=19 tasks.
            max_tasks: 19,
            // And with room for every account (100 / 2): queue length then over-scales.
            more_max_tasks: vec![50],
            concurrency: 2,
            // Last-accessed data (a generate + poll pair of IAM calls) and the queue round
            // trips dominate an item on AWS; the evaluation itself takes milliseconds.
            item_secs: 1.0,
            collect_secs: 30,
            finalize_secs: 15,
            task_start_secs: 60,
            metric_delay_secs: 60,
            // Scale-in only stops idle tasks (busy ones are protected), so it need not wait
            // long: 300 s (the Application Auto Scaling default) left idle tasks running
            // (task-hours 1.32x the busy hours with 50 tasks); 120 s is still slower than out.
            scale_in_cooldown_secs: 120,
            protection_grace_secs: 15,
            visibility_secs: 60,
            messages_per_task: 100,
            seed: 9,
        }
    }
}

impl Model {
    fn from_args() -> Model {
        let mut model = Model::default();
        for arg in std::env::args().skip(1) {
            let Some((key, value)) = arg.split_once('=') else {
                continue; // cargo bench passes `--bench`
            };
            let int = || value.parse::<u64>().ok();
            let float = || value.parse::<f64>().ok();
            match key {
                "accounts" => model.accounts = int().map_or(model.accounts, |v| v as usize),
                "skew" => model.skew = float().unwrap_or(model.skew),
                "max_tasks" => {
                    let list: Vec<u32> = value.split(',').filter_map(|v| v.parse().ok()).collect();
                    if let Some((first, rest)) = list.split_first() {
                        model.max_tasks = *first;
                        model.more_max_tasks = rest.to_vec();
                    }
                }
                "concurrency" => {
                    model.concurrency = int().map_or(model.concurrency, |v| v.max(1) as u32)
                }
                "item_secs" => model.item_secs = float().unwrap_or(model.item_secs),
                "task_start_secs" => model.task_start_secs = int().unwrap_or(model.task_start_secs),
                "metric_delay_secs" => {
                    model.metric_delay_secs = int().unwrap_or(model.metric_delay_secs)
                }
                "scale_in_cooldown_secs" => {
                    model.scale_in_cooldown_secs = int().unwrap_or(model.scale_in_cooldown_secs)
                }
                "messages_per_task" => {
                    model.messages_per_task = int().map_or(model.messages_per_task, |v| v.max(1))
                }
                "seed" => model.seed = int().unwrap_or(model.seed),
                _ => eprintln!("ignoring unknown option {key}"),
            }
        }
        model
    }
}

/// 100 account sizes from the bundled sample's 12: spread by quantile in log space, then
/// compressed so the largest is `largest` and the smallest `largest / skew`.
fn account_sizes(sample: &[usize], accounts: usize, skew: f64, largest: f64) -> Vec<u64> {
    let mut logs: Vec<f64> = sample.iter().map(|&s| (s.max(1) as f64).ln()).collect();
    logs.sort_by(f64::total_cmp);
    let (lo, hi) = (logs[0], logs[logs.len() - 1]);
    let span = (hi - lo).max(f64::EPSILON);
    let mut sizes: Vec<u64> = (0..accounts)
        .map(|j| {
            let q = if accounts > 1 {
                j as f64 / (accounts - 1) as f64
            } else {
                1.0
            };
            let pos = q * (logs.len() - 1) as f64;
            let (i, frac) = (pos.floor() as usize, pos.fract());
            let log = if i + 1 < logs.len() {
                logs[i] * (1.0 - frac) + logs[i + 1] * frac
            } else {
                logs[i]
            };
            // Where the size sits between the sample's smallest and largest, on a log
            // scale, kept; the range becomes [largest / skew, largest].
            let relative = (log - lo) / span;
            (largest * skew.powf(relative - 1.0)).round() as u64
        })
        .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scaling {
    AccountsWithWork,
    MessageCount,
}

/// One account's progress: its messages are `collect`, `items` items, `finalize`.
#[derive(Debug, Clone)]
struct Account {
    items: u64,
    /// Messages finished: 0 (nothing), 1 (collected), 1 + items, 2 + items (done).
    finished: u64,
    /// Seconds of the current message already done by its holder.
    progress: f64,
    /// The task and slot holding it.
    held_by: Option<usize>,
    /// When it can be received again (after a lost message's visibility timeout).
    available_at: u64,
    done_at: Option<u64>,
}

impl Account {
    fn messages(&self) -> u64 {
        self.items + 2
    }

    fn is_done(&self) -> bool {
        self.finished >= self.messages()
    }

    fn current_secs(&self, model: &Model) -> f64 {
        if self.finished == 0 {
            model.collect_secs as f64
        } else if self.finished <= self.items {
            model.item_secs
        } else {
            model.finalize_secs as f64
        }
    }

    fn total_secs(&self, model: &Model) -> f64 {
        model.collect_secs as f64 + self.items as f64 * model.item_secs + model.finalize_secs as f64
    }

    /// Messages in its queue that a receive could return (SQS's "visible"): the collect
    /// before it is done, then the items and the finalize it sent, less the one in flight.
    fn visible(&self) -> u64 {
        let queued = if self.finished == 0 {
            1
        } else {
            self.messages() - self.finished
        };
        queued.saturating_sub(u64::from(self.held_by.is_some()))
    }
}

#[derive(Debug, Clone)]
struct Task {
    ready_at: u64,
    stopped_at: Option<u64>,
    /// Accounts held, one per slot.
    held: Vec<usize>,
    idle_since: u64,
    busy_secs: u64,
}

impl Task {
    fn alive(&self) -> bool {
        self.stopped_at.is_none()
    }
}

#[derive(Debug, Default)]
struct Outcome {
    makespan_secs: u64,
    task_secs: u64,
    busy_secs: u64,
    slot_busy_secs: f64,
    lost_messages: u64,
    peak_tasks: usize,
}

/// Stops `task` at `now`; what it holds is lost and comes back after the visibility timeout.
fn stop(tasks: &mut [Task], accounts: &mut [Account], task: usize, now: u64, model: &Model) -> u64 {
    let mut lost = 0;
    for a in std::mem::take(&mut tasks[task].held) {
        let account = &mut accounts[a];
        account.held_by = None;
        account.progress = 0.0;
        account.available_at = now + model.visibility_secs;
        lost += 1;
    }
    tasks[task].stopped_at = Some(now);
    lost
}

/// Deterministic pseudo-random numbers (xorshift64*), for "arbitrary" task choices.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }
}

fn simulate(model: &Model, sizes: &[u64], scaling: Scaling) -> Outcome {
    let mut accounts: Vec<Account> = sizes
        .iter()
        .map(|&items| Account {
            items,
            finished: 0,
            progress: 0.0,
            held_by: None,
            available_at: 0,
            done_at: None,
        })
        .collect();
    let mut tasks: Vec<Task> = Vec::new();
    let mut outcome = Outcome::default();
    let mut rng = Rng(model.seed.max(1));
    let policy = Policy {
        concurrency: model.concurrency,
        max_tasks: model.max_tasks,
        scale_in_cooldown_secs: model.scale_in_cooldown_secs,
    };
    let mut desired: u32 = 0;
    let mut last_activity: Option<u64> = None;
    let mut last_scale_out: Option<u64> = None;
    // The metric's samples, one a minute: (time, accounts with work, visible messages).
    let mut samples: Vec<(u64, u64, u64)> = Vec::new();
    let limit = 48 * 3600;
    let trace = std::env::var_os("SKEWED_NIGHT_TRACE").is_some();

    for now in 0..limit {
        let all_done = accounts.iter().all(Account::is_done);
        let alive = tasks.iter().filter(|t| t.alive()).count();
        if all_done && alive == 0 {
            break;
        }
        // The metric, sampled every minute.
        if now % 60 == 0 {
            let with_work = accounts.iter().filter(|a| !a.is_done()).count() as u64;
            let visible = accounts.iter().map(Account::visible).sum();
            samples.push((now, with_work, visible));
        }
        // The policy, evaluated every minute on what the alarm sees (a delayed sample).
        if now % 60 == 0 && now >= model.metric_delay_secs {
            let seen = samples
                .iter()
                .rev()
                .find(|(at, _, _)| *at + model.metric_delay_secs <= now)
                .copied();
            if let Some((_, with_work, visible)) = seen {
                let since = last_activity.map(|at| now - at);
                let next = match scaling {
                    Scaling::AccountsWithWork => next_capacity(&policy, desired, with_work, since),
                    Scaling::MessageCount => {
                        let target = u32::try_from(visible.div_ceil(model.messages_per_task))
                            .unwrap_or(u32::MAX)
                            .min(model.max_tasks);
                        let out_ok = last_scale_out.is_none_or(|at| now - at >= 60);
                        let in_ok = since.is_none_or(|s| s >= model.scale_in_cooldown_secs);
                        if (target > desired && out_ok) || (target < desired && in_ok) {
                            target
                        } else {
                            desired
                        }
                    }
                };
                if next != desired {
                    if next > desired {
                        last_scale_out = Some(now);
                    }
                    desired = next;
                    last_activity = Some(now);
                }
            }
        }
        if trace && now % 60 == 0 {
            let alive = tasks.iter().filter(|t| t.alive()).count();
            let holding = tasks
                .iter()
                .filter(|t| t.alive() && !t.held.is_empty())
                .count();
            let with_work = accounts.iter().filter(|a| !a.is_done()).count();
            let visible: u64 = accounts.iter().map(Account::visible).sum();
            eprintln!(
                "{scaling:?} t={:>3} min desired={desired:>2} alive={alive:>2} holding={holding:>2} accounts_with_work={with_work:>3} visible={visible:>6}",
                now / 60
            );
        }
        // ECS brings the service to the desired count.
        let alive: Vec<usize> = (0..tasks.len()).filter(|&i| tasks[i].alive()).collect();
        if alive.len() < desired as usize {
            for _ in alive.len()..desired as usize {
                tasks.push(Task {
                    ready_at: now + model.task_start_secs,
                    stopped_at: None,
                    held: Vec::new(),
                    idle_since: now,
                    busy_secs: 0,
                });
            }
        } else if alive.len() > desired as usize {
            let mut excess = alive.len() - desired as usize;
            match scaling {
                Scaling::AccountsWithWork => {
                    // Only unprotected tasks: still starting, or idle past the grace.
                    for &i in &alive {
                        if excess == 0 {
                            break;
                        }
                        let t = &tasks[i];
                        let unprotected = now < t.ready_at
                            || (t.held.is_empty()
                                && now - t.idle_since >= model.protection_grace_secs);
                        if unprotected {
                            outcome.lost_messages += stop(&mut tasks, &mut accounts, i, now, model);
                            excess -= 1;
                        }
                    }
                }
                Scaling::MessageCount => {
                    let mut candidates = alive.clone();
                    while excess > 0 && !candidates.is_empty() {
                        let i = candidates.swap_remove(rng.below(candidates.len()));
                        outcome.lost_messages += stop(&mut tasks, &mut accounts, i, now, model);
                        excess -= 1;
                    }
                }
            }
        }
        // Free slots take the largest account with work nobody holds.
        for (i, task) in tasks.iter_mut().enumerate() {
            if !task.alive() || now < task.ready_at {
                continue;
            }
            while task.held.len() < model.concurrency as usize {
                let next = accounts.iter().position(|account| {
                    !account.is_done() && account.held_by.is_none() && account.available_at <= now
                });
                let Some(a) = next else { break };
                accounts[a].held_by = Some(i);
                task.held.push(a);
            }
        }
        outcome.peak_tasks = outcome
            .peak_tasks
            .max(tasks.iter().filter(|t| t.alive()).count());
        // One second of work.
        for task in tasks.iter_mut() {
            if !task.alive() {
                continue;
            }
            outcome.task_secs += 1;
            if task.held.is_empty() {
                continue;
            }
            task.busy_secs += 1;
            outcome.busy_secs += 1;
            let held = std::mem::take(&mut task.held);
            outcome.slot_busy_secs += held.len() as f64;
            let mut still = Vec::new();
            for a in held {
                let account = &mut accounts[a];
                let mut budget = 1.0;
                while budget > 0.0 && !account.is_done() {
                    let need = account.current_secs(model) - account.progress;
                    if need <= budget {
                        budget -= need;
                        account.finished += 1;
                        account.progress = 0.0;
                    } else {
                        account.progress += budget;
                        budget = 0.0;
                    }
                }
                if account.is_done() {
                    account.held_by = None;
                    account.done_at = Some(now + 1);
                } else {
                    still.push(a);
                }
            }
            task.held = still;
            if task.held.is_empty() {
                task.idle_since = now + 1;
            }
        }
    }
    outcome.makespan_secs = accounts.iter().filter_map(|a| a.done_at).max().unwrap_or(0);
    outcome
}

fn main() {
    let model = Model::from_args();
    let sample: Vec<usize> = accessflow_samples::bundled_sample()
        .iter()
        .flat_map(|c| c.accounts.iter().map(|a| a.principals))
        .collect();
    let sizes = account_sizes(&sample, model.accounts, model.skew, model.largest);
    println!("skewed_night: {model:?}");
    println!(
        "accounts: {} (principals {} to {}, {} in all; sample sizes {:?})",
        sizes.len(),
        sizes.last().copied().unwrap_or(0),
        sizes.first().copied().unwrap_or(0),
        sizes.iter().sum::<u64>(),
        sample
    );
    let mut all_max = vec![model.max_tasks];
    all_max.extend(&model.more_max_tasks);
    for max_tasks in all_max {
        let scenario = Model {
            max_tasks,
            ..model.clone()
        };
        println!();
        run_scenario(&scenario, &sizes);
    }
}

/// Both policies on one model, side by side.
fn run_scenario(model: &Model, sizes: &[u64]) {
    let model = model.clone();
    let accounts: Vec<Account> = sizes
        .iter()
        .map(|&items| Account {
            items,
            finished: 0,
            progress: 0.0,
            held_by: None,
            available_at: 0,
            done_at: None,
        })
        .collect();
    let total: f64 = accounts.iter().map(|a| a.total_secs(&model)).sum();
    let largest = accounts
        .iter()
        .map(|a| a.total_secs(&model))
        .fold(0.0, f64::max);
    let slots = f64::from(model.max_tasks * model.concurrency);
    let bound = (total / slots).max(largest);

    println!(
        "max_tasks {}, concurrency {}: work {:.1} slot-hours in all, largest account {:.1} min; {} slots; \
lower bound max({:.1}, {:.1}) = {:.1} min; first desired count {}",
        model.max_tasks,
        model.concurrency,
        total / 3600.0,
        largest / 60.0,
        model.max_tasks * model.concurrency,
        total / slots / 60.0,
        largest / 60.0,
        bound / 60.0,
        desired_tasks(sizes.len() as u64, model.concurrency, model.max_tasks)
    );
    println!(
        "{:<34} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>6} {:>5}",
        "policy",
        "makespan",
        "bound",
        "ratio",
        "task-h",
        "busy-h",
        "task/busy",
        "slot-util",
        "lost",
        "peak"
    );
    let mut met = Vec::new();
    for (name, scaling) in [
        (
            "(a) accounts with work + protection",
            Scaling::AccountsWithWork,
        ),
        ("(b) message count", Scaling::MessageCount),
    ] {
        let o = simulate(&model, sizes, scaling);
        let ratio = o.makespan_secs as f64 / bound;
        let cost = o.task_secs as f64 / o.busy_secs.max(1) as f64;
        println!(
            "{:<34} {:>7.1} m {:>7.1} m {:>7.3}x {:>8.2} {:>8.2} {:>8.3}x {:>8.1}% {:>6} {:>5}",
            name,
            o.makespan_secs as f64 / 60.0,
            bound / 60.0,
            ratio,
            o.task_secs as f64 / 3600.0,
            o.busy_secs as f64 / 3600.0,
            cost,
            100.0 * o.slot_busy_secs / (o.task_secs as f64 * f64::from(model.concurrency)).max(1.0),
            o.lost_messages,
            o.peak_tasks
        );
        met.push((name, ratio <= 1.10, cost <= 1.25));
    }
    println!("targets: makespan <= 1.10x the bound, task-hours <= 1.25x the busy hours");
    for (name, makespan_ok, cost_ok) in met {
        println!(
            "  {name}: makespan {}, task-hours {}",
            if makespan_ok { "met" } else { "NOT met" },
            if cost_ok { "met" } else { "NOT met" }
        );
    }
    println!(
        "(busy hours: time tasks hold at least one message; slot-util: held slot-time / \
(task-time x concurrency); lost: messages lost to a stopped task, back after the \
{} s visibility timeout)",
        model.visibility_secs
    );
}
