//! Limits on what a command may carry; a refusal names the field.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}

/// Non-blank text of at most `max_bytes`.
pub fn required_text(field: &'static str, text: &str, max_bytes: usize) -> Result<(), Invalid> {
    if text.trim().is_empty() {
        return Err(Invalid { field, reason: "is required".into() });
    }
    optional_text(field, text, max_bytes)
}

/// Text of at most `max_bytes` (empty allowed).
pub fn optional_text(field: &'static str, text: &str, max_bytes: usize) -> Result<(), Invalid> {
    if text.len() > max_bytes {
        return Err(Invalid { field, reason: format!("is {} bytes; the limit is {max_bytes}", text.len()) });
    }
    Ok(())
}

/// At most `max` items.
pub fn within(field: &'static str, count: usize, max: usize) -> Result<(), Invalid> {
    if count > max {
        return Err(Invalid { field, reason: format!("names {count}; the limit is {max}") });
    }
    Ok(())
}
