use std::fs;

use nearnative_host::CpuSet;
use nearnative_plan::{IoPlacement, Level, NumaSpill};

use super::*;

fn parse(text: &str) -> Result<Vec<Policy>, PolicyError> {
    parse_file(Path::new("/p/a.toml"), text)
}

/// The error's `FILE:LINE: reason` line.
fn refusal(text: &str) -> String {
    match parse(text) {
        Ok(policies) => panic!("accepted: {policies:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_table_sets_every_option_of_the_request() {
    let text = r#"
# trading VMs
[[workload]]
target = "vm:trade-*"
level = "high-ht"
vcpus = "0-1"
cores = 2
io = "dedicated"
nic = "eth1"
housekeeping = "0,1"
scope = "cgroup:/machine"
rt = 50
numa-spill = "nearest"
allow-cpu0 = true
on_drift = "report"
"#;
    let policies = parse(text).unwrap();
    let [policy] = policies.as_slice() else {
        panic!("{policies:?}")
    };
    assert_eq!(policy.line, 3);
    assert_eq!(policy.target.to_string(), "vm:trade-*");
    assert_eq!(policy.on_drift, OnDrift::Report);
    assert_eq!(
        policy.source(),
        Source::Policy {
            file: "/p/a.toml".into(),
            line: 3
        }
    );
    let request = policy.request(Target::Vm("trade-1".into()));
    assert_eq!(request.target, Target::Vm("trade-1".into()));
    assert_eq!(request.level, Level::HighHt);
    assert_eq!(request.vcpus, Some(CpuSet::from_ids([0, 1])));
    assert_eq!(request.threads, None);
    assert_eq!(request.cores, Some(2));
    assert_eq!(request.io, IoPlacement::Dedicated);
    assert_eq!(request.nic.as_deref(), Some("eth1"));
    assert_eq!(request.housekeeping, Some(CpuSet::from_ids([0, 1])));
    assert_eq!(request.scope.as_deref(), Some("/machine"));
    assert_eq!(request.rt, Some(50));
    assert_eq!(request.spill, NumaSpill::Nearest);
    assert!(request.allow_cpu0);
}

#[test]
fn snake_case_spellings_are_accepted() {
    let text =
        "[[workload]]\ntarget = \"process:redis*\"\nnuma_spill = \"nearest\"\nallow_cpu0 = true\n";
    let request = parse(text).unwrap()[0].request(Target::Pid(7));
    assert_eq!(request.spill, NumaSpill::Nearest);
    assert!(request.allow_cpu0);
}

#[test]
fn a_bare_table_takes_applys_defaults() {
    let policies = parse("[[workload]]\ntarget = \"cgroup:/pods/*\"\n").unwrap();
    let policy = &policies[0];
    assert_eq!(policy.on_drift, OnDrift::Repair);
    assert_eq!(policy.scope(), None);
    let target = Target::Cgroup("/pods/a".into());
    assert_eq!(
        policy.request(target.clone()),
        PlanRequest::new(target),
        "apply's defaults"
    );
}

#[test]
fn several_tables_keep_their_order_and_lines() {
    let text = r#"[[workload]]
target = "vm:b*"

[[workload]]
target = "process:nginx"
io = "housekeeping"

[[workload]]
target = "cgroup:/a/*/x"
"#;
    let policies = parse(text).unwrap();
    let seen: Vec<(String, usize)> = policies
        .iter()
        .map(|p| (p.target.to_string(), p.line))
        .collect();
    assert_eq!(
        seen,
        [
            ("vm:b*".to_owned(), 1),
            ("process:nginx".to_owned(), 4),
            ("cgroup:/a/*/x".to_owned(), 8)
        ]
    );
}

#[test]
fn an_empty_file_holds_no_policy() {
    assert_eq!(parse("# nothing yet\n").unwrap(), Vec::new());
}

#[test]
fn each_mistake_is_named_with_its_line() {
    let table = "[[workload]]\ntarget = \"vm:a\"\n";
    let with = |line: &str| format!("{table}{line}\n");
    let cases = [
        (
            "TOML syntax",
            "[[workload]]\ntarget = \"vm:a\nlevel = 1\n",
            "/p/a.toml:2: not valid TOML",
        ),
        (
            "unknown key",
            &with("colour = \"red\""),
            "/p/a.toml:3: unknown key \"colour\"",
        ),
        (
            "misspelt option",
            &with("numa-spil = \"nearest\""),
            "/p/a.toml:3: unknown key \"numa-spil\"",
        ),
        (
            "threads",
            &with("threads = [1, 2]"),
            "/p/a.toml:3: unknown key \"threads\" (thread ids are for pid: targets",
        ),
        (
            "CLI-only root",
            &with("root = \"/\""),
            "/p/a.toml:3: unknown key \"root\" (not an option",
        ),
        (
            "CLI-only state dir",
            &with("state-dir = \"/x\""),
            "/p/a.toml:3: unknown key \"state-dir\"",
        ),
        (
            "CLI-only json",
            &with("json = true"),
            "/p/a.toml:3: unknown key \"json\"",
        ),
        (
            "bad level",
            &with("level = \"medium\""),
            "/p/a.toml:3: level: level \"medium\" is not one of: high, high-ht",
        ),
        (
            "level not a string",
            &with("level = 1"),
            "/p/a.toml:3: level: expected a string, not integer",
        ),
        (
            "bad io",
            &with("io = \"fast\""),
            "/p/a.toml:3: io: \"fast\": unknown variant",
        ),
        (
            "bad spill",
            &with("numa-spill = \"far\""),
            "/p/a.toml:3: numa-spill: \"far\": unknown variant",
        ),
        (
            "empty CPU list",
            &with("housekeeping = \"\""),
            "/p/a.toml:3: housekeeping: expected a CPU list, not an empty one",
        ),
        (
            "bad CPU list",
            &with("vcpus = \"0-x\""),
            "/p/a.toml:3: vcpus: ",
        ),
        (
            "CPU list as array",
            &with("vcpus = [0, 1]"),
            "/p/a.toml:3: vcpus: expected a string, not array",
        ),
        (
            "zero cores",
            &with("cores = 0"),
            "/p/a.toml:3: cores: expected an integer from 1 to 4294967295, not 0",
        ),
        (
            "rt too high",
            &with("rt = 100"),
            "/p/a.toml:3: rt: expected an integer from 1 to 99, not 100",
        ),
        (
            "rt negative",
            &with("rt = -1"),
            "/p/a.toml:3: rt: expected an integer from 1 to 99",
        ),
        (
            "rt a float",
            &with("rt = 5.5"),
            "/p/a.toml:3: rt: expected an integer from 1 to 99, not float",
        ),
        (
            "scope without cgroup:",
            &with("scope = \"/machine\""),
            "/p/a.toml:3: scope: \"/machine\": expected cgroup:/PATH",
        ),
        (
            "scope climbing out of its cgroup",
            &with("scope = \"cgroup:/machine/../x\""),
            "/p/a.toml:3: scope: \"cgroup:/machine/../x\": the cgroup path has a .. component",
        ),
        (
            "scope with an empty component",
            &with("scope = \"cgroup:/machine//x\""),
            "/p/a.toml:3: scope: \"cgroup:/machine//x\": the cgroup path has an empty component",
        ),
        (
            "allow-cpu0 not a bool",
            &with("allow-cpu0 = \"yes\""),
            "/p/a.toml:3: allow-cpu0: expected true or false, not string",
        ),
        (
            "empty nic",
            &with("nic = \"\""),
            "/p/a.toml:3: nic: expected a name",
        ),
        (
            "bad on_drift",
            &with("on_drift = \"ignore\""),
            "/p/a.toml:3: on_drift: \"ignore\" is not one of: repair, report",
        ),
        (
            "no target",
            "\n[[workload]]\nlevel = \"high\"\n",
            "/p/a.toml:2: this [[workload]] has no target",
        ),
        (
            "pid target",
            "[[workload]]\n\ntarget = \"pid:42\"\n",
            "/p/a.toml:3: target: \"pid:42\": a policy outlives process ids",
        ),
        (
            "vm-pid target",
            "[[workload]]\ntarget = \"vm-pid:42\"\n",
            "/p/a.toml:2: target: \"vm-pid:42\": a policy outlives",
        ),
        (
            "relative cgroup",
            "[[workload]]\ntarget = \"cgroup:pods\"\n",
            "/p/a.toml:2: target: \"cgroup:pods\" is not vm:GLOB, cgroup:/GLOB or process:GLOB",
        ),
        (
            "empty vm glob",
            "[[workload]]\ntarget = \"vm:\"\n",
            "/p/a.toml:2: target: \"vm:\" is not vm:GLOB",
        ),
        (
            "bad glob",
            "[[workload]]\ntarget = \"vm:a[\"\n",
            "/p/a.toml:2: target: \"vm:a[\": bad glob",
        ),
        (
            "vcpus on a process",
            "[[workload]]\ntarget = \"process:x\"\nvcpus = \"0\"\n",
            "/p/a.toml:3: vcpus: only for vm: targets, not process:x",
        ),
        (
            "plain table",
            "[workload]\ntarget = \"vm:a\"\n",
            "/p/a.toml:1: workload: expected [[workload]] tables",
        ),
        (
            "other table",
            "[[vm]]\ntarget = \"vm:a\"\n",
            "/p/a.toml:1: unknown key \"vm\": a policy file holds [[workload]] tables only",
        ),
        (
            "second table bad",
            "[[workload]]\ntarget = \"vm:a\"\n[[workload]]\ntarget = \"vm:b\"\nrt = 0\n",
            "/p/a.toml:5: rt:",
        ),
    ];
    for (what, text, expected) in cases {
        let got = refusal(text);
        assert!(got.starts_with(expected), "{what}: {got}");
    }
}

#[test]
fn an_unknown_key_lists_the_accepted_ones() {
    let got = refusal("[[workload]]\ntarget = \"vm:a\"\nspeed = 1\n");
    for name in ["target", "on_drift", "level", "numa-spill", "allow-cpu0"] {
        assert!(got.contains(name), "{name}: {got}");
    }
}

#[test]
fn the_first_mistake_in_the_file_is_the_one_reported() {
    // Keys are stored sorted; the report follows the file.
    let got = refusal("[[workload]]\ntarget = \"vm:a\"\nzz = 1\naa = 2\n");
    assert!(got.starts_with("/p/a.toml:3: unknown key \"zz\""), "{got}");
}

#[test]
fn patterns_print_back_as_written() {
    for text in [
        "vm:trade-*",
        "cgroup:/machine.slice/*",
        "process:qemu-system-?86*",
    ] {
        let toml = format!("[[workload]]\ntarget = \"{text}\"\n");
        assert_eq!(parse(&toml).unwrap()[0].target.to_string(), text);
    }
}

#[test]
fn a_policy_scope_must_lie_within_the_daemons() {
    let policies = parse("[[workload]]\ntarget = \"vm:a\"\nscope = \"cgroup:/t/vms\"\n").unwrap();
    let policy = &policies[0];
    assert!(policy.check_scope(None).is_ok());
    assert!(policy.check_scope(Some("/t")).is_ok());
    assert!(policy.check_scope(Some("/t/vms")).is_ok());
    let error = policy.check_scope(Some("/u")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "/p/a.toml:1: scope cgroup:/t/vms lies outside the daemon's scope cgroup:/u"
    );
    assert_eq!(policy.effective_scope(Some("/t")), Some("/t/vms"));
    let bare = parse("[[workload]]\ntarget = \"vm:a\"\n").unwrap();
    assert_eq!(bare[0].effective_scope(Some("/t")), Some("/t"));
}

#[test]
fn confine_rejects_whole_files_whose_scope_lies_outside() {
    let outside = parse_file(
        Path::new("/p/a.toml"),
        "[[workload]]\ntarget = \"vm:a\"\n[[workload]]\ntarget = \"vm:b\"\nscope = \"cgroup:/elsewhere\"\n",
    )
    .unwrap();
    let inside = parse_file(Path::new("/p/b.toml"), "[[workload]]\ntarget = \"vm:c\"\n").unwrap();
    let mut set = PolicySet {
        policies: outside.into_iter().chain(inside).collect(),
        errors: Vec::new(),
    };
    set.confine(Some("/t"));
    let left: Vec<String> = set.policies.iter().map(|p| p.target.to_string()).collect();
    assert_eq!(left, ["vm:c"]);
    let errors: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        ["/p/a.toml:3: scope cgroup:/elsewhere lies outside the daemon's scope cgroup:/t"]
    );
}

#[test]
fn a_directory_loads_in_file_name_order_and_a_bad_file_alone_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| fs::write(dir.path().join(name), text).unwrap();
    write("20-b.toml", "[[workload]]\ntarget = \"vm:b\"\n");
    write(
        "10-a.toml",
        "[[workload]]\ntarget = \"vm:a1\"\n[[workload]]\ntarget = \"vm:a2\"\n",
    );
    write(
        "15-bad.toml",
        "[[workload]]\ntarget = \"vm:x\"\n[[workload]]\ntarget = \"vm:y\"\nlevel = \"low\"\n",
    );
    write("README", "not a policy");
    write("30-c.toml.bak", "[[workload]]\ntarget = \"vm:old\"\n");
    write(".40-d.toml", "[[workload]]\ntarget = \"vm:hidden\"\n");
    fs::create_dir(dir.path().join("50-dir.toml")).unwrap();
    let set = load_dir(dir.path());
    let targets: Vec<String> = set.policies.iter().map(|p| p.target.to_string()).collect();
    assert_eq!(targets, ["vm:a1", "vm:a2", "vm:b"]);
    let errors: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
    let bad = dir.path().join("15-bad.toml");
    assert_eq!(
        errors,
        [format!(
            "{}:5: level: level \"low\" is not one of: high, high-ht",
            bad.display()
        )]
    );
}

