//! Python virtualenvs under the cargo target directory, for tests that drive Python tools
//! from PyPI (moto's server, python-hcl2 for the Terraform checks).
//!
//! A venv is made once with `python3 -m venv` and `pip install`, next to its final place
//! and renamed into it, so concurrent test binaries never see a half-made one; later runs
//! reuse it as long as its probe (a few lines of Python) passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// What a venv must contain.
pub struct VenvSpec<'a> {
    /// Where it lives.
    pub dir: PathBuf,
    /// Arguments to `pip install` (package specs, or `-r FILE`).
    pub install: &'a [&'a str],
    /// Python code that exits 0 when the venv has what is needed.
    pub probe: &'a str,
}

/// The cargo target directory of the running test binary (`<target>/<profile>/deps/<exe>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// The Python interpreter of the venv at `dir`.
pub fn python_of(dir: &Path) -> PathBuf {
    dir.join("bin").join("python")
}

/// Whether `python` passes `probe`.
pub fn passes(python: &Path, probe: &str) -> bool {
    Command::new(python)
        .args(["-c", probe])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Why a venv could not be made.
#[derive(Debug)]
pub struct VenvError(pub String);

impl std::fmt::Display for VenvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Makes sure the venv of `spec` exists and passes its probe; returns its Python.
/// `ACCESSFLOW_PYTHON` picks the Python that creates it (default `python3`).
pub fn ensure(spec: &VenvSpec) -> Result<PathBuf, VenvError> {
    let python = python_of(&spec.dir);
    if passes(&python, spec.probe) {
        return Ok(python);
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let tmp = spec
        .dir
        .with_extension(format!("tmp-{}-{nanos}", std::process::id()));
    let base = std::env::var("ACCESSFLOW_PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!(
        "python venv: installing {:?} into {}",
        spec.install,
        spec.dir.display()
    );
    let made = Command::new(&base)
        .args(["-m", "venv"])
        .arg(&tmp)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !made {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(VenvError(format!(
            "`{base} -m venv` failed: install python3-venv"
        )));
    }
    let out = Command::new(python_of(&tmp))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(spec.install)
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(VenvError(format!(
                "pip install {:?} failed:\n{}\n{}",
                spec.install,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )));
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(VenvError(format!("running pip failed: {e}")));
        }
    }
    if let Some(parent) = spec.dir.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if std::fs::rename(&tmp, &spec.dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if !passes(&python, spec.probe) {
            // A broken leftover: replace it next time.
            let _ = std::fs::remove_dir_all(&spec.dir);
            return Err(VenvError(format!(
                "the venv at {} was broken and has been removed; run the tests again",
                spec.dir.display()
            )));
        }
    }
    if !passes(&python, spec.probe) {
        return Err(VenvError(format!(
            "the venv at {} does not pass its probe {:?}",
            spec.dir.display(),
            spec.probe
        )));
    }
    Ok(python)
}
