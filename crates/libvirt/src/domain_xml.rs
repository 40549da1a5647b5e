//! A domain's XML with the tuning of its allocation merged in: `<cputune>` (a `<vcpupin>` per
//! exclusive vCPU, `<emulatorpin>`, an `<iothreadpin>` per iothread, `<vcpusched>` with
//! `--rt`), `<features><kvm><hint-dedicated state='on'/></kvm></features>` and
//! `<memoryBacking>` (`<nosharepages/>`, `<locked/>`, and `<hugepages/>` when the host has
//! them reserved). Pure: text in, text out.
//!
//! The elements the tuning sets replace those of the same name; everything else (other
//! `<cputune>` children, other features, comments, formatting) is kept byte for byte: the
//! result is spliced into the original text, not re-serialised. libvirt's schema interleaves
//! these elements, so where they go does not matter to `virt-xml-validate`.

use std::ops::Range;

use nearnative_plan::{Plan, Topic};
use roxmltree::{Document, Node};

#[derive(Debug, thiserror::Error)]
pub enum DomainXmlError {
    #[error("the domain XML: {0}")]
    Parse(#[from] roxmltree::Error),
    #[error("the domain XML: its root element is <{0}>, not <domain>")]
    NotADomain(String),
    #[error("the domain XML: <memory> {0}")]
    Memory(String),
    #[error("the domain XML: iothreads: {0}")]
    IoThreads(String),
    #[error("the plan for {0} has no libvirt domain XML advisory (is it a QEMU VM?)")]
    NoAdvisory(String),
    #[error("the plan's libvirt domain XML advisory: {0}")]
    Advisory(String),
}

/// The pinning and features of one allocation, as libvirt elements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tuning {
    /// `(vCPU index, CPU list)` per exclusive vCPU: its own CPU, or the whole pool.
    pub vcpupins: Vec<(u32, String)>,
    /// The housekeeping CPUs.
    pub emulatorpin: String,
    /// Where every iothread the domain defines runs: the dedicated I/O core, or housekeeping.
    pub iothreads: String,
    /// `(vCPU list, priority)` for SCHED_FIFO vCPUs (`--rt`).
    pub vcpusched: Option<(String, u32)>,
    /// Back the guest's memory with huge pages (only when the host has enough reserved).
    pub hugepages: bool,
}

impl Tuning {
    /// The tuning the plan advises for a libvirt domain (its `libvirt domain XML` advisory,
    /// the planner's own text); `hugepages` says whether the host has them reserved.
    pub fn from_plan(plan: &Plan, hugepages: bool) -> Result<Tuning, DomainXmlError> {
        let advisory = plan
            .advisories
            .iter()
            .find(|a| a.topic == Topic::LibvirtDomainXml)
            .ok_or_else(|| DomainXmlError::NoAdvisory(plan.workload.0.clone()))?;
        let mut tuning = Tuning::from_advisory(&advisory.text)?;
        let io_cpus = &plan.allocation.io_cpus;
        if !io_cpus.is_empty() {
            tuning.iothreads = io_cpus.to_list();
        }
        tuning.hugepages = hugepages;
        Ok(tuning)
    }

    /// Reads the `<cputune>` of the advisory's text (top-level elements, one after another).
    /// Its `<iothreadpin>`s are left out: the domain's own XML says which iothreads it has,
    /// where the advisory counts the QEMU threads named like one. They run on the
    /// housekeeping CPUs unless [`Tuning::from_plan`] finds a dedicated I/O core.
    fn from_advisory(text: &str) -> Result<Tuning, DomainXmlError> {
        let wrapped = format!("<advisory>{text}</advisory>");
        let doc = Document::parse(&wrapped).map_err(|e| DomainXmlError::Advisory(e.to_string()))?;
        let mut tuning = Tuning::default();
        let cputune = doc
            .root_element()
            .children()
            .filter(|n| n.has_tag_name("cputune"));
        for pin in cputune.flat_map(|c| c.children().filter(Node::is_element)) {
            let cpuset = attribute(pin, "cpuset");
            match pin.tag_name().name() {
                "vcpupin" => tuning.vcpupins.push((number(pin, "vcpu")?, cpuset?)),
                "emulatorpin" => tuning.emulatorpin = cpuset?,
                "iothreadpin" => {}
                "vcpusched" => {
                    tuning.vcpusched = Some((attribute(pin, "vcpus")?, number(pin, "priority")?))
                }
                other => return Err(DomainXmlError::Advisory(format!("unknown <{other}>"))),
            }
        }
        if tuning.emulatorpin.is_empty() {
            return Err(DomainXmlError::Advisory("no <emulatorpin>".to_owned()));
        }
        tuning.iothreads.clone_from(&tuning.emulatorpin);
        Ok(tuning)
    }

