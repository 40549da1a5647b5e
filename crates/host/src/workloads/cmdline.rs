//! Reading a process's command line (`/proc/PID/cmdline`, arguments separated by NULs) and
//! finding option values in it, in both `--opt value` and `--opt=value` forms.

use crate::{ReadError, Root};

/// The arguments of a process. Read as text through the root, so a capture keeps it: a
/// command line that is not UTF-8 is an error, which only matters for a VMM-named process.
pub fn read_args(root: &Root, pid: u32) -> Result<Vec<String>, ReadError> {
    let text = root.read_to_string(format!("/proc/{pid}/cmdline"))?;
    Ok(split_args(&text))
}

/// Splits NUL-separated arguments; the kernel ends the last one with a NUL too.
fn split_args(text: &str) -> Vec<String> {
    let text = text.strip_suffix('\0').unwrap_or(text);
    if text.is_empty() {
        return Vec::new();
    }
    text.split('\0').map(str::to_owned).collect()
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
        let cases: [(&str, &str, &[&str]); 4] = [
            ("kernel thread", "", &[]),
            ("trailing nul", "/bin/qemu\0-S\0", &["/bin/qemu", "-S"]),
            ("no trailing nul", "a\0b", &["a", "b"]),
            ("empty argument kept", "a\0\0b\0", &["a", "", "b"]),
        ];
        for (what, text, expected) in cases {
            assert_eq!(split_args(text), args(expected), "{what}");
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
