//! Benchmark (not a timed test): `cargo bench -p accessflow-analysis --bench analysis_bench`.
//!
//! (a) a sample account from `accessflow-samples` (the one account generator): 6,000
//!     principals (users and roles) and about 1,500 customer managed policies, analysed on
//!     one thread: parse, every principal, report, render;
//! (b) the largest cloudsplaining test file under `tests/data/cloudsplaining/` (chosen by
//!     size and printed; today `example-authz-details.json`: 3 users, 2 groups, 3 roles,
//!     32 managed policies), same steps, averaged over many runs;
//! (c) in the same run, whole processes on file (b), side by side: `cloudsplaining scan`
//!     (PyPI; from a venv under the target directory, created and installed on first use;
//!     skipped, loudly, if it cannot be installed), median of 3; the real binary
//!     `worker analyze FILE --out DIR` (`<target dir>/release/worker`, or
//!     `ACCESSFLOW_WORKER_BIN`; not built by this bench: NOT MEASURED when absent), median of
//!     11; and this bench binary re-run as a process that does what `worker analyze` does
//!     with the analysis crate being benchmarked (no CLI parsing, no logging setup), median
//!     of 11.
//!
//! `Engine::new` is timed first (the embedded catalog, precompiled by `build.rs`), beside
//! parsing the same catalog at run time (`Catalog::from_gz`, what `Engine::new` did before).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use accessflow_analysis::{build_report, AccountModel, Catalog, Engine, ReportContext};
use accessflow_samples::{generate_account_with_policies, SampleAccountSpec};

struct Timings {
    parse: Duration,
    analyze: Duration,
    report: Duration,
    render: Duration,
    principals: usize,
    bytes: usize,
}

fn run_once(engine: &Engine, bytes: &[u8]) -> Timings {
    let t0 = Instant::now();
    let model = AccountModel::parse(bytes).expect("parse");
    let t1 = Instant::now();
    let mut results = Vec::new();
    for p in model.principals() {
        results.push(
            engine
                .analyze_principal(&model, &p.arn, None)
                .expect("analyze"),
        );
    }
    let t2 = Instant::now();
    if std::env::var_os("ACCESSFLOW_BENCH_VERBOSE").is_some() && t_verbose_once() {
        let grants: usize = results.iter().map(|r| r.grants.len()).sum();
        let names: usize = results
            .iter()
            .flat_map(|r| &r.grants)
            .map(|g| g.actions.len())
            .sum();
        eprintln!(
            "   [{} results, {grants} grants, {names} action names]",
            results.len()
        );
    }
    let report = bench_report(engine, &model, &results);
    let t3 = Instant::now();
    if std::env::var_os("ACCESSFLOW_BENCH_VERBOSE").is_some() && t_verbose_once() {
        eprintln!(
            "   [report: {} access rows, {} resource-access rows, {} resources, {} assumers, {} escalations]",
            report.principal_access.len(),
            report.resource_access.len(),
            report.resources.len(),
            report.role_assumers.len(),
            report.escalations.len()
        );
    }
    let files = report.render_files().expect("render");
    let t4 = Instant::now();
    let bytes_out: usize = files.iter().map(|(_, b)| b.len()).sum();
    Timings {
        parse: t1 - t0,
        analyze: t2 - t1,
        report: t3 - t2,
        render: t4 - t3,
        principals: results.len(),
        bytes: bytes_out,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn cloudsplaining_bin() -> Result<PathBuf, String> {
    let venv = target_dir().join("cloudsplaining-venv");
    let bin = venv.join("bin/cloudsplaining");
    if bin.exists() {
        return Ok(bin);
    }
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map_err(|e| format!("python3 -m venv: {e}"))?;
    if !ok.success() {
        return Err("python3 -m venv failed".into());
    }
    let ok = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "cloudsplaining"])
        .status()
        .map_err(|e| format!("pip install cloudsplaining: {e}"))?;
    if !ok.success() || !bin.exists() {
        return Err("pip install cloudsplaining failed".into());
    }
    Ok(bin)
}

/// Set in the child process of (c): do what `worker analyze FILE --out DIR` does, then exit.
const CHILD_FILE: &str = "ACCESSFLOW_BENCH_CHILD_ANALYZE";
const CHILD_OUT: &str = "ACCESSFLOW_BENCH_CHILD_OUT";