#[test]
fn a_missing_directory_is_an_empty_set_and_an_unreadable_one_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load_dir(&dir.path().join("absent")), PolicySet::default());
    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let set = load_dir(&file);
    assert!(set.policies.is_empty());
    let errors: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [format!(
            "{}: not trusted as the policy directory: is a regular file, not a directory; \
             move it aside",
            file.display()
        )]
    );
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn links_special_files_open_files_and_oversized_ones_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let good = "[[workload]]\ntarget = \"vm:a\"\n";
    fs::write(path("10-good.toml"), good).unwrap();
    std::os::unix::fs::symlink("/dev/zero", path("20-zero.toml")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(path("30-fifo.toml"))
        .status()
        .unwrap();
    assert!(fifo.success());
    let oversized = "#".repeat(MAX_POLICY_BYTES as usize + 1);
    fs::write(path("40-big.toml"), oversized).unwrap();
    fs::write(path("50-open.toml"), good).unwrap();
    chmod(&path("50-open.toml"), 0o666);
    std::os::unix::fs::symlink(path("10-good.toml"), path("60-link.toml")).unwrap();

    let set = load_dir(dir.path());
    let targets: Vec<String> = set.policies.iter().map(|p| p.target.to_string()).collect();
    assert_eq!(targets, ["vm:a"], "{:?}", set.errors);
    let errors: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
    let expected = [
        ("20-zero.toml", "is a symbolic link"),
        ("30-fifo.toml", "is a special file, not a regular file"),
        ("40-big.toml", "larger than 1024 KiB"),
        ("50-open.toml", "mode 0666 lets group or others write it"),
        ("60-link.toml", "is a symbolic link"),
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:?}");
    for (error, (name, reason)) in errors.iter().zip(expected) {
        let start = format!("{}: {reason}", path(name).display());
        assert!(error.starts_with(&start), "{error} is not {start}");
    }
}

