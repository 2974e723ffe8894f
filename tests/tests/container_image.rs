//! The container image of `deploy/Dockerfile`, built from this build's binaries
//! (`BINARIES=prebuilt`; see `accessflow_tests::containers`): both binaries run in it, as
//! an unprivileged user, with every shared library they need on Debian 12; and a night on
//! moto with the coordinator (`provision`, `start`) and two workers (`serve`) in containers
//! gives the same reports, byte for byte, as the same night run by the binaries on the host.
//!
//! Needs Docker (the tests fail without it, saying so), and the base images
//! (`deploy/local-base-images.sh` makes them when no registry is reachable).

use std::time::{Duration, Instant};

use accessflow_testkit::{moto, seed};
use accessflow_tests::aws::{night, provisioned, report_files, AwsDeployment};
use accessflow_tests::containers::{self, docker, inspect, run_ok, Containers};
use accessflow_tests::AS_OF;

const RUN: &str = "container-night";

/// `docker run --rm IMAGE ARGS...`, asserting success; its stdout.
fn in_image(args: &[&str]) -> String {
    let image = containers::image();
    run_ok(
        docker().args(["run", "--rm", image]).args(args),
        &format!("docker run {image} {args:?}"),
    )
}

#[test]
fn image_runs_both_binaries_unprivileged_on_bookworm() {
    let image = containers::image();

    let help = in_image(&["worker", "--help"]);
    assert!(help.contains("serve"), "worker --help: {help}");
    let help = in_image(&["coordinator", "--help"]);
    assert!(
        help.contains("provision") && help.contains("start"),
        "coordinator --help: {help}"
    );

    // Every shared library the host-built binaries link against is in the image.
    let ldd = in_image(&["ldd", "/usr/local/bin/worker", "/usr/local/bin/coordinator"]);
    assert!(
        ldd.contains("libc.so.6") && !ldd.contains("not found"),
        "ldd in the image:\n{ldd}"
    );

    // Not root: the image's user, and what a process started in it runs as.
    assert_eq!(inspect(image, "{{.Config.User}}"), "10001:10001");
    let status = in_image(&["sh", "-c", "grep -E '^(Uid|Gid):' /proc/self/status"]);
    for line in status.lines() {
        let ids: Vec<&str> = line.split_whitespace().skip(1).collect();
        assert_eq!(ids, ["10001"; 4], "{status}");
    }
    // Its home (the embedded backend's data directory) is its own.
    in_image(&["sh", "-c", "touch \"$ACCESSFLOW_DATA_DIR.probe\""]);

    assert_eq!(inspect(image, "{{.Config.StopSignal}}"), "SIGTERM");
    let health = inspect(image, "{{json .Config.Healthcheck.Test}}");
    assert!(health.contains("/proc/"), "healthcheck: {health}");
    // The health check fails where no worker or coordinator runs.
    let out = containers::output(
        docker().args([
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            image,
            "-c",
            &health_command(),
        ]),
        "the health check without a worker",
    );
    assert!(
        !out.status.success(),
        "the health check passed with no worker"
    );

    eprintln!(
        "image {image}: {} MB",
        inspect(image, "{{.Size}}").parse::<u64>().unwrap_or(0) / 1_000_000
    );
}

/// The image's health check command (`CMD-SHELL ...`).
fn health_command() -> String {
    let test: Vec<String> = serde_json::from_str(&inspect(
        containers::image(),
        "{{json .Config.Healthcheck.Test}}",
    ))
    .unwrap();
    assert_eq!(test[0], "CMD-SHELL", "{test:?}");
    test[1].clone()
}

/// The settings of a deployment as container options: its environment (moto's address is
/// 127.0.0.1, so the containers share the host's network) and its name prefix.
fn container_env(d: &AwsDeployment) -> Vec<String> {
    let mut args = vec!["--network".to_string(), "host".to_string()];
    let mut env = d.env.clone();
    env.extend([
        ("ACCESSFLOW_BACKEND".to_string(), "aws".to_string()),
        ("ACCESSFLOW_NAME_PREFIX".to_string(), d.name_prefix.clone()),
        ("ACCESSFLOW_VISIBILITY_TIMEOUT".to_string(), "3".to_string()),
        ("ACCESSFLOW_MAX_RECEIVE_COUNT".to_string(), "5".to_string()),
    ]);
    for (k, v) in env {
        args.push("--env".into());
        args.push(format!("{k}={v}"));
    }
    args
}

