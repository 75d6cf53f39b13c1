//! Blobs as files under a root directory: the single-node (dev) backend.
//!
//! Durability: the blob's file is fsynced, then its directory, so both the bytes and the name
//! survive a crash before `put` returns. A key that does not exist yet is written in place
//! (created exclusively, written, fsynced): nobody reads a key before the metadata naming it
//! commits, and that happens only after `put` returns, so no reader can meet the partial file.
//! A key that already exists (the same content stored again, or the leftover of a put a crash
//! interrupted) is replaced by the classic recipe instead: write a temporary file, fsync it,
//! rename it over the name (atomic on POSIX), fsync the directory, so a blob that may be being
//! read is never rewritten in place. The in-place path saves the rename's second journal commit:
//! on ext4 the measured cost of a small put drops from about 1.6 ms to 0.8 ms (see
//! docs/performance.md).

use crate::{BlobError, BlobResult, BlobStore};
use async_trait::async_trait;
use bytes::Bytes;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use yubin_meta_api::BlobKey;

/// Prefix of temporary files; never a valid key component, so `list` can skip them.
const TMP_PREFIX: &str = ".tmp-";

/// Blobs stored as `<root>/<key>` files.
#[derive(Debug)]
pub struct FsBlobStore {
    root: PathBuf,
    /// Makes temporary names unique among concurrent puts of this process.
    tmp_counter: AtomicU64,
}

impl FsBlobStore {
    /// A store rooted at `root`; the directory is created on first write.
    pub fn new(root: PathBuf) -> FsBlobStore {
        FsBlobStore {
            root,
            tmp_counter: AtomicU64::new(0),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_for(&self, key: &str) -> BlobResult<PathBuf> {
        key_path(&self.root, key)
    }
}

/// The file of `key` under `root`. Keys are relative `/`-separated paths (`u/<id>/<sha256>`);
/// anything that could leave the root (`..`, absolute paths, empty or `.` components, backslashes,
/// NUL) or collide with temporary files is refused.
fn key_path(root: &Path, key: &str) -> BlobResult<PathBuf> {
    let valid = !key.is_empty()
        && !key.starts_with('/')
        && !key.contains('\\')
        && !key.contains('\0')
        && key
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.starts_with(TMP_PREFIX));
    if !valid {
        return Err(BlobError::Other(format!("invalid blob key {key:?}")));
    }
    Ok(root.join(key))
}

/// Where the bytes of a put come from.
enum Source<'a> {
    Memory(&'a [u8]),
    /// A file of exactly this many bytes, copied without loading it.
    File(&'a Path, u64),
}

fn put_blocking(key: &str, path: &Path, source: Source<'_>, unique: u64) -> BlobResult<()> {
    let dir = path
        .parent()
        .ok_or_else(|| BlobError::Other(format!("invalid blob key {key:?}")))?;
    create_dirs_durably(dir).map_err(|e| io_error(key, e))?;
    match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(f) => return put_new(key, path, dir, f, source),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error(key, e)),
    }
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| BlobError::Other(format!("invalid blob key {key:?}")))?;
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{file_name}-{}-{unique}",
        std::process::id()
    ));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        write_source(&mut f, &source)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: a leftover temporary file is harmless (list skips it) but wastes space.
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| io_error(key, e))
}

fn write_source(f: &mut File, source: &Source<'_>) -> io::Result<()> {
    match *source {
        Source::Memory(data) => f.write_all(data),
        Source::File(src, size) => {
            // io::copy between files uses copy_file_range/sendfile where it can, and a small
            // buffer otherwise; the length is checked after the copy so a file that changed
            // under us is never stored as this key.
            let copied = io::copy(&mut File::open(src)?, f)?;
            if copied != size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("source file holds {copied} bytes, expected {size}"),
                ));
            }
            Ok(())
        }
    }
}

/// Writes a key this put created exclusively: the bytes, fsync of the file, fsync of the
/// directory (the new name). On failure the partial file is removed if the name still refers to
/// it; if a concurrent put of the same key has already replaced it, that complete blob stays.
fn put_new(key: &str, path: &Path, dir: &Path, mut f: File, source: Source<'_>) -> BlobResult<()> {
    let result = write_source(&mut f, &source)
        .and_then(|()| f.sync_all())
        .and_then(|()| sync_dir(dir));
    if let Err(e) = result {
        use std::os::unix::fs::MetadataExt;
        let ours = f.metadata().ok().map(|m| (m.dev(), m.ino()));
        let named = fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == named {
            // Best effort: a leftover is never read (no metadata names it) and the next put of
            // this key replaces it atomically.
            let _ = fs::remove_file(path);
        }
        return Err(io_error(key, e));
    }
    Ok(())
}

fn get_range_blocking(key: &str, path: &Path, range: Range<u64>) -> BlobResult<Bytes> {
    let mut f = File::open(path).map_err(|e| io_error(key, e))?;
    let len = f.metadata().map_err(|e| io_error(key, e))?.len();
    let end = range.end.min(len);
    if range.start >= end {
        return Ok(Bytes::new());
    }
    let want = usize::try_from(end - range.start)
        .map_err(|_| BlobError::Other(format!("range too large for {key}")))?;
    f.seek(SeekFrom::Start(range.start))
        .map_err(|e| io_error(key, e))?;
    let mut buf = vec![0u8; want];
    f.read_exact(&mut buf).map_err(|e| io_error(key, e))?;
    Ok(Bytes::from(buf))
}

