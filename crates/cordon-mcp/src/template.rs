//! `{secret.NAME}` in a per-user server's header values: filled from the calling user's own stored secret.

use std::collections::BTreeMap;

use cordon_core::SecretValue;

const OPEN: &str = "{secret.";

/// The secret names a value refers to, in order; `Err` names a bad placeholder.
pub(crate) fn secrets_in(value: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{OPEN}` without its closing `}}`"))?;
        let name = &after[..end];
        if !cordon_core::is_secret_name(name) {
            return Err(format!("`{OPEN}{name}}}` does not name a secret"));
        }
        names.push(name.to_owned());
        rest = &after[end + 1..];
    }
    Ok(names)
}

/// The value with each placeholder replaced by the user's secret. Every
/// name was checked by [`secrets_in`]; a missing secret leaves no trace of
/// anyone else's, the caller refuses to connect without it.
pub(crate) fn fill(value: &str, secrets: &BTreeMap<String, SecretValue>) -> String {
    let mut filled = value.to_owned();
    for (name, secret) in secrets {
        filled = filled.replace(&format!("{OPEN}{name}}}"), secret.expose());
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_and_filled() {
        let value = "Bearer {secret.github} and {secret.other-1}";
        assert_eq!(secrets_in(value).expect("valid"), ["github", "other-1"]);
        let secrets = BTreeMap::from([
            ("github".to_owned(), SecretValue::new("g")),
            ("other-1".to_owned(), SecretValue::new("o")),
        ]);
        assert_eq!(fill(value, &secrets), "Bearer g and o");
        assert!(secrets_in("plain").expect("valid").is_empty());
        assert!(secrets_in("{secret.open").is_err());
        assert!(secrets_in("{secret.a b}").is_err());
    }
}
