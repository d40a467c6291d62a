//! The agent's persistent identity and sequence numbers, under `--state-dir`.
//!
//! - `agent_id`: a random UUID written on first start, read ever after.
//! - `seq_lease`: the highest batch sequence number reserved so far.
//!
//! Sequence numbers must never be reused: the collector treats a batch whose
//! seq is not above the agent's high-water mark as a replay and drops it. So
//! before a seq is used it must be durably reserved. Writing a file per batch
//! would cost an fsync per batch; instead the agent reserves blocks of
//! [`LEASE`] numbers and, after a restart, continues above the last
//! reservation. Skipped numbers are harmless.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// How many sequence numbers one durable reservation covers.
pub const LEASE: u64 = 1_000;

/// A state-dir problem, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("state dir {path}: {reason}")]
pub struct StateError {
    /// The file or directory.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// The agent's identity and sequence allocator.
#[derive(Debug)]
pub struct AgentState {
    dir: PathBuf,
    agent_id: String,
    next_seq: u64,
    reserved_through: u64,
}

fn err(path: &Path, reason: impl std::fmt::Display) -> StateError {
    StateError {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Writes `contents` to `path` atomically and durably (temp file, fsync,
/// rename, fsync of the directory).
fn write_durably(dir: &Path, path: &Path, contents: &str) -> Result<(), StateError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| err(&tmp, e))?;
    f.write_all(contents.as_bytes()).map_err(|e| err(&tmp, e))?;
    f.sync_all().map_err(|e| err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| err(path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err(dir, e))
}

impl AgentState {
    /// Opens or creates the state dir and reserves the first block of
    /// sequence numbers above anything used before.
    pub fn open(dir: &Path) -> Result<AgentState, StateError> {
        std::fs::create_dir_all(dir).map_err(|e| err(dir, format!("cannot create: {e}")))?;
        let id_path = dir.join("agent_id");
        let agent_id = match std::fs::read_to_string(&id_path) {
            Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
            Ok(_) => {
                return Err(err(
                    &id_path,
                    "file is empty; delete it to get a new agent id",
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = uuid::Uuid::new_v4().to_string();
                write_durably(dir, &id_path, &format!("{id}\n"))?;
                id
            }
            Err(e) => return Err(err(&id_path, e)),
        };
        let lease_path = dir.join("seq_lease");
        let reserved_before = match std::fs::read_to_string(&lease_path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|e| {
                err(
                    &lease_path,
                    format!("not a sequence number ({e}): {:?}", text.trim()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(err(&lease_path, e)),
        };
        let mut state = AgentState {
            dir: dir.to_owned(),
            agent_id,
            next_seq: reserved_before + 1,
            reserved_through: reserved_before,
        };
        state.reserve()?;
        Ok(state)
    }

    fn reserve(&mut self) -> Result<(), StateError> {
        let through = self.next_seq + LEASE - 1;
        write_durably(
            &self.dir,
            &self.dir.join("seq_lease"),
            &format!("{through}\n"),
        )?;
        self.reserved_through = through;
        Ok(())
    }

    /// The agent's stable id.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// Moves the next sequence number above `seq` if it is not already;
    /// returns whether it moved. Used when the collector reports a stored
    /// seq this agent has not allocated (its state dir was lost or copied):
    /// without the jump, every new batch would look like a replay to the
    /// collector and be dropped.
    pub fn skip_past(&mut self, seq: u64) -> bool {
        if seq < self.next_seq {
            return false;
        }
        self.next_seq = seq + 1;
        true
    }

    /// The next sequence number, durably reserved before it is returned.
    pub fn next_seq(&mut self) -> Result<u64, StateError> {
        if self.next_seq > self.reserved_through {
            self.reserve()?;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_stable_and_seqs_never_repeat_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = AgentState::open(dir.path()).unwrap();
        let id = first.agent_id().to_owned();
        let a: Vec<u64> = (0..3).map(|_| first.next_seq().unwrap()).collect();
        assert_eq!(a, vec![1, 2, 3]);
        drop(first);
        let mut second = AgentState::open(dir.path()).unwrap();
        assert_eq!(second.agent_id(), id);
        let b = second.next_seq().unwrap();
        assert!(b > 3, "seq {b} reused after restart");
        // Crossing a lease boundary keeps counting.
        let mut last = b;
        for _ in 0..(LEASE + 5) {
            let s = second.next_seq().unwrap();
            assert_eq!(s, last + 1);
            last = s;
        }
        drop(second);
        assert!(AgentState::open(dir.path()).unwrap().next_seq().unwrap() > last);
    }

    #[test]
    fn skipping_past_a_foreign_high_water_mark_reserves_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = AgentState::open(dir.path()).unwrap();
        assert_eq!(state.next_seq().unwrap(), 1);
        assert!(!state.skip_past(0));
        assert!(state.skip_past(5_000));
        assert_eq!(state.next_seq().unwrap(), 5_001);
        drop(state);
        let mut reopened = AgentState::open(dir.path()).unwrap();
        assert!(
            reopened.next_seq().unwrap() > 5_001,
            "the jump was not made durable"
        );
    }

    #[test]
    fn corrupt_lease_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seq_lease"), "banana").unwrap();
        let e = AgentState::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("seq_lease") && e.contains("banana"), "{e}");
    }

    #[test]
    fn uncreatable_dir_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = AgentState::open(&file.join("state"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot create"), "{e}");
    }
}
