//! Account names. Normalised so that two people can never hold names that differ only in case
//! or surrounding space, and restricted to a small alphabet so names cannot impersonate each
//! other with look-alike characters.

use std::fmt;

/// Shortest accepted name, in characters.
pub const MIN_LEN: usize = 3;
/// Longest accepted name, in characters.
pub const MAX_LEN: usize = 50;

/// A validated, normalised username: 3–50 of `[a-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

/// Why a username was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("Username must be between 3 and 50 characters long")]
    Length,
    #[error("Username may only contain letters, digits and underscores")]
    Charset,
}

impl Username {
    /// Trims, lowercases and checks a name as typed by a person.
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        let folded = raw.trim().to_lowercase();
        if !folded.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(UsernameError::Charset);
        }
        if !(MIN_LEN..=MAX_LEN).contains(&folded.len()) {
            return Err(UsernameError::Length);
        }
        Ok(Self(folded))
    }

    /// The normalised form, as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_case_folded() {
        assert_eq!(Username::parse("  Alice_01 ").map(|u| u.0), Ok("alice_01".to_owned()));
    }

    #[test]
    fn names_outside_the_alphabet_or_length_are_refused() {
        assert_eq!(Username::parse("ab"), Err(UsernameError::Length));
        assert_eq!(Username::parse(&"a".repeat(51)), Err(UsernameError::Length));
        assert_eq!(Username::parse("al ice"), Err(UsernameError::Charset));
        assert_eq!(Username::parse("ålice"), Err(UsernameError::Charset));
        assert_eq!(Username::parse(""), Err(UsernameError::Length));
        assert!(Username::parse(&"a".repeat(50)).is_ok());
    }
}
