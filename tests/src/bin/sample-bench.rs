//! Bench of the bundled sample on the embedded backend (issue 11): the figures a new user
//! meets first, for the build next to this binary and, in the same rounds and in turn, for
//! a baseline build's binaries.
//!
//! ```text
//! cargo build --release            # the worker and coordinator binaries it runs
//! cargo run --release -p accessflow-tests --bin sample-bench -- --rounds 5
//! cargo run --release -p accessflow-tests --bin sample-bench -- --rounds 5 --baseline /tmp/base-bin
//! ```
//!
//! What it measures, per build and round:
//!
//! 1. **First run and reruns.** `coordinator run` of the bundled sample (5,542 principals in
//!    12 accounts) in a fresh directory, nothing cached (issue 11: ≤ 3 s), then twice more
//!    in the same directory with nothing changed (≤ 1 s each). Wall time, and the CPU time
//!    of the coordinator and its workers (this process's `cutime` + `cstime`).
//! 2. **Per-principal overhead.** The bundled sample's largest account (2,400 principals)
//!    alone, first night, with the worker's debug timings on: the batch phase is from the
//!    worker's "collected" log line to its "account finalized" line, less that line's
//!    `read_ms` and `report_ms` (wall time); the analysis is the `analysis_us` of its "batch
//!    analysed" lines (thread time, summed over each batch's evaluation threads and over the
//!    batches, so on several cores it can exceed the wall time it took and the ratio below
//!    understates the overhead). Issue 11: the overhead (batch phase per principal less the
//!    analysis) ≤ 2x the analysis.
//!
//! Each run must exit 0 and open a run of its own (its summary names a new run id and all
//! its accounts complete), or the bench stops. After each run the bench waits for the wall
//! clock's next second, so every run takes a new run id from the clock with any build. The
//! runs get none of this process's `ACCESSFLOW_*` or `RUST_LOG` settings: each runs the
//! embedded backend in its own directory, as a new user's first command does.
//!
//! Options: `--rounds N` (5); `--baseline DIR` (a directory with another build's
//! `coordinator` and `worker`, e.g. copied from its `target/release`); `--out FILE` (also
//! write the results there).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use accessflow_shared::tenants::{Reach, TenantsFile};
use accessflow_tests::machine::{self, MachineCpu};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Issue 11's targets.
const FIRST_RUN_TARGET_SECS: f64 = 3.0;
const RERUN_TARGET_SECS: f64 = 1.0;
const OVERHEAD_TARGET: f64 = 2.0;

struct Args {
    rounds: usize,
    baseline: Option<PathBuf>,
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        rounds: 5,
        baseline: None,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--rounds" => {
                let v = value()?;
                args.rounds = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--rounds {v:?} is not a positive number"))?;
            }
            "--baseline" => args.baseline = Some(PathBuf::from(value()?)),
            "--out" => args.out = Some(PathBuf::from(value()?)),
            other => {
                return Err(format!(
                    "unknown option {other:?} (options: --rounds N, --baseline DIR, --out FILE)"
                ))
            }
        }
    }
    Ok(args)
}

/// A build's binaries.
struct Build {
    label: String,
    coordinator: PathBuf,
    worker: PathBuf,
}

impl Build {
    fn in_dir(label: String, dir: &Path) -> Result<Build, String> {
        let build = Build {
            label,
            coordinator: dir.join("coordinator"),
            worker: dir.join("worker"),
        };
        for b in [&build.coordinator, &build.worker] {
            if !b.is_file() {
                return Err(format!(
                    "{} is missing: build the binaries in the same profile as this bench \
                     (`cargo build --release`, then run the bench with `cargo run --release`); \
                     a --baseline directory must hold another build's `coordinator` and `worker`",
                    b.display()
                ));
            }
        }
        Ok(build)
    }
}

/// One `coordinator run`: its wall time and the CPU time of it and its workers.
struct Timed {
    wall: f64,
    cpu: f64,
}