    /// The `<cputune>` children for a domain with iothreads `iothread_ids`.
    fn cputune(&self, iothread_ids: &[u32]) -> Vec<String> {
        let mut lines: Vec<String> = self
            .vcpupins
            .iter()
            .map(|(vcpu, cpus)| format!("<vcpupin vcpu='{vcpu}' cpuset='{cpus}'/>"))
            .collect();
        lines.push(format!("<emulatorpin cpuset='{}'/>", self.emulatorpin));
        lines.extend(iothread_ids.iter().map(|iothread| {
            format!(
                "<iothreadpin iothread='{iothread}' cpuset='{}'/>",
                self.iothreads
            )
        }));
        if let Some((vcpus, priority)) = &self.vcpusched {
            lines.push(format!(
                "<vcpusched vcpus='{vcpus}' scheduler='fifo' priority='{priority}'/>"
            ));
        }
        lines
    }

    /// The `<cputune>` children this tuning sets, by name.
    fn cputune_names(&self) -> Vec<&'static str> {
        let mut names = vec!["vcpupin", "emulatorpin", "iothreadpin"];
        if self.vcpusched.is_some() {
            names.push("vcpusched");
        }
        names
    }

    fn memory_backing(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.hugepages {
            lines.push("<hugepages/>".to_owned());
        }
        lines.extend(["<nosharepages/>".to_owned(), "<locked/>".to_owned()]);
        lines
    }

    fn memory_backing_names(&self) -> Vec<&'static str> {
        let mut names = vec!["nosharepages", "locked"];
        if self.hugepages {
            names.push("hugepages");
        }
        names
    }
}

fn attribute(node: Node, name: &str) -> Result<String, DomainXmlError> {
    let value = node.attribute(name).ok_or_else(|| {
        let element = node.tag_name().name();
        DomainXmlError::Advisory(format!("<{element}> has no {name}"))
    })?;
    Ok(value.to_owned())
}

fn number(node: Node, name: &str) -> Result<u32, DomainXmlError> {
    let value = attribute(node, name)?;
    value.parse().map_err(|_| {
        let element = node.tag_name().name();
        DomainXmlError::Advisory(format!("<{element} {name}='{value}'>: not a number"))
    })
}

/// `xml` with `tuning` merged in.
pub fn merge(xml: &str, tuning: &Tuning) -> Result<String, DomainXmlError> {
    let doc = Document::parse(xml)?;
    let domain = domain_of(&doc)?;
    let indent = indent_unit(xml, domain);
    let mut edits = Vec::new();
    let cputune = Wanted {
        name: "cputune",
        replaced: tuning.cputune_names(),
        children: tuning.cputune(&iothread_ids(domain)?),
    };
    edits.extend(set_children(xml, domain, &cputune, 1, &indent));
    edits.extend(merge_features(xml, domain, &indent));
    let memory_backing = Wanted {
        name: "memoryBacking",
        replaced: tuning.memory_backing_names(),
        children: tuning.memory_backing(),
    };
    edits.extend(set_children(xml, domain, &memory_backing, 1, &indent));
    Ok(apply(xml, edits))
}

