//! `nearnative libvirt install-hook` and `remove-hook`: the qemu hook
//! `HOOKS_DIR/qemu.d/nearnative`, a `/bin/sh` script that runs this binary's `libvirt hook`.
//!
//! libvirtd runs `HOOKS_DIR/qemu` and then each executable of `qemu.d/` in name order, and it
//! finds them only when it starts. The script carries a marker line, so that neither command
//! ever replaces or removes a file nearnative did not write. It is written to a temporary
//! beside it and renamed into place, so libvirtd never runs half a script.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::control::DEFAULT_SOCKET;

/// The line that says nearnative wrote the file.
pub const MARKER: &str = "# nearnative-libvirt-hook: written by `nearnative libvirt install-hook`";

/// The hook's place under libvirt's hooks directory.
pub fn hook_path(hooks_dir: &Path) -> PathBuf {
    hooks_dir.join("qemu.d").join("nearnative")
}

#[derive(Debug, thiserror::Error)]
pub enum HookFileError {
    #[error("{}: not written by nearnative (no marker line); move it aside first", .path.display())]
    NotOurs { path: PathBuf },
    #[error("{}: {what}: {source}", .path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

fn io_error<'p>(
    path: &'p Path,
    what: &'static str,
) -> impl FnOnce(io::Error) -> HookFileError + 'p {
    move |source| HookFileError::Io {
        path: path.to_owned(),
        what,
        source,
    }
}

/// A word for `/bin/sh`, quoted whatever it holds.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The script that runs `exe libvirt hook`, naming `socket` when it is not the default.
pub fn script(exe: &Path, socket: &Path) -> String {
    let mut command = format!("exec {} libvirt hook", shell_quoted(&exe.to_string_lossy()));
    if socket != Path::new(DEFAULT_SOCKET) {
        command.push_str(&format!(
            " --control-socket {}",
            shell_quoted(&socket.to_string_lossy())
        ));
    }
    format!(
        "#!/bin/sh\n{MARKER}\n# libvirt's qemu hook: tells the nearnative daemon of a domain's \
         start and stop; `nearnative libvirt remove-hook` removes it.\n{command} \"$@\"\n"
    )
}

/// Whether the file at `path` is nearnative's; `None` when there is none.
fn is_ours(path: &Path) -> Result<Option<bool>, HookFileError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(
            String::from_utf8_lossy(&bytes).lines().any(|l| l == MARKER),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, "cannot read it")(e)),
    }
}

/// Writes the hook under `hooks_dir` (creating `qemu.d`), replacing only a hook of ours.
/// Returns its path.
pub fn install(hooks_dir: &Path, exe: &Path, socket: &Path) -> Result<PathBuf, HookFileError> {
    let path = hook_path(hooks_dir);
    let dir = path.parent().unwrap_or(hooks_dir);
    fs::create_dir_all(dir).map_err(io_error(dir, "cannot create the directory"))?;
    if is_ours(&path)? == Some(false) {
        return Err(HookFileError::NotOurs { path });
    }
    let tmp = dir.join(format!(".nearnative.tmp.{}", std::process::id()));
    let written = write_executable(&tmp, script(exe, socket).as_bytes())
        .and_then(|()| fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_error(&path, "cannot write it")(e));
    }
    Ok(path)
}

/// A new file `path` holding `bytes`, mode 0755 whatever the umask, synced.
fn write_executable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(path)?;
    file.write_all(bytes)?;
    file.set_permissions(fs::Permissions::from_mode(0o755))?;
    file.sync_all()
}

/// Removes the hook under `hooks_dir` if it is ours: `Ok(Some(path))` when removed,
/// `Ok(None)` when there was none.
pub fn remove(hooks_dir: &Path) -> Result<Option<PathBuf>, HookFileError> {
    let path = hook_path(hooks_dir);
    match is_ours(&path)? {
        None => Ok(None),
        Some(false) => Err(HookFileError::NotOurs { path }),
        Some(true) => match fs::remove_file(&path) {
            Ok(()) => Ok(Some(path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path, "cannot remove it")(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_hook_runs_this_binary_with_a_socket_only_when_not_the_default() {
        let plain = script(Path::new("/usr/bin/nearnative"), Path::new(DEFAULT_SOCKET));
        assert!(plain.starts_with("#!/bin/sh\n"));
        assert!(plain.lines().any(|l| l == MARKER));
        assert!(plain.contains("exec '/usr/bin/nearnative' libvirt hook \"$@\"\n"));
        let odd = script(Path::new("/opt/it's/nn"), Path::new("/tmp/s.sock"));
        assert!(
            odd.contains(
                r#"exec '/opt/it'\''s/nn' libvirt hook --control-socket '/tmp/s.sock' "$@""#
            ),
            "{odd}"
        );
    }

    #[test]
    fn install_replaces_only_our_hook_and_remove_removes_only_ours() {
        let hooks = tempfile::tempdir().unwrap();
        let exe = Path::new("/usr/bin/nearnative");
        let socket = Path::new(DEFAULT_SOCKET);
        let path = install(hooks.path(), exe, socket).unwrap();
        assert_eq!(path, hooks.path().join("qemu.d/nearnative"));
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o755);
        install(hooks.path(), exe, Path::new("/tmp/other.sock")).unwrap();
        assert!(fs::read_to_string(&path)
            .unwrap()
            .contains("/tmp/other.sock"));
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary left");
        assert_eq!(remove(hooks.path()).unwrap(), Some(path.clone()));
        assert_eq!(remove(hooks.path()).unwrap(), None, "idempotent");

        fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        let refused = install(hooks.path(), exe, socket).unwrap_err();
        assert!(
            matches!(refused, HookFileError::NotOurs { .. }),
            "{refused}"
        );
        assert!(matches!(
            remove(hooks.path()),
            Err(HookFileError::NotOurs { .. })
        ));
        assert_eq!(fs::read_to_string(&path).unwrap(), "#!/bin/sh\nexit 0\n");
    }
}