/// Runs `coordinator run` in `dir` and checks that it opened and finished a run of its own
/// (a run id not in `seen`, `accounts` accounts complete). With `tenants`, that file and the
/// worker's debug timings; without, the bundled sample as a user runs it.
fn coordinator_run(
    build: &Build,
    dir: &Path,
    tenants: Option<&Path>,
    accounts: usize,
    seen: &mut Vec<String>,
) -> Result<Timed, String> {
    let mut cmd = Command::new(&build.coordinator);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ACCESSFLOW_") || name == "RUST_LOG" {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(dir)
        .args(["run", "--no-progress"])
        .env("ACCESSFLOW_WORKER_BIN", &build.worker);
    if let Some(t) = tenants {
        cmd.arg("--tenants")
            .arg(t)
            .env("RUST_LOG", "info,accessflow_worker=debug");
    }
    // This process's waited-for children: the coordinator, and its workers, which it waits for.
    let cpu_before = machine::process_cpu_secs("self", false);
    let started = Instant::now();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {}: {e}", build.coordinator.display()))?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = machine::process_cpu_secs("self", false) - cpu_before;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fail = |why: &str| {
        format!(
            "{}: `coordinator run` in {} {why}\nstdout:\n{stdout}\nstderr (end):\n{}",
            build.label,
            dir.display(),
            tail(&String::from_utf8_lossy(&out.stderr), 20)
        )
    };
    if !out.status.success() {
        return Err(fail(&format!("exited with {}", out.status)));
    }
    let run_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Run ")?.split_whitespace().next())
        .ok_or_else(|| fail("printed no \"Run <id> finished\" line"))?
        .to_string();
    if seen.contains(&run_id) {
        return Err(fail(&format!(
            "reported run {run_id} again, not a run of its own"
        )));
    }
    seen.push(run_id);
    let complete = format!("accounts: {accounts} ({accounts} complete");
    if !stdout.contains(&complete) {
        return Err(fail(&format!("did not say {complete:?}")));
    }
    Ok(Timed { wall, cpu })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The batch phase and analysis of the one account of a first night, from its worker logs.
struct Overhead {
    principals: u64,
    batch_phase_ms: f64,
    analysis_us: u64,
}

impl Overhead {
    fn per_principal_ms(&self) -> f64 {
        self.batch_phase_ms / self.principals.max(1) as f64
    }
    fn analysis_per_principal_ms(&self) -> f64 {
        self.analysis_us as f64 / 1000.0 / self.principals.max(1) as f64
    }
    /// (batch phase per principal − analysis per principal) / analysis per principal.
    fn ratio(&self) -> f64 {
        let analysis = self.analysis_per_principal_ms();
        (self.per_principal_ms() - analysis) / analysis.max(f64::MIN_POSITIVE)
    }

    fn from_logs(logs: &Path) -> Result<Overhead, String> {
        let mut collected: Option<OffsetDateTime> = None;
        let mut finalized: Option<(OffsetDateTime, u64, u64, u64)> = None;
        let (mut analysis_us, mut analysed) = (0u64, 0u64);
        let entries =
            std::fs::read_dir(logs).map_err(|e| format!("reading {}: {e}", logs.display()))?;
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            for line in text.lines().filter(|l| l.starts_with('{')) {
                let Ok(j) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                let at = || {
                    j["timestamp"]
                        .as_str()
                        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                };
                let number = |k: &str| j[k].as_u64().unwrap_or(0);
                let message = j["message"].as_str().unwrap_or("");
                if message.starts_with("collected") {
                    collected = at();
                } else if message == "account finalized" {
                    finalized =
                        at().map(|t| (t, number("read_ms"), number("report_ms"), number("items")));
                } else if message == "batch analysed" {
                    analysis_us += number("analysis_us");
                    analysed += number("principals");
                }
            }
        }
        let missing = |what: &str| {
            format!(
                "no {what} line in the worker logs {}: see its worker-N.log files (the worker \
                 logs JSON lines when not on a terminal)",
                logs.display()
            )
        };
        let collected = collected.ok_or_else(|| missing("\"collected\""))?;
        let (finalized, read_ms, report_ms, items) =
            finalized.ok_or_else(|| missing("\"account finalized\""))?;
        if analysed != items || items == 0 {
            return Err(format!(
                "the worker logs {} have \"batch analysed\" lines for {analysed} principals \
                 of {items}: was the night not a first one, or the debug level off?",
                logs.display()
            ));
        }
        let span_ms = (finalized - collected).as_seconds_f64() * 1000.0;
        Ok(Overhead {
            principals: items,
            batch_phase_ms: span_ms - (read_ms + report_ms) as f64,
            analysis_us,
        })
    }
}

