//! How a step is spelled in a schema-2 journal: as [`Step`]'s own JSON, except that a CPU set
//! (which `Step` writes as an array of ids, 128 numbers for "0-127") becomes `{"cpus":
//! "0-127"}`. A journal of 10 000 thread steps on a 128-CPU host stays a few MB instead of
//! tens. Only the journal uses this form; plans and reports keep `Step`'s own.

use nearnative_host::CpuSet;
use nearnative_knob::Step;
use serde_json::{Map, Value};

/// The key of the object that stands for a CPU set.
const CPUS: &str = "cpus";

/// `step` as a journal spells it.
pub(crate) fn to_journal(step: &Step) -> Result<Value, serde_json::Error> {
    let mut value = serde_json::to_value(step)?;
    if let Value::Object(fields) = &mut value {
        for key in ["from", "to"] {
            if let Some(field) = fields.get_mut(key) {
                compact(field);
            }
        }
    }
    Ok(value)
}

/// A step as a journal spells it, read back.
pub(crate) fn from_journal(mut value: Value) -> Result<Step, String> {
    if let Value::Object(fields) = &mut value {
        for key in ["from", "to"] {
            if let Some(field) = fields.get_mut(key) {
                expand(field)?;
            }
        }
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// An array of ids (what a `CpuSet` serializes to) becomes `{"cpus": "list"}`.
fn compact(field: &mut Value) {
    let Value::Array(items) = field else {
        return;
    };
    let ids: Option<CpuSet> = items
        .iter()
        .map(|item| item.as_u64().and_then(|id| u32::try_from(id).ok()))
        .collect();
    if let Some(set) = ids {
        let mut object = Map::new();
        object.insert(CPUS.to_owned(), Value::String(set.to_list()));
        *field = Value::Object(object);
    }
}

/// `{"cpus": "list"}` becomes the array of ids again; anything else is left as it is.
fn expand(field: &mut Value) -> Result<(), String> {
    let Value::Object(object) = field else {
        return Ok(());
    };
    let list = match (object.len(), object.get(CPUS)) {
        (1, Some(Value::String(list))) => list,
        _ => return Ok(()),
    };
    let set = CpuSet::parse_list(list).map_err(|e| format!("CPU list {list:?}: {e}"))?;
    *field = Value::Array(set.iter().map(Value::from).collect());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearnative_knob::exclusivity::irq::IrqAffinity;
    use nearnative_knob::Change;

    #[test]
    fn cpu_sets_are_lists_and_read_back_exactly() {
        let cases = [
            ("range", CpuSet::from_ids(0..128), "0-127"),
            ("holes", CpuSet::from_ids([0, 2, 3, 9]), "0,2-3,9"),
            ("empty", CpuSet::new(), ""),
        ];
        for (what, from, list) in cases {
            let step = Step::from(Change {
                knob: IrqAffinity { irq: 36 },
                from,
                to: CpuSet::from_ids([1]),
            });
            let value = to_journal(&step).unwrap();
            assert_eq!(value["from"]["cpus"], list, "{what}");
            assert_eq!(value["to"]["cpus"], "1", "{what}");
            assert_eq!(from_journal(value).unwrap(), step, "{what}");
        }
    }

    #[test]
    fn a_bad_list_is_refused() {
        let value = serde_json::json!({
            "kind": "irq_affinity", "knob": {"irq": 36},
            "from": {"cpus": "3-1"}, "to": {"cpus": "1"}
        });
        assert!(from_journal(value).unwrap_err().contains("3-1"));
    }
}