fn main() {
    if let (Some(file), Some(out)) = (std::env::var_os(CHILD_FILE), std::env::var_os(CHILD_OUT)) {
        let engine = Engine::new().expect("the embedded catalog loads");
        write_reports(&engine, Path::new(&file), Path::new(&out));
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run small then
    let quick = !std::env::args().any(|a| a == "--bench");
    let t = Instant::now();
    let engine = Engine::new().expect("the embedded catalog loads");
    let catalog_load = t.elapsed();
    let t = Instant::now();
    let parsed = Catalog::from_gz(Catalog::embedded_gz()).expect("the embedded TSV parses");
    let catalog_parse = t.elapsed();
    assert_eq!(parsed.len(), engine.catalog().len());
    drop(parsed);
    println!(
        "== Engine::new (the embedded catalog, precompiled by build.rs; once per process): {:.3} ms; parsing the same catalog at run time (Catalog::from_gz, as before): {:.1} ms",
        ms(catalog_load),
        ms(catalog_parse)
    );
    let scale: f64 = std::env::var("ACCESSFLOW_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    // the generator makes about 160 customer managed policies for 6,000 principals; the
    // extra ones bring the account to about 1,500
    let (principals, extra_policies) = if quick {
        (60, 15)
    } else {
        ((6000.0 * scale) as usize, (1340.0 * scale) as usize)
    };
    let spec = SampleAccountSpec {
        account_id: "123456789012".into(),
        principals,
        seed: 42,
        malformed_policy: false,
        resources: false,
    };
    let bytes = generate_account_with_policies(&spec, extra_policies).authorization_details;
    if let Some(p) = std::env::var_os("ACCESSFLOW_BENCH_DUMP") {
        std::fs::write(p, &bytes).expect("dump generated account");
    }
    let shape = AccountShape::of(&bytes);
    println!(
        "== (a) sample account (accessflow-samples, seed 42): {} roles, {} users, {} customer managed policies, {} groups; {:.1} MB",
        shape.roles,
        shape.users,
        shape.customer_policies,
        shape.groups,
        bytes.len() as f64 / 1e6
    );
    let _warm = run_once(&engine, &bytes);
    let t = run_once(&engine, &bytes);
    let total = t.parse + t.analyze + t.report + t.render;
    println!(
        "   parse {:.0} ms, analyze {} principals {:.0} ms ({:.1} us/principal), report {:.0} ms, render {:.0} ms ({:.1} MB out); total {:.0} ms (one thread)",
        ms(t.parse),
        t.principals,
        ms(t.analyze),
        ms(t.analyze) * 1000.0 / t.principals.max(1) as f64,
        ms(t.report),
        ms(t.render),
        t.bytes as f64 / 1e6,
        ms(total)
    );
    println!(
        "   parse + analyze (the engine's work on the account): {:.0} ms",
        ms(t.parse + t.analyze)
    );

    let (file, others) = largest_cloudsplaining_file();
    let small = std::fs::read(&file).expect("cloudsplaining file");
    println!(
        "== (b) cloudsplaining's largest example file: {} ({} bytes; the others: {})",
        file.display(),
        small.len(),
        others
    );
    let n = if quick { 3 } else { 200 };
    let _ = run_once(&engine, &small);
    let start = Instant::now();
    let mut last = None;
    for _ in 0..n {
        last = Some(run_once(&engine, &small));
    }
    let avg = start.elapsed() / n;
    let last = last.expect("ran");
    println!("   {} ({} principals): {:.2} ms per full analysis incl. report and render (avg of {n}); parse+analyze {:.2} ms", file.display(), last.principals, ms(avg), ms(last.parse + last.analyze));

    // what `worker analyze FILE --out DIR` does: read the file, analyse, write the files
    let out_dir = target_dir().join("accessflow-bench-out");
    let n_cli = if quick { 2 } else { 30 };
    let start = Instant::now();
    for _ in 0..n_cli {
        write_reports(&engine, &file, &out_dir);
    }
    let avg_cli = start.elapsed() / n_cli;
    let avg_cli = avg_cli + catalog_load;
    println!(
        "   as `worker analyze` (read the file, analyse, write the 7 report files) plus the catalog load: {:.2} ms (avg of {n_cli})",
        ms(avg_cli)
    );

    if quick {
        println!("== (c) whole processes: skipped in quick mode (run `cargo bench`)");
        return;
    }
    println!("== (c) whole processes on {}:", file.display());
    let worker = worker_bin();
    let worker_median = match &worker {
        Ok(bin) => {
            let out = target_dir().join("accessflow-bench-worker-out");
            let mut cmd = Command::new(bin);
            cmd.arg("analyze")
                .arg(&file)
                .arg("--out")
                .arg(&out)
                .current_dir(target_dir());
            match median_process(&mut cmd, 11) {
                Ok(m) => {
                    println!(
                        "   `worker analyze FILE --out DIR`: median {:.1} ms of 11 runs ({}{})",
                        ms(m),
                        bin.display(),
                        if older_than_this_bench(bin) {
                            "; NOTE: built before this bench binary, so maybe from other analysis sources"
                        } else {
                            ""
                        }
                    );
                    Some(m)
                }
                Err(e) => {
                    println!("!!!!!!!! `worker analyze` NOT MEASURED: {e} !!!!!!!!");
                    None
                }
            }
        }
        Err(e) => {
            println!("!!!!!!!! `worker analyze` NOT MEASURED: {e} !!!!!!!!");
            None
        }
    };
    let child_median = {
        let mut cmd = Command::new(std::env::current_exe().expect("the bench binary"));
        cmd.env(CHILD_FILE, &file)
            .env(CHILD_OUT, target_dir().join("accessflow-bench-child-out"));
        match median_process(&mut cmd, 11) {
            Ok(m) => {
                println!(
                    "   this bench binary as a process doing what `worker analyze` does (Engine::new, read, analyse, write the report files; this analysis crate): median {:.1} ms of 11 runs",
                    ms(m)
                );
                Some(m)
            }
            Err(e) => {
                println!("!!!!!!!! the bench binary as a process NOT MEASURED: {e} !!!!!!!!");
                None
            }
        }
    };
    match cloudsplaining_bin() {
        Err(e) => {
            println!("!!!!!!!! (c) cloudsplaining scan NOT MEASURED: {e} !!!!!!!!");
        }
        Ok(bin) => {
            let out = target_dir().join("cloudsplaining-bench-out");
            let mut times = Vec::new();
            for _ in 0..3 {
                let _ = std::fs::remove_dir_all(&out);
                if let Err(e) = std::fs::create_dir_all(&out) {
                    println!("!!!!!!!! (c) cannot create {}: {e} !!!!!!!!", out.display());
                    return;
                }
                let s = Instant::now();
                let st = Command::new(&bin)
                    .args(["scan", "--skip-open-report", "--input-file"])
                    .arg(&file)
                    .arg("--output")
                    .arg(&out)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
                let el = s.elapsed();
                match st {
                    Ok(s) if s.success() => times.push(el),
                    other => {
                        println!("!!!!!!!! (c) cloudsplaining scan failed: {other:?} !!!!!!!!");
                        return;
                    }
                }
            }
            times.sort();
            let median = times[1];
            println!(
                "   `cloudsplaining scan`: median {:.0} ms of 3 runs ({})",
                ms(median),
                bin.display()
            );
            match worker_median {
                Some(w) => println!(
                    "   ratio, whole process: cloudsplaining / `worker analyze` = {:.0}x ({:.0} ms / {:.1} ms)",
                    ms(median) / ms(w),
                    ms(median),
                    ms(w)
                ),
                None => println!(
                    "   ratio, whole process: cloudsplaining / `worker analyze` NOT MEASURED (no worker binary)"
                ),
            }
            if let Some(c) = child_median {
                println!(
                    "   ratio, whole process: cloudsplaining / the bench binary's `worker analyze` work = {:.0}x ({:.0} ms / {:.1} ms)",
                    ms(median) / ms(c),
                    ms(median),
                    ms(c)
                );
            }
            println!(
                "   ratio, in process: cloudsplaining / accessflow = {:.0}x against the analysis incl. report ({:.2} ms), {:.0}x against read, analyse, write plus the catalog load ({:.2} ms)",
                ms(median) / ms(avg),
                ms(avg),
                ms(median) / ms(avg_cli),
                ms(avg_cli)
            );
        }
    }
}

/// The largest file (by bytes) of `tests/data/cloudsplaining/`, and a list of the others.
fn largest_cloudsplaining_file() -> (PathBuf, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cloudsplaining");
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
        .expect("tests/data/cloudsplaining")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let len = p.metadata().ok()?.len();
            (p.extension()? == "json").then_some((len, p))
        })
        .collect();
    files.sort();
    let (_, largest) = files.pop().expect("a cloudsplaining file");
    let others = files
        .iter()
        .rev()
        .map(|(len, p)| {
            format!(
                "{} {len} B",
                p.file_name().unwrap_or_default().to_string_lossy()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    (largest, others)
}

/// The `worker` binary: `ACCESSFLOW_WORKER_BIN`, else `release/worker` in the target
/// directory (this bench does not build it: the AWS SDK takes minutes).
fn worker_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ACCESSFLOW_WORKER_BIN") {
        let p = PathBuf::from(p);
        return if p.exists() {
            Ok(p)
        } else {
            Err(format!(
                "ACCESSFLOW_WORKER_BIN={} does not exist",
                p.display()
            ))
        };
    }
    let p = target_dir().join("release/worker");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found: build the worker first with cargo build --release -p accessflow-worker",
            p.display()
        ))
    }
}

