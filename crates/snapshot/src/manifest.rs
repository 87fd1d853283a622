//! The manifest: what one snapshot holds (spec section 8.5).
//!
//! A canonical binary encoding, all integers big-endian:
//!
//! ```text
//! manifest = version (01) || created_at be64 || new_blobs be64 || new_bytes be64
//!            || entry_count be32 || entry_0 || ... || entry_(n-1)
//! entry    = path_len be16 || path || kind (1 byte) || mode be32 || mtime be64 || size be64
//!            || body
//! body     = kind 01, file:    blob_count be32 || blob_count x (name 32 bytes || length be32)
//!            kind 02, dir:     nothing
//!            kind 03, symlink: target_len be16 || target
//! ```
//!
//! Paths are strictly increasing as byte strings, so each appears once and the encoding of a
//! tree is unique.

use crate::BlobName;
use crate::path::{check_link_target, check_path};

/// The manifest encoding version this implementation writes and reads.
pub const MANIFEST_VERSION: u8 = 1;
/// Largest blob (chunk) a manifest may reference, in bytes.
pub const MAX_BLOB_LEN: u32 = 16 * 1024 * 1024;
/// Largest permission bits a manifest may record.
pub const MAX_MODE: u32 = 0o7777;

const KIND_FILE: u8 = 1;
const KIND_DIR: u8 = 2;
const KIND_SYMLINK: u8 = 3;

/// One blob of a file: its name and the length of its plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    /// The blob's name.
    pub name: BlobName,
    /// Its plaintext length in bytes, 1 to [`MAX_BLOB_LEN`].
    pub len: u32,
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file, the concatenation of its blobs (none for an empty file).
    File {
        /// The blobs in order.
        blobs: Vec<BlobRef>,
    },
    /// A directory.
    Dir,
    /// A symbolic link, its target as written.
    Symlink {
        /// The link's target text.
        target: String,
    },
}

/// One file, directory or link of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the snapshot's root, UTF-8, `/`-separated (section 8.4).
    pub path: String,
    /// File, directory or link.
    pub kind: EntryKind,
    /// Permission bits, at most `0o7777`.
    pub mode: u32,
    /// Modification time, seconds since the Unix epoch (negative before it).
    pub mtime: i64,
    /// For a file the sum of its blob lengths; 0 for directories and links.
    pub size: u64,
}

/// A snapshot's tree and its counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// When the snapshot was made, seconds since the Unix epoch.
    pub created_at: u64,
    /// How many blobs this snapshot uploaded (the others it reuses).
    pub new_blobs: u64,
    /// Plaintext bytes of those blobs.
    pub new_bytes: u64,
    /// The entries, in strictly increasing byte order of their paths.
    pub entries: Vec<Entry>,
}

/// Why a manifest encoding is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The version byte is not [`MANIFEST_VERSION`].
    #[error("manifest version {0} is not supported (this implementation reads version 1)")]
    UnsupportedVersion(u8),
    /// The encoding ends inside a field.
    #[error("the manifest ends inside a field")]
    Truncated,
    /// Bytes follow the last entry.
    #[error("bytes follow the last manifest entry")]
    TrailingBytes,
    /// A path or link target breaks a rule of section 8.4.
    #[error("path {path:?} is refused: {why}")]
    UnsafePath {
        /// The path (or link target) as found.
        path: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// A field holds a value the encoding does not allow.
    #[error("manifest field {field} is invalid at entry {index}")]
    InvalidValue {
        /// The field, as named in the specification.
        field: &'static str,
        /// Index of the entry.
        index: u64,
    },
    /// Paths are not strictly increasing.
    #[error("manifest paths are not strictly increasing at {path:?}")]
    Unsorted {
        /// The first path out of order.
        path: String,
    },
}

impl ManifestError {
    /// A stable short name of the rule broken (spec section 8.5), used by the test vectors.
    pub fn code(&self) -> &'static str {
        match self {
            ManifestError::UnsupportedVersion(_) => "unsupported-version",
            ManifestError::Truncated => "truncated",
            ManifestError::TrailingBytes => "trailing-bytes",
            ManifestError::UnsafePath { .. } => "unsafe-path",
            ManifestError::InvalidValue { .. } => "invalid-value",
            ManifestError::Unsorted { .. } => "unsorted",
        }
    }
}

