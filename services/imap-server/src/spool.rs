//! Spool files for APPEND message literals too large to buffer.
//!
//! The receiver hands such a literal over piece by piece (`Received::LiteralStream`); the
//! connection writes the pieces to a temporary file in the spool directory while hashing them,
//! so a connection never holds more than one read buffer of it, however large the message and
//! however slowly the client sends it. The APPEND handler then uploads the file with
//! `BlobStore::put_file`, which streams it from disk.
//!
//! A spool file is a [`TempPath`]: it is removed when dropped, which happens on every path out
//! of the command (success, failure, a refused command, a dropped connection, a panic unwinding
//! the task). Only a crash of the whole process can leave one behind; the names start with
//! [`SPOOL_PREFIX`] so an operator (or a start-up sweep) can recognise them.

use sha2::{Digest, Sha256};
use std::io;
use std::path::Path;
use tempfile::TempPath;
use tokio::io::{AsyncWriteExt, BufWriter};

/// Prefix of spool file names.
pub(crate) const SPOOL_PREFIX: &str = ".yubin-append-";

/// Bytes written to the spool file per system call.
const WRITE_BUFFER: usize = 64 * 1024;

/// One streamed literal of the current command, in the order the receiver streamed them
/// (`AppendBody::Streamed::index`).
pub(crate) enum Spool {
    Ready(SpooledBody),
    /// Not spooled: the octets were read and dropped (a spool I/O error, or a client that is not
    /// authenticated and so cannot APPEND anyway). The command answers `NO`.
    Discarded,
}

/// A complete literal on disk.
pub(crate) struct SpooledBody {
    path: TempPath,
    pub(crate) size: u64,
    /// Lowercase hex SHA-256 of the octets, for the content-addressed blob key.
    pub(crate) sha256: String,
}

impl SpooledBody {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// A spool file being written.
pub(crate) struct Spooler {
    file: BufWriter<tokio::fs::File>,
    path: TempPath,
    hasher: Sha256,
    size: u64,
}

impl Spooler {
    /// Creates an empty spool file in `dir`.
    pub(crate) async fn create(dir: &Path) -> io::Result<Spooler> {
        let dir = dir.to_path_buf();
        let named = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new()
                .prefix(SPOOL_PREFIX)
                .tempfile_in(dir)
        })
        .await
        .map_err(io::Error::other)??;
        let (file, path) = named.into_parts();
        Ok(Spooler {
            file: BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file)),
            path,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    pub(crate) async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file.write_all(chunk).await
    }

    /// Flushes and closes the file. No fsync: the spool only has to outlive this command;
    /// durability is the blob store's job (`put_file` returns once the body is durable there).
    pub(crate) async fn finish(mut self) -> io::Result<SpooledBody> {
        self.file.flush().await?;
        let mut file = self.file.into_inner();
        file.shutdown().await?;
        drop(file);
        Ok(SpooledBody {
            path: self.path,
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        })
    }
}
