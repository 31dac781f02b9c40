//! The real Celery for the interop tests (docs/design.md §12): a Python venv built once from
//! the pinned `tests/celery/requirements.txt` into `target/celery-venv`, so CI and a new machine
//! need nothing installed beforehand but Python 3 and PyPI. A missing Python or an unreachable
//! PyPI is a test failure naming the step, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Serialises the build: tests run in parallel threads of one process.
static BUILD: Mutex<()> = Mutex::new(());

/// `tests/celery/`: the requirements file and any Python the tests run.
pub fn celery_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("celery")
}

/// The venv's `python`, with the pinned Celery importable; builds the venv on first use.
/// Panics (failing the test) with what went wrong when it cannot be built.
pub fn python() -> PathBuf {
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/<test> → target/
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let venv = target.join("celery-venv");
    let requirements = celery_dir().join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    let stamp = venv.join("requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return venv.join("bin/python");
    }
    // Built in place (a venv's scripts embed its path); the stamp is written last, so a build
    // that died half-way is simply rebuilt next time.
    let _ = std::fs::remove_dir_all(&venv);
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "python3 -m venv (is Python 3 with the venv module installed?)",
    );
    run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
        "pip install -r tests/celery/requirements.txt (is PyPI reachable?)",
    );
    let py = venv.join("bin/python");
    run(
        Command::new(&py).args(["-c", "import celery, kombu; print(celery.__version__)"]),
        "import celery in the venv",
    );
    std::fs::write(&stamp, &wanted).unwrap();
    py
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("celery venv: {what}: could not start: {e}"));
    assert!(
        out.status.success(),
        "celery venv: {what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
