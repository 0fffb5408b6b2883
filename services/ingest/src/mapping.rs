//! Vendor category labels to Haven's taxonomy, from a versioned table that is data, not code
//! (`mappings/categories.csv`, embedded at build time). Lookups allocate nothing: the label
//! is lowercased into a stack buffer.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::taxonomy::Category;

/// The table in this build.
const BUILTIN: &str = include_str!("../mappings/categories.csv");

/// Labels longer than this are not in any table: they map to `other` without a lookup.
const MAX_KEY_BYTES: usize = 128;
/// Separates namespace and label in a key; cannot appear in either.
const KEY_SEPARATOR: u8 = 0x1f;

/// A loaded category table.
#[derive(Debug)]
pub struct CategoryMap {
    version: u32,
    /// `namespace \x1f lowercased label` → category.
    entries: HashMap<Box<str>, Category>,
}

/// A row of the table that could not be read; names the 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("line {line}: expected `namespace,label,category`")]
    Columns { line: usize },
    #[error("line {line}: unknown category `{category}`")]
    Category { line: usize, category: String },
    #[error("line {line}: `{namespace},{label}` is already mapped")]
    Duplicate { line: usize, namespace: String, label: String },
    #[error("line {line}: the label is longer than {MAX_KEY_BYTES} bytes")]
    TooLong { line: usize },
    #[error("the table has no `#! version = N` line")]
    NoVersion,
}

impl CategoryMap {
    /// The table embedded in this build. It is checked by a unit test, so a bad row fails the
    /// build's tests rather than a running ingest.
    pub fn builtin() -> &'static CategoryMap {
        static MAP: LazyLock<CategoryMap> =
            LazyLock::new(|| CategoryMap::parse(BUILTIN).expect("mappings/categories.csv is valid (unit tested)"));
        &MAP
    }

    /// Reads a table in the `categories.csv` layout.
    pub fn parse(text: &str) -> Result<CategoryMap, MapError> {
        let mut version = None;
        let mut entries = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let row = raw.trim();
            if let Some(rest) = row.strip_prefix("#!") {
                let value = rest.trim().strip_prefix("version").map(|v| v.trim().trim_start_matches('=').trim());
                version = value.and_then(|v| v.parse().ok());
                continue;
            }
            if row.is_empty() || row.starts_with('#') {
                continue;
            }
            let columns: Vec<&str> = row.split(',').map(str::trim).collect();
            let [namespace, label, category] = columns[..] else {
                return Err(MapError::Columns { line });
            };
            if namespace.is_empty() || label.is_empty() {
                return Err(MapError::Columns { line });
            }
            let category: Category =
                category.parse().map_err(|_| MapError::Category { line, category: category.to_owned() })?;
            let mut buffer = [0u8; MAX_KEY_BYTES];
            let key = key(&mut buffer, namespace, label).ok_or(MapError::TooLong { line })?;
            if entries.insert(Box::from(key), category).is_some() {
                return Err(MapError::Duplicate { line, namespace: namespace.to_owned(), label: label.to_owned() });
            }
        }
        Ok(CategoryMap { version: version.ok_or(MapError::NoVersion)?, entries })
    }

    /// The table's version, recorded with what was mapped by it.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Haven's category for one vendor label: the vendor's own row, else a `*` row, else
    /// `other`; no label (or a blank one) is `uncategorised`.
    pub fn classify(&self, namespace: &str, label: Option<&str>) -> Category {
        let Some(label) = label.map(str::trim).filter(|label| !label.is_empty() && *label != "-") else {
            return Category::Uncategorised;
        };
        self.lookup(namespace, label).or_else(|| self.lookup("*", label)).unwrap_or(Category::Other)
    }

    /// For a list of labels in one field (`Business Services,Malware`): the gravest of them.
    pub fn classify_list(&self, namespace: &str, labels: Option<&str>, separator: char) -> Category {
        let Some(labels) = labels else { return Category::Uncategorised };
        labels
            .split(separator)
            .map(|label| self.classify(namespace, Some(label)))
            .max_by_key(|category| category.gravity())
            .unwrap_or(Category::Uncategorised)
    }

    fn lookup(&self, namespace: &str, label: &str) -> Option<Category> {
        let mut buffer = [0u8; MAX_KEY_BYTES];
        let key = key(&mut buffer, namespace, label)?;
        self.entries.get(key).copied()
    }
}

/// Writes `namespace \x1f lowercase(label)` into `buffer`; `None` when it does not fit.
fn key<'b>(buffer: &'b mut [u8; MAX_KEY_BYTES], namespace: &str, label: &str) -> Option<&'b str> {
    let len = namespace.len() + 1 + label.len();
    if len > MAX_KEY_BYTES {
        return None;
    }
    buffer[..namespace.len()].copy_from_slice(namespace.as_bytes());
    buffer[namespace.len()] = KEY_SEPARATOR;
    for (slot, byte) in buffer[namespace.len() + 1..len].iter_mut().zip(label.bytes()) {
        *slot = byte.to_ascii_lowercase();
    }
    // ASCII lowercasing keeps UTF-8 valid; the separator is ASCII.
    std::str::from_utf8(&buffer[..len]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_table_loads_and_covers_every_illegal_category() {
        let map = CategoryMap::parse(BUILTIN).expect("builtin table");
        assert!(map.version() >= 1);
        for category in Category::ALL.into_iter().filter(|c| c.is_illegal()) {
            assert!(map.entries.values().any(|c| *c == category), "no row maps to {category}");
        }
    }

    #[test]
    fn vendor_rows_win_over_generic_ones_and_case_is_ignored() {
        let map = CategoryMap::parse(
            "#! version = 3\n*,terrorism,extremism\nacme,Terrorism,illegal_terrorist_content_ctiru\n",
        )
        .unwrap();
        assert_eq!(map.version(), 3);
        assert_eq!(map.classify("acme", Some("TERRORISM")), Category::IllegalTerroristContentCtiru);
        assert_eq!(map.classify("other", Some(" Terrorism ")), Category::Extremism);
        assert_eq!(map.classify("other", Some("Shopping")), Category::Other);
        assert_eq!(map.classify("other", None), Category::Uncategorised);
        assert_eq!(map.classify("other", Some("-")), Category::Uncategorised);
        assert_eq!(map.classify("other", Some(&"x".repeat(500))), Category::Other);
    }

    #[test]
    fn a_list_of_labels_takes_the_gravest() {
        let map = CategoryMap::builtin();
        assert_eq!(
            map.classify_list("cisco_umbrella", Some("Business Services,Malware"), ','),
            Category::MalwareHacking
        );
        assert_eq!(
            map.classify_list("cisco_umbrella", Some("Gambling,Child Abuse Content"), ','),
            Category::IllegalChildAbuseIwf
        );
    }

    #[test]
    fn bad_tables_are_refused_naming_the_line() {
        assert_eq!(CategoryMap::parse("a,b,c\n").unwrap_err(), MapError::Category { line: 1, category: "c".into() });
        assert_eq!(CategoryMap::parse("a,b\n").unwrap_err(), MapError::Columns { line: 1 });
        assert!(matches!(
            CategoryMap::parse("#! version = 1\na,B,other\na,b,drugs\n"),
            Err(MapError::Duplicate { line: 3, .. })
        ));
        assert_eq!(CategoryMap::parse("a,b,other\n").unwrap_err(), MapError::NoVersion);
    }
}