impl Manifest {
    /// The canonical encoding. Fails on an entry that breaks a rule: a reader would refuse it.
    pub fn encode(&self) -> Result<Vec<u8>, ManifestError> {
        let mut out = Vec::new();
        out.push(MANIFEST_VERSION);
        out.extend_from_slice(&self.created_at.to_be_bytes());
        out.extend_from_slice(&self.new_blobs.to_be_bytes());
        out.extend_from_slice(&self.new_bytes.to_be_bytes());
        let count = u32::try_from(self.entries.len())
            .map_err(|_| ManifestError::InvalidValue { field: "entry_count", index: 0 })?;
        out.extend_from_slice(&count.to_be_bytes());
        let mut previous: Option<&str> = None;
        for (index, entry) in self.entries.iter().enumerate() {
            check_entry(entry, index as u64, previous)?;
            previous = Some(&entry.path);
            out.extend_from_slice(&(entry.path.len() as u16).to_be_bytes());
            out.extend_from_slice(entry.path.as_bytes());
            out.push(match entry.kind {
                EntryKind::File { .. } => KIND_FILE,
                EntryKind::Dir => KIND_DIR,
                EntryKind::Symlink { .. } => KIND_SYMLINK,
            });
            out.extend_from_slice(&entry.mode.to_be_bytes());
            out.extend_from_slice(&entry.mtime.to_be_bytes());
            out.extend_from_slice(&entry.size.to_be_bytes());
            match &entry.kind {
                EntryKind::File { blobs } => {
                    out.extend_from_slice(&(blobs.len() as u32).to_be_bytes());
                    for blob in blobs {
                        out.extend_from_slice(&blob.name.0);
                        out.extend_from_slice(&blob.len.to_be_bytes());
                    }
                }
                EntryKind::Dir => {}
                EntryKind::Symlink { target } => {
                    out.extend_from_slice(&(target.len() as u16).to_be_bytes());
                    out.extend_from_slice(target.as_bytes());
                }
            }
        }
        Ok(out)
    }

    /// Decodes an encoding, refusing anything a conforming writer would not produce.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let mut input = Input(bytes);
        let [version] = input.array()?;
        if version != MANIFEST_VERSION {
            return Err(ManifestError::UnsupportedVersion(version));
        }
        let created_at = u64::from_be_bytes(input.array()?);
        let new_blobs = u64::from_be_bytes(input.array()?);
        let new_bytes = u64::from_be_bytes(input.array()?);
        let count = u32::from_be_bytes(input.array()?);
        let mut entries: Vec<Entry> = Vec::new();
        for index in 0..u64::from(count) {
            let path_len = u16::from_be_bytes(input.array()?);
            let path = String::from_utf8(input.take(path_len.into())?.to_vec()).map_err(|e| {
                ManifestError::UnsafePath {
                    path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                    why: "not UTF-8",
                }
            })?;
            let [kind] = input.array()?;
            let mode = u32::from_be_bytes(input.array()?);
            let mtime = i64::from_be_bytes(input.array()?);
            let size = u64::from_be_bytes(input.array()?);
            let kind = match kind {
                KIND_FILE => {
                    let blob_count = u32::from_be_bytes(input.array()?);
                    let mut blobs = Vec::new();
                    for _ in 0..blob_count {
                        let name = BlobName(input.array()?);
                        let len = u32::from_be_bytes(input.array()?);
                        blobs.push(BlobRef { name, len });
                    }
                    EntryKind::File { blobs }
                }
                KIND_DIR => EntryKind::Dir,
                KIND_SYMLINK => {
                    let target_len = u16::from_be_bytes(input.array()?);
                    EntryKind::Symlink { target: input.text(target_len.into(), "target", index)? }
                }
                _ => return Err(ManifestError::InvalidValue { field: "kind", index }),
            };
            let entry = Entry { path, kind, mode, mtime, size };
            check_entry(&entry, index, entries.last().map(|e| e.path.as_str()))?;
            entries.push(entry);
        }
        if !input.0.is_empty() {
            return Err(ManifestError::TrailingBytes);
        }
        Ok(Manifest { created_at, new_blobs, new_bytes, entries })
    }

    /// Number of regular files.
    pub fn file_count(&self) -> u64 {
        self.entries.iter().filter(|e| matches!(e.kind, EntryKind::File { .. })).count() as u64
    }

    /// Sum of the file sizes.
    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// The rules of section 8.5 for one entry, given the path before it.
