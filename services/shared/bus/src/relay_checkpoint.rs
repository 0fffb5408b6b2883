//! The relay's own durable checkpoint: one past the last position JetStream acknowledged, in a
//! small file beside the process's data. It lives outside NATS on purpose: when JetStream loses
//! its store, the relay goes on from here instead of republishing the whole log, and consumers
//! fill the hole from the log (ADR 0009).

use std::io::Write;
use std::path::{Path, PathBuf};

use haven_kernel::Position;

use crate::BusError;

#[derive(Clone, Debug)]
pub struct CheckpointFile {
    path: PathBuf,
}

impl CheckpointFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CheckpointFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored checkpoint; 0 when there is none yet.
    pub fn load(&self) -> Result<Position, BusError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Position(0)),
            Err(error) => return Err(self.error(error)),
        };
        text.trim().parse().map(Position).map_err(|_| self.error("does not hold a position"))
    }

    /// Replaces the checkpoint: a temporary file, fsynced, renamed over the old one, so a
    /// crash leaves the old value or the new one.
    pub async fn save(&self, position: Position) -> Result<(), BusError> {
        let file = self.clone();
        tokio::task::spawn_blocking(move || file.save_blocking(position)).await.map_err(|error| self.error(error))?
    }

    fn save_blocking(&self, position: Position) -> Result<(), BusError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|error| self.error(error))?;
        }
        let temporary = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&temporary).map_err(|error| self.error(error))?;
        writeln!(file, "{}", position.0).map_err(|error| self.error(error))?;
        file.sync_all().map_err(|error| self.error(error))?;
        std::fs::rename(&temporary, &self.path).map_err(|error| self.error(error))
    }

    fn error(&self, reason: impl std::fmt::Display) -> BusError {
        BusError::Checkpoint { path: self.path.display().to_string(), reason: reason.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_checkpoint_survives_and_garbage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = CheckpointFile::new(dir.path().join("bus/relay.checkpoint"));
        assert_eq!(file.load().unwrap(), Position(0));
        file.save(Position(12_345)).await.unwrap();
        assert_eq!(CheckpointFile::new(file.path()).load().unwrap(), Position(12_345));
        std::fs::write(file.path(), "twelve").unwrap();
        assert!(matches!(file.load().unwrap_err(), BusError::Checkpoint { .. }));
    }
}
