//! The files cache (spec section 8.7.1): what the last backup on this device read, so that the
//! next one takes an unchanged file's blobs from it instead of reading the file again.
//!
//! It is local state, kept beside the client's other state and never uploaded: a text file
//! whose first line names the media keys and chunking it was made with, then one line per
//! regular file. Anything the reader does not understand makes it read as empty: the cache only
//! ever saves work, and a backup without it reads every file.
//!
//! ```text
//! e2ee-backups files cache v1 <tag, 64 hex> <min> <avg> <max>
//! <size> <mtime ns> <ctime ns> <inode> <device> <path, hex> <blob hex>:<len>,...
//! ```
//!
//! `tag` is the blob name (section 8.5) of the bytes `e2ee-backups/v1/files-cache`: it changes
//! with the media root key, and says nothing else.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::blob::BlobName;
use crate::keys::MediaKeys;
use crate::manifest::BlobRef;
use crate::snapshots::ChunkParams;

const MAGIC: &str = "e2ee-backups files cache v1";
const TAG_INPUT: &[u8] = b"e2ee-backups/v1/files-cache";

/// How much older than the start of the backup that reads a file its times must be for the
/// file to be cached: file systems keep times as coarse as 2 s, and a write in the same tick as
/// the read would leave them unchanged.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// What identifies a file's content without reading it: changed by any write (the ctime, which
/// no program can set back) or by a replacement (inode, device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    inode: u64,
    device: u64,
}

impl Stamp {
    pub(crate) fn of(meta: &fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
            Self {
                size: meta.size(),
                mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
                ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
                inode: meta.ino(),
                device: meta.dev(),
            }
        }
        #[cfg(not(unix))]
        {
            let ns = |t: std::io::Result<SystemTime>| match t.map(|t| t.duration_since(UNIX_EPOCH))
            {
                Ok(Ok(after)) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
                _ => i128::MAX,
            };
            Self {
                size: meta.len(),
                mtime_ns: ns(meta.modified()),
                ctime_ns: ns(meta.modified()),
                inode: 0,
                device: 0,
            }
        }
    }

    /// Whether both times are `SETTLE` older than `start`.
    fn settled(&self, start: SystemTime) -> bool {
        let start = start.checked_sub(SETTLE).unwrap_or(UNIX_EPOCH);
        let start = start.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let start = i128::try_from(start).unwrap_or(i128::MAX);
        self.mtime_ns < start && self.ctime_ns < start
    }
}

/// A backup's view of the cache: the one it read, the one it writes, and when it started.
#[derive(Debug)]
pub(crate) struct CacheRun {
    pub(crate) old: FilesCache,
    pub(crate) new: FilesCache,
    pub(crate) start: SystemTime,
}

/// The files of one backup's tree, by path: their stamps and blobs.
#[derive(Debug, Default)]
pub(crate) struct FilesCache {
    files: HashMap<String, (Stamp, Vec<BlobRef>)>,
}

impl FilesCache {
    /// The cache at `path` if it was made with `media` and `chunking`; empty otherwise (none
    /// yet, another key, another chunking, or bytes it does not understand).
    pub(crate) fn load(path: &Path, media: &MediaKeys, chunking: &ChunkParams) -> Self {
        fs::read_to_string(path)
            .ok()
            .and_then(|text| Self::parse(&text, &header(media, chunking)))
            .unwrap_or_default()
    }

    fn parse(text: &str, expected_header: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()? != expected_header {
            return None;
        }
        let mut files = HashMap::new();
        for line in lines {
            let mut fields = line.split(' ');
            let mut number = || fields.next()?.parse::<i128>().ok();
            let (size, mtime_ns, ctime_ns, inode, device) =
                (number()?, number()?, number()?, number()?, number()?);
            let stamp = Stamp {
                size: u64::try_from(size).ok()?,
                mtime_ns,
                ctime_ns,
                inode: u64::try_from(inode).ok()?,
                device: u64::try_from(device).ok()?,
            };
            let path = String::from_utf8(hex::decode(fields.next()?).ok()?).ok()?;
            let blobs = match fields.next()? {
                "" => Vec::new(),
                list => list.split(',').map(parse_blob).collect::<Option<Vec<_>>>()?,
            };
            if fields.next().is_some() {
                return None;
            }
            files.insert(path, (stamp, blobs));
        }
        Some(Self { files })
    }

