//! The message of one transaction as it arrives: in memory up to a threshold, then in a spool
//! file, so a connection holds at most the threshold however large the message and however
//! slowly the MTA sends it.
//!
//! A spool file is a [`TempPath`]: removed when dropped, on every path out of the transaction
//! (delivered, refused, connection lost). Only a crash of the whole process can leave one
//! behind; the names start with [`SPOOL_PREFIX`] so an operator can recognise them.

use bytes::Bytes;
use std::io;
use std::path::{Path, PathBuf};
use tempfile::TempPath;
use tokio::io::{AsyncWriteExt, BufWriter};

/// Prefix of spool file names.
pub(crate) const SPOOL_PREFIX: &str = ".yubin-lmtp-";

/// Bytes written to the spool file per system call.
const WRITE_BUFFER: usize = 64 * 1024;

/// A complete message.
#[derive(Debug)]
pub(crate) enum Body {
    Memory(Bytes),
    Spooled { path: TempPath, size: u64 },
}

impl Body {
    pub(crate) fn len(&self) -> u64 {
        match self {
            Body::Memory(b) => b.len() as u64,
            Body::Spooled { size, .. } => *size,
        }
    }
}

/// Why a message cannot be delivered to anyone.
#[derive(Debug)]
pub(crate) enum BodyFailure {
    /// Over the size limit (the octets after the limit were read and dropped).
    TooBig,
    /// The spool file could not be written (logged where it happened): a local, temporary
    /// problem.
    Spool,
}

struct SpoolFile {
    file: BufWriter<tokio::fs::File>,
    path: TempPath,
}

/// A message being received.
pub(crate) struct BodyBuffer {
    memory: Vec<u8>,
    spool: Option<SpoolFile>,
    size: u64,
    max_size: u64,
    buffered_limit: usize,
    spool_dir: PathBuf,
    failure: Option<BodyFailure>,
}

impl BodyBuffer {
    pub(crate) fn new(max_size: u64, buffered_limit: usize, spool_dir: &Path) -> BodyBuffer {
        BodyBuffer {
            memory: Vec::new(),
            spool: None,
            size: 0,
            max_size,
            buffered_limit,
            spool_dir: spool_dir.to_path_buf(),
            failure: None,
        }
    }

    /// Octets received so far (counted even past the limit).
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Why the message failed, if it did.
    pub(crate) fn failure(&self) -> Option<&BodyFailure> {
        self.failure.as_ref()
    }

    /// Appends octets. Failures are remembered, not returned: the rest of the message must
    /// still be read off the connection before the failure is answered.
    pub(crate) async fn push(&mut self, chunk: &[u8]) {
        self.size = self.size.saturating_add(chunk.len() as u64);
        if self.failure.is_some() {
            return;
        }
        if self.size > self.max_size {
            self.fail(BodyFailure::TooBig);
            return;
        }
        if self.spool.is_none() && self.memory.len() + chunk.len() <= self.buffered_limit {
            self.memory.extend_from_slice(chunk);
            return;
        }
        if let Err(e) = self.spool_write(chunk).await {
            tracing::error!(error = %e, dir = %self.spool_dir.display(), "writing an LMTP spool file failed");
            self.fail(BodyFailure::Spool);
        }
    }

    fn fail(&mut self, failure: BodyFailure) {
        self.memory = Vec::new();
        self.spool = None;
        self.failure = Some(failure);
    }

    async fn spool_write(&mut self, chunk: &[u8]) -> io::Result<()> {
        if self.spool.is_none() {
            let dir = self.spool_dir.clone();
            let named = tokio::task::spawn_blocking(move || {
                tempfile::Builder::new()
                    .prefix(SPOOL_PREFIX)
                    .tempfile_in(dir)
            })
            .await
            .map_err(io::Error::other)??;
            let (file, path) = named.into_parts();
            let mut file = BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file));
            file.write_all(&self.memory).await?;
            self.memory = Vec::new();
            self.spool = Some(SpoolFile { file, path });
        }
        match &mut self.spool {
            Some(spool) => spool.file.write_all(chunk).await,
            None => Err(io::Error::other("spool file missing")),
        }
    }

    /// The complete message. No fsync of a spool file: it only has to outlive this
    /// transaction; durability is the blob store's job.
    pub(crate) async fn finish(mut self) -> Result<Body, BodyFailure> {
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        match self.spool.take() {
            None => Ok(Body::Memory(Bytes::from(std::mem::take(&mut self.memory)))),
            Some(SpoolFile { mut file, path }) => {
                let closed: io::Result<()> = async {
                    file.flush().await?;
                    file.into_inner().shutdown().await
                }
                .await;
                match closed {
                    Ok(()) => Ok(Body::Spooled {
                        path,
                        size: self.size,
                    }),
                    Err(e) => {
                        tracing::error!(error = %e, "closing an LMTP spool file failed");
                        Err(BodyFailure::Spool)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_messages_stay_in_memory_large_ones_go_to_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut small = BodyBuffer::new(1000, 10, dir.path());
        small.push(b"0123456789").await;
        match small.finish().await {
            Ok(Body::Memory(b)) => assert_eq!(&b[..], b"0123456789"),
            other => panic!("{other:?}"),
        }

        let mut large = BodyBuffer::new(1000, 10, dir.path());
        large.push(b"01234").await;
        large.push(b"56789").await;
        large.push(b"abc").await;
        let body = large.finish().await.expect("complete");
        let Body::Spooled { path, size } = &body else {
            panic!("{body:?}");
        };
        assert_eq!(*size, 13);
        assert_eq!(std::fs::read(path).expect("read"), b"0123456789abc");
        let path = path.to_path_buf();
        drop(body);
        assert!(!path.exists(), "the spool file is removed with the body");
    }

    #[tokio::test]
    async fn a_message_over_the_limit_fails_and_keeps_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut b = BodyBuffer::new(15, 4, dir.path());
        b.push(b"0123456789").await;
        assert!(b.failure().is_none());
        b.push(b"0123456789").await;
        assert!(b.failure().is_some());
        b.push(b"more").await;
        assert_eq!(b.size(), 24);
        assert!(matches!(b.finish().await, Err(BodyFailure::TooBig)));
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("list").count(),
            0,
            "no spool file left"
        );
    }

    #[tokio::test]
    async fn a_spool_directory_that_cannot_be_written_is_a_spool_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing");
        let mut b = BodyBuffer::new(100, 2, &missing);
        b.push(b"abcdef").await;
        assert!(matches!(b.finish().await, Err(BodyFailure::Spool)));
    }
}
