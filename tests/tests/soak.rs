//! Issue 8's soak on the embedded backend: thirty nights of accounts that change every
//! night, with workers killed (SIGKILL) at random moments of every night. Every night's
//! reports are byte-identical to a clean deployment's, the resident memory of a worker
//! that lives through all thirty nights stays flat, and with `coordinator gc --keep-days 3`
//! after each night so does the data directory.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use accessflow_tests::{data_size, kill_hard, spec, terminate, Deployment};

/// Resident memory of a process, in KiB (Linux).
fn rss_kib(child: &Child) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A small deterministic generator for the kill times (no dependency for one number).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn start_night(d: &Deployment, tenants: &Path, run: &str, as_of: &str) {
    d.coordinator(&[
        "start",
        "--tenants",
        tenants.to_str().unwrap(),
        "--run-id",
        run,
        "--as-of",
        as_of,
    ]);
}

#[test]
fn thirty_nights_with_random_kills_match_clean_nights_with_flat_memory_and_disk() {
    let clean = Deployment::new(30);
    let soaked = Deployment::new(2);
    let mut rng = Lcg(20261202);
    // Lives through every night; the victims die.
    let mut steady = soaked.spawn_worker(0, 2);
    let mut rss = Vec::new();
    let mut disk = Vec::new();
    let mut kills = 0;
    for night in 1..=30u64 {
        let accounts = [
            ("initech", spec("333300000091", 10, night)),
            ("initech", spec("333300000092", 6, 300 + night)),
            ("globex", spec("444400000093", 8, 600 + night)),
        ];
        let run = format!("n{night}");
        let as_of = format!("2026-10-{night:02}T02:00:00Z");

        let tenants = clean.write_tenants(&accounts);
        start_night(&clean, &tenants, &run, &as_of);
        let mut worker = clean.spawn_worker(1, 2);
        clean.wait_for_run(&run, Duration::from_secs(120));
        assert!(terminate(&mut worker, Duration::from_secs(30)).success());

        let tenants = soaked.write_tenants(&accounts);
        start_night(&soaked, &tenants, &run, &as_of);
        for victim in 0..2 {
            let mut doomed = soaked.spawn_worker(10 + victim, 2);
            std::thread::sleep(Duration::from_millis(rng.below(400)));
            kill_hard(&mut doomed);
            kills += 1;
        }
        // (Should the night stall, whether the steady worker is still running tells where.)
        assert!(
            matches!(steady.try_wait(), Ok(None)),
            "night {night}: the steady worker exited before its night was waited for: {:?}\n{}",
            steady.try_wait(),
            soaked.worker_log_tails(60)
        );
        soaked.wait_for_run(&run, Duration::from_secs(120));
        assert_eq!(
            soaked.report_files(&run),
            clean.report_files(&run),
            "night {night}: the reports differ from the clean night's"
        );
        soaked.coordinator(&["gc", "--keep-days", "3"]);
        rss.push(rss_kib(&steady));
        disk.push(data_size(&soaked.data_dir()));
    }
    assert!(terminate(&mut steady, Duration::from_secs(30)).success());
    eprintln!("{kills} workers killed; steady worker RSS by night (KiB): {rss:?}; data directory (bytes): {disk:?}");
    // Flat, not fixed: the mean of the last ten nights against the mean of nights 6-15
    // (the first nights fill caches and the retention window). A leak of a few MB a
    // night would break it; the allocator's ups and downs do not.
    let mean = |v: &[u64]| v.iter().sum::<u64>() / v.len() as u64;
    let (early, late) = (mean(&rss[5..15]), mean(&rss[20..30]));
    assert!(
        late <= early + early / 2,
        "RSS grew from {early} to {late} KiB: {rss:?}"
    );
    let (early, late) = (mean(&disk[5..15]), mean(&disk[20..30]));
    assert!(
        late <= early + early / 3,
        "disk grew from {early} to {late} bytes: {disk:?}"
    );
}