fn list_blocking(root: &Path, prefix: &str) -> BlobResult<Vec<BlobKey>> {
    // Walk only the deepest directory the prefix names (`u/7/` → `<root>/u/7`), and only if
    // that directory part is itself a valid relative path.
    let dir_part = match prefix.rfind('/') {
        Some(i) => &prefix[..i],
        None => "",
    };
    let start = if dir_part.is_empty() {
        root.to_path_buf()
    } else {
        key_path(root, dir_part)?
    };
    let mut keys = Vec::new();
    let mut stack = vec![(start, dir_part.to_string())];
    while let Some((dir, rel)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(prefix, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error(prefix, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.starts_with(TMP_PREFIX) {
                continue;
            }
            let key = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let kind = entry.file_type().map_err(|e| io_error(prefix, e))?;
            if kind.is_dir() {
                // Descend only where keys under it can still match the prefix.
                let as_dir = format!("{key}/");
                if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                    stack.push((entry.path(), key));
                }
            } else if kind.is_file() && key.starts_with(prefix) {
                keys.push(BlobKey(key));
            }
        }
    }
    keys.sort();
    Ok(keys)
}

/// Creates `dir` and its missing ancestors, fsyncing the parent of each directory created so the
/// new entries are durable before a blob is renamed into them.
fn create_dirs_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d);
        cur = d.parent();
    }
    fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn io_error(key: &str, e: io::Error) -> BlobError {
    match e.kind() {
        io::ErrorKind::NotFound => BlobError::NotFound(key.to_string()),
        io::ErrorKind::PermissionDenied | io::ErrorKind::InvalidInput => {
            BlobError::Other(format!("{key}: {e}"))
        }
        // EIO, ENOSPC, a stale network mount...: the caller retries later.
        _ => BlobError::Unavailable(format!("{key}: {e}")),
    }
}

/// Runs blocking file I/O off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> BlobResult<T> + Send + 'static,
) -> BlobResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Other(format!("blob I/O task failed: {e}")))?
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, key: &BlobKey, data: Bytes) -> BlobResult<()> {
        let path = self.path_for(key.as_str())?;
        let key = key.as_str().to_string();
        let unique = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        blocking(move || put_blocking(&key, &path, Source::Memory(&data), unique)).await
    }

    async fn put_file(&self, key: &BlobKey, src: &Path, size: u64) -> BlobResult<()> {
        let path = self.path_for(key.as_str())?;
        let key = key.as_str().to_string();
        let src = src.to_path_buf();
        let unique = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        blocking(move || put_blocking(&key, &path, Source::File(&src, size), unique)).await
    }

    async fn get(&self, key: &BlobKey) -> BlobResult<Bytes> {
        let path = self.path_for(key.as_str())?;
        let key = key.as_str().to_string();
        blocking(move || {
            fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| io_error(&key, e))
        })
        .await
    }

    async fn get_range(&self, key: &BlobKey, range: Range<u64>) -> BlobResult<Bytes> {
        let path = self.path_for(key.as_str())?;
        let key = key.as_str().to_string();
        blocking(move || get_range_blocking(&key, &path, range)).await
    }

    async fn exists(&self, key: &BlobKey) -> BlobResult<bool> {
        let path = self.path_for(key.as_str())?;
        let key = key.as_str().to_string();
        blocking(move || match fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(&key, e)),
        })
        .await
    }

    async fn delete(&self, key: &BlobKey) -> BlobResult<()> {
        let path = self.path_for(key.as_str())?;
        let key = key.as_str().to_string();
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    sync_dir(dir).map_err(|e| io_error(&key, e))?;
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&key, e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> BlobResult<Vec<BlobKey>> {
        let prefix = prefix.to_string();
        let root = self.root.clone();
        blocking(move || list_blocking(&root, &prefix)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A partial file left under a key by an interrupted put is replaced by the next put of that
    /// key, and a put of an existing key keeps its content whole.
    #[tokio::test]
    async fn put_replaces_a_leftover_of_an_interrupted_put() {
        let root = std::env::temp_dir().join(format!(
            "yubin-fs-leftover-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let store = FsBlobStore::new(root.clone());
        let key = BlobKey("u/1/leftover".into());
        fs::create_dir_all(root.join("u/1")).expect("mkdir");
        fs::write(root.join("u/1/leftover"), b"partial").expect("leftover");
        let body = Bytes::from_static(b"the whole message body");
        store
            .put(&key, body.clone())
            .await
            .expect("put over leftover");
        assert_eq!(store.get(&key).await.expect("get"), body);
        store.put(&key, body.clone()).await.expect("put again");
        assert_eq!(store.get(&key).await.expect("get"), body);
        let fresh = BlobKey("u/1/fresh".into());
        store.put(&fresh, body.clone()).await.expect("put new");
        assert_eq!(store.get(&fresh).await.expect("get"), body);
        let left: Vec<_> = fs::read_dir(root.join("u/1"))
            .expect("read_dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(TMP_PREFIX))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn rejects_escaping_keys() {
        let s = FsBlobStore::new(PathBuf::from("/nonexistent-root"));
        for bad in [
            "",
            "/etc/passwd",
            "u/../../etc",
            "u/./x",
            "u//x",
            "..",
            "u/1/..",
            "u\\1",
            "u/1/.tmp-x",
        ] {
            assert!(
                matches!(s.path_for(bad), Err(BlobError::Other(_))),
                "{bad:?} accepted"
            );
        }
        assert_eq!(
            s.path_for("u/1/abc").ok(),
            Some(PathBuf::from("/nonexistent-root/u/1/abc"))
        );
    }
}