    /// The blobs of the file at `path` if it is unchanged since it was cached (the same
    /// stamp) and every one of them is `stored`.
    pub(crate) fn unchanged(
        &self,
        path: &str,
        stamp: &Stamp,
        stored: impl Fn(&BlobName) -> bool,
    ) -> Option<&[BlobRef]> {
        let (cached, blobs) = self.files.get(path)?;
        (cached == stamp && blobs.iter().all(|b| stored(&b.name))).then_some(blobs.as_slice())
    }

    /// Records a file a backup that started at `start` read (or took from the cache): only
    /// if its times had settled by then, so that a write in the same tick as the read cannot
    /// hide behind an unchanged stamp.
    pub(crate) fn record(
        &mut self,
        start: SystemTime,
        path: &str,
        stamp: Stamp,
        blobs: &[BlobRef],
    ) {
        if stamp.settled(start) {
            self.files.insert(path.to_owned(), (stamp, blobs.to_vec()));
        }
    }

    /// Writes the cache to `path` through a temporary file and a rename, readable by its owner
    /// only. A failure leaves the old cache or none, never a partial one.
    pub(crate) fn save(
        &self,
        path: &Path,
        media: &MediaKeys,
        chunking: &ChunkParams,
    ) -> std::io::Result<()> {
        let mut text = header(media, chunking);
        text.push('\n');
        let mut paths: Vec<&String> = self.files.keys().collect();
        paths.sort();
        for name in paths {
            let (s, blobs) = &self.files[name];
            let blobs: Vec<String> =
                blobs.iter().map(|b| format!("{}:{}", b.name, b.len)).collect();
            text.push_str(&format!(
                "{} {} {} {} {} {} {}\n",
                s.size,
                s.mtime_ns,
                s.ctime_ns,
                s.inode,
                s.device,
                hex::encode(name),
                blobs.join(",")
            ));
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        // Mode 0600, removed on any failure (a `.tmp` one a killed process leaves is swept by
        // the client when it next opens its directory).
        let mut temp =
            tempfile::Builder::new().prefix(".files-cache-").suffix(".tmp").tempfile_in(dir)?;
        temp.write_all(text.as_bytes())?;
        temp.as_file().sync_all()?;
        temp.persist(path).map(drop).map_err(|e| e.error)
    }
}

fn header(media: &MediaKeys, chunking: &ChunkParams) -> String {
    let tag = media.blob_name(TAG_INPUT);
    format!("{MAGIC} {tag} {} {} {}", chunking.min, chunking.avg, chunking.max)
}

fn parse_blob(text: &str) -> Option<BlobRef> {
    let (name, len) = text.split_once(':')?;
    let bytes: [u8; 32] = hex::decode(name).ok()?.try_into().ok()?;
    Some(BlobRef { name: BlobName(bytes), len: len.parse().ok()? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(mtime_ns: i128) -> Stamp {
        Stamp { size: 5, mtime_ns, ctime_ns: mtime_ns, inode: 7, device: 1 }
    }

    #[test]
    fn only_files_whose_times_settled_before_the_backup_started_are_recorded() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000);
        let blobs = [BlobRef { name: BlobName([1; 32]), len: 5 }];
        let mut cache = FilesCache::default();
        cache.record(start, "old", stamp(997_999_999_999), &blobs);
        cache.record(start, "racy", stamp(998_000_000_000), &blobs);
        assert!(cache.unchanged("old", &stamp(997_999_999_999), |_| true).is_some());
        assert!(cache.unchanged("racy", &stamp(998_000_000_000), |_| true).is_none());
        // Any other stamp, or a blob the store no longer has, and the file is read again.
        assert!(cache.unchanged("old", &stamp(997_999_999_998), |_| true).is_none());
        assert!(cache.unchanged("old", &stamp(997_999_999_999), |_| false).is_none());
    }

    #[test]
    fn a_saved_cache_reads_back_and_anything_else_reads_as_empty() {
        let header = "e2ee-backups files cache v1 00 1 2 3";
        let line = format!(
            "5 10 11 7 1 {} {}:5,{}:9",
            hex::encode("a b"),
            "01".repeat(32),
            "02".repeat(32)
        );
        let cache = FilesCache::parse(&format!("{header}\n{line}\n"), header).unwrap();
        let blobs = cache.unchanged(
            "a b",
            &Stamp { size: 5, mtime_ns: 10, ctime_ns: 11, inode: 7, device: 1 },
            |_| true,
        );
        assert_eq!(blobs.map(<[BlobRef]>::len), Some(2));
        assert!(FilesCache::parse(&format!("{header}\n{line}\n"), "another header").is_none());
        assert!(FilesCache::parse(&format!("{header}\n{line} extra\n"), header).is_none());
        assert!(FilesCache::parse(&format!("{header}\n5 10 11\n"), header).is_none());
    }
}
