//! A string that must not end up in logs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret value, such as the HS256 `jwt_secret`.
///
/// `Debug` prints `***`, so a `Config` can be logged with `{:?}`. Serialization writes the
/// real value (it is how the config is merged); use [`Config::to_masked_toml`] to show a
/// config to a person.
///
/// [`Config::to_masked_toml`]: crate::Config::to_masked_toml
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// What every secret is shown as.
    pub const MASK: &'static str = "***";

    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The secret itself, for the code that signs or verifies with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(secret.expose(), "hunter2");
    }
}
