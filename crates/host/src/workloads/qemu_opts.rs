//! QEMU's option-value syntax (`-name guest=web1,debug-threads=on`): comma-separated
//! `key=value` pairs where `,,` stands for a literal comma and a leading bare value belongs to
//! the option's implied key (`-name web1` means `guest=web1`).

/// The pairs of one option value, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuOpts {
    pairs: Vec<(String, String)>,
}

impl QemuOpts {
    pub fn parse(text: &str, implied_key: &str) -> Self {
        let mut pairs = Vec::new();
        for (position, item) in split_unescaped(text).into_iter().enumerate() {
            match item.split_once('=') {
                Some((key, value)) => pairs.push((key.to_owned(), value.to_owned())),
                None if position == 0 => pairs.push((implied_key.to_owned(), item)),
                // A bare flag such as `server` is shorthand for `server=on`.
                None => pairs.push((item, "on".to_owned())),
            }
        }
        QemuOpts { pairs }
    }

    /// The last value given for `key`, as QEMU lets a later one win.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits at single commas; `,,` becomes a literal comma inside an item.
fn split_unescaped(text: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            (',', Some(',')) => {
                chars.next();
                push_char(&mut items, ',');
            }
            (',', _) => items.push(String::new()),
            (c, _) => push_char(&mut items, c),
        }
    }
    items
}

fn push_char(items: &mut [String], c: char) {
    if let Some(last) = items.last_mut() {
        last.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_values_parse() {
        let cases = [
            ("implied key", "web1", "guest", Some("web1"), "guest"),
            (
                "explicit key",
                "guest=db,debug-threads=on",
                "guest",
                Some("on"),
                "debug-threads",
            ),
            ("escaped comma", "a,,b,x=1", "guest", Some("a,b"), "guest"),
            ("bare flag", "unix:/s,server", "path", Some("on"), "server"),
            ("last wins", "x=1,x=2", "guest", Some("2"), "x"),
            ("missing", "x=1", "guest", None, "guest"),
            ("empty", "", "guest", Some(""), "guest"),
        ];
        for (what, text, implied, expected, key) in cases {
            assert_eq!(QemuOpts::parse(text, implied).get(key), expected, "{what}");
        }
    }
}
