//! The real host snapshots in `../shared/fixtures/hosts` (extracted by the shared testkit) and
//! hwloc's reading of each.

pub use nearnative_testkit::fixtures::{extract, hosts_dir, shared, SNAPSHOTS};

/// What `lstopo --of console` printed for a snapshot.
#[derive(Debug, Default)]
pub struct Lstopo {
    pub packages: usize,
    pub numa_nodes: usize,
    /// Each core's PU ids (`P#`), in `Core L#` order.
    pub cores: Vec<Vec<u32>>,
    pub pus: Vec<u32>,
}

pub fn lstopo(name: &str) -> Lstopo {
    let text = std::fs::read_to_string(hosts_dir().join(format!("{name}.lstopo.txt"))).unwrap();
    parse_lstopo(&text)
}

/// Parses the object tree: a PU belongs to the last Core above it at a lower indentation.
pub fn parse_lstopo(text: &str) -> Lstopo {
    let mut out = Lstopo::default();
    let mut core_indent: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let object = line.trim_start();
        let os_index = || {
            let at = object.find("(P#")? + 3;
            let digits: String = object[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<u32>().ok()
        };
        if core_indent.is_some_and(|ci| indent <= ci) {
            core_indent = None;
        }
        if object.starts_with("Package L#") {
            out.packages += 1;
        } else if object.starts_with("NUMANode L#") {
            out.numa_nodes += 1;
        } else if object.starts_with("Core L#") {
            out.cores.push(Vec::new());
            core_indent = Some(indent);
        } else if object.starts_with("PU L#") {
            let pu = os_index().expect("PU has P#");
            out.pus.push(pu);
            if core_indent.is_some() {
                out.cores.last_mut().unwrap().push(pu);
            }
        }
    }
    out
}

#[test]
fn lstopo_parser_reads_cores_and_pus() {
    let text = "Machine\n  Package L#0 (P#0)\n    NUMANode L#0 (P#0)\n    Core L#0 (P#0)\n      PU L#0 (P#0)\n      PU L#1 (P#8)\n    Core L#1 (P#1)\n      PU L#2 (P#4)\n";
    let parsed = parse_lstopo(text);
    assert_eq!((parsed.packages, parsed.numa_nodes), (1, 1));
    assert_eq!(parsed.cores, vec![vec![0, 8], vec![4]]);
}
