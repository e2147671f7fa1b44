//! Namespace data to and from S3, per the namespace's DR policy: `sluice
//! backup` reads each partition of the namespace's topics into segment
//! objects and ends with a manifest; `sluice restore` reads the chain of
//! manifests back into topics.
//!
//! [`segment`] is the object format (Avro, zstd; [`avro`] its encoding),
//! [`manifest`] the manifest, the key layout and the chain (no I/O), [`run`]
//! the backup (`read` its reading side), [`restore`] the restore (`write`
//! its writing side), [`groups`] the consumer groups' offsets it translates.

pub mod avro;
pub mod groups;
pub mod manifest;
mod read;
pub mod restore;
pub mod resume;
pub mod run;
pub mod segment;
pub mod status;
mod write;

use sha2::{Digest, Sha256};

use crate::backend::{BackendError, ConnectError};
use crate::desired::{BackupState, NamespaceState};
use manifest::ChainError;

/// How much record data a segment object holds before the next one starts,
/// unless `--segment-size` says otherwise.
pub const DEFAULT_SEGMENT_BYTES: u64 = 32 * 1024 * 1024;

/// Why a backup or a restore failed or refused.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A live system could not be read or written.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The Kafka clients could not be set up.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The namespace declares no backups.
    #[error(
        "namespace `{0}` has no `disaster_recovery.backup`: it is neither backed up nor restored"
    )]
    NotBackedUp(String),
    /// A declared topic is not in Kafka.
    #[error(
        "topic `{topic}` of namespace `{namespace}` does not exist in Kafka; nothing was backed up"
    )]
    MissingTopic { namespace: String, topic: String },
    /// Reading a partition failed.
    #[error("reading `{topic}` partition {partition}: {message}")]
    Read {
        topic: String,
        partition: i32,
        message: String,
    },
    /// The Kafka client failed outside any one partition.
    #[error("the Kafka client failed: {0}")]
    Kafka(String),
    /// A manifest is not one sluice can read.
    #[error("manifest `s3://{bucket}/{key}` cannot be read: {message}")]
    BadManifest {
        bucket: String,
        key: String,
        message: String,
    },
    /// The manifests do not chain.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// No complete backup exists.
    #[error(
        "there is no complete backup of namespace `{namespace}` under `s3://{bucket}/{dir}` (a run is complete once its manifest is written)"
    )]
    NoBackup {
        namespace: String,
        bucket: String,
        dir: String,
    },
    /// `--to-time` outside what the manifests cover.
    #[error(
        "`--to-time {time}` is outside what the backups of `{namespace}` cover: {covered}; nothing was written"
    )]
    OutOfRange {
        namespace: String,
        time: String,
        covered: String,
    },
    /// `--to-time` before the namespace's PITR window.
    #[error(
        "`--to-time {time}` is before namespace `{namespace}`'s PITR window (`pitr.window: {window}`, from {from}); nothing was written"
    )]
    OutsideWindow {
        namespace: String,
        time: String,
        window: String,
        from: String,
    },
    /// `--topic` names a topic the backups do not hold.
    #[error("the backups of namespace `{namespace}` hold no topic {}; they hold {}", .names.join(", "), .held.join(", "))]
    UnknownTopics {
        namespace: String,
        names: Vec<String>,
        held: Vec<String>,
    },
    /// The target topic holds records.
    #[error(
        "refusing to restore into topic `{topic}`: it holds {records} record(s); nothing was written"
    )]
    HoldsData { topic: String, records: i64 },
    /// The target topic has fewer partitions than the backup.
    #[error(
        "refusing to restore into topic `{topic}`: it has {live} partition(s), the backup has {backed}; nothing was written"
    )]
    TooFewPartitions {
        topic: String,
        live: u32,
        backed: u32,
    },
    /// A topic could not be created.
    #[error("creating topic `{topic}`: {message}")]
    Create { topic: String, message: String },
    /// An object's checksum differs from the manifest's.
    #[error(
        "object `s3://{bucket}/{key}` is corrupt: its SHA-256 is {found}, the manifest says {expected}; none of its records and nothing after it was written ({written} record(s) were written before it)"
    )]
    Corrupt {
        bucket: String,
        key: String,
        expected: String,
        found: String,
        written: u64,
    },
    /// An object passed its checksum but does not read as a segment.
    #[error(
        "object `s3://{bucket}/{key}` does not read as a segment: {message}; none of its records and nothing after it was written ({written} record(s) were written before it)"
    )]
    Unreadable {
        bucket: String,
        key: String,
        message: String,
        written: u64,
    },
    /// A block of an object that passed its checks does not decode (a
    /// writer's bug, not damage): records of the object before that block
    /// may have been written.
    #[error(
        "object `s3://{bucket}/{key}` passed its checksum but a block of it does not decode: {message}; nothing after that block was written ({written} record(s) were written before it, records of this object among them)"
    )]
    UnreadableBlock {
        bucket: String,
        key: String,
        message: String,
        written: u64,
    },
    /// Producing records failed.
    #[error(
        "writing to `{topic}` partition {partition}: {message} ({written} record(s) were written before it)"
    )]
    Write {
        topic: String,
        partition: i32,
        message: String,
        written: u64,
    },
    /// `--resume` found a target partition that is not a prefix of the restore.
    #[error(
        "refusing to resume the restore into `{topic}` partition {partition}: {message}; nothing more was written"
    )]
    Mismatch {
        topic: String,
        partition: i32,
        message: String,
    },
    /// `--groups`, and a declared group has members.
    #[error(
        "consumer group `{group}` has {members} active member(s): its offsets can be set only while none of its consumers runs; stop them and restore again (or leave out `--groups`); nothing was written"
    )]
    GroupActive { group: String, members: usize },
    /// The records are written, a group's offsets are not.
    #[error(
        "setting the offsets of consumer group `{group}`: {message}. Every record was written; to set the groups' offsets, run the same restore again with `--resume --groups`"
    )]
    GroupNotSet { group: String, message: String },
    /// SIGINT or SIGTERM, or the lock was lost, between objects.
    #[error(
        "restore stopped ({reason}) after {written} record(s); the restored topics are incomplete"
    )]
    Stopped { reason: &'static str, written: u64 },
}

impl BackupError {
    /// A refusal (nothing was done), rather than a failure.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            BackupError::NotBackedUp(_)
                | BackupError::MissingTopic { .. }
                | BackupError::NoBackup { .. }
                | BackupError::OutOfRange { .. }
                | BackupError::OutsideWindow { .. }
                | BackupError::UnknownTopics { .. }
                | BackupError::HoldsData { .. }
                | BackupError::TooFewPartitions { .. }
                | BackupError::Mismatch { .. }
                | BackupError::GroupActive { .. }
        )
    }
}

impl BackupError {
    /// The same error, counting the `records` written before it (an object
    /// fetched ahead fails before the records ahead of it are written).
    pub fn written_before(mut self, records: u64) -> Self {
        if let BackupError::Corrupt { written, .. }
        | BackupError::Unreadable { written, .. }
        | BackupError::UnreadableBlock { written, .. } = &mut self
        {
            *written = records;
        }
        self
    }
}

/// The backup `ns` declares: a namespace without one is neither backed up
/// nor restored.
pub fn declared(ns: &NamespaceState) -> Result<&BackupState, BackupError> {
    ns.disaster_recovery
        .as_ref()
        .and_then(|dr| dr.backup.as_ref())
        .ok_or_else(|| BackupError::NotBackedUp(ns.name.clone()))
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `bytes` in lower-case hex (a digest, as manifests write it).
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
