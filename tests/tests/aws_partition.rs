//! Issue 8's partition test: one worker, in a network namespace of its own, is cut off
//! from AWS (moto) in the middle of an item for longer than the visibility timeout. The
//! other worker takes its work over and completes the night; when the partition heals,
//! the stale worker's commits are refused (the claim moved on), so the ledger's counts are
//! exact and the reports are byte-identical to a clean night's.
//!
//! Needs root and iproute2 (`ip netns`), as on this project's machines and CI; the
//! namespace and its veth pair are made and removed by the test itself.

use std::process::Command;
use std::time::{Duration, Instant};

use accessflow_shared::aws::AwsBackend;
use accessflow_shared::idempotency::{self, IdempotencyRecord, ItemStatus};
use accessflow_shared::ledger::Ledger;
use accessflow_testkit::{moto, seed};
use accessflow_tests::aws::{night, provisioned, report_files, tenants_for};
use accessflow_tests::terminate;

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status();
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "`ip {}` failed ({status:?}): this test needs root and iproute2",
        args.join(" ")
    );
}

/// A network namespace joined to this one by a veth pair: `host_ip` on this side.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
}

impl Netns {
    fn create() -> Netns {
        let n = std::process::id() % 50_000;
        let subnet = 20 + std::process::id() % 200;
        let (name, host_if, inner_if) = (format!("afp{n}"), format!("afh{n}"), format!("afw{n}"));
        let host_ip = format!("10.79.{subnet}.1");
        ip(&["netns", "add", &name]);
        let netns = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
            host_ip: host_ip.clone(),
        };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &inner_if,
        ]);
        ip(&["link", "set", &inner_if, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/24"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        let inner_ip = format!("10.79.{subnet}.2/24");
        ip(&[
            "netns", "exec", &name, "ip", "addr", "add", &inner_ip, "dev", &inner_if,
        ]);
        ip(&["netns", "exec", &name, "ip", "link", "set", &inner_if, "up"]);
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        // The namespace knows the host's MAC for good, so a cut does not show as a failed
        // address lookup ("No route to host" within seconds, which ends the victim's
        // requests, SDK retries and all, before the heal): its packets are only lost, and
        // its requests hang across the cut as they would on a real partition.
        let mac = std::fs::read_to_string(format!("/sys/class/net/{host_if}/address"))
            .expect("the veth's MAC address");
        ip(&[
            "netns",
            "exec",
            &name,
            "ip",
            "neigh",
            "replace",
            &host_ip,
            "lladdr",
            mac.trim(),
            "dev",
            &inner_if,
            "nud",
            "permanent",
        ]);
        netns
    }

    /// Cuts the namespace off (both ways): its packets go nowhere.
    fn partition(&self) {
        ip(&["link", "set", &self.host_if, "down"]);
    }

    fn heal(&self) {
        ip(&["link", "set", &self.host_if, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn a_worker_partitioned_mid_item_longer_than_the_visibility_timeout_changes_nothing() {
    let netns = Netns::create();
    // moto on the host side of the veth pair: reachable from both namespaces. Everything
    // in this test binary uses it.
    let server = moto::start_server_on(&netns.host_ip);
    std::env::set_var("ACCESSFLOW_MOTO_URL", &server.url);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let account = moto::unique_account();
    runtime.block_on(async {
        seed::seed_fixture(&account, "nightly_account.json")
            .await
            .expect("seed the account")
    });
    let tenants_text = tenants_for(&account);
    let run = "partition";
    let deploy = |label: &str| provisioned(&runtime, label, &tenants_text);

    // The clean night.
    let (clean, clean_backend, tenants) = deploy("cln");
    night(&clean, &clean, &tenants, run, 1);

    // The partitioned night: the victim works alone until it holds a step after collect
    // (a batch or the finalize step), then is cut off. If the step's commit reached moto
    // together with the cut (its effects are in, and after the heal the SDK's retry of it
    // is answered as a replay), the victim holds nothing stale: that night cannot show the
    // refusal, and it is run again on a fresh deployment.
    let mut attempt = 0;
    let (d, backend, mut victim) = loop {
        attempt += 1;
        let (d, backend, tenants) = deploy(&format!("prt{attempt}"));
        d.start(&tenants, run);
        let mut victim = d.worker_in_netns(0, &netns.name);
        let steps = idempotency::record_key(run, "acme", &account, "").pk;
        // The step (other than collect) the victim holds a claim on, if any: until the
        // survivor starts, the victim is the only one claiming (a released claim has a
        // lease that has ended).
        let held = |backend: &AwsBackend| {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            runtime.block_on(async {
                let records = backend.ports().store.query(&steps, "").await.unwrap();
                records.into_iter().find_map(|r| {
                    let record: IdempotencyRecord = serde_json::from_value(r.value).ok()?;
                    (record.status == ItemStatus::InProgress
                        && record.lease_until_ms > now_ms
                        && r.key.sk != "collect")
                        .then_some(r.key)
                })
            })
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        let step = loop {
            if let Some(held) = held(&backend) {
                break held;
            }
            assert!(
                Instant::now() < deadline,
                "the victim never held a step: {:#}",
                d.status(run)
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        netns.partition();
        // What moto has of that step a moment later: still the victim's claim (its
        // effects are not in), or already its commit.
        std::thread::sleep(Duration::from_millis(300));
        if held(&backend).as_ref() == Some(&step) {
            eprintln!("attempt {attempt}: cut while the victim held {step}");
            break (d, backend, victim);
        }
        eprintln!("attempt {attempt}: the victim's commit of {step} landed with the cut; again");
        assert!(attempt < 3, "three cuts in a row landed with a commit");
        netns.heal();
        let _ = terminate(&mut victim, Duration::from_secs(60));
    };
    let cut_at = Instant::now();
    let mut survivor = d.worker(1);
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        let status = d.status(run);
        if status["complete"] == true {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the survivor did not complete the night: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    // Cut for well over the visibility timeout (3 s), then healed: the stale worker wakes
    // up with its old claims and tries to finish what it held.
    let minimum = Duration::from_secs(12);
    if cut_at.elapsed() < minimum {
        std::thread::sleep(minimum - cut_at.elapsed());
    }
    netns.heal();
    std::thread::sleep(Duration::from_secs(25));
    assert!(terminate(&mut survivor, Duration::from_secs(60)).success());
    let _ = terminate(&mut victim, Duration::from_secs(60));

    // Exact counts: one effect per item, whatever the stale worker tried.
    let after = d.status(run);
    let totals = &after["totals"];
    assert_eq!(totals["items_done"], totals["items_expected"], "{after:#}");
    assert_eq!(totals["items_failed"], 0, "{after:#}");
    assert_eq!(
        after["totals"], status["totals"],
        "nothing changed after the heal"
    );
    let outcomes = runtime.block_on(async {
        Ledger::new(backend.ports().store.clone())
            .item_outcomes(run, "acme", &account)
            .await
            .unwrap()
    });
    assert_eq!(
        outcomes.len() as u64,
        totals["items_expected"].as_u64().unwrap()
    );

    // Byte-identical reports.
    let clean_reports = report_files(&clean_backend, run);
    let reports = report_files(&backend, run);
    assert!(!clean_reports.is_empty());
    assert_eq!(
        clean_reports.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        reports.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    for ((name, a), (_, b)) in clean_reports.iter().zip(&reports) {
        assert!(a == b, "{name} differs from the clean night's");
    }
    // The stale worker did wake up and try: its work in hand was refused as finished by
    // the other holder (a commit whose claim moved, or a duplicate of a finished step).
    let log = std::fs::read_to_string(d.dir.path().join("worker-0.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(15).collect();
    eprintln!(
        "the partitioned worker's last log lines:\n{}",
        tail.join("\n")
    );
    assert!(
        log.contains("our effect is dropped") || log.contains("already finished"),
        "the healed worker left no sign of a refused commit"
    );
}
