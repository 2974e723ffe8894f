//! The container tests' side of Docker: the images of `deploy/` built once per test process
//! (the runtime image from the binaries built on this machine, moto's image), containers
//! and compose projects removed by guards, whatever happens to the test.
//!
//! Docker is required, not optional: without a usable daemon the tests fail and say why.
//! The base images (`debian:bookworm-slim`, `python:3.11-slim`) come from a registry when
//! one is reachable; on machines without one, `deploy/local-base-images.sh` (run here when
//! a tag is missing) makes them with debootstrap.
//!
//! The docker client is `ACCESSFLOW_DOCKER`, else `/usr/bin/docker` when it exists, else
//! `docker` from `PATH`; builds use BuildKit (`DOCKER_BUILDKIT=1`), which builds only the
//! stages the target needs (no Rust toolchain image for the prebuilt binaries).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{binary, repo_root};

/// Tag of the runtime image built from this machine's binaries.
pub const IMAGE: &str = "accessflow:test";
/// Tag of the moto image.
pub const MOTO_IMAGE: &str = "accessflow-moto:test";

fn docker_program() -> String {
    if let Ok(p) = std::env::var("ACCESSFLOW_DOCKER") {
        return p;
    }
    if Path::new("/usr/bin/docker").exists() {
        return "/usr/bin/docker".into();
    }
    "docker".into()
}

/// A `docker` command (BuildKit on).
pub fn docker() -> Command {
    let mut cmd = Command::new(docker_program());
    cmd.env("DOCKER_BUILDKIT", "1");
    cmd
}

/// Runs `cmd`, panicking with its output unless it succeeds; returns stdout (trimmed).
pub fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = output(cmd, what);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `cmd` and returns its output, panicking only when it cannot be started.
pub fn output(cmd: &mut Command, what: &str) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"))
}

/// Fails the test, loudly, when there is no usable Docker daemon.
pub fn require_docker() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let out = docker()
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "the container tests need a running Docker daemon and `{}` can't reach one \
                 (CI has Docker; start dockerd, or set ACCESSFLOW_DOCKER to a working client): {}",
                docker_program(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!(
                "the container tests need Docker: cannot run `{}`: {e} \
                 (install docker.io, or set ACCESSFLOW_DOCKER)",
                docker_program()
            ),
        }
    });
}

fn image_exists(tag: &str) -> bool {
    docker()
        .args(["image", "inspect", tag])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Makes sure the Dockerfiles' base images exist (`deploy/local-base-images.sh` when a tag
/// is missing; the script skips tags that exist).
pub fn base_images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        require_docker();
        if image_exists("debian:bookworm-slim") && image_exists("python:3.11-slim") {
            return;
        }
        let script = repo_root().join("deploy/local-base-images.sh");
        run_ok(
            Command::new("sh")
                .arg(&script)
                .env("DOCKER", docker_program()),
            "deploy/local-base-images.sh (needs root and debootstrap)",
        );
    });
}

/// `docker build` of `deploy/<dockerfile>` with `context` as the build context.
fn build(dockerfile: &str, context: &Path, tag: &str, extra: &[&str]) {
    let started = Instant::now();
    let mut cmd = docker();
    cmd.arg("build")
        .arg("--quiet")
        .arg("-f")
        .arg(repo_root().join("deploy").join(dockerfile))
        .args(["-t", tag])
        .args(extra)
        .arg(context);
    run_ok(&mut cmd, &format!("docker build of deploy/{dockerfile}"));
    eprintln!(
        "containers: built {tag} from deploy/{dockerfile} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The runtime image of `deploy/Dockerfile` with this build's `worker` and `coordinator`
/// (`BINARIES=prebuilt`), built once per test process; its tag.
pub fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        base_images();
        // A context of just the two binaries, at the paths the Dockerfile's `prebuilt`
        // stage copies from: not the whole repository and its target directory.
        let context = tempfile::tempdir().expect("tempdir");
        let release = context.path().join("target/release");
        std::fs::create_dir_all(&release).expect("context dir");
        for name in ["worker", "coordinator"] {
            std::fs::copy(binary(name), release.join(name)).expect("copy a binary");
        }
        build(
            "Dockerfile",
            context.path(),
            IMAGE,
            &["--target", "runtime", "--build-arg", "BINARIES=prebuilt"],
        );
    });
    IMAGE
}

