//! SIGTERM mid-run: the worker finishes the message in hand, gives back the rest at once
//! (visibility 0) and exits 0; a new worker then finishes the run long before the
//! visibility timeout would have returned anything, with exact ledger counts.

use std::time::{Duration, Instant};

use accessflow_tests::{spec, terminate, Deployment};

#[test]
fn sigterm_releases_held_work_and_exits_zero() {
    // A visibility timeout far longer than the test may take: anything the stopped worker
    // kept instead of releasing would stall the run past the deadline below.
    let d = Deployment::new(600);
    let tenants = d.write_tenants(&[
        ("acme", spec("444400000001", 400, 41)),
        ("acme", spec("444400000002", 300, 42)),
    ]);
    d.start_run(&tenants, "shutdown");

    let mut first = d.spawn_worker(0, 2);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = d.status("shutdown");
        if status["totals"]["items_done"].as_u64().unwrap() >= 60 {
            assert_eq!(
                status["complete"], false,
                "SIGTERM must land mid-run: {status:#}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no progress: {status:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = Instant::now();
    let exit = terminate(&mut first, Duration::from_secs(30));
    assert!(
        exit.success(),
        "a worker stopped by SIGTERM exits 0, got {exit}"
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(20),
        "shutdown took {:?}",
        stopped.elapsed()
    );

    let mut second = d.spawn_worker(1, 2);
    let status = d.wait_for_run("shutdown", Duration::from_secs(120));
    assert!(terminate(&mut second, Duration::from_secs(30)).success());
    let totals = &status["totals"];
    assert_eq!(totals["items_done"], totals["items_expected"], "{status:#}");
    assert_eq!(totals["items_expected"], 700);
    assert_eq!(totals["items_failed"], 0);
    assert_eq!(
        totals["accounts_partial"], 0,
        "nothing was lost or dead-lettered: {status:#}"
    );
}
