//! What `roost-cli chat` keeps between runs, per user (docs/writing-a-client.md): the
//! device id of this machine, so its client id (and with it its session and its place in
//! the history) stays the same, and the `sync` cursor of each device, so a restarted chat
//! shows what it missed. One small JSON file, `{dir}/roost-cli/{user}.json`, where `dir`
//! is `--state-dir`, else `$XDG_DATA_HOME`, else `~/.local/share`.

use anyhow::{bail, Context, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// This machine's device id for the user.
    device: Option<String>,
    /// The last `sync` cursor of each device (usually just this one).
    #[serde(default)]
    cursors: BTreeMap<String, String>,
}

/// The state file of one user, loaded.
pub struct StateFile {
    path: PathBuf,
    state: State,
}

impl StateFile {
    /// Loads `user`'s state (none yet is an empty state). `dir` overrides the data dir.
    pub fn open(dir: Option<&Path>, user: &str) -> Result<StateFile> {
        let base = match dir {
            Some(dir) => dir.to_path_buf(),
            None => data_dir()?,
        };
        let path = base.join("roost-cli").join(format!("{user}.json"));
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {} (delete it to start over)", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(StateFile { path, state })
    }

    /// Where the state is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This machine's device id: the kept one, or a new `cli-XXXXXXXX` (then kept).
    pub fn device(&mut self) -> Result<String> {
        if let Some(device) = &self.state.device {
            return Ok(device.clone());
        }
        let device = format!("cli-{:08x}", rand::thread_rng().gen::<u32>());
        self.state.device = Some(device.clone());
        self.save()?;
        Ok(device)
    }

    /// The kept `sync` cursor of `device`.
    pub fn cursor(&self, device: &str) -> Option<&str> {
        self.state.cursors.get(device).map(String::as_str)
    }

    /// Keeps `cursor` as `device`'s, on disk at once.
    pub fn set_cursor(&mut self, device: &str, cursor: &str) -> Result<()> {
        self.state
            .cursors
            .insert(device.to_owned(), cursor.to_owned());
        self.save()
    }

    /// Writes the file whole: a temporary file renamed over it, so a crash leaves the old
    /// state or the new one, never half of one.
    fn save(&self) -> Result<()> {
        let dir = self.path.parent().context("state file has no directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&self.state)?;
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// `$XDG_DATA_HOME`, else `$HOME/.local/share`.
fn data_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share")),
        None => bail!("no HOME or XDG_DATA_HOME to keep the chat state in; pass --state-dir"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_and_cursors_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateFile::open(Some(dir.path()), "alice").unwrap();
        let device = state.device().unwrap();
        assert!(device.starts_with("cli-"), "{device}");
        assert_eq!(state.cursor(&device), None);
        state.set_cursor(&device, "v1:42").unwrap();

        let mut again = StateFile::open(Some(dir.path()), "alice").unwrap();
        assert_eq!(again.device().unwrap(), device);
        assert_eq!(again.cursor(&device), Some("v1:42"));
        assert_eq!(again.path(), dir.path().join("roost-cli/alice.json"));

        let mut bob = StateFile::open(Some(dir.path()), "bob").unwrap();
        assert_ne!(bob.device().unwrap(), device, "each user has their own");
    }

    #[test]
    fn a_damaged_file_is_an_error_that_says_where() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("roost-cli")).unwrap();
        std::fs::write(dir.path().join("roost-cli/alice.json"), "{").unwrap();
        let e = StateFile::open(Some(dir.path()), "alice").err().unwrap();
        assert!(format!("{e:#}").contains("alice.json"), "{e:#}");
    }
}