/// moto's image (`deploy/moto.Dockerfile`), built once per test process; its tag.
pub fn moto_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        base_images();
        let context = tempfile::tempdir().expect("tempdir");
        let dir = context.path().join("testkit/src");
        std::fs::create_dir_all(&dir).expect("context dir");
        std::fs::copy(
            repo_root().join("testkit/src/moto_server.py"),
            dir.join("moto_server.py"),
        )
        .expect("copy the moto launcher");
        build("moto.Dockerfile", context.path(), MOTO_IMAGE, &[]);
    });
    MOTO_IMAGE
}

/// `docker inspect --format FORMAT TARGET`.
pub fn inspect(target: &str, format: &str) -> String {
    run_ok(
        docker().args(["inspect", "--format", format, target]),
        &format!("docker inspect {target}"),
    )
}

/// A free TCP port on 127.0.0.1 (for a published container port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A name no other test uses: `label` and a stamp (lowercase letters and digits).
pub fn unique_name(label: &str) -> String {
    accessflow_testkit::moto::unique_prefix(label)
        .trim_end_matches('-')
        .to_string()
}

/// Containers removed (`docker rm -f`) when dropped.
#[derive(Default)]
pub struct Containers {
    names: Vec<String>,
}

impl Containers {
    pub fn new() -> Containers {
        Containers::default()
    }

    /// Starts a detached container `name` with `args` (options, image, command); keeps it
    /// to remove on drop.
    pub fn run_detached(&mut self, name: &str, args: &[&str]) {
        self.names.push(name.to_string());
        run_ok(
            docker().args(["run", "-d", "--name", name]).args(args),
            &format!("docker run {name}"),
        );
    }

    /// The logs of every container, for a failure message.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for name in &self.names {
            let out = output(docker().args(["logs", "--tail", "40", name]), "docker logs");
            text.push_str(&format!(
                "--- {name}\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        text
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = docker()
                .args(["rm", "-f", "-v", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Waits until container `name` has exited; returns its exit code. Panics after `timeout`.
pub fn wait_exit(name: &str, timeout: Duration, context: impl Fn() -> String) -> i64 {
    let started = Instant::now();
    loop {
        let state = inspect(name, "{{.State.Status}} {{.State.ExitCode}}");
        let mut parts = state.split_whitespace();
        if parts.next() == Some("exited") {
            return parts
                .next()
                .and_then(|c| c.parse().ok())
                .expect("an exit code");
        }
        assert!(
            started.elapsed() < timeout,
            "{name} still {state} after {timeout:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A `docker-compose` project of `deploy/compose.yaml` under a unique name, taken down with
/// its volumes (`down -v`) when dropped.
pub struct ComposeProject {
    pub name: String,
    env: Vec<(String, String)>,
}

impl ComposeProject {
    /// A project named after `label`, with `env` for the compose file's variables.
    pub fn new(label: &str, env: &[(&str, &str)]) -> ComposeProject {
        ComposeProject {
            name: unique_name(label),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Sets (or replaces) one of the compose file's variables for later commands.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_string(), value.to_string()));
    }

    /// A `docker-compose -p NAME -f deploy/compose.yaml` command.
    pub fn command(&self) -> Command {
        let program =
            std::env::var("ACCESSFLOW_DOCKER_COMPOSE").unwrap_or_else(|_| "docker-compose".into());
        let mut cmd = Command::new(program);
        cmd.arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(repo_root().join("deploy/compose.yaml"))
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `docker-compose ARGS`, asserting success; its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        run_ok(
            self.command().args(args),
            &format!("docker-compose {args:?}"),
        )
    }

    /// The ids of the containers of `service`.
    pub fn containers(&self, service: &str) -> Vec<String> {
        self.run(&["ps", "-a", "-q", service])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The last lines of every service's logs, for a failure message.
    pub fn logs(&self) -> String {
        let out = output(
            self.command().args(["logs", "--no-color", "--tail", "60"]),
            "docker-compose logs",
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = self
            .command()
            .args(["down", "-v", "--remove-orphans", "-t", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