/// The ids of the domain's iothreads: those `<iothreadids>` lists, else 1 to `<iothreads>`.
fn iothread_ids(domain: Node) -> Result<Vec<u32>, DomainXmlError> {
    let child = |name: &str| domain.children().find(|n| n.has_tag_name(name));
    if let Some(ids) = child("iothreadids") {
        let listed = ids.children().filter(|n| n.has_tag_name("iothread"));
        return listed
            .map(|n| {
                let id = n.attribute("id").unwrap_or_default();
                id.parse()
                    .map_err(|_| DomainXmlError::IoThreads(format!("id '{id}' is not a number")))
            })
            .collect();
    }
    let Some(count) = child("iothreads") else {
        return Ok(Vec::new());
    };
    let text = count.text().unwrap_or_default().trim();
    let count: u32 = text
        .parse()
        .map_err(|_| DomainXmlError::IoThreads(format!("<iothreads> '{text}' is not a number")))?;
    Ok((1..=count).collect())
}

/// The guest's memory (`<memory>`), in KiB.
pub fn memory_kib(xml: &str) -> Result<u64, DomainXmlError> {
    let doc = Document::parse(xml)?;
    let memory = domain_of(&doc)?
        .children()
        .find(|n| n.has_tag_name("memory"))
        .ok_or_else(|| DomainXmlError::Memory("is missing".to_owned()))?;
    let text = memory.text().unwrap_or_default().trim();
    let amount: u64 = text
        .parse()
        .map_err(|_| DomainXmlError::Memory(format!("'{text}' is not a number")))?;
    let unit = memory.attribute("unit").unwrap_or("KiB");
    let kib = match unit {
        "b" | "bytes" => Some(amount / 1024),
        "KB" => Some(amount * 1000 / 1024),
        "k" | "KiB" => Some(amount),
        "MB" => amount.checked_mul(1_000_000).map(|b| b / 1024),
        "M" | "MiB" => amount.checked_mul(1024),
        "GB" => amount.checked_mul(1_000_000_000).map(|b| b / 1024),
        "G" | "GiB" => amount.checked_mul(1024 * 1024),
        "T" | "TiB" => amount.checked_mul(1024 * 1024 * 1024),
        other => return Err(DomainXmlError::Memory(format!("unit '{other}' is unknown"))),
    };
    kib.ok_or_else(|| DomainXmlError::Memory(format!("{amount} {unit} is too large")))
}