#[test]
fn a_directory_others_can_write_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("workloads.d");
    fs::create_dir(&policies).unwrap();
    fs::write(policies.join("a.toml"), "[[workload]]\ntarget = \"vm:a\"\n").unwrap();
    chmod(&policies, 0o777);
    let set = load_dir(&policies);
    assert!(set.policies.is_empty());
    let errors: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
    let expected = format!(
        "{}: not trusted as the policy directory: mode 0777 lets group or others write it",
        policies.display()
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with(&expected), "{errors:?}");
    chmod(&policies, 0o755);
    assert_eq!(load_dir(&policies).policies.len(), 1);
}

#[test]
fn option_names_are_applys_long_names() {
    assert_eq!(OPTION_NAMES.len(), 11);
    for name in OPTION_NAMES {
        assert!(
            !name.contains('_'),
            "{name}: kebab-case, as apply spells it"
        );
        let toml = format!("[[workload]]\ntarget = \"vm:a\"\n{name} = []\n");
        let got = refusal(&toml);
        assert!(
            got.starts_with(&format!("/p/a.toml:3: {name}: ")),
            "{name} is accepted as a key: {got}"
        );
    }
}

#[test]
fn a_bad_edit_keeps_the_files_last_good_policies() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| fs::write(dir.path().join(name), text).unwrap();
    write("10-a.toml", "[[workload]]\ntarget = \"vm:a\"\n");
    write(
        "20-b.toml",
        "[[workload]]\ntarget = \"vm:b1\"\n[[workload]]\ntarget = \"vm:b2\"\n",
    );
    write("30-c.toml", "[[workload]]\ntarget = \"vm:c\"\n");
    let previous = load_dir(dir.path());
    write("10-a.toml", "[[workload]]\ntarget = \"vm:a-new\"\n");
    write(
        "20-b.toml",
        "[[workload]]\ntarget = \"vm:b1\"\nlevel = \"low\"\n",
    );
    fs::remove_file(dir.path().join("30-c.toml")).unwrap();
    let reloaded = load_dir(dir.path()).with_last_good(&previous);
    let targets: Vec<String> = reloaded
        .policies
        .iter()
        .map(|p| p.target.to_string())
        .collect();
    assert_eq!(
        targets,
        ["vm:a-new", "vm:b1", "vm:b2"],
        "a edited, b kept as it was, c removed"
    );
    assert_eq!(reloaded.errors.len(), 1, "{:?}", reloaded.errors);

    let gone = load_dir(dir.path()).with_last_good(&PolicySet::default());
    assert_eq!(gone.policies.len(), 1, "nothing to keep on a first load");

    let unreadable = PolicySet {
        policies: Vec::new(),
        errors: vec![PolicyError {
            file: dir.path().to_owned(),
            line: None,
            reason: "cannot list".into(),
        }],
    };
    assert_eq!(
        unreadable.with_last_good(&previous).policies,
        previous.policies,
        "an unreadable directory keeps every policy"
    );
}