#[test]
fn night_on_moto_in_containers_matches_the_host_binaries() {
    let image = containers::image();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let accounts = [moto::unique_account(), moto::unique_account()];
    runtime.block_on(async {
        for account in &accounts {
            seed::seed_fixture(account, "nightly_account.json")
                .await
                .expect("seed the account");
        }
    });
    let tenants_text = format!(
        "[[customers]]\nid = \"acme\"\n{}",
        accounts
            .iter()
            .map(|a| format!(
                "[[customers.accounts]]\nid = \"{a}\"\nrole_arn = \"arn:aws:iam::{a}:role/accessflow-reader\"\nexternal_id = \"acme-external-id\"\n"
            ))
            .collect::<String>()
    );

    // The containers' deployment: nothing provisioned yet, the coordinator container does it.
    let prefix = moto::unique_prefix("ctr");
    let settings = moto::settings(&prefix);
    let d = AwsDeployment::new(&prefix, &settings);
    let tenants = d.dir.path().join("tenants.toml");
    std::fs::write(&tenants, &tenants_text).unwrap();
    let env = container_env(&d);
    let env: Vec<&str> = env.iter().map(String::as_str).collect();
    let mount = format!("{}:/etc/accessflow/tenants.toml:ro", tenants.display());
    let coordinator = |args: &[&str]| {
        run_ok(
            docker()
                .args(["run", "--rm"])
                .args(&env)
                .args(["-v", &mount, image, "coordinator"])
                .args(args),
            &format!("coordinator {args:?} in a container"),
        )
    };

    let started = Instant::now();
    let provisioned_out = coordinator(&["provision"]);
    assert!(provisioned_out.contains("provisioned"), "{provisioned_out}");
    let run = coordinator(&[
        "start",
        "--tenants",
        "/etc/accessflow/tenants.toml",
        "--run-id",
        RUN,
        "--as-of",
        AS_OF,
    ]);
    assert_eq!(run, RUN);

    let mut running = Containers::new();
    let workers: Vec<String> = (0..2)
        .map(|i| format!("{}-w{i}", containers::unique_name("afworker")))
        .collect();
    for name in &workers {
        let mut args = vec!["--health-interval", "1s", "--health-start-period", "1s"];
        args.extend(&env);
        args.extend([
            image,
            "worker",
            "serve",
            "--concurrency",
            "1",
            "--idle-pause-ms",
            "100",
        ]);
        running.run_detached(name, &args);
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        let status = d.status(RUN);
        if status["complete"] == true {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the night in containers did not complete: {status:#}\n{}",
            running.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "night in containers: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let totals = &status["totals"];
    assert_eq!(totals["accounts_finished"], 2, "{status:#}");
    assert_eq!(totals["accounts_failed"], 0, "{status:#}");
    assert_eq!(totals["accounts_partial"], 0, "{status:#}");
    assert_eq!(totals["items_failed"], 0, "{status:#}");

    // The image's health check sees the running workers.
    for name in &workers {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let health = inspect(name, "{{.State.Health.Status}}");
            if health == "healthy" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is {health}: {}",
                inspect(name, "{{json .State.Health}}")
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // `docker stop` (the image's SIGTERM) is a graceful shutdown: exit status 0.
    for name in &workers {
        run_ok(docker().args(["stop", "-t", "60", name]), "docker stop");
        assert_eq!(
            inspect(name, "{{.State.ExitCode}}"),
            "0",
            "{name} after docker stop:\n{}",
            running.logs()
        );
    }

    let container_backend = runtime.block_on(d.backend(&settings));
    let in_containers = report_files(&container_backend, RUN);
    let names: Vec<&str> = in_containers.iter().map(|(k, _)| k.as_str()).collect();
    for account in &accounts {
        for file in [
            "report.json",
            "report.html",
            "principals.csv",
            "resources.csv",
            "principal-access-summaries.csv",
            "resource-access-summaries.csv",
            "diff.csv",
        ] {
            let key = format!("acme/reports/{RUN}/{account}/{file}");
            assert!(names.contains(&key.as_str()), "{key} missing: {names:?}");
        }
    }

    // The same night by the host's binaries (its own table, bucket and queues, the same
    // IAM accounts): the same reports.
    let (h, host_backend, host_tenants) = provisioned(&runtime, "ctrhost", &tenants_text);
    night(&h, &h, &host_tenants, RUN, 2);
    let on_host = report_files(&host_backend, RUN);
    assert_eq!(
        in_containers.len(),
        on_host.len(),
        "{names:?} vs {:?}",
        on_host.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    for ((key, bytes), (host_key, host_bytes)) in in_containers.iter().zip(&on_host) {
        assert_eq!(key, host_key);
        assert!(
            bytes == host_bytes,
            "{key} differs between the containers' night and the host's"
        );
    }
}
