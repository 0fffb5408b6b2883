//! Roster import: a CSV of learners for one school, checked row by row. A bad row is reported
//! (line, column, reason — never the row's contents) and changes nothing; every good row
//! becomes one subject, registered in its own append, so a row is all or nothing.
//!
//! ```text
//!  name,year_group,flags
//!  "Okafor, Ada",7,send;eal
//!  Ben Carter,11,
//! ```
//! Fields may be quoted (`"…"`, with `""` for a quote); flags are separated by `;`. A fourth
//! column `network_login` is optional: the logins the school's network reports for the learner,
//! separated by `;` (ADR 0025).

use std::collections::BTreeSet;

use crate::domain::subject::MAX_YEAR_GROUP;
use crate::domain::{SubjectFlag, check_name};

/// The most rows one import may carry.
pub const MAX_ROWS: usize = 5_000;
/// The largest CSV one import may carry, in bytes.
pub const MAX_CSV_BYTES: usize = 1 << 20;
/// The header every roster starts with.
pub const HEADER: [&str; 3] = ["name", "year_group", "flags"];
/// The optional fourth column.
pub const LOGIN_COLUMN: &str = "network_login";

/// A good row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterRow {
    /// 1-based line of the CSV (the header is line 1).
    pub line: u32,
    pub display_name: String,
    pub year_group: u32,
    pub flags: BTreeSet<SubjectFlag>,
    /// As written; the subject's decider checks and lowercases them.
    pub network_logins: Vec<String>,
}

/// Why one row was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    pub line: u32,
    pub column: &'static str,
    pub reason: String,
}

/// Why the whole file was refused (nothing imported).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    #[error("is larger than {MAX_CSV_BYTES} bytes")]
    TooLarge,
    #[error("has more than {MAX_ROWS} rows")]
    TooManyRows,
    #[error("must start with the header `name,year_group,flags` or `name,year_group,flags,network_login`")]
    BadHeader,
    #[error("has an unterminated quoted field starting on line {0}")]
    UnterminatedQuote(u32),
}

/// Splits CSV text into records of fields, each with the line it starts on.
fn records(csv: &str) -> Result<Vec<(u32, Vec<String>)>, RosterError> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let (mut line, mut record_line, mut quoted, mut quote_line) = (1u32, 1u32, false, 1u32);
    let mut chars = csv.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
            (false, '"') if field.is_empty() => {
                quoted = true;
                quote_line = line;
            }
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                fields.push(std::mem::take(&mut field));
                records.push((record_line, std::mem::take(&mut fields)));
                line += 1;
                record_line = line;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(RosterError::UnterminatedQuote(quote_line));
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        records.push((record_line, fields));
    }
    Ok(records)
}

/// Parses a roster: the good rows and an error for each bad one, or the whole file refused.
pub fn parse(csv: &str) -> Result<(Vec<RosterRow>, Vec<RowError>), RosterError> {
    if csv.len() > MAX_CSV_BYTES {
        return Err(RosterError::TooLarge);
    }
    let mut records = records(csv.strip_prefix('\u{feff}').unwrap_or(csv))?.into_iter();
    let header = records.next().ok_or(RosterError::BadHeader)?.1;
    let header: Vec<String> = header.iter().map(|name| name.trim().to_lowercase()).collect();
    let columns = match header.len() {
        3 if header == HEADER => 3,
        4 if header[..3] == HEADER && header[3] == LOGIN_COLUMN => 4,
        _ => return Err(RosterError::BadHeader),
    };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut count = 0;
    for (line, fields) in records {
        if fields.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        count += 1;
        if count > MAX_ROWS {
            return Err(RosterError::TooManyRows);
        }
        match row(line, &fields, columns) {
            Ok(row) => rows.push(row),
            Err(error) => errors.push(error),
        }
    }
    Ok((rows, errors))
}

