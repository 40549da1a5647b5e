//! Reading a process's command line (`/proc/PID/cmdline`, arguments separated by NULs) and
//! finding option values in it, in both `--opt value` and `--opt=value` forms.

use crate::{ReadError, Root};

/// The arguments of a process. Bytes that are not UTF-8 become U+FFFD: option names and the
/// values we look at (VM names, socket paths) are compared as text anyway.
pub fn read_args(root: &Root, pid: u32) -> Result<Vec<String>, ReadError> {
    let path = root.path(format!("/proc/{pid}/cmdline"));
    let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ReadError::NotFound { path },
        std::io::ErrorKind::PermissionDenied => ReadError::PermissionDenied { path },
        _ => ReadError::Io { path, source },
    })?;
    Ok(split_args(&bytes))
}

/// Splits NUL-separated arguments; the kernel ends the last one with a NUL too.
pub fn split_args(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// The file name of the program (`argv[0]` without its directory).
pub fn program_name(args: &[String]) -> &str {
    let first = args.first().map_or("", String::as_str);
    first.rsplit('/').next().unwrap_or(first)
}

/// Every value given to any of `names`, in order: `NAME VALUE` and `NAME=VALUE` forms.
pub fn option_values<'a>(args: &'a [String], names: &[&str]) -> Vec<&'a str> {
    let mut values = Vec::new();
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        if names.contains(&arg.as_str()) {
            if let Some(value) = iter.next() {
                values.push(value.as_str());
            }
        } else if let Some((name, value)) = arg.split_once('=') {
            if names.contains(&name) {
                values.push(value);
            }
        }
    }
    values
}

/// A command line written with spaces, for tests.
#[cfg(test)]
pub fn args_of_line(line: &str) -> Vec<String> {
    line.split(' ').map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn nul_separated_arguments_split() {
        let cases: [(&str, &[u8], &[&str]); 4] = [
            ("kernel thread", b"", &[]),
            ("trailing nul", b"/bin/qemu\0-S\0", &["/bin/qemu", "-S"]),
            ("no trailing nul", b"a\0b", &["a", "b"]),
            ("empty argument kept", b"a\0\0b\0", &["a", "", "b"]),
        ];
        for (what, bytes, expected) in cases {
            assert_eq!(split_args(bytes), args(expected), "{what}");
        }
    }

    #[test]
    fn option_values_in_both_forms() {
        let argv = args(&[
            "/usr/bin/fc",
            "--id",
            "a",
            "--api-sock=/s",
            "--id",
            "b",
            "x=y",
        ]);
        assert_eq!(option_values(&argv, &["--id"]), ["a", "b"]);
        assert_eq!(option_values(&argv, &["--api-sock"]), ["/s"]);
        assert!(option_values(&argv, &["--missing"]).is_empty());
        assert_eq!(option_values(&args(&["p", "--id"]), &["--id"]).len(), 0);
        assert_eq!(program_name(&argv), "fc");
        assert_eq!(program_name(&[]), "");
    }
}