/// True when `/proc/meminfo` shows enough free persistent huge pages for `memory_kib`.
pub fn hugepages_cover(meminfo: &str, memory_kib: u64) -> bool {
    let field = |name: &str| {
        meminfo.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    match (field("HugePages_Free"), field("Hugepagesize")) {
        (Some(free), Some(size_kib)) => free > 0 && free.saturating_mul(size_kib) >= memory_kib,
        _ => false,
    }
}

fn domain_of<'a, 'input>(doc: &'a Document<'input>) -> Result<Node<'a, 'input>, DomainXmlError> {
    let domain = doc.root_element();
    match domain.has_tag_name("domain") {
        true => Ok(domain),
        false => Err(DomainXmlError::NotADomain(
            domain.tag_name().name().to_owned(),
        )),
    }
}

/// An element the tuning needs under some parent: its name, the children it replaces (by
/// name) and the children it adds, as XML text.
struct Wanted {
    name: &'static str,
    replaced: Vec<&'static str>,
    children: Vec<String>,
}

/// Text `text` in place of the bytes `range` of the original.
struct Edit {
    range: Range<usize>,
    text: String,
}

/// `<kvm><hint-dedicated state='on'/></kvm>` inside `<features>`, either made as needed.
fn merge_features(xml: &str, domain: Node, indent: &str) -> Vec<Edit> {
    let kvm = Wanted {
        name: "kvm",
        replaced: vec!["hint-dedicated"],
        children: vec!["<hint-dedicated state='on'/>".to_owned()],
    };
    match domain.children().find(|n| n.has_tag_name("features")) {
        Some(features) if !is_self_closing(xml, features) => {
            set_children(xml, features, &kvm, 2, indent)
        }
        features => {
            let block = format!(
                "<features>\n{inner}<kvm>\n{kvm_inner}{}\n{inner}</kvm>\n{own}</features>",
                kvm.children[0],
                own = indent,
                inner = indent.repeat(2),
                kvm_inner = indent.repeat(3),
            );
            match features {
                Some(empty) => vec![Edit {
                    range: empty.range(),
                    text: block,
                }],
                None => {
                    let at = content_end(xml, domain);
                    vec![Edit {
                        range: at..at,
                        text: format!("\n{indent}{block}"),
                    }]
                }
            }
        }
    }
}

/// Makes `parent`'s child element `wanted.name` (at `depth`) hold `wanted.children` in place
/// of its children named in `wanted.replaced`: edits it, or adds it at the end of `parent`.
fn set_children(xml: &str, parent: Node, wanted: &Wanted, depth: usize, indent: &str) -> Vec<Edit> {
    let own = indent.repeat(depth);
    let inner = indent.repeat(depth + 1);
    let lines = |children: &[String]| -> String {
        children.iter().map(|c| format!("\n{inner}{c}")).collect()
    };
    let Some(element) = parent.children().find(|n| n.has_tag_name(wanted.name)) else {
        let block = format!(
            "\n{own}<{name}>{}\n{own}</{name}>",
            lines(&wanted.children),
            name = wanted.name
        );
        let at = content_end(xml, parent);
        return vec![Edit {
            range: at..at,
            text: block,
        }];
    };
    if is_self_closing(xml, element) {
        let block = format!(
            "<{name}>{}\n{own}</{name}>",
            lines(&wanted.children),
            name = wanted.name
        );
        return vec![Edit {
            range: element.range(),
            text: block,
        }];
    }
    let mut edits: Vec<Edit> = element
        .children()
        .filter(|n| n.is_element() && wanted.replaced.contains(&n.tag_name().name()))
        .map(|n| Edit {
            range: leading_space_start(xml, n.range().start)..n.range().end,
            text: String::new(),
        })
        .collect();
    let at = content_end(xml, element);
    edits.push(Edit {
        range: at..at,
        text: lines(&wanted.children),
    });
    edits
}

/// The offset where `element`'s content ends: before its closing tag and the blank space
/// that precedes it. `element` has a closing tag (see [`is_self_closing`]).
fn content_end(xml: &str, element: Node) -> usize {
    let range = element.range();
    let close = xml[range.clone()]
        .rfind("</")
        .map_or(range.end, |at| range.start + at);
    leading_space_start(xml, close)
}

/// The start of the whitespace that runs up to `offset`.
fn leading_space_start(xml: &str, offset: usize) -> usize {
    xml[..offset].trim_end().len()
}

/// `<name .../>`: only an empty-element tag ends in `/>`, never a closing tag.
fn is_self_closing(xml: &str, element: Node) -> bool {
    xml[element.range()].ends_with("/>")
}

/// One level of the document's indentation: the blank space before `<domain>`'s first child
/// on its line; two spaces when the document is on one line.
fn indent_unit(xml: &str, domain: Node) -> String {
    let first = domain.children().find(Node::is_element);
    let Some(first) = first else {
        return "  ".to_owned();
    };
    let before = &xml[..first.range().start];
    match before.rfind('\n') {
        Some(newline) if before[newline + 1..].trim().is_empty() => {
            before[newline + 1..].to_owned()
        }
        _ => "  ".to_owned(),
    }
}

/// Applies non-overlapping `edits`, the furthest first, so earlier offsets stay valid; two
/// insertions at one offset end up in the order they were made.
fn apply(xml: &str, edits: Vec<Edit>) -> String {
    let mut edits: Vec<(usize, Edit)> = edits.into_iter().enumerate().collect();
    edits.sort_by(|(i, a), (j, b)| {
        (b.range.start, b.range.end, j).cmp(&(a.range.start, a.range.end, i))
    });
    let mut out = xml.to_owned();
    for (_, edit) in edits {
        out.replace_range(edit.range, &edit.text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recipe's domain (shared/recipes/libvirt.md).
    const RECIPE: &str = "<domain type='kvm'>
  <name>nn1</name>
  <memory unit='MiB'>64</memory>
  <vcpu placement='static' current='1'>2</vcpu>
  <iothreads>1</iothreads>
  <metadata><nn:latency xmlns:nn=\"urn:nearnative:latency:1\" level=\"high\"/></metadata>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <cpu mode='host-passthrough'/>
  <devices><controller type='usb' model='none'/><memballoon model='none'/></devices>
</domain>
";

    /// The planner's advisory for one exclusive vCPU on CPU 1, as made for the recipe's
    /// domain: its "IO mon_iothread" counted as a second iothread, which the domain lacks.
    const ADVISORY: &str = "<cputune>
  <vcpupin vcpu='0' cpuset='1'/>
  <emulatorpin cpuset='0'/>
  <iothreadpin iothread='1' cpuset='0'/>
  <iothreadpin iothread='2' cpuset='0'/>
</cputune>
<features><kvm><hint-dedicated state='on'/></kvm></features>
<memoryBacking><locked/></memoryBacking>";

    fn tuning() -> Tuning {
        Tuning::from_advisory(ADVISORY).unwrap()
    }

    #[test]
    fn the_advisory_reads_as_the_allocations_pins() {
        assert_eq!(
            tuning(),
            Tuning {
                vcpupins: vec![(0, "1".to_owned())],
                emulatorpin: "0".to_owned(),
                iothreads: "0".to_owned(),
                vcpusched: None,
                hugepages: false,
            }
        );
        let rt = "<cputune><vcpupin vcpu='0' cpuset='2-3'/><vcpupin vcpu='1' cpuset='2-3'/>\
                  <emulatorpin cpuset='0-1'/><vcpusched vcpus='0,1' scheduler='fifo' priority='10'/></cputune>";
        let tuning = Tuning::from_advisory(rt).unwrap();
        assert_eq!(tuning.vcpupins.len(), 2);
        assert_eq!(tuning.vcpusched, Some(("0,1".to_owned(), 10)));
    }

    #[test]
    fn a_broken_advisory_is_refused_in_one_line() {
        let error = Tuning::from_advisory("<cputune><vcpupin vcpu='x' cpuset='1'/></cputune>");
        assert_eq!(
            error.unwrap_err().to_string(),
            "the plan's libvirt domain XML advisory: <vcpupin vcpu='x'>: not a number"
        );
        let error = Tuning::from_advisory("<cputune><vcpupin vcpu='0' cpuset='1'/></cputune>");
        assert!(error.unwrap_err().to_string().ends_with("no <emulatorpin>"));
    }

    #[test]
    fn the_recipes_domain_gains_the_tuning_and_keeps_everything_else() {
        let merged = merge(RECIPE, &tuning()).unwrap();
        let expected = "<domain type='kvm'>
  <name>nn1</name>
  <memory unit='MiB'>64</memory>
  <vcpu placement='static' current='1'>2</vcpu>
  <iothreads>1</iothreads>
  <metadata><nn:latency xmlns:nn=\"urn:nearnative:latency:1\" level=\"high\"/></metadata>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/>
    <kvm>
      <hint-dedicated state='on'/>
    </kvm></features>
  <cpu mode='host-passthrough'/>
  <devices><controller type='usb' model='none'/><memballoon model='none'/></devices>
  <cputune>
    <vcpupin vcpu='0' cpuset='1'/>
    <emulatorpin cpuset='0'/>
    <iothreadpin iothread='1' cpuset='0'/>
  </cputune>
  <memoryBacking>
    <nosharepages/>
    <locked/>
  </memoryBacking>
</domain>
";
        assert_eq!(merged, expected);
    }

    #[test]
    fn existing_elements_of_the_same_name_are_replaced_and_the_rest_kept() {
        let xml = "<domain type='kvm'>
  <name>nn1</name>
  <memory unit='KiB'>65536</memory>
  <iothreadids><iothread id='3'/></iothreadids>
  <memoryBacking>
    <locked/>
    <source type='memfd'/>
  </memoryBacking>
  <cputune>
    <shares>2048</shares>
    <vcpupin vcpu='0' cpuset='0-1'/>
    <vcpupin vcpu='1' cpuset='0-1'/>
    <emulatorpin cpuset='0-1'/>
    <vcpusched vcpus='0' scheduler='batch'/>
  </cputune>
  <features>
    <acpi/>
    <kvm>
      <hidden state='on'/>
      <hint-dedicated state='off'/>
    </kvm>
  </features>
</domain>";
        let merged = merge(xml, &tuning()).unwrap();
        let expected = "<domain type='kvm'>
  <name>nn1</name>
  <memory unit='KiB'>65536</memory>
  <iothreadids><iothread id='3'/></iothreadids>
  <memoryBacking>
    <source type='memfd'/>
    <nosharepages/>
    <locked/>
  </memoryBacking>
  <cputune>
    <shares>2048</shares>
    <vcpusched vcpus='0' scheduler='batch'/>
    <vcpupin vcpu='0' cpuset='1'/>
    <emulatorpin cpuset='0'/>
    <iothreadpin iothread='3' cpuset='0'/>
  </cputune>
  <features>
    <acpi/>
    <kvm>
      <hidden state='on'/>
      <hint-dedicated state='on'/>
    </kvm>
  </features>
</domain>";
        assert_eq!(merged, expected);
        assert_eq!(merge(&merged, &tuning()).unwrap(), merged, "merging twice");
    }

    #[test]
    fn self_closing_and_missing_parents_are_made_whole() {
        let xml = "<domain type='kvm'><name>nn1</name><features/><cputune/></domain>";
        let merged = merge(xml, &tuning()).unwrap();
        let doc = Document::parse(&merged).unwrap();
        let hint = doc
            .descendants()
            .find(|n| n.has_tag_name("hint-dedicated"))
            .unwrap();
        assert_eq!(hint.parent().unwrap().tag_name().name(), "kvm");
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("vcpupin"))
                .count(),
            1
        );
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("cputune"))
                .count(),
            1
        );
        let no_features = "<domain type='kvm'>\n\t<name>nn1</name>\n</domain>";
        let merged = merge(no_features, &tuning()).unwrap();
        assert!(merged.contains("\n\t<features>\n\t\t<kvm>\n\t\t\t<hint-dedicated state='on'/>"));
    }

    #[test]
    fn hugepages_come_only_when_the_host_has_enough_free() {
        let meminfo =
            "HugePages_Total:      64\nHugePages_Free:       32\nHugepagesize:       2048 kB\n";
        assert!(hugepages_cover(meminfo, 65536));
        assert!(!hugepages_cover(meminfo, 65537));
        assert!(!hugepages_cover(
            "HugePages_Free: 0\nHugepagesize: 2048 kB\n",
            1
        ));
        let with = Tuning {
            hugepages: true,
            ..tuning()
        };
        assert!(merge(RECIPE, &with).unwrap().contains("<hugepages/>"));
        assert!(!merge(RECIPE, &tuning()).unwrap().contains("<hugepages/>"));
    }

    #[test]
    fn memory_is_read_in_its_unit() {
        assert_eq!(memory_kib(RECIPE).unwrap(), 65536);
        let kib = "<domain><memory>1024</memory></domain>";
        assert_eq!(memory_kib(kib).unwrap(), 1024);
        let bad = "<domain><memory unit='parsecs'>1</memory></domain>";
        assert_eq!(
            memory_kib(bad).unwrap_err().to_string(),
            "the domain XML: <memory> unit 'parsecs' is unknown"
        );
    }

    #[test]
    fn not_a_domain_is_refused() {
        let error = merge("<network/>", &tuning()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the domain XML: its root element is <network>, not <domain>"
        );
    }
}