fn check_entry(entry: &Entry, index: u64, previous: Option<&str>) -> Result<(), ManifestError> {
    check_path(&entry.path)
        .map_err(|why| ManifestError::UnsafePath { path: entry.path.clone(), why })?;
    if previous.is_some_and(|p| p.as_bytes() >= entry.path.as_bytes()) {
        return Err(ManifestError::Unsorted { path: entry.path.clone() });
    }
    if entry.mode > MAX_MODE {
        return Err(ManifestError::InvalidValue { field: "mode", index });
    }
    let invalid = |field| ManifestError::InvalidValue { field, index };
    match &entry.kind {
        EntryKind::File { blobs } => {
            if blobs.iter().any(|b| b.len == 0 || b.len > MAX_BLOB_LEN) {
                return Err(invalid("length"));
            }
            let sum: u64 = blobs.iter().map(|b| u64::from(b.len)).sum();
            if sum != entry.size {
                return Err(invalid("size"));
            }
        }
        EntryKind::Dir => {
            if entry.size != 0 {
                return Err(invalid("size"));
            }
        }
        EntryKind::Symlink { target } => {
            if entry.size != 0 {
                return Err(invalid("size"));
            }
            // Any target is recorded; whether one is restored is decided then (section 8.8).
            if target.is_empty() || target.len() > usize::from(u16::MAX) || target.contains('\0') {
                return Err(invalid("target"));
            }
        }
    }
    Ok(())
}

/// Whether a link's target stays inside the restore directory (section 8.8).
pub fn link_target_is_inside(target: &str) -> bool {
    check_link_target(target).is_ok()
}

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        if self.0.len() < n {
            return Err(ManifestError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ManifestError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn text(&mut self, n: usize, field: &'static str, index: u64) -> Result<String, ManifestError> {
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ManifestError::InvalidValue { field, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, blobs: &[(u8, u32)]) -> Entry {
        let blobs: Vec<BlobRef> =
            blobs.iter().map(|&(b, len)| BlobRef { name: BlobName([b; 32]), len }).collect();
        let size = blobs.iter().map(|b| u64::from(b.len)).sum();
        Entry { path: path.into(), kind: EntryKind::File { blobs }, mode: 0o644, mtime: 7, size }
    }

    #[test]
    fn round_trips_and_refuses_each_rule() {
        let manifest = Manifest {
            created_at: 1,
            new_blobs: 2,
            new_bytes: 3,
            entries: vec![
                Entry { path: "a".into(), kind: EntryKind::Dir, mode: 0o755, mtime: -1, size: 0 },
                file("a b", &[(1, 5), (2, 6)]),
                file("a/é", &[]),
                Entry {
                    path: "l".into(),
                    kind: EntryKind::Symlink { target: "a/é".into() },
                    mode: 0o777,
                    mtime: 0,
                    size: 0,
                },
            ],
        };
        let encoded = manifest.encode().unwrap();
        assert_eq!(Manifest::decode(&encoded).unwrap(), manifest);
        assert_eq!(manifest.file_count(), 2);
        assert_eq!(manifest.total_size(), 11);

        let mut longer = encoded.clone();
        longer.push(0);
        assert_eq!(Manifest::decode(&longer), Err(ManifestError::TrailingBytes));
        assert_eq!(Manifest::decode(&encoded[..encoded.len() - 1]), Err(ManifestError::Truncated));
        let mut version = encoded.clone();
        version[0] = 2;
        assert_eq!(Manifest::decode(&version), Err(ManifestError::UnsupportedVersion(2)));

        let mut unsorted = manifest.clone();
        unsorted.entries.swap(1, 2);
        assert!(matches!(unsorted.encode(), Err(ManifestError::Unsorted { .. })));
        let mut bad_size = manifest.clone();
        bad_size.entries[1].size += 1;
        assert!(matches!(
            bad_size.encode(),
            Err(ManifestError::InvalidValue { field: "size", index: 1 })
        ));
        let mut bad_mode = manifest;
        bad_mode.entries[0].mode = 0o10000;
        assert!(matches!(
            bad_mode.encode(),
            Err(ManifestError::InvalidValue { field: "mode", .. })
        ));
    }

    /// A manifest whose path climbs out, built byte by byte as an attacker would, is refused.
    #[test]
    fn decode_refuses_traversal_built_by_hand() {
        for path in ["../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "", "a/"] {
            let mut bytes = vec![MANIFEST_VERSION];
            bytes.extend_from_slice(&[0; 24]);
            bytes.extend_from_slice(&1u32.to_be_bytes());
            bytes.extend_from_slice(&(path.len() as u16).to_be_bytes());
            bytes.extend_from_slice(path.as_bytes());
            bytes.push(KIND_DIR);
            bytes.extend_from_slice(&0o755u32.to_be_bytes());
            bytes.extend_from_slice(&0i64.to_be_bytes());
            bytes.extend_from_slice(&0u64.to_be_bytes());
            assert!(
                matches!(Manifest::decode(&bytes), Err(ManifestError::UnsafePath { .. })),
                "{path:?}"
            );
        }
    }
}