fn older_than_this_bench(bin: &Path) -> bool {
    let mtime = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    match (
        mtime(bin),
        std::env::current_exe().ok().and_then(|e| mtime(&e)),
    ) {
        (Some(w), Some(b)) => w < b,
        _ => false,
    }
}

/// The median wall time of `n` runs of a process (after one unmeasured run); fails if a run
/// fails.
fn median_process(cmd: &mut Command, n: usize) -> Result<Duration, String> {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut times = Vec::new();
    for i in 0..=n {
        let s = Instant::now();
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        let el = s.elapsed();
        if !out.status.success() {
            return Err(format!(
                "{cmd:?}: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        if i > 0 {
            times.push(el);
        }
    }
    times.sort();
    Ok(times[n / 2])
}

/// What the generated account holds, counted in its JSON.
struct AccountShape {
    users: usize,
    roles: usize,
    groups: usize,
    customer_policies: usize,
}

impl AccountShape {
    fn of(bytes: &[u8]) -> AccountShape {
        let v: serde_json::Value = serde_json::from_slice(bytes).expect("generated JSON");
        let len = |key: &str| v[key].as_array().map_or(0, Vec::len);
        let customer_policies = v["Policies"].as_array().map_or(0, |ps| {
            ps.iter()
                .filter(|p| {
                    p["Arn"]
                        .as_str()
                        .is_some_and(|a| !a.contains(":aws:policy/"))
                })
                .count()
        });
        AccountShape {
            users: len("UserDetailList"),
            roles: len("RoleDetailList"),
            groups: len("GroupDetailList"),
            customer_policies,
        }
    }
}

fn t_verbose_once() -> bool {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst) < 2
}

/// The account report the bench builds, with fixed names and time.
fn bench_report(
    engine: &Engine,
    model: &AccountModel,
    results: &[accessflow_analysis::PrincipalAnalysis],
) -> accessflow_analysis::AccountReport {
    let ctx = ReportContext {
        customer: "bench",
        account: model.account_id(),
        run_id: "bench",
        analysis_time: "2026-11-26T02:00:00.000000+00:00",
        credential_report: None,
        resources: None,
        trusted_accounts: &[],
    };
    build_report(engine, model, results, &[], &ctx, None)
}

/// What `worker analyze FILE --out DIR` does, in process: read, parse, analyse every
/// principal, build the report and write its files.
fn write_reports(engine: &Engine, file: &std::path::Path, out_dir: &std::path::Path) {
    let bytes = std::fs::read(file).expect("read the account file");
    let model = AccountModel::parse(&bytes).expect("parse");
    let results: Vec<_> = model
        .principals()
        .iter()
        .map(|p| {
            engine
                .analyze_principal(&model, &p.arn, None)
                .expect("analyze")
        })
        .collect();
    let report = bench_report(engine, &model, &results);
    std::fs::create_dir_all(out_dir).expect("create the output directory");
    for (name, body) in report.render_files().expect("render") {
        std::fs::write(out_dir.join(name), body).expect("write a report file");
    }
}
