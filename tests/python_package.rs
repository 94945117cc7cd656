//! The Python client as a package: `pip install ./clients/python` into a fresh virtual
//! environment, then imported from elsewhere. Skipped, with a note, only when python3
//! or its venv module is not installed.

use std::path::Path;
use std::process::Command;

fn run(program: &Path, args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

/// Copies the directory `from` to `to`, recursively, leaving out `__pycache__`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "__pycache__" {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_python_client_installs_with_pip_and_imports_from_anywhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = std::env::temp_dir().join(format!("switchboard-pip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let venv = work.join("venv");
    let made = match Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("note: python3 is not installed; skipping the package test");
            return;
        }
        Err(e) => panic!("python3 -m venv: {e}"),
    };
    if !made.status.success() {
        eprintln!(
            "note: python3 cannot make a virtual environment here; skipping:\n{}",
            String::from_utf8_lossy(&made.stderr)
        );
        return;
    }
    let pip = venv.join("bin/pip");
    let python = venv.join("bin/python");
    // Built from a copy: setuptools leaves build/ and .egg-info/ where it builds.
    let package = work.join("package");
    std::fs::create_dir_all(&package).unwrap();
    for file in ["pyproject.toml", "README.md"] {
        std::fs::copy(root.join("clients/python").join(file), package.join(file)).unwrap();
    }
    copy_tree(
        &root.join("clients/python/switchboard_client"),
        &package.join("switchboard_client"),
    );
    let package = package.to_str().unwrap();
    // Offline first, with the environment's own setuptools; else the usual isolated
    // build, which fetches it.
    let mut installed = run(
        &pip,
        &["install", "--no-build-isolation", "--no-index", package],
        &work,
    );
    if !installed.status.success() {
        installed = run(&pip, &["install", package], &work);
    }
    assert!(
        installed.status.success(),
        "pip install failed:\n{}{}",
        String::from_utf8_lossy(&installed.stdout),
        String::from_utf8_lossy(&installed.stderr)
    );
    let check = run(
        &python,
        &[
            "-c",
            "import switchboard_client as sb, sys; \
             assert sb.parse_addr('127.0.0.1:7420') == ('127.0.0.1', 7420); \
             assert sb.DEFAULT_ADDR == '127.0.0.1:7420'; \
             print(sb.__file__)",
        ],
        &work,
    );
    let _ = std::fs::remove_dir_all(&work);
    assert!(
        check.status.success(),
        "import failed:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let path = String::from_utf8_lossy(&check.stdout);
    assert!(
        path.contains("site-packages"),
        "imported from the checkout, not the installed package: {path}"
    );
}