/// What one build measured over the rounds.
#[derive(Default)]
struct Results {
    first: Vec<Timed>,
    reruns: Vec<Timed>,
    overhead: Vec<Overhead>,
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sample-bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("sample-bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let this_dir = exe
        .parent()
        .ok_or_else(|| format!("cannot tell the directory of {}", exe.display()))?;
    let mut builds = vec![Build::in_dir(
        format!("this build ({})", machine::code_revision()),
        this_dir,
    )?];
    if let Some(dir) = &args.baseline {
        builds.push(Build::in_dir(format!("baseline ({})", dir.display()), dir)?);
    }
    let scratch = tempfile::tempdir()
        .map_err(|e| format!("cannot make a scratch directory under the temp dir: {e}"))?;
    let fresh_dir = || {
        tempfile::tempdir_in(scratch.path()).map_err(|e| {
            format!(
                "cannot make a run directory in {}: {e}",
                scratch.path().display()
            )
        })
    };

    // The largest sample account alone, from this build's bundled sample.
    let samples = scratch.path().join("samples");
    let out = Command::new(&builds[0].coordinator)
        .args(["samples", "--out"])
        .arg(&samples)
        .output()
        .map_err(|e| format!("coordinator samples: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "coordinator samples failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let tenants = TenantsFile::load(&samples.join("tenants.toml"), Reach::Fixtures)
        .map_err(|e| e.to_string())?;
    let (customer, largest) = tenants
        .customers
        .iter()
        .flat_map(|c| c.accounts.iter().map(move |a| (c, a)))
        .max_by_key(|(_, a)| a.size_hint)
        .ok_or("the bundled sample has no accounts")?;
    let fixture_dir = largest
        .fixture_dir
        .as_ref()
        .ok_or("the sample's largest account has no fixture_dir")?;
    let one = scratch.path().join("largest-account.toml");
    std::fs::write(
        &one,
        format!(
            // (JSON's string escapes are TOML's basic string escapes)
            "[[customers]]\nid = \"{}\"\n\n[[customers.accounts]]\nid = \"{}\"\nfixture_dir = {}\nsize_hint = {}\n",
            customer.id,
            largest.id,
            serde_json::Value::from(fixture_dir.to_string_lossy()),
            largest.size_hint
        ),
    )
    .map_err(|e| format!("writing {}: {e}", one.display()))?;
    let sample_accounts = tenants.customers.iter().map(|c| c.accounts.len()).sum();

    println!(
        "sample-bench: {} round(s); {}; largest account {}/{} ({} principals)",
        args.rounds,
        builds
            .iter()
            .map(|b| b.label.as_str())
            .collect::<Vec<_>>()
            .join(" and "),
        customer.id,
        largest.id,
        largest.size_hint
    );
    let cpu_start = MachineCpu::read();
    let mut results: Vec<Results> = builds.iter().map(|_| Results::default()).collect();
    for round in 1..=args.rounds {
        for (build, result) in builds.iter().zip(results.iter_mut()) {
            let dir = fresh_dir()?;
            let mut seen = Vec::new();
            let mut line = format!("round {round}, {}:", build.label);
            for i in 0..3 {
                let t = coordinator_run(build, dir.path(), None, sample_accounts, &mut seen)?;
                next_second();
                line.push_str(&format!(
                    " {} {:.2} s (CPU {:.2} s);",
                    if i == 0 { "first run" } else { "rerun" },
                    t.wall,
                    t.cpu
                ));
                if i == 0 {
                    result.first.push(t);
                } else {
                    result.reruns.push(t);
                }
            }
            let alone = fresh_dir()?;
            coordinator_run(build, alone.path(), Some(&one), 1, &mut Vec::new())?;
            next_second();
            let o = Overhead::from_logs(&alone.path().join(".accessflow/logs"))?;
            line.push_str(&format!(
                " largest account alone: batch phase {:.0} ms, {:.3} ms per principal, analysis {:.1} µs, overhead {:.2}x",
                o.batch_phase_ms,
                o.per_principal_ms(),
                o.analysis_per_principal_ms() * 1000.0,
                o.ratio()
            ));
            println!("{line}");
            result.overhead.push(o);
        }
    }
    let cpu_time = MachineCpu::read().since(cpu_start);

    let table = render(args, &builds, &results, cpu_time, largest.size_hint);
    println!("\n{table}");
    if let Some(path) = &args.out {
        std::fs::write(path, &table).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Waits until the wall clock is 0.1 s into its next second: a run that has exited took its
/// run id (the time to the second) before now, so the next run's will differ.
fn next_second() {
    let into_second = OffsetDateTime::now_utc().millisecond();
    std::thread::sleep(Duration::from_millis(1100 - u64::from(into_second)));
}

/// "a–b" of the values, with `digits` decimals.
fn range(values: impl IntoIterator<Item = f64>, digits: usize) -> String {
    let v: Vec<f64> = values.into_iter().collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = (format!("{lo:.digits$}"), format!("{hi:.digits$}"));
    if lo == hi {
        lo
    } else {
        format!("{lo}–{hi}")
    }
}

fn render(
    args: &Args,
    builds: &[Build],
    results: &[Results],
    cpu_time: MachineCpu,
    largest: u64,
) -> String {
    let within = |v: &[Timed], target: f64| {
        let n = v.iter().filter(|t| t.wall <= target).count();
        format!("{n} of {} ≤ {target} s", v.len())
    };
    let mut t = String::new();
    t.push_str(&format!(
        "### sample-bench: the bundled sample, {} round(s)\n\n",
        args.rounds
    ));
    t.push_str(&format!(
        "Machine: {}; its CPU time during the bench: user+system {:.1} %, idle {:.1} %, iowait {:.1} %, steal (the hypervisor) {:.1} %.\n\n",
        machine::description(),
        cpu_time.share(cpu_time.user + cpu_time.system),
        cpu_time.share(cpu_time.idle),
        cpu_time.share(cpu_time.iowait),
        cpu_time.share(cpu_time.steal),
    ));
    t.push_str("| | target |");
    for b in builds {
        t.push_str(&format!(" {} |", b.label));
    }
    t.push_str("\n|---|---|");
    t.push_str(&"---|".repeat(builds.len()));
    t.push('\n');
    let mut row = |name: &str, target: &str, cell: &dyn Fn(&Results) -> String| {
        t.push_str(&format!("| {name} | {target} |"));
        for r in results {
            t.push_str(&format!(" {} |", cell(r)));
        }
        t.push('\n');
    };
    row("first run (nothing cached)", "≤ 3 s", &|r| {
        format!(
            "**{} s**, {}",
            range(r.first.iter().map(|x| x.wall), 2),
            within(&r.first, FIRST_RUN_TARGET_SECS)
        )
    });
    row("its CPU time (coordinator and workers)", "", &|r| {
        format!("{} s", range(r.first.iter().map(|x| x.cpu), 2))
    });
    row("unchanged reruns", "≤ 1 s", &|r| {
        format!(
            "**{} s**, {}",
            range(r.reruns.iter().map(|x| x.wall), 2),
            within(&r.reruns, RERUN_TARGET_SECS)
        )
    });
    row("their CPU time", "", &|r| {
        format!("{} s", range(r.reruns.iter().map(|x| x.cpu), 2))
    });
    row(
        &format!("largest account alone ({largest} principals): batch phase per principal"),
        "",
        &|r| {
            format!(
                "**{} ms** ({} ms in all)",
                range(r.overhead.iter().map(Overhead::per_principal_ms), 3),
                range(r.overhead.iter().map(|o| o.batch_phase_ms), 0)
            )
        },
    );
    row(
        "its analysis per principal (the worker's thread time)",
        "",
        &|r| {
            format!(
                "{} µs",
                range(
                    r.overhead
                        .iter()
                        .map(|o| o.analysis_per_principal_ms() * 1000.0),
                    1
                )
            )
        },
    );
    row("overhead / analysis", "≤ 2x", &|r| {
        let met = r
            .overhead
            .iter()
            .filter(|o| o.ratio() <= OVERHEAD_TARGET)
            .count();
        format!(
            "**{}x**, {met} of {} ≤ {OVERHEAD_TARGET}x",
            range(r.overhead.iter().map(Overhead::ratio), 2),
            r.overhead.len()
        )
    });
    t
}
