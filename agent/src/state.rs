//! The agent's persistent identity and sequence numbers, under `--state-dir`.
//!
//! - `agent_id`: a random UUID written on first start, read ever after.
//!   A new one replaces it when the state dir turns out to be a copy: its
//!   `origin` (machine id and host name) is not this machine's, or the
//!   collector holds seqs of this id that this agent never allocated.
//!   Under the new id the collector's replay mark starts afresh, so
//!   nothing spooled is mistaken for a replay.
//! - `origin`: the machine id and host name the state dir belongs to.
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
use std::sync::{Arc, RwLock};

use nightjar_model::convert::MAX_SEQ;

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

/// The agent id, shared by the sampling loop and the transport (which
/// sends every batch, spooled ones too, under the current id).
#[derive(Debug)]
pub struct Identity {
    dir: PathBuf,
    id: RwLock<String>,
}

impl Identity {
    /// The current agent id.
    pub fn current(&self) -> String {
        self.id.read().expect("identity lock").clone()
    }

    /// Takes a new agent id, durably, and returns it. `why` is logged.
    pub fn renew(&self, why: &str) -> Result<String, StateError> {
        let id = uuid::Uuid::new_v4().to_string();
        write_durably(&self.dir, &self.dir.join("agent_id"), &format!("{id}\n"))?;
        let old = std::mem::replace(&mut *self.id.write().expect("identity lock"), id.clone());
        tracing::warn!(old_agent_id = %old, agent_id = %id, why, "took a new agent id");
        Ok(id)
    }
}

/// The agent's identity and sequence allocator.
#[derive(Debug)]
pub struct AgentState {
    dir: PathBuf,
    identity: Arc<Identity>,
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
    /// sequence numbers above anything used before. `origin` says which
    /// machine this is ([`machine_origin`]); a state dir made on another
    /// gets a new agent id.
    pub fn open(dir: &Path, origin: &str) -> Result<AgentState, StateError> {
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
        let identity = Arc::new(Identity {
            dir: dir.to_owned(),
            id: RwLock::new(agent_id),
        });
        let origin_path = dir.join("origin");
        match std::fs::read_to_string(&origin_path) {
            Ok(text) if text.trim() == origin => {}
            Ok(text) => {
                identity.renew(&format!(
                    "the state dir {} was made on {:?}, this is {origin:?}: a cloned VM or a copied state dir",
                    dir.display(),
                    text.trim()
                ))?;
                write_durably(dir, &origin_path, &format!("{origin}\n"))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_durably(dir, &origin_path, &format!("{origin}\n"))?;
            }
            Err(e) => return Err(err(&origin_path, e)),
        }
        let mut state = AgentState {
            dir: dir.to_owned(),
            identity,
            next_seq: reserved_before + 1,
            reserved_through: reserved_before,
        };
        state.reserve()?;
        Ok(state)
    }

    fn reserve(&mut self) -> Result<(), StateError> {
        let through = self.next_seq.saturating_add(LEASE - 1);
        write_durably(
            &self.dir,
            &self.dir.join("seq_lease"),
            &format!("{through}\n"),
        )?;
        self.reserved_through = through;
        Ok(())
    }

    /// The agent's id (shared with the transport).
    pub fn identity(&self) -> Arc<Identity> {
        self.identity.clone()
    }

    /// The next sequence number, durably reserved before it is returned.
    pub fn next_seq(&mut self) -> Result<u64, StateError> {
        if self.next_seq > MAX_SEQ {
            // 2^63 batches: unreachable in practice; a new id restarts at 1.
            return Err(err(
                &self.dir.join("seq_lease"),
                format!("sequence numbers exhausted (above {MAX_SEQ})"),
            ));
        }
        if self.next_seq > self.reserved_through {
            self.reserve()?;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(seq)
    }
}

/// This machine's origin for [`AgentState::open`]: `/etc/machine-id`
/// (which a clone made properly regenerates) and the host name.
pub fn machine_origin(host: &str) -> String {
    let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    format!("{} {host}", machine_id.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_stable_and_seqs_never_repeat_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = AgentState::open(dir.path(), "m1 web-1").unwrap();
        let id = first.identity().current();
        let a: Vec<u64> = (0..3).map(|_| first.next_seq().unwrap()).collect();
        assert_eq!(a, vec![1, 2, 3]);
        drop(first);
        let mut second = AgentState::open(dir.path(), "m1 web-1").unwrap();
        assert_eq!(second.identity().current(), id);
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
        assert!(
            AgentState::open(dir.path(), "m1 web-1")
                .unwrap()
                .next_seq()
                .unwrap()
                > last
        );
    }

    #[test]
    fn a_state_dir_from_another_machine_gets_a_new_agent_id() {
        let dir = tempfile::tempdir().unwrap();
        let original = AgentState::open(dir.path(), "m1 web-1").unwrap();
        let id = original.identity().current();
        drop(original);
        let same = AgentState::open(dir.path(), "m1 web-1").unwrap();
        assert_eq!(same.identity().current(), id, "same machine, same id");
        drop(same);
        let clone = AgentState::open(dir.path(), "m2 web-1").unwrap();
        let new_id = clone.identity().current();
        assert_ne!(new_id, id, "a clone must not send under the original's id");
        drop(clone);
        assert_eq!(
            AgentState::open(dir.path(), "m2 web-1")
                .unwrap()
                .identity()
                .current(),
            new_id,
            "the new id and origin are durable"
        );
    }

    #[test]
    fn a_renewed_id_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let state = AgentState::open(dir.path(), "m1 web-1").unwrap();
        let renewed = state.identity().renew("test").unwrap();
        assert_eq!(state.identity().current(), renewed);
        drop(state);
        let reopened = AgentState::open(dir.path(), "m1 web-1").unwrap();
        assert_eq!(reopened.identity().current(), renewed);
    }

    #[test]
    fn corrupt_lease_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seq_lease"), "banana").unwrap();
        let e = AgentState::open(dir.path(), "m1 web-1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("seq_lease") && e.contains("banana"), "{e}");
    }

    #[test]
    fn uncreatable_dir_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = AgentState::open(&file.join("state"), "m1 web-1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot create"), "{e}");
    }
}
