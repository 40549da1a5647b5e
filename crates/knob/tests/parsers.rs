//! The parsers of kernel text never panic, whatever a file holds.

use nearnative_knob::exclusivity::sched::Policy;
use nearnative_knob::exclusivity::task::{parse_allowed_list, parse_start_time};
use nearnative_knob::{CgroupPath, Step};
use proptest::prelude::*;

proptest! {
    #[test]
    fn task_parsers_never_panic(text in "\\PC{0,300}") {
        let _ = parse_start_time(&text);
        let _ = parse_allowed_list(&text);
        let _ = Policy::parse_stat(&text);
        let _ = CgroupPath::try_from(text.as_str());
    }

    #[test]
    fn stat_like_lines_never_panic(comm in "[ -~]{0,20}", fields in proptest::collection::vec("-?[0-9]{1,12}", 0..60)) {
        let line = format!("1 ({comm}) {}\n", fields.join(" "));
        let _ = parse_start_time(&line);
        let _ = Policy::parse_stat(&line);
    }

    #[test]
    fn journal_step_decoding_never_panics(text in "\\PC{0,200}") {
        let _ = serde_json::from_str::<Step>(&text);
    }
}
