//! What the benches say about where they ran: the machine's CPUs and memory, how its CPU
//! time was spent while they measured (`/proc/stat`, so that figures from a VM whose
//! hypervisor took some of the time, steal, are read as such), and the code's commit.

/// The machine's CPU time so far by kind, in seconds over all CPUs (the `cpu` line of
/// `/proc/stat`): user (with nice), system (with irq and softirq), idle, iowait, steal.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub user: f64,
    pub system: f64,
    pub idle: f64,
    pub iowait: f64,
    pub steal: f64,
}

impl MachineCpu {
    /// The counters now (all zero where `/proc/stat` cannot be read).
    pub fn read() -> MachineCpu {
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let f: Vec<f64> = text
            .lines()
            .find(|l| l.starts_with("cpu "))
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .map(|v| v.parse::<f64>().unwrap_or(0.0) / 100.0)
                    .collect()
            })
            .unwrap_or_default();
        let at = |i: usize| f.get(i).copied().unwrap_or(0.0);
        MachineCpu {
            user: at(0) + at(1),
            system: at(2) + at(5) + at(6),
            idle: at(3),
            iowait: at(4),
            steal: at(7),
        }
    }

    /// The time spent between `start` and these counters.
    pub fn since(self, start: MachineCpu) -> MachineCpu {
        MachineCpu {
            user: self.user - start.user,
            system: self.system - start.system,
            idle: self.idle - start.idle,
            iowait: self.iowait - start.iowait,
            steal: self.steal - start.steal,
        }
    }

    pub fn total(self) -> f64 {
        self.user + self.system + self.idle + self.iowait + self.steal
    }

    /// `x` as a percentage of all the machine's CPU time in this span.
    pub fn share(self, x: f64) -> f64 {
        100.0 * x / self.total().max(f64::MIN_POSITIVE)
    }
}

/// How many CPUs this process may use (1 when it cannot tell).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// "2 CPUs (model name), 23.4 GiB RAM", from `/proc/cpuinfo` and `/proc/meminfo`.
pub fn description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    format!(
        "{} CPUs ({cpu}), {:.1} GiB RAM",
        cpus(),
        mem_kib as f64 / 1024.0 / 1024.0
    )
}

/// The commit the working tree is at, "`abc1234`", with " + uncommitted changes in the
/// working tree" when tracked files differ from it (what a bench's binaries were built
/// from, if they were built from this tree).
pub fn code_revision() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let rev = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "-uno"]).is_empty();
    format!(
        "`{rev}`{}",
        if dirty {
            " + uncommitted changes in the working tree"
        } else {
            ""
        }
    )
}

/// CPU seconds from a process's `/proc/<pid>/stat` (`pid` may be "self"): `own` is its
/// own user + system time (fields 14 and 15), otherwise its waited-for children's
/// (`cutime` + `cstime`, fields 16 and 17). 0 where the file cannot be read.
pub fn process_cpu_secs(pid: &str, own: bool) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (in parentheses): state is field 3, at index 0.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let first = if own { 14 } else { 16 } - 3;
    (ticks(first) + ticks(first + 1)) / 100.0
}
