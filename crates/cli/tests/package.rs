//! The Debian package (issue #10, acceptance 9): packaging/build-deb.sh builds it from the
//! binary under test, `dpkg -i` installs the unit, the example policy, the man pages and the
//! completions, and `dpkg -r` removes every one of them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PACKAGE: &str = "nearnative";

/// Pages `man` must find once installed (`man nearnative-daemon` is acceptance 9's); every
/// page the package lists is checked as well.
const MAN_PAGES: &[&str] = &["nearnative", "nearnative-apply", "nearnative-daemon"];

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// dpkg's status of the package (`install ok installed`, `deinstall ok config-files`), or
/// `None` when dpkg has no record of it.
fn status() -> Option<String> {
    let out = run("dpkg-query", &["-W", "-f=${Status}", PACKAGE]);
    let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !status.is_empty()).then_some(status)
}

fn installed() -> bool {
    status().is_some_and(|status| status.ends_with(" installed"))
}

/// Purges the package when the test ends, however it ends, so a failure leaves neither the
/// package nor dpkg's record of it (`dpkg -r` keeps one while a package has a postrm).
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if status().is_some() {
            let _ = run("dpkg", &["--purge", PACKAGE]);
        }
    }
}

fn build_deb(out: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/build-deb.sh");
    let binary = env!("CARGO_BIN_EXE_nearnative");
    let stdout = run_ok(
        "bash",
        &[
            script.to_str().unwrap(),
            "--binary",
            binary,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let deb = PathBuf::from(stdout.trim());
    assert!(deb.is_file(), "build-deb.sh printed {stdout:?}, not a .deb");
    deb
}

#[test]
#[ignore = "needs root: installs a .deb with dpkg"]
fn the_deb_installs_everything_and_removes_it_all() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "needs root: dpkg -i installs into /usr and /etc"
    );
    if let Some(status) = status() {
        panic!(
            "dpkg already knows a {PACKAGE} package ({status}); this test installs and purges \
             its own, so purge that one first (dpkg --purge {PACKAGE})"
        );
    }
    assert!(
        run("sh", &["-c", "command -v man"]).status.success(),
        "needs man (apt-get install man-db) to look the pages up"
    );
    let dir = tempfile::tempdir().unwrap();
    let deb = build_deb(dir.path());

    let _purge = Purge;
    run_ok("dpkg", &["-i", deb.to_str().unwrap()]);
    let paths: Vec<PathBuf> = run_ok("dpkg", &["-L", PACKAGE])
        .lines()
        .map(PathBuf::from)
        .collect();

    let unit = Path::new("/lib/systemd/system/nearnative.service");
    let repo_unit =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/systemd/nearnative.service");
    assert_eq!(
        std::fs::read(unit).unwrap(),
        std::fs::read(repo_unit).unwrap(),
        "{} is not the repository's unit",
        unit.display()
    );
    // The unit's syntax and its ExecStart, now installed; its man pages are checked below.
    run_ok(
        "systemd-analyze",
        &["verify", "--man=no", unit.to_str().unwrap()],
    );
    for file in [
        "/usr/share/nearnative/examples/workloads.toml",
        "/usr/share/bash-completion/completions/nearnative",
        "/usr/share/zsh/vendor-completions/_nearnative",
        "/usr/share/doc/nearnative/copyright",
    ] {
        assert!(Path::new(file).is_file(), "{file} is not installed");
    }
    assert!(Path::new("/etc/nearnative/workloads.d").is_dir());

    let listed_pages = paths.iter().filter_map(|path| {
        let name = path.file_name()?.to_str()?;
        name.strip_suffix(".1.gz")
    });
    let pages: Vec<&str> = MAN_PAGES.iter().copied().chain(listed_pages).collect();
    assert!(
        pages.len() > MAN_PAGES.len(),
        "the package lists no man pages"
    );
    for page in pages {
        let found = run_ok("man", &["-w", page]);
        assert!(
            found.contains(&format!("/{page}.1")),
            "man -w {page}: {found:?}"
        );
    }

    let version = run_ok("/usr/bin/nearnative", &["--version"]);
    assert_eq!(
        version.trim(),
        concat!("nearnative ", env!("CARGO_PKG_VERSION"))
    );

    run_ok("dpkg", &["-r", PACKAGE]);
    assert!(!installed(), "{PACKAGE} is still installed after dpkg -r");
    let ours = paths.iter().filter(|path| {
        let text = path.to_string_lossy();
        text.contains("nearnative")
    });
    let left: Vec<&PathBuf> = ours.filter(|path| path.exists()).collect();
    assert!(left.is_empty(), "dpkg -r left {left:?}");
    run_ok("dpkg", &["--purge", PACKAGE]);
    assert_eq!(status(), None, "dpkg --purge left a record");
}
