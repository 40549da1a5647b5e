//! Man pages and shell completions come from the clap definitions: every visible command gets
//! a page, and the completion scripts know the commands.

use crate::nearnative;

#[test]
fn manpages_writes_a_page_per_visible_command_at_any_depth() {
    let dir = tempfile::tempdir().unwrap();
    let out = nearnative(&["manpages", "--out", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    for page in [
        "nearnative.1",
        "nearnative-apply.1",
        "nearnative-completions.1",
        "nearnative-probe-rtt.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text}"
        );
    }
    let apply = std::fs::read_to_string(dir.path().join("nearnative-apply.1")).unwrap();
    assert!(apply.contains("scope"), "the apply page lacks --scope");
    assert!(
        !dir.path().join("nearnative-manpages.1").exists(),
        "the hidden command got a page"
    );
}

#[test]
fn completions_know_the_commands() {
    for (shell, needle) in [("bash", "_nearnative()"), ("zsh", "#compdef nearnative")] {
        let out = nearnative(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(needle), "{shell}: lacks {needle:?}");
        assert!(
            script.contains("verify"),
            "{shell}: lacks the verify command"
        );
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = nearnative(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}