fn row(line: u32, fields: &[String], columns: usize) -> Result<RosterRow, RowError> {
    let error = |column, reason: &str| RowError { line, column, reason: reason.to_owned() };
    if fields.len() != columns {
        return Err(error("row", &format!("has {} fields; a row has {columns}", fields.len())));
    }
    let display_name = fields[0].trim().to_owned();
    check_name(&display_name).map_err(|reason| error("name", reason))?;
    let year_group: u32 = fields[1].trim().parse().map_err(|_| error("year_group", "is not a whole number"))?;
    if year_group > MAX_YEAR_GROUP {
        return Err(error("year_group", &format!("is outside 0..={MAX_YEAR_GROUP}")));
    }
    let mut flags = BTreeSet::new();
    for name in fields[2].split(';').map(str::trim).filter(|name| !name.is_empty()) {
        let flag = SubjectFlag::from_name(&name.to_lowercase()).ok_or_else(|| {
            error("flags", "has an unknown flag (known: looked_after, child_protection_plan, send, eal)")
        })?;
        flags.insert(flag);
    }
    let network_logins: Vec<String> = fields
        .get(3)
        .map(|logins| logins.split(';').map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    crate::domain::subject::network_logins(&network_logins)
        .map_err(|refusal| error(LOGIN_COLUMN, &refusal.to_string()))?;
    Ok(RosterRow { line, display_name, year_group, flags, network_logins })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_rows_parse_with_quotes_and_crlf() {
        let csv = "name,year_group,flags\r\n\"Okafor, Ada\",7,send;EAL\r\nBen Carter,11,\r\n\r\n\"Say \"\"Hi\"\"\",0,looked_after";
        let (rows, errors) = parse(csv).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].display_name, "Okafor, Ada");
        assert_eq!(rows[0].flags, BTreeSet::from([SubjectFlag::Send, SubjectFlag::Eal]));
        assert_eq!((rows[1].line, rows[1].year_group, rows[1].flags.len()), (3, 11, 0));
        assert_eq!((rows[2].line, rows[2].display_name.as_str()), (5, "Say \"Hi\""));
    }

    #[test]
    fn each_bad_row_is_reported_with_its_line_and_column_and_never_its_contents() {
        let csv = "name,year_group,flags\nAda Okafor,7,\n,3,\nBen Carter,twelve,\nCara Diaz,15,\nDan Evans,4,vip\nEve Fox,5\nGus Hale,6,eal";
        let (rows, errors) = parse(csv).unwrap();
        assert_eq!(rows.iter().map(|row| row.line).collect::<Vec<_>>(), vec![2, 8]);
        let reported: Vec<_> = errors.iter().map(|error| (error.line, error.column)).collect();
        assert_eq!(reported, vec![(3, "name"), (4, "year_group"), (5, "year_group"), (6, "flags"), (7, "row")]);
        for error in &errors {
            for name in ["Ben", "Cara", "Dan", "vip", "twelve", "Eve"] {
                assert!(!error.reason.contains(name), "{error:?}");
            }
        }
    }

    #[test]
    fn an_optional_column_carries_network_logins() {
        let csv = "name,year_group,flags,network_login\nAda Okafor,7,send,AOkafor; aokafor@oak.example\nBen Carter,11,,\nCara Diaz,3,,has space\nDan Evans,4,";
        let (rows, errors) = parse(csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].network_logins, vec!["AOkafor".to_owned(), "aokafor@oak.example".to_owned()]);
        assert!(rows[1].network_logins.is_empty());
        let reported: Vec<_> = errors.iter().map(|error| (error.line, error.column)).collect();
        assert_eq!(reported, vec![(4, "network_login"), (5, "row")]);
        assert!(!errors[0].reason.contains("has space"), "{:?}", errors[0]);
        assert_eq!(parse("name,year_group,flags,login\n"), Err(RosterError::BadHeader));
    }

    #[test]
    fn a_bad_file_is_refused_whole() {
        assert_eq!(parse("first,second\nAda,1,"), Err(RosterError::BadHeader));
        assert_eq!(parse(""), Err(RosterError::BadHeader));
        assert_eq!(parse("name,year_group,flags\n\"Ada,1,"), Err(RosterError::UnterminatedQuote(2)));
        let many = format!("name,year_group,flags\n{}", "Ada Okafor,1,\n".repeat(MAX_ROWS + 1));
        assert_eq!(parse(&many), Err(RosterError::TooManyRows));
        assert_eq!(parse(&"x".repeat(MAX_CSV_BYTES + 1)), Err(RosterError::TooLarge));
    }
}
